"""Measures how long a press takes from the gesture threshold to the verified event at the
host, over the whole simulated chain (firmware in MicroPython, bridge, Bumble, bleak, host).

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

from msa.host.protocol import Kind

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
    ordered = sorted(samples)
    return Latency(presses, statistics.median(ordered),
                   ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], ordered[-1],
                   tuple(round(s, 3) for s in samples))


def run(presses: int = 200) -> Latency:
    with tempfile.TemporaryDirectory(prefix="msa-latency-") as tmp:
        return asyncio.run(measure(presses, Path(tmp)))
