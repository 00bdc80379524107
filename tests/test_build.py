"""Build checks: every device file compiles with mpy-cross, the firmware type-checks against
the official MicroPython ESP32-C3 stubs, and host, simulator, tools and centre type-check strictly."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msa.tools import firmware as fw

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / ".venv" / "mpstubs"
FIRMWARE_SOURCES = sorted({*ROOT.joinpath("firmware").glob("*.py"),
                           *ROOT.joinpath("board").glob("*.py")})
SIM_DEVICE_SOURCES = sorted(ROOT.joinpath("simulator", "mp").glob("*.py"))
DEVICE_SOURCES = FIRMWARE_SOURCES + SIM_DEVICE_SOURCES


@pytest.mark.parametrize("source", DEVICE_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    compiled = fw.compile_file(source, tmp_path / (source.stem + ".mpy"))
    assert compiled.size > 0 and compiled.mpy.read_bytes()[:1] == b"M"


@pytest.mark.parametrize("board", fw.boards())
def test_every_board_builds_a_complete_image(board: str) -> None:
    names = {c.name for c in fw.compile_board(board)}
    assert {"board.mpy", "frame.mpy", "button.mpy", "store.mpy"} <= names


def test_unknown_board_is_refused_with_the_known_ones() -> None:
    with pytest.raises(fw.UnknownBoard) as err:
        fw.device_files("arduino_uno")
    assert "xiao_esp32c3" in str(err.value) or "sim" in str(err.value)


def _mypy(*args: str, env_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if env_path is not None:
        env = dict(os.environ, MYPYPATH=env_path)
    return subprocess.run([sys.executable, "-m", "mypy", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env)


def test_firmware_type_checks_against_esp32_c3_stubs() -> None:
    assert STUBS.is_dir(), f"{STUBS} missing: run `python3 bootstrap.py test`, which installs them"
    files = [str(p.relative_to(ROOT)) for p in FIRMWARE_SOURCES]
    proc = _mypy("--config-file", "tests/mypy_firmware.ini", "--custom-typeshed-dir",
                 str(STUBS), *files, env_path=str(STUBS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_virtual_board_device_code_type_checks_against_the_stubs(tmp_path: Path) -> None:
    # Its own run: here `bluetooth` is the simulated module, not the port's.
    files = [str(p.relative_to(ROOT)) for p in SIM_DEVICE_SOURCES]
    device = tmp_path / "device"  # as on the virtual board's flash: sim.py is board.py
    device.mkdir()
    shutil.copyfile(ROOT / "board" / "sim.py", device / "board.py")
    proc = _mypy("--config-file", "tests/mypy_firmware.ini", "--custom-typeshed-dir",
                 str(STUBS), "--cache-dir", str(tmp_path / "cache"), *files,
                 env_path=os.pathsep.join((str(STUBS), str(device), str(ROOT / "firmware"),
                                           str(ROOT / "board"))))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_host_simulator_and_tools_type_check_strictly(tmp_path: Path) -> None:
    # The folders install as msa.wire, msa.host, msa.simulator, ...; mypy sees them the same way.
    pkg = tmp_path / "msa"
    pkg.mkdir()
    for name in ("wire", "common", "host", "simulator", "tools", "centre", "firmware", "board",
                 "bench"):
        (pkg / name).symlink_to(ROOT / name)
    proc = _mypy("--strict", "--exclude", "/mp/", "--cache-dir", str(tmp_path / "cache"),
                 "-p", "msa.wire", "-p", "msa.common", "-p", "msa.host",
                 "-p", "msa.simulator", "-p", "msa.tools", "-p", "msa.centre", "-p", "msa.bench",
                 env_path=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Who may import whom: the wire contract stands alone; host and centre each import it and
# never each other (a centre that used the host's codecs would accept what the host sends,
# whatever the contract says).
_MAY_IMPORT = {"wire": {"wire"}, "common": {"common"},
               "host": {"wire", "common", "host"}, "centre": {"wire", "common", "centre"}}


def _msa_imports(path: Path) -> set[str]:
    import ast
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found.update(n.split(".")[1] for n in names if n.startswith("msa.") and "." in n)
    return found


@pytest.mark.parametrize("package", sorted(_MAY_IMPORT))
def test_neither_side_imports_the_other(package: str) -> None:
    wrong = {str(p.relative_to(ROOT)): sorted(_msa_imports(p) - _MAY_IMPORT[package])
             for p in sorted((ROOT / package).glob("*.py"))}
    assert {p: w for p, w in wrong.items() if w} == {}
