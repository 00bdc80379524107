"""Runs the benchmark sections in order, each in a scratch folder of its own, and gathers their
figures with what a reader needs to trust them: the machine, the versions, the time each
section took, and any section that failed (its figures missing, its error kept)."""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from .figures import Figure, Options

# In the order they run: the long simulated-chain runs first, the models last.
SECTIONS = ("latency", "dc09", "sms", "tracking", "ingest", "hostile", "firmware", "battery",
            "host", "proximity")


@dataclass(frozen=True)
class SectionResult:
    name: str
    figures: tuple[Figure, ...]
    seconds: float
    error: str = ""


def section(name: str) -> ModuleType:
    """The module of a section; ValueError names the known ones."""
    if name not in SECTIONS:
        raise ValueError(f"no benchmark section {name!r}; known: {', '.join(SECTIONS)}")
    return importlib.import_module(f"msa.bench.{name}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The host's own warnings (a dead channel is the point of the SMS section) would bury
    the table: only errors are shown while sections run."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    if not root.handlers:
        logging.basicConfig(level=logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def run_sections(names: Sequence[str], options: Options,
                 started: Callable[[str], None] = lambda _name: None
                 ) -> list[SectionResult]:
    """Each named section, in SECTIONS order; a failing one is recorded, the rest still run."""
    results = []
    for name in names:
        if name not in SECTIONS:
            raise ValueError(f"no benchmark section {name!r}; known: {', '.join(SECTIONS)}")
    with _quiet(), tempfile.TemporaryDirectory(prefix="msa-bench-") as scratch:
        for name in SECTIONS:
            if name not in names:
                continue
            started(name)
            root = Path(scratch) / name
            root.mkdir()
            began = time.monotonic()
            try:
                figures = tuple(section(name).run(replace(options, root=root)))
                error = ""
            except Exception as exc:  # noqa: BLE001  (a benchmark reports, it does not stop)
                figures = ()
                error = f"{type(exc).__name__}: {exc}"
                logging.getLogger("msa.bench").debug("%s failed\n%s", name,
                                                     traceback.format_exc())
            results.append(SectionResult(name, figures, time.monotonic() - began, error))
    return results


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def meta(results: Sequence[SectionResult], options: Options) -> dict[str, Any]:
    """What the run was: when, where, which code, how long each section took."""
    from importlib.metadata import version

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
                   f" {platform.release()}",
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("bumble", "bleak", "aiohttp", "mpremote")},
        "commit": _git_commit(),
        "scale": options.scale,
        "runs": options.runs,
        "seconds": {r.name: round(r.seconds, 1) for r in results},
        "errors": {r.name: r.error for r in results if r.error},
    }
