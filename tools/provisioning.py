"""What the technicians' USB commands do to a button's configuration through mpremote: write
it with fresh keys and register the button (provision), read its id, erase it all (wipe)."""
from __future__ import annotations

import hashlib
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from msa.centre.registry import Registry
from msa.common.files import write_private

from .device import MAX_BUTTON_ID, POWER_MODES, restart, tagged
from .errors import (AlreadyProvisioned, ButtonIdRetired, ButtonIdTaken, CaseUnknown,
                     DeviceFailed, KeyMismatch, ToolError, Unprovisioned, WipeIncomplete,
                     WrongButton)
from .usb import Usb


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
    found = tagged(usb.exec("read its configuration", _READ_ID), "BUTTON")
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


def provision(usb: Usb, registry_path: Path | str, case_ref: str, button_id: int | None,
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
            raise CaseUnknown(registry.path, case_ref)
        retired = registry.retired()
        if button_id is None:
            button_id = _new_button_id(set(registry.buttons()) | retired)
        elif button_id in retired:
            raise ButtonIdRetired(registry.path, button_id)
        elif registry.key(button_id) is not None and not force:
            raise ButtonIdTaken(registry.path, button_id)
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
        write_private(key_out, key.hex() + "\n")
    restart(usb)
    return ProvisionReport(usb.port, button_id, case_ref, gesture, registry.path, held,
                           key_out, power, heartbeat_s)


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
        write_private(script, config_script(cfg))
        out = usb.run_file("save its configuration", script)
    saved = tagged(out, "SAVED")
    button_id = int(str(cfg["button_id"]))
    if not saved or len(saved[0]) != 2:
        raise DeviceFailed(usb.port, "save its configuration", "no confirmation")
    if saved[0] != [str(button_id), "True"]:
        raise KeyMismatch(usb.port, button_id)
    beat = tagged(out, "HEARTBEAT")
    return int(beat[0][0]) if beat and beat[0] and beat[0][0].isdigit() else 60


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
    left = [f[0] for f in tagged(out, "LEFT") if f]
    gone = [f[0] for f in tagged(out, "GONE") if f]
    if left or not gone:
        raise WipeIncomplete(usb.port, left or ["(no confirmation)"])
    restart(usb)
    return WipeReport(usb.port, held, tuple(gone))
