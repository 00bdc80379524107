"""Scenarios over the simulated radio, each a real run: the unmodified firmware in MicroPython
on a virtual board, Bumble between it and the host, the host's own bleak code."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from msa.host.events import AlarmEvent, BootEvent, LowBatteryEvent, Via
from msa.wire.protocol import BODY_LEN, Kind, frame_tag
from msa.host.receiver import Receiver
from msa.host.sequence import SequenceGuard
from msa.simulator.bleak_backend import BumbleClient, BumbleScanner
from msa.simulator.central import Central
from msa.simulator.world import World, hold_edges

T = TypeVar("T")


def scenario(tmp_path: Path, body: Callable[[World], Awaitable[T]], timeout: float = 60,
             **config: Any) -> T:
    async def main() -> T:
        world = World(tmp_path, heartbeat_s=5, **config)
        try:
            return await asyncio.wait_for(body(world), timeout)
        finally:
            # Bounded: a scenario that failed must fail, not hang its teardown.
            await asyncio.wait_for(world.close(), 30)
    return asyncio.run(main())


def test_bouncy_two_second_hold_gives_exactly_one_alarm_and_a_tap_none(tmp_path: Path) -> None:
    async def body(w: World) -> tuple[Any, ...]:
        host = await w.start()
        assert host is not None
        boot = await host.next_event(kind=Kind.BOOT)
        await w.board.press(hold_edges(500))  # a tap: no alarm
        await w.board.press([[800, False]] + hold_edges(2500)[1:])
        alarm = await host.next_event(kind=Kind.ALARM)
        with pytest.raises(asyncio.TimeoutError):
            await host.next_event(timeout=3, kind=Kind.ALARM)
        return boot, alarm
    boot, alarm = scenario(tmp_path, body)
    assert isinstance(boot, BootEvent) and isinstance(alarm, AlarmEvent)
    assert alarm.frame.seq == boot.frame.seq + 1  # the tap raised nothing in between
    assert alarm.frame.gesture.name == "HOLD" and alarm.via is Via.GATT
    assert 1900 <= (alarm.frame.age_ms or 0) <= 4000


def test_alarms_raised_while_apart_arrive_in_order_exactly_once(tmp_path: Path) -> None:
    async def body(w: World) -> list[int]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await host.stop()  # the host is out of range
        for _ in range(3):
            await w.board.press([[0, True], [150, False], [300, False]])
        await asyncio.sleep(0)  # nothing is awaited on timing: the host comes back now
        back = await w.add_host()
        seqs = [(await back.next_event(kind=Kind.ALARM)).frame.seq for _ in range(3)]
        with pytest.raises(asyncio.TimeoutError):
            await back.next_event(timeout=3, kind=Kind.ALARM)
        return seqs
    seqs = scenario(tmp_path, body, gesture="single")
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_link_loss_then_reconnect_delivers_alarms_raised_meanwhile(tmp_path: Path) -> None:
    async def body(w: World) -> tuple[int, list[int], int]:
        host = await w.start()
        assert host is not None
        boot = await host.next_event(kind=Kind.BOOT)
        w.air.set_loss(1.0, seed=1)  # the radio goes quiet: nothing gets through
        await w.air.drop_all(w.board.address)  # and the link is lost, on both ends
        await w.board.press([[0, True], [150, False], [300, True], [150, False],
                             [300, True], [150, False]])
        w.air.set_loss(0.0, seed=1)
        seqs = [(await host.next_event(kind=Kind.ALARM, timeout=20)).frame.seq
                for _ in range(3)]
        return boot.frame.seq, seqs, host.link.connections
    boot_seq, seqs, connections = scenario(tmp_path, body, gesture="single")
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > boot_seq
    assert connections >= 2  # the host reconnected by itself


def test_power_cuts_during_alarms_never_reuse_a_number(tmp_path: Path) -> None:
    async def body(w: World) -> list[tuple[int, int]]:
        host = await w.start()
        assert host is not None
        seen = [(e.frame.boot_id, e.frame.seq) for e in [await host.next_event(kind=Kind.BOOT)]]
        for delay_ms in (0, 3, 7, 15):
            await w.board.press([[0, True], [80, False]])
            await asyncio.sleep((25 + delay_ms) / 1000)  # cut around the outbox write
            await w.board.power_cycle()
            boot = await host.next_event(kind=Kind.BOOT, timeout=20)
            seen.append((boot.frame.boot_id, boot.frame.seq))
        while not host.events.empty():
            e = host.events.get_nowait()
            seen.append((e.frame.boot_id, e.frame.seq))
        return seen
    seen = scenario(tmp_path, body, gesture="single", timeout=120)
    seqs = [seq for _, seq in seen]
    assert len(seqs) == len(set(seqs))  # every number accepted once, none reused
    boots = [b for b, s in sorted(seen, key=lambda x: x[1])]
    assert boots == sorted(boots) and boots[-1] == 5


def test_burst_reaches_a_second_scanning_host_that_verifies_it(tmp_path: Path) -> None:
    async def body(w: World) -> Any:
        await w.start(with_host=False)
        central = Central(w.air, "C0:00:00:00:00:20", None)
        await central.start()
        rx = Receiver({w.button_id: w.keys}, SequenceGuard(w.root / "listener.db"))
        found: asyncio.Queue[Any] = asyncio.Queue()
        scanner = BumbleScanner(None, None, central=central)

        def seen(_device: Any, adv: Any) -> None:
            from msa.wire.protocol import burst_from_advert
            payload = burst_from_advert(adv.manufacturer_data)
            if payload is not None:
                out = rx.advert(payload)
                if out.event is not None:
                    found.put_nowait(out.event)
        scanner.register_detection_callback(seen)
        await scanner.start()
        await w.board.press(hold_edges(2300))
        event = await asyncio.wait_for(found.get(), 15)
        await scanner.stop()
        return event
    event = scenario(tmp_path, body)
    assert isinstance(event, AlarmEvent) and event.via is Via.ADVERT


def test_reboot_keeps_the_bond_and_never_reuses_a_sequence_number(tmp_path: Path) -> None:
    async def body(w: World) -> tuple[Any, Any, Any, int]:
        host = await w.start()
        assert host is not None
        boot1 = await host.next_event(kind=Kind.BOOT)
        await w.board.press(hold_edges(2300))
        alarm1 = await host.next_event(kind=Kind.ALARM)
        await w.board.power_cycle()
        boot2 = await host.next_event(kind=Kind.BOOT, timeout=20)
        assert w.board.peripheral is not None
        advertised = w.board.peripheral.advertising_address
        return boot1, alarm1, boot2, host.link.connections, advertised
    boot1, alarm1, boot2, connections, advertised = scenario(tmp_path, body)
    # Bonded, the button advertises a resolvable private address (top bits 01), not its
    # identity, and the host still found it by resolving the address with the bond's IRK.
    assert advertised != "C0:00:00:00:00:01" and int(advertised[:2], 16) >> 6 == 0b01
    assert boot2.frame.boot_id == boot1.frame.boot_id + 1
    assert boot2.frame.seq > alarm1.frame.seq > boot1.frame.seq
    assert connections == 2  # reconnected and re-encrypted from the kept bond


async def intruder(w: World) -> tuple[Central, BleakClient, asyncio.Event]:
    """Boots the button with no host, and connects a central that has no bond and no key."""
    await w.start(with_host=False)
    central = Central(w.air, "C0:00:00:00:00:66", None)
    await central.start()
    dropped = asyncio.Event()
    client = BleakClient(w.board.address, lambda _c: dropped.set(), backend=BumbleClient,
                         central=central, timeout=5)
    await client.connect()
    return central, client, dropped


def test_an_unbonded_intruder_reads_nothing_and_is_dropped(tmp_path: Path) -> None:
    async def body(w: World) -> tuple[str, bool]:
        central, client, dropped = await intruder(w)
        with pytest.raises(BleakError) as err:
            await client.read_gatt_char(w.keys.gatt.event)
        with pytest.raises(BleakError) as sub:
            await client.start_notify(w.keys.gatt.event, lambda _c, _d: None)
        await w.board.press(hold_edges(2100))  # an alarm while the intruder is connected
        await asyncio.wait_for(dropped.wait(), 8)  # admission window: 3 s
        return str(err.value), str(sub.value), not client.is_connected
    error, subscribe, gone = scenario(tmp_path, body)
    assert "Read Not Permitted" in error and "Insufficient Encryption" in subscribe
    assert gone


def test_forged_replayed_and_truncated_frames_are_rejected_then_a_real_alarm_passes(
        tmp_path: Path) -> None:
    async def body(w: World) -> tuple[dict[str, int], Any, list[Any]]:
        host = await w.start()
        assert host is not None
        boot = await host.next_event(kind=Kind.BOOT)
        peripheral = w.board.peripheral
        assert peripheral is not None
        # The boot notice as the button sent it: body, host tag, centre tag.
        body_ = boot.frame.raw[:BODY_LEN]
        sent = body_ + frame_tag(w.keys, body_) + boot.frame.centre_tag
        forged = bytearray(sent)
        forged[1] = int(Kind.ALARM)  # turn the boot notice into an "alarm"
        for bad in (bytes(forged), sent, sent[:20]):
            await peripheral.inject(w.keys.gatt.event, bad)
        await w.board.press(hold_edges(2100))
        alarm = await host.next_event(kind=Kind.ALARM)
        others = []
        while not host.events.empty():
            others.append(host.events.get_nowait())
        return dict(host.receiver.rejections), alarm, others
    rejections, alarm, others = scenario(tmp_path, body)
    assert rejections.get("tag") == 1 and rejections.get("length") == 1
    assert rejections.get("duplicate") == 1
    assert isinstance(alarm, AlarmEvent)
    assert not [e for e in others if e.frame.kind in (Kind.ALARM, Kind.BOOT)]


def test_low_battery_reaches_the_host(tmp_path: Path) -> None:
    async def body(w: World) -> Any:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await w.board.set_battery_mv(3600)
        return await host.next_event(kind=Kind.LOW_BATTERY, timeout=30)
    event = scenario(tmp_path, body)
    assert isinstance(event, LowBatteryEvent) and (event.frame.battery_pct or 0) <= 15


def test_an_idle_button_with_a_long_heartbeat_is_not_reset_by_its_watchdog(
        tmp_path: Path) -> None:
    """The radio loop may sleep an hour until its next heartbeat: idle is not hung (the
    watchdog bites after 8 s without proof of life)."""
    async def main() -> AlarmEvent:
        world = World(tmp_path, heartbeat_s=3600)
        try:
            host = await world.start()
            assert host is not None
            await host.next_event(kind=Kind.BOOT)
            with pytest.raises(asyncio.TimeoutError):
                await host.next_event(kind=Kind.BOOT, timeout=12)  # no reboot meanwhile
            await world.board.press(hold_edges(2100))
            alarm = await host.next_event(kind=Kind.ALARM)
            assert isinstance(alarm, AlarmEvent)
            return alarm
        finally:
            await world.close()
    alarm = asyncio.run(main())
    assert alarm.frame.boot_id == 1


def test_after_an_intruder_is_dropped_the_button_advertises_again_for_its_host(
        tmp_path: Path) -> None:
    """A connection stops advertising in the stack; the firmware must start it again when an
    unproven central is dropped, or any stranger's connection would silence the button."""
    async def body(w: World) -> Any:
        central, client, dropped = await intruder(w)
        await asyncio.wait_for(dropped.wait(), 8)  # admission window: 3 s
        await central.close()
        host = await w.add_host()
        return await host.next_event(kind=Kind.BOOT, timeout=15)  # over a new connection
    boot = scenario(tmp_path, body)
    assert isinstance(boot, BootEvent) and boot.via is Via.GATT
