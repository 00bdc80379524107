"""`msa sim proximity`: replays a folder of scenarios (simulator/proximity.py), judges each
(simulator/verdict.py), and, with the simulated button, checks on its motor that every scenario
whose victim was warned made the firmware in MicroPython play the proximity pattern."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msa.host.warn import WarnLink

from .errors import SimError
from .proximity import Replay, replay
from .scenario import Scenario
from .verdict import Figures, Verdict, figures, judge

# The proximity pattern as board/sim.py's motor records it: on, off, ... in ms (firmware
# haptic.PATTERNS[1]); the motor's clock ticks with the MicroPython loop, hence the tolerance.
PROXIMITY_MS = (800, 400, 800, 400, 800, 400, 800)
TOLERANCE_MS = 120
MOTOR_WAIT_S = 30.0


@dataclass
class Outcome:
    verdict: Verdict
    replay: Replay
    haptic_checked: bool = False  # the button's motor played the proximity pattern


def played(transitions: list[tuple[int, int]], pattern: tuple[int, ...]) -> bool:
    """Whether the motor's (ms, level) transitions end with the pattern played in full."""
    n = len(pattern) + 1
    if len(transitions) < n or transitions[-1][1] != 0:
        return False
    tail = transitions[-n:]
    if [lvl for _ms, lvl in tail] != [1 - k % 2 for k in range(n)]:
        return False
    lengths = [b[0] - a[0] for a, b in zip(tail, tail[1:])]
    return all(abs(got - want) <= TOLERANCE_MS for got, want in zip(lengths, pattern))


class _Button:
    """The simulated button (MicroPython firmware over Bumble) and its host's link."""

    def __init__(self, root: Path) -> None:
        from .world import World
        self.world = World(root)

    async def start(self) -> WarnLink:
        host = await self.world.start()
        assert host is not None
        await asyncio.wait_for(host.link.connected.wait(), 60)
        return host.link

    async def pattern_played(self, before: int) -> bool:
        board = self.world.board
        deadline = asyncio.get_running_loop().time() + MOTOR_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            if len(board.motor) > before and played(board.motor[before:], PROXIMITY_MS):
                return True
            try:
                await asyncio.wait_for(board.wait_motor(len(board.motor) + 1), 1.0)
            except TimeoutError:
                if board.motor[before:] and board.motor[-1][1] == 0:
                    return played(board.motor[before:], PROXIMITY_MS)
        return False


async def run_set(scenarios: list[Scenario], root: Path, with_button: bool = True,
                  hook: list[str] | None = None,
                  progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Replays each scenario in a folder of its own under `root`."""
    button = _Button(root / "button") if with_button else None
    links = [await button.start()] if button is not None else []
    out = []
    try:
        for k, sc in enumerate(scenarios):
            before = len(button.world.board.motor) if button is not None else 0
            result = await replay(sc, root / f"{k:03d}-{sc.path.stem}", links, hook)
            outcome = Outcome(judge(result), result)
            warned = [a for a in result.alerts if a.haptic == "ok"]
            if button is not None and result.alerts:
                outcome.haptic_checked = bool(warned) and await button.pattern_played(before)
                if not outcome.haptic_checked:
                    outcome.verdict.problems.append("the button's motor did not play the"
                                                    " proximity pattern")
            out.append(outcome)
            if progress is not None:
                progress(outcome)
    finally:
        if button is not None:
            await button.world.close()
    return out


def load_set(folder: Path) -> list[Scenario]:
    from .scenario import load_dir
    scenarios = load_dir(folder)
    if not scenarios:
        raise SimError(f"no scenario files (*.toml) in {folder}")
    return scenarios


def row(o: Outcome) -> str:
    v = o.verdict
    mark = "ok  " if v.passed else "FAIL"
    lat = f"{max(v.latencies_s):.1f} s" if v.latencies_s else "-"
    return (f"{mark} {v.name:<42} expected: {v.expected or '-'}\n"
            f"     {'':<42} got:      {v.got or '-'}; worst latency {lat}"
            + (f"; haptic verified" if o.haptic_checked else "")
            + "".join(f"\n     ! {p}" for p in v.problems))


def summary(f: Figures) -> str:
    def fmt(x: float | None, unit: str = "") -> str:
        return "-" if x is None else f"{x:.3g}{unit}"
    return (f"{f.scenarios_passed}/{f.scenarios} scenarios as expected; latency p95"
            f" {fmt(f.latency_p95_s, ' s')} (median {fmt(f.latency_median_s, ' s')}) with"
            f" 10 s fixes, {fmt(f.latency_p95_all_s, ' s')} with silences and delays;"
            f" detection {fmt(None if f.detection is None else 100 * f.detection, ' %')};"
            f" false alerts {fmt(f.false_alerts_per_pair_day)} per pair-day (drift scenarios)")


def figures_of(outcomes: list[Outcome]) -> Figures:
    return figures([o.verdict for o in outcomes])
