"""Talks to a device's MicroPython REPL through the real mpremote, run as a subprocess, and
turns its failures into the tools' errors where they enter."""
from __future__ import annotations

import grp
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .errors import (DeviceFailed, MpremoteMissing, NoDevice, NoFirmware, NotMicroPython,
                     PortDenied)

# A real board over USB at 115200 baud copies about 10 kB/s; the whole firmware is ~25 kB.
DEFAULT_TIMEOUT_S = 120.0

# What mpremote says when the port cannot be opened, and when the other end is no REPL.
_NO_DEVICE = ("failed to access", "no device found")
_NOT_REPL = ("could not enter raw repl", "timeout waiting for")
# What MicroPython says when a firmware module is missing on the device.
_NO_FIRMWARE_MODULES = ("config", "store", "bonds", "version", "app", "button")

# Run first in every mpremote session: mpremote's Ctrl-C stops the firmware, but not its
# watchdog, which nothing can stop and which survives the soft reset (ESP32, rp2). So each
# session reconfigures it to a long period and feeds it: the longest the rp2 allows (8.4 s),
# five minutes on the ESP32 ports, whose copy over a 115200-baud UART can take minutes. A
# session left half done still ends in a watchdog reset into the firmware. A device without
# the firmware's board module has no watchdog to hold.
HOLD_WATCHDOG = ("import sys\ntry:\n import board\nexcept ImportError:\n board = None\n"
                 "if board:\n board.watchdog(8388 if sys.platform == 'rp2' else 300000).feed()\n")


def mpremote_path() -> Path:
    """The mpremote installed with msa, next to this interpreter (not whatever PATH finds)."""
    return Path(sys.executable).parent / "mpremote"


class Usb:
    """One device, reached as `mpremote connect PORT ...`; PORT is a serial device or a
    socket://HOST:PORT URL (the virtual board)."""

    def __init__(self, port: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.port = port
        self.timeout_s = timeout_s

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        exe = mpremote_path()
        if not exe.exists():
            raise MpremoteMissing(str(exe))
        return [str(exe), "connect", self.port, "exec", HOLD_WATCHDOG, "+", *args]

    def run(self, step: str, *args: str,
            line: Callable[[str], None] | None = None) -> str:
        """Runs one mpremote command line (commands may be chained with "+") and returns its
        output; `line` sees each line as it comes. `step` names it in errors. The session
        holds the device's watchdog first (HOLD_WATCHDOG)."""
        # Unbuffered, so that lines arrive as mpremote prints them (the progress bar).
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.Popen(self._argv(args), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env)
        except OSError as exc:
            raise MpremoteMissing(f"{mpremote_path()} ({exc})") from exc
        # A watchdog rather than communicate(timeout=): the lines are read as they come.
        killed = threading.Event()

        def expire() -> None:
            killed.set()
            proc.kill()
        timer = threading.Timer(self.timeout_s, expire)
        timer.start()
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for text in proc.stdout:
                lines.append(text)
                if line is not None:
                    line(text.rstrip("\n"))
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # the caller's line handler failed: do not leave it
                proc.kill()
                proc.wait()
        output = "".join(lines)
        if killed.is_set():
            raise DeviceFailed(self.port, step, f"no answer within {self.timeout_s:.0f} s")
        if proc.returncode != 0:
            raise self._error(step, output)
        return output

    def _error(self, step: str, output: str) -> Exception:
        low = output.lower()
        last = output.strip().splitlines()[-1] if output.strip() else ""
        if any(s in low for s in _NO_DEVICE):
            # mpremote says "failed to access ... (it may be in use)" whatever the cause: a
            # device that is there but closed to this user needs another remedy.
            group = self._denied_group()
            if group is not None:
                return PortDenied(self.port, group)
            return NoDevice(self.port, last.removeprefix("mpremote: "))
        if any(s in low for s in _NOT_REPL):
            return NotMicroPython(self.port, "it does not answer as a MicroPython REPL")
        if any(f"no module named '{m}'" in low for m in _NO_FIRMWARE_MODULES):
            return NoFirmware(self.port)
        return DeviceFailed(self.port, step, output)

    def _denied_group(self) -> str | None:
        """The group owning the serial device, if it exists and this user may not open it for
        reading and writing (None for a socket:// port, a missing device, or one it may)."""
        if "://" in self.port or not os.path.exists(self.port) or \
                os.access(self.port, os.R_OK | os.W_OK):
            return None
        gid = os.stat(self.port).st_gid
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    def exec(self, step: str, code: str) -> str:
        """Runs a snippet on the device (it is on mpremote's command line: never secrets)."""
        return self.run(step, "exec", code)

    def run_file(self, step: str, script: Path) -> str:
        """Runs a local script on the device: its text goes over the REPL, not the command
        line, and nothing is written to the device's flash."""
        return self.run(step, "run", str(script))
