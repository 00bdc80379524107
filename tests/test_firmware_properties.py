"""Properties of the firmware core, checked with the same generated inputs on CPython and in
the real MicroPython interpreter: debounce, gestures, battery and power-cut safety."""
from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import props
import pytest
from hypothesis import HealthCheck, given, settings

from mpy import Worker

GESTURE_SINGLE, GESTURE_HOLD, GESTURE_MULTI = 1, 2, 3
WRAP = 1 << 30
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def both(mp: Worker, fn: str, *args: Any) -> Any:
    """Runs props.fn on both interpreters; they must agree. Returns the (shared) result."""
    here = json.loads(json.dumps(getattr(props, fn)(*args)))
    there = mp.call("props", fn, *args)
    assert here == there, f"CPython and MicroPython disagree on {fn}"
    return here


# --- press timelines -----------------------------------------------------------------------

@st.composite
def chatter(draw: st.DrawFn, t0: int, target: bool, window: int) -> list[list[Any]]:
    """Edges starting at t0 that settle on `target` within less than the window."""
    pairs = draw(st.integers(0, min(3, (window - 2) // 2)))
    offsets = sorted(draw(st.lists(st.integers(1, window - 1), min_size=2 * pairs,
                                   max_size=2 * pairs, unique=True)))
    edges: list[list[Any]] = [[t0, target]]
    for i, off in enumerate(offsets):
        edges.append([t0 + off, target if i % 2 else not target])
    return edges


@st.composite
def timelines(draw: st.DrawFn, window: int) -> dict[str, Any]:
    """Real presses with realistic bounce, plus glitches shorter than the window."""
    t = draw(st.integers(1, 50))
    edges: list[list[Any]] = []
    presses: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):  # a glitch while idle
            g0 = t + window + 1 + draw(st.integers(0, 50))
            glitch = draw(chatter(g0, True, window))
            closing = glitch[-1][0] + 1
            if closing - g0 < window:
                edges += glitch + [[closing, False]]
                t = closing
        p0 = t + window + 1 + draw(st.integers(0, 300))
        press = draw(chatter(p0, True, window))
        edges += press
        last = press[-1][0]
        settled = last + window  # the debouncer believes the press from here on
        glitches: list[tuple[int, int]] = []
        if draw(st.booleans()):  # contact briefly opens during the hold
            g0 = last + window + 1 + draw(st.integers(0, 2500))
            glitch = draw(chatter(g0, False, window))
            closing = glitch[-1][0] + 1
            if closing - g0 < window:
                glitch.append([closing, True])
                edges += glitch
                glitches.append((g0, closing))
                last = closing
        r0 = last + window + 1 + draw(st.integers(0, 2500))
        release = draw(chatter(r0, False, window))
        edges += release
        presses.append({"p0": p0, "r0": r0, "settled": settled, "glitches": glitches})
        t = release[-1][0]
    return {"edges": edges, "presses": presses}


@given(data=st.data(), window=st.integers(5, 60), start=st.sampled_from([0, WRAP - 700]))
@SETTINGS
def test_debounce_one_event_per_real_press_none_for_glitches(mp: Worker, data: st.DataObject,
                                                              window: int, start: int) -> None:
    tl = data.draw(timelines(window))
    expected = []
    for p in tl["presses"]:
        expected += [["press", p["p0"]], ["release", p["r0"]]]
    assert both(mp, "debounce_run", start, window, tl["edges"]) == expected


def _hold_fires(p: dict[str, Any], hold_ms: int, window: int) -> list[int] | None:
    # A hold fires at its threshold, but never before the press itself has settled.
    threshold = max(p["p0"] + hold_ms, p["settled"])
    if p["r0"] < p["p0"] + hold_ms:
        return None
    for g0, g_end in p["glitches"]:
        if g0 < threshold < g_end + window:
            return [GESTURE_HOLD, p["p0"], g_end + window]
    return [GESTURE_HOLD, p["p0"], threshold]


@given(data=st.data(), window=st.integers(5, 60), hold_ms=st.integers(100, 3000),
       start=st.sampled_from([0, WRAP - 1500]))
@SETTINGS
def test_hold_fires_exactly_at_threshold_while_held(mp: Worker, data: st.DataObject,
                                                    window: int, hold_ms: int,
                                                    start: int) -> None:
    tl = data.draw(timelines(window))
    expected = [f for p in tl["presses"] if (f := _hold_fires(p, hold_ms, window))]
    got = both(mp, "gesture_run", start, window, GESTURE_HOLD, hold_ms, 3, 1500, tl["edges"])
    assert got == expected


@given(data=st.data(), window=st.integers(5, 60))
@SETTINGS
def test_single_press_fires_once_per_press_when_it_settles(mp: Worker, data: st.DataObject,
                                                           window: int) -> None:
    tl = data.draw(timelines(window))
    got = both(mp, "gesture_run", 0, window, GESTURE_SINGLE, 2000, 3, 1500, tl["edges"])
    assert [g[1] for g in got] == [p["p0"] for p in tl["presses"]]
    assert all(g[2] - g[1] >= window for g in got)


def test_multi_press_needs_all_presses_within_the_time(mp: Worker) -> None:
    def taps(starts: list[int]) -> list[list[Any]]:
        return [e for s in starts for e in ([s, True], [s + 120, False])]
    quick = both(mp, "gesture_run", 0, 25, GESTURE_MULTI, 2000, 3, 1500, taps([0, 400, 800]))
    assert quick == [[GESTURE_MULTI, 0, 825]]
    slow = both(mp, "gesture_run", 0, 25, GESTURE_MULTI, 2000, 3, 1500,
                taps([0, 900, 1800, 2300]))
    assert slow == [[GESTURE_MULTI, 900, 2325]]  # the window slides to the last three


def test_tap_shorter_than_hold_raises_nothing(mp: Worker) -> None:
    tap = [[100, True], [101, False], [103, True], [600, False], [602, True], [604, False]]
    assert both(mp, "gesture_run", 0, 25, GESTURE_HOLD, 2000, 3, 1500, tap) == []


# --- battery --------------------------------------------------------------------------------

@given(chem=st.sampled_from(["lipo", "cr2032"]),
       mvs=st.lists(st.integers(1500, 4500), min_size=2, max_size=40))
@SETTINGS
def test_percent_is_monotone_in_voltage(mp: Worker, chem: str, mvs: list[int]) -> None:
    mvs = sorted(mvs)
    pcts = both(mp, "percent_table", chem, mvs)
    assert pcts == sorted(pcts) and all(0 <= p <= 100 for p in pcts)


@given(chem=st.sampled_from(["lipo", "cr2032"]),
       drops=st.lists(st.integers(0, 30), min_size=1, max_size=60),
       hyst=st.integers(1, 10))
@SETTINGS
def test_falling_voltage_never_reports_a_rise(mp: Worker, chem: str, drops: list[int],
                                              hyst: int) -> None:
    mv = 4300 if chem == "lipo" else 3100
    series = []
    for d in drops:
        mv -= d
        series.append(mv)
    reported = [r[0] for r in both(mp, "battery_run", chem, series, hyst, 15)]
    assert reported == sorted(reported, reverse=True)


@given(chem=st.sampled_from(["lipo", "cr2032"]), base=st.integers(2000, 4300),
       noise=st.lists(st.integers(-6, 6), min_size=5, max_size=80))
@SETTINGS
def test_noisy_voltage_does_not_flap(mp: Worker, chem: str, base: int,
                                     noise: list[int]) -> None:
    hyst = 3
    lo, hi = props.percent_table(chem, [base - 12, base + 12])
    if hi - lo >= hyst:
        return  # the noise spans a real change of level here; nothing to claim
    reported = [r[0] for r in both(mp, "battery_run", chem, [base + n for n in noise], hyst, 15)]
    changes = sum(1 for a, b in zip(reported, reported[1:]) if a != b)
    assert changes <= 1


def test_low_battery_flag_has_hysteresis(mp: Worker) -> None:
    # 3710 mV is 15 %; the flag clears only at 20 % (3730 mV) or more.
    series = [3900] * 3 + [3700] * 12 + [3722] * 12 + [3760] * 12
    out = both(mp, "battery_run", "lipo", series, 1, 15)
    flags = [low for _, low in out]
    first_low = flags.index(True)
    assert all(flags[first_low:15 + 12])
    assert flags[-1] is False


# --- power cuts -----------------------------------------------------------------------------

@given(payloads=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=4))
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_store_survives_a_power_cut_at_every_step(mp: Worker, payloads: list[bytes]) -> None:
    saves = [p.hex() for p in payloads]
    total = props.store_powercut(-1, saves)["steps"]
    for budget in range(total + 1):
        r = both(mp, "store_powercut", budget, saves)
        done = r["completed"]
        allowed = ({saves[done - 1]} if done else {None}) | (
            {saves[done]} if done < len(saves) else set())
        assert r["loaded"] in allowed, (budget, r)
    assert props.store_powercut(total, saves)["loaded"] == saves[-1]


@pytest.mark.parametrize("block", [1, 4, 32])
def test_sequence_numbers_never_repeat_across_cuts_and_reboots(mp: Worker, block: int) -> None:
    total = 900
    for budget in range(0, total, 7 if block > 1 else 3):
        issued = both(mp, "counters_powercut", budget, 4, 40, block)
        seqs = [s for _, s in issued]
        assert seqs == sorted(set(seqs)), budget
        boots = [b for b, _ in issued]
        assert boots == sorted(boots)
