"""Measures how long a press takes from the gesture threshold to the verified event at the
host (firmware in MicroPython, bridge, Bumble, bleak, host), and on to the centre's
acknowledgement over the host's real dispatch path (HTTPS, or the SMS ghost call when the IP
channel is down).

The simulation has no air time and no connection interval: on real radios add at least one
connection interval (7.5 ms minimum; the firmware asks the central for what it prefers).
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from msa.wire.protocol import Kind

from .central import Central
from .chain import Chain
from .errors import MeasurementError
from .stranger import STRANGER_ADDRESS, Stranger, air_address
from .world import World

HOLD_MS = 100  # the shortest hold the firmware accepts: the measurement needs many presses


@dataclass(frozen=True)
class Latency:
    presses: int
    median_ms: float
    p99_ms: float
    max_ms: float
    samples_ms: tuple[float, ...]


async def measure(presses: int, root: Path) -> Latency:
    world = World(root, hold_ms=HOLD_MS, heartbeat_s=3600)
    samples: list[float] = []
    try:
        host = await world.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        for _ in range(presses):
            sent = time.perf_counter()
            await world.board.press([[0, True], [HOLD_MS + 30, False]])
            await host.next_event(kind=Kind.ALARM)
            samples.append((time.perf_counter() - sent) * 1000 - HOLD_MS)
            await asyncio.sleep(0.06)  # released and settled before the next press
    finally:
        await world.close()
    return _stats(samples)


def run(presses: int = 200) -> Latency:
    with tempfile.TemporaryDirectory(prefix="msa-latency-") as tmp:
        return asyncio.run(measure(presses, Path(tmp)))


@dataclass(frozen=True)
class DispatchLatency:
    presses: int
    channel: str
    to_host: Latency
    to_ack: Latency


def _stats(samples: list[float]) -> Latency:
    ordered = sorted(samples)
    return Latency(len(ordered), statistics.median(ordered),
                   ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], ordered[-1],
                   tuple(round(s, 3) for s in samples))


# Between presses: the release and its chatter play out and debounce (25 ms window).
GAP_S = 0.1


IP_FAULTS = ("", "refused", "hung")


async def measure_dispatch(presses: int, root: Path, ip_fault: str = "",
                           channels: tuple[str, ...] = ("https", "sms"),
                           tracking: bool = True, voice: bool = False) -> DispatchLatency:
    """Threshold -> host event and threshold -> centre acknowledgement, per press. With an
    `ip_fault`, the centre's API refuses connections or accepts and never answers. Without
    `tracking`, no location updates follow: each press opens an incident of its own, and
    hundreds of them updating every 10 s would load the host as no single button does. With
    `voice`, the sms channel's modem also places the silent call after each alarm."""
    if ip_fault not in IP_FAULTS:
        raise ValueError(f"ip_fault must be one of {IP_FAULTS}, not {ip_fault!r}")
    chain = Chain(root, channels=channels, hold_ms=HOLD_MS, heartbeat_s=3600,
                  extra_toml="" if tracking else "[tracking]\nwindow_s = 0\n", voice=voice)
    to_host: list[float] = []
    to_ack: list[float] = []
    used: set[str] = set()
    try:
        await chain.start()
        await chain.event(Kind.BOOT)
        if ip_fault == "refused" and chain.centre is not None:
            await chain.centre.stop_api()
        elif ip_fault == "hung" and chain.centre is not None:
            await chain.centre.hang_api()
        for _ in range(presses):
            timing, event = await chain.press(HOLD_MS + 30)
            assert timing.host_at is not None and timing.acked_at is not None
            threshold = timing.press_at + HOLD_MS / 1000
            to_host.append((timing.host_at - threshold) * 1000)
            to_ack.append((timing.acked_at - threshold) * 1000)
            used.add(timing.channel)
            await asyncio.sleep(GAP_S)
    finally:
        await chain.close()
    return DispatchLatency(presses, "+".join(sorted(used)), _stats(to_host), _stats(to_ack))


def run_dispatch(presses: int = 200, ip_fault: str = "") -> DispatchLatency:
    with tempfile.TemporaryDirectory(prefix="msa-latency-") as tmp:
        return asyncio.run(measure_dispatch(presses, Path(tmp), ip_fault))


async def _press_beside_a_stranger(root: Path) -> tuple[float, float]:
    """One run: the button waits unbonded; a stranger connects, pairs "Just Works" and holds
    on; the host comes, bonds and proves the key beside him; the victim presses while the
    stranger still holds his link. (threshold -> host event, threshold -> centre ACK) in ms."""
    chain = Chain(root, hold_ms=HOLD_MS, heartbeat_s=3600)
    nearby: Stranger | None = None
    try:
        await chain.start(with_host=False)
        world = chain.world
        assert world is not None
        nearby = Stranger(Central(world.air, STRANGER_ADDRESS, None, name="stranger"),
                          lambda: air_address(world.board))
        await nearby.start()
        await asyncio.wait_for(nearby.holding.wait(), 20)
        chain.start_host()
        assert chain.host is not None
        await asyncio.wait_for(chain.host.links[0].connected.wait(), 20)
        timing, _ = await chain.press(HOLD_MS + 30)
        if not nearby.holding.is_set():
            raise MeasurementError("the stranger was dropped before the alarm was acknowledged")
        assert timing.host_at is not None and timing.acked_at is not None
        threshold = timing.press_at + HOLD_MS / 1000
        return (timing.host_at - threshold) * 1000, (timing.acked_at - threshold) * 1000
    finally:
        if nearby is not None:
            await nearby.stop()
        await chain.close()


def run_beside_a_stranger(runs: int = 10) -> DispatchLatency:
    """Threshold -> host event and -> centre ACK, one press a run, each while a stranger
    holds a link he paired "Just Works" (a fresh button and host each run)."""
    to_host: list[float] = []
    to_ack: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="msa-latency-") as tmp:
            host_ms, ack_ms = asyncio.run(_press_beside_a_stranger(Path(tmp)))
        to_host.append(host_ms)
        to_ack.append(ack_ms)
    return DispatchLatency(runs, "https", _stats(to_host), _stats(to_ack))
