"""msa bond, status, test-alarm, monitor and retire over the Bumble simulator: the firmware in
MicroPython on a virtual board, the host's own bleak code with the simulator's backends, the
host's outbox and channels, and the reference centre; plus the commands as run for real here."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from msa.firmware.version import VERSION
from msa.host.events import ButtonEvent
from msa.wire.protocol import Kind
from msa.host.sequence import SequenceGuard
from msa.simulator.chain import Chain
from msa.simulator.world import hold_edges
from msa.tools import technician
from msa.tools.errors import ButtonOutOfRange, KeyRejected

ROOT = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")


def run(tmp_path: Path, body: Callable[[Chain, Path], Awaitable[T]], timeout: float = 90) -> T:
    """A chain whose host is not running: the button waits, provisioned and unbonded, and the
    technician's commands reach it through the host's radio (the chain's backends)."""
    async def main() -> T:
        c = Chain(tmp_path)
        try:
            await c.start(with_host=False)
            assert c.config_path is not None
            return await asyncio.wait_for(body(c, c.config_path), timeout)
        finally:
            await c.close()
    return asyncio.run(main())


def variant(config: Path, name: str, old: str, new: str) -> Path:
    """A copy of the configuration, next to it (so its relative paths hold), with one change."""
    text = config.read_text()
    assert old in text
    out = config.with_name(name)
    out.write_text(text.replace(old, new))
    return out


def test_bond_then_status_shows_battery_firmware_bond_and_sequence_state(
        tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> tuple[technician.BondReport,
                                                    technician.StatusReport]:
        bonded = await technician.bond(config, backends=c.backends)
        # An event through the host's pipeline, so that the host has sequence state.
        await technician.monitor(config, lambda _e: None, count=1, backends=c.backends)
        after = await technician.status(config, backends=c.backends)
        return bonded, after
    bonded, after = run(tmp_path, body)
    assert bonded.firmware == VERSION and 0 < bonded.battery_pct <= 100
    assert after.unreachable is None and after.button is not None
    assert after.button.firmware == VERSION and after.button.battery_pct == bonded.battery_pct
    assert after.button.key_accepted is True
    assert after.host.highest_seq >= 1 and after.host.last_event is not None


def test_test_alarm_reaches_the_centre_as_a_test_incident(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> tuple[technician.TestAlarmReport, list[object]]:
        await technician.bond(config, backends=c.backends)
        report = await technician.test_alarm(config, backends=c.backends)
        assert c.centre is not None
        return report, list(c.centre.centre.incidents())
    report, incidents = run(tmp_path, body)
    assert report.reference.startswith("INC-") and report.channel == "https"
    assert 0 < report.seconds < 10
    incident = next(i for i in incidents if isinstance(i, dict)
                    and i["incident"] == report.reference)
    assert incident["test"] is True and incident["key"] == report.key


def test_monitor_prints_each_verified_event_until_count(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> list[ButtonEvent]:
        seen: list[ButtonEvent] = []
        first = asyncio.Event()

        def on_event(event: ButtonEvent) -> None:
            seen.append(event)
            first.set()
        watch = asyncio.create_task(technician.monitor(config, on_event, count=2,
                                                       backends=c.backends))
        await asyncio.wait_for(first.wait(), 30)  # the BOOT the button kept for a host
        assert c.world is not None
        await c.world.board.press(hold_edges(2300))
        assert await asyncio.wait_for(watch, 30) == 2
        return seen
    seen = run(tmp_path, body)
    assert [e.frame.kind for e in seen] == [Kind.BOOT, Kind.ALARM]
    line = technician.describe(seen[1])
    assert " ALARM " in line and f"seq {seen[1].frame.seq}" in line and "via gatt" in line


def test_retire_forgets_the_button_in_the_host_and_the_registry(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> tuple[list[technician.Step], int, bool]:
        await technician.bond(config, backends=c.backends)
        await technician.monitor(config, lambda _e: None, count=1, backends=c.backends)
        assert c.world is not None and c.centre is not None
        button_id = c.world.button_id
        registry = tmp_path / "centre" / "registry.db"
        assert registry.exists()
        steps = await technician.retire(config, registry, backends=c.backends)
        guard = SequenceGuard(tmp_path / "host" / "state" / "receiver.db")
        high = guard.state(button_id)[0]
        guard.close()
        return steps, high, c.centre.centre.registry.key(button_id) is None
    steps, high, key_gone = run(tmp_path, body)
    assert all(s.done for s in steps), steps
    assert [s.where for s in steps] == ["button", "host", "host", "host", "centre"]
    assert "not wiped (no --port)" in steps[0].what and "msa wipe --port" in steps[0].what
    assert high == 0 and key_gone
    assert not (tmp_path / "host" / "button.key").exists()
    assert "retired in the registry" in steps[-1].what


def test_out_of_range_is_a_clear_error_within_the_timeout(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> tuple[str, float, technician.StatusReport]:
        away = variant(config, "away.toml", "C0:00:00:00:00:01", "C0:00:00:00:00:99")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ButtonOutOfRange) as caught:
            await technician.bond(away, timeout_s=1.0, backends=c.backends)
        took = loop.time() - started
        report = await technician.status(away, timeout_s=1.0, backends=c.backends)
        return str(caught.value), took, report
    message, took, report = run(tmp_path, body)
    assert took < 5
    assert message.startswith("button C0:00:00:00:00:99 not heard within 1 s")
    assert "not provisioned" in message and "msa provision" in message
    assert isinstance(report.unreachable, ButtonOutOfRange) and report.button is None
    assert report.host.highest_seq == 0  # the host's side is still reported


def test_key_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> tuple[str, str]:
        wrong = config.with_name("wrong.key")
        fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("ab" * 32 + "\n")
        other = variant(config, "other.toml", 'key_file = "button.key"',
                        'key_file = "wrong.key"')
        with pytest.raises(KeyRejected) as on_bond:
            await technician.bond(other, backends=c.backends)
        with pytest.raises(KeyRejected) as on_test:
            await technician.test_alarm(other, backends=c.backends)
        return str(on_bond.value), str(on_test.value)
    on_bond, on_test = run(tmp_path, body, timeout=120)
    for message in (on_bond, on_test):
        assert message.startswith("key mismatch: button ")
        assert "does not accept this host's key" in message and "provision" in message
        assert "ab" * 32 not in message


def msa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msa.tools.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("command", ["bond", "status", "test-alarm", "monitor", "retire"])
def test_help_has_an_example(command: str) -> None:
    proc = msa(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"Example: msa {command} --config " in proc.stdout


def host_config(tmp_path: Path) -> Path:
    """A valid configuration for a host that has no Bluetooth adapter (this machine)."""
    for name, text in (("button.key", "11" * 32), ("api.token", "t0ken")):
        fd = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
    conf = tmp_path / "host.toml"
    conf.write_text('[host]\nstate_dir = "state"\n\n[[button]]\nid = "0x1a2b3c4d"\n'
                    'address = "C0:00:00:00:00:01"\nkey_file = "button.key"\n\n'
                    '[location]\nsource = "fixed"\nlat = 51.05\nlon = 3.72\n\n'
                    '[[channel]]\ntype = "https"\nurl = "https://127.0.0.1:1"\n'
                    'token_file = "api.token"\n')
    return conf


@pytest.mark.skipif(sys.platform != "linux" or Path("/run/dbus/system_bus_socket").exists(),
                    reason="needs a Linux machine without BlueZ's D-Bus")
@pytest.mark.parametrize("command", ["bond", "test-alarm", "monitor", "status"])
def test_no_adapter_is_one_line_saying_what_to_do(tmp_path: Path, command: str) -> None:
    proc = msa(command, "--config", str(host_config(tmp_path)), "--timeout", "2")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("msa: no Bluetooth adapter: "), proc.stderr
    assert "Traceback" not in proc.stderr and "systemctl status bluetooth" in last[0]


def test_retire_with_the_button_on_usb_wipes_it_and_checks_on_its_flash(tmp_path: Path) -> None:
    async def body(c: Chain, config: Path) -> list[technician.Step]:
        await technician.bond(config, backends=c.backends)
        assert c.world is not None and c.centre is not None
        board = c.world.board
        # The button is plugged in over USB: its firmware keeps running, mpremote interrupts
        # it with Ctrl-C as on a real board.
        await board.stop()
        port = await board.start_console()
        registry = tmp_path / "centre" / "registry.db"
        return await technician.retire(config, registry, port=f"socket://127.0.0.1:{port}",
                                       backends=c.backends)
    steps = run(tmp_path, body)
    assert all(s.done for s in steps), steps
    assert steps[0].where == "button" and "wiped over USB" in steps[0].what
    flash = tmp_path / "sim" / "flash"
    # Records are two slots, <name>.a and <name>.b (firmware/store.py); config.py is code.
    assert not list(flash.glob("config.[ab]")) and not list(flash.glob("bonds.[ab]"))
    assert (flash / "config.py").exists()
