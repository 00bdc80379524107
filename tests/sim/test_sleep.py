"""Sleep mode over the simulated radio, each a real run: the unmodified firmware in MicroPython
on a virtual board that deep-sleeps (its interpreter ends and the simulator keeps it off the
air), Bumble between it and the host, the host's own bleak code. Every wait is on an event."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from msa.host.events import AlarmEvent, HeartbeatEvent
from msa.wire.protocol import Kind
from msa.simulator.world import World, hold_edges


def run(tmp_path: Path, body: Any, timeout: float = 90, **config: Any) -> Any:
    async def main() -> Any:
        world = World(tmp_path, power="sleep", **config)
        try:
            return await asyncio.wait_for(body(world), timeout)
        finally:
            await world.close()
    return asyncio.run(main())


def test_an_idle_sleep_mode_button_sleeps_and_a_press_wakes_it_for_a_verified_alarm(
        tmp_path: Path) -> None:
    async def body(w: World) -> tuple[Any, ...]:
        host = await w.start()
        assert host is not None
        boot = await host.next_event(kind=Kind.BOOT)
        await w.board.wait_asleep(1)  # boot acknowledged, hello heartbeat sent, idle: asleep
        first_sleep = w.board.sleep_ms
        assert not host.link.connected.is_set()  # it said goodbye before going dark
        await w.board.press(hold_edges(2500))  # the press wakes it and is held past 2 s
        alarm = await host.next_event(kind=Kind.ALARM, timeout=30)
        await w.board.wait_asleep(2)  # acknowledged: back to sleep
        others = []
        while not host.events.empty():
            others.append(host.events.get_nowait())
        return boot, first_sleep, alarm, others, list(w.board.wakes), w.board.boots
    boot, first_sleep, alarm, others, wakes, boots = run(tmp_path, body)
    assert first_sleep == 3600 * 1000  # sleep mode's default heartbeat: the timer wake
    assert isinstance(alarm, AlarmEvent) and alarm.frame.gesture.name == "HOLD"
    assert wakes == ["button"] and boots == 2
    # A wake is no boot: no BOOT event, the boot id moves on, the sequence continues without
    # a gap (the sleep handed the unused block back), and the hold counted from the wake.
    assert not [e for e in others if e.frame.kind is Kind.BOOT]
    assert alarm.frame.boot_id == boot.frame.boot_id + 1
    assert alarm.gap is None and all(e.gap is None for e in others)
    assert 1900 <= (alarm.frame.age_ms or 0) <= 6000


def test_a_sleeping_button_wakes_on_its_timer_for_a_heartbeat_then_sleeps_again(
        tmp_path: Path) -> None:
    async def body(w: World) -> tuple[Any, ...]:
        host = await w.start()
        assert host is not None
        boot = await host.next_event(kind=Kind.BOOT)
        hello = await host.next_event(kind=Kind.HEARTBEAT)  # the first boot says it too
        await w.board.wait_asleep(1)
        beat = await host.next_event(kind=Kind.HEARTBEAT, timeout=30)  # the timer wake's
        await w.board.wait_asleep(2)
        assert hello.frame.boot_id == boot.frame.boot_id
        return boot, beat, list(w.board.wakes), w.board.sleep_ms
    boot, beat, wakes, sleep_ms = run(tmp_path, body, heartbeat_s=5)
    assert isinstance(beat, HeartbeatEvent) and beat.gap is None
    assert beat.frame.boot_id == boot.frame.boot_id + 1
    assert wakes == ["timer"] and sleep_ms == 5000


def test_a_connected_mode_button_never_sleeps(tmp_path: Path) -> None:
    """The default mode is unchanged: idle, it stays on the air for its host."""
    async def main() -> int:
        world = World(tmp_path, heartbeat_s=5)
        try:
            host = await world.start()
            assert host is not None
            await host.next_event(kind=Kind.BOOT)
            await host.next_event(kind=Kind.HEARTBEAT, timeout=15)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(world.board.wait_asleep(1), 8)
            return world.board.sleeps
        finally:
            await world.close()
    assert asyncio.run(main()) == 0
