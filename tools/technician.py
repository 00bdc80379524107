"""The technicians' BLE, host and centre commands as library functions (msa bond, status,
test-alarm, monitor, retire): each takes the host's configuration file, which names the
button, its address, key file and the host's state, and optional bleak backends (the
simulator's in tests; None: the platform's own Bluetooth stack).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bleak.backends.characteristic import BleakGATTCharacteristic

from msa.centre.errors import CentreError
from msa.centre.registry import Registry
from msa.wire.message import Message, MessageKind
from msa.host.errors import HostError
from msa.host.events import ButtonEvent
from msa.host.link import Backends
from msa.host.outbox import Outbox
from msa.wire.protocol import Kind
from msa.host.sequence import SequenceGuard

from . import ble
from .hostrun import HostRun, request_test
from .errors import (ButtonOutOfRange, KeyRejected, LinkFailed, NoAdapter, NotAcknowledged,
                     NotBonded, ToolError, Unprovisioned)

DEFAULT_TIMEOUT_S = 10.0
EVENT_TIMEOUT_S = 10.0  # a TEST the button accepted is indicated within milliseconds
ACK_TIMEOUT_S = 30.0  # covers the SMS fallback's deadline


def _ignore(_char: BleakGATTCharacteristic, _data: bytearray) -> None:
    """Frames heard while bonding are not acknowledged: the button keeps them for the host."""


@dataclass(frozen=True)
class BondReport:
    button_id: int
    address: str
    firmware: str
    battery_pct: int


async def bond(config_path: Path, *, button_id: int | None = None,
               timeout_s: float = DEFAULT_TIMEOUT_S, backends: Backends | None = None
               ) -> BondReport:
    """Finds the button, pairs (the bond goes into the host's Bluetooth stack), subscribes,
    proves the host's key with TIME, then reconnects without pairing to show that the stored
    bond lets the host in (an encrypted read succeeds)."""
    b = ble.load_button(config_path, button_id)
    async with ble.connect(b, timeout_s, backends) as s:
        await s.pair()
        await s.subscribe(_ignore)
        # Proves the key (TIME); on a mismatch the bond stays: once key_file is fixed, bonding
        # again just re-uses it.
        firmware = await s.firmware()
    async with ble.connect(b, timeout_s, backends) as s:
        battery = await s.battery()
    if battery is None:
        raise NotBonded(b.address)
    return BondReport(b.button_id, b.address, firmware, battery)


@dataclass(frozen=True)
class HostState:
    """What the host's state folder says about the button (nothing secret)."""

    key_file: Path
    highest_seq: int
    gaps: tuple[tuple[int, int], ...]
    last_heartbeat: float | None
    last_event: float | None  # the latest message of any kind the host stored for it
    undelivered: int  # messages (all buttons) still waiting for the centre


@dataclass(frozen=True)
class ButtonState:
    """What the button says over the air; battery None: it refused, this host holds no bond."""

    firmware: str
    battery_pct: int | None
    key_accepted: bool | None  # None: not tried (no bond)


@dataclass(frozen=True)
class StatusReport:
    button_id: int
    address: str
    host: HostState
    button: ButtonState | None
    unreachable: ToolError | None  # why the button could not be asked (out of range, ...)


def host_state(b: ble.HostButton) -> HostState:
    """Reads the host's state without creating any: a host that never ran has none."""
    state_dir = b.config.state_dir
    high, gaps = 0, list[tuple[int, int]]()
    heartbeat = last = None
    undelivered = 0
    if (state_dir / "receiver.db").exists():
        guard = SequenceGuard(state_dir / "receiver.db")
        try:
            high, gaps = guard.state(b.button_id)
        finally:
            guard.close()
    if (state_dir / "outbox.db").exists():
        outbox = Outbox(state_dir / "outbox.db")
        try:
            heartbeat = outbox.last_created(b.button_id, MessageKind.HEARTBEAT)
            times = [t for kind in MessageKind
                     if (t := outbox.last_created(b.button_id, kind)) is not None]
            last = max(times) if times else None
            undelivered = outbox.undelivered()
        finally:
            outbox.close()
    return HostState(b.key_file, high, tuple(gaps), heartbeat, last, undelivered)


async def status(config_path: Path, *, button_id: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, backends: Backends | None = None
                 ) -> StatusReport:
    """The host's state for the button, and, if it is in range, its firmware, battery, bond
    and whether it accepts the host's key."""
    b = ble.load_button(config_path, button_id)
    state = host_state(b)
    try:
        async with ble.connect(b, timeout_s, backends) as s:
            battery = await s.battery()
            accepted: bool | None = None
            # The button tells its version only to a central that proved the key.
            firmware = "not told (no bond)"
            if battery is not None:
                try:
                    firmware = await s.firmware()
                    accepted = True
                except KeyRejected:
                    firmware = "not told (key refused)"
                    accepted = False
    except (ButtonOutOfRange, NoAdapter, LinkFailed) as exc:
        return StatusReport(b.button_id, b.address, state, None, exc)
    return StatusReport(b.button_id, b.address, state, ButtonState(firmware, battery, accepted),
                        None)


@dataclass(frozen=True)
class TestAlarmReport:
    __test__ = False  # not a pytest class

    button_id: int
    key: str
    reference: str
    channel: str
    seconds: float  # TEST command sent -> the centre's acknowledgement
    battery_pct: int | None


async def test_alarm(config_path: Path, *, button_id: int | None = None,
                     timeout_s: float = DEFAULT_TIMEOUT_S, ack_timeout_s: float = ACK_TIMEOUT_S,
                     backends: Backends | None = None) -> TestAlarmReport:
    """Asks the button for a TEST alarm through its own event path and follows it through
    the host's real pipeline (verification, outbox, channels) to the centre's receipt."""
    b = ble.load_button(config_path, button_id)
    await ble.find(b.address, timeout_s, backends)  # clear errors before the service starts
    running = HostRun(b, backends)
    try:
        await running.connected(b.address, timeout_s)
        started = time.monotonic()
        await request_test(running, b.address, timeout_s)
        try:
            event = await running.within(running.next_event(Kind.TEST), EVENT_TIMEOUT_S)
        except TimeoutError:
            raise KeyRejected(b.button_id, str(b.key_file)) from None
        f = event.frame
        key = Message.event_key(f.button_id, f.boot_id, f.seq)
        try:
            receipt = await running.within(running.delivery(key), ack_timeout_s)
        except TimeoutError:
            raise NotAcknowledged(key, ack_timeout_s) from None
        return TestAlarmReport(b.button_id, key, receipt.reference, receipt.channel,
                               time.monotonic() - started, f.battery_pct)
    finally:
        await running.close()


async def monitor(config_path: Path, on_event: Callable[[ButtonEvent], None], *,
                  count: int | None = None, button_id: int | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S, backends: Backends | None = None
                  ) -> int:
    """Runs the host's own pipeline (so an alarm heard meanwhile still goes to the centre)
    and calls `on_event` for each event of the button it verifies, until `count` events or
    cancellation. Returns how many were seen."""
    b = ble.load_button(config_path, button_id)
    await ble.find(b.address, timeout_s, backends)
    running = HostRun(b, backends, on_event)
    seen = 0
    try:
        await running.connected(b.address, timeout_s)
        while count is None or seen < count:
            await running.within(running.next_event(None), None)
            seen += 1
        return seen
    finally:
        await running.close()


def describe(event: ButtonEvent) -> str:
    """One line for `msa monitor`: time, kind, seq, battery, gap, via."""
    f = event.frame
    gap = f"{event.gap[0]}..{event.gap[1]}" if event.gap else "none"
    stamp = time.strftime("%H:%M:%S", time.localtime(event.received_at))
    return (f"{stamp} {f.kind.name:<11} seq {f.seq:<6} battery {f.battery_pct:>3}%"
            f"  gap {gap}  via {event.via.value}")


@dataclass(frozen=True)
class Step:
    """One part of a retirement: where (button, host, centre), what was found or done."""

    where: str
    what: str
    done: bool


async def retire(config_path: Path, registry_path: Path | str, *, port: str | None = None,
                 button_id: int | None = None, backends: Backends | None = None
                 ) -> list[Step]:
    """Retires the button everywhere it is known: on the button over USB (with `port`), in
    the host (its Bluetooth bond, its sequence state, its key file) and at the centre (the
    registry forgets its key and unlinks its case). Every step is tried; each says whether
    it was done, so a second run finishes what the first could not."""
    from . import provisioning
    from .usb import Usb

    b = ble.load_button(config_path, button_id)
    steps: list[Step] = []
    if port is None:
        steps.append(Step("button", "not wiped (no --port): it still holds its key and bond;"
                          f" wipe it with msa wipe --port PORT --button-id {b.button_id:08x}"
                          " before it is reused", True))
    else:
        try:
            r = await asyncio.to_thread(provisioning.wipe, Usb(port), b.button_id)
            steps.append(Step("button", f"wiped over USB on {r.port}; erased and read back: "
                              + ", ".join(r.erased), True))
        except Unprovisioned:
            # What a first run that wiped it leaves: the second must get past it.
            steps.append(Step("button", f"nothing to wipe on {port}: it holds no"
                              " configuration (wiped by an earlier run, or not this button)",
                              True))
        except ToolError as exc:
            steps.append(Step("button", f"not wiped: {exc}", False))
    try:
        await ble.forget_bond(b, backends)
        steps.append(Step("host", f"Bluetooth bond with {b.address} removed", True))
    except ToolError as exc:
        steps.append(Step("host", f"Bluetooth bond not removed: {exc}", False))
    state = b.config.state_dir / "receiver.db"
    if not state.exists():
        steps.append(Step("host", "no sequence state kept (the host never heard it)", True))
    else:
        try:
            guard = SequenceGuard(state)
            try:
                high = guard.state(b.button_id)[0]
                guard.forget(b.button_id)
                left = guard.state(b.button_id)[0]
            finally:
                guard.close()
            steps.append(Step("host", f"sequence state forgotten (highest seq was {high})",
                              left == 0))
        except HostError as exc:
            steps.append(Step("host", f"sequence state not forgotten: {exc}", False))
    centre = _retire_at_centre(registry_path, b.button_id)
    # The key file goes last, once everything else is done: the configuration names it and
    # cannot be read without it, so a second run needs it to finish what the first could not.
    steps.append(_remove_key_file(b, config_path, all(s.done for s in [*steps, centre])))
    steps.append(centre)
    return steps


def _retire_at_centre(registry_path: Path | str, button_id: int) -> Step:
    """The registry forgets the button's key and unlinks its case."""
    try:
        registry = Registry(registry_path)
        try:
            was_active = registry.retire(button_id)
            gone = registry.key(button_id) is None and registry.case_of(button_id) is None
        finally:
            registry.close()
    except CentreError as exc:
        return Step("centre", f"not retired: {exc}", False)
    what = "retired in the registry: key and case link dropped" if was_active else \
        "was not active in the registry (retired before, or never registered)"
    return Step("centre", f"button {button_id:08x} {what}", gone)


def _remove_key_file(b: ble.HostButton, config_path: Path, others_done: bool) -> Step:
    """Removes the host's copy of the key, unless a step before failed (see retire())."""
    if not others_done:
        return Step("host", f"key file {b.key_file} kept until the other steps are done"
                    " (msa retire reads the configuration with it)", False)
    try:
        b.key_file.unlink()
    except FileNotFoundError:
        return Step("host", f"key file {b.key_file} already gone", True)
    except OSError as exc:
        return Step("host", f"key file {b.key_file} not removed: {exc.strerror}", False)
    return Step("host", f"key file {b.key_file} removed; take the [[button]] table out of"
                f" {config_path}", True)
