"""The tracking benchmark section at a tiny scale: the simulated clock jumps only when nothing
is in flight, the cadence arithmetic, and a short run of the section (simulated window and a
1 s cadence on the real chain) with sane values (no assertion on timing targets)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from msa.bench import tracking
from msa.bench.figures import Options


def test_sim_clock_jumps_to_deadlines_only_when_idle() -> None:
    async def body() -> tuple[list[tuple[str, float]], float]:
        clock = tracking.SimClock(1000.0)
        woke: list[tuple[str, float]] = []
        busy = [True]

        async def sleeper(name: str, s: float) -> None:
            await clock.sleep(s)
            woke.append((name, clock.time()))

        async def work() -> None:
            await asyncio.sleep(0.05)  # real work in flight: no jump meanwhile
            busy[0] = False
        tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10)),
                 asyncio.create_task(work())]
        await clock.drive(1030.0, lambda: not busy[0])
        await asyncio.gather(*tasks)
        return woke, clock.time()
    woke, end = asyncio.run(body())
    assert [n for n, _ in woke] == ["a", "b"]
    assert woke[0][1] == pytest.approx(1010.0, abs=0.02)
    assert woke[1][1] == pytest.approx(1020.0, abs=0.02)
    assert end == pytest.approx(1030.0, abs=0.02)


def test_cadence_of_a_track() -> None:
    track = tracking.Track(pressed_at=0.0, alarm_at=0.1, updates=[10.1, 20.3, 29.9])
    c = tracking.cadence(track, 10.0, from_alarm=True)
    assert c.updates == 3
    assert c.intervals == pytest.approx((10.0, 10.2, 9.6))
    assert c.mean_s == pytest.approx(29.8 / 3)
    assert c.max_jitter_s == pytest.approx(0.4)
    assert c.last_after_press_s == pytest.approx(29.9)
    assert c.drift_s == pytest.approx(-0.1)
    alone = tracking.cadence(track, 10.0, from_alarm=False)
    assert alone.intervals == pytest.approx((10.2, 9.6)) and alone.drift_s is None


def test_tracking_section_at_a_tiny_scale(tmp_path: Path) -> None:
    figures = {f.name: f for f in tracking.run(Options(root=tmp_path, scale=0.01))}
    assert {f.section for f in figures.values()} == {"tracking"}
    updates = figures["simulated clock: updates"]
    assert updates.value == updates.target == 6  # 70 s window: updates at 10 ... 60 s
    mean = figures["simulated clock: mean interval"].value
    assert mean is not None and 9.5 < mean < 10.5  # the first gap is from the alarm's ack
    jitter = figures["simulated clock: max jitter"].value
    assert jitter is not None and 0 <= jitter < 0.5
    last = figures["simulated clock: last update after the press"]
    assert last.value is not None and 60 <= last.value <= 70 == last.target
    real_mean = figures["real clock, 1 s interval: mean interval"].value
    real_jitter = figures["real clock, 1 s interval: max jitter"].value
    assert real_mean is not None and 1.0 <= real_mean < 1.5
    assert real_jitter is not None and 0 <= real_jitter < 0.5
