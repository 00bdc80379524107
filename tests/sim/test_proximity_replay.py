"""Issue 14's done-when: the whole shipped scenario set through the real path — each tag's
OsmAnd reports over HTTPS into a started centre, its rules, the victims' hosts (host/proximity.py
reporting and fetching, host/warn.py delivering) and the simulated button, whose firmware in
MicroPython verifies each WARN command and plays the proximity pattern on its motor. Every
scenario must come out as its file expects, and every warned one must have vibrated."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from msa.simulator import proxrun
from msa.simulator.scenario import load_dir, shipped


@pytest.mark.timeout(1500)
def test_every_shipped_scenario_through_the_real_path_with_the_button(tmp_path: Path) -> None:
    scenarios = load_dir(shipped())
    assert len(scenarios) >= 35
    outcomes = asyncio.run(proxrun.run_set(scenarios, tmp_path, with_button=True))
    failed = {o.verdict.name: o.verdict.problems for o in outcomes if not o.verdict.passed}
    assert failed == {}
    warned = [o for o in outcomes if o.replay.alerts]
    assert len(warned) >= 15
    for o in warned:
        assert o.haptic_checked, o.verdict.name
        assert all(a.haptic == "ok" for a in o.replay.alerts), o.verdict.name
    f = proxrun.figures_of(outcomes)
    assert f.detection == 1.0 and f.false_alerts_per_pair_day == 0.0


def test_the_motor_check_reads_the_pattern_exactly() -> None:
    # (ms, level) transitions as board/sim.py records them.
    def pulses(*lengths: int, start: int = 1000) -> list[tuple[int, int]]:
        out, t = [], start
        for k, length in enumerate((*lengths, 0)):
            out.append((t, 1 - k % 2))
            t += length
        return out

    proximity = proxrun.PROXIMITY_MS
    assert proxrun.played(pulses(*proximity), proximity)
    assert proxrun.played(pulses(150, 350, 150) + pulses(*proximity, start=5000), proximity)
    assert not proxrun.played(pulses(150, 350, 150, 350, 150), proximity)  # TEST's
    assert not proxrun.played(pulses(*proximity)[:-1], proximity)  # still on
    assert not proxrun.played(pulses(800, 400, 800, 400, 800, 400, 1500), proximity)
