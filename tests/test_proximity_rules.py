"""The proximity rules (centre/proximity.py, centre/geo.py): geodesic distances to points,
circles and polygons; an alert at once deep inside, on confirmation when marginal; hysteresis
on clearing; stale and jumping fixes flagged and never alerting; a victim position too old to
use; one offender linked to two victims. docs/proximity.md states each rule."""
from __future__ import annotations

import math

import pytest
from geographiclib.geodesic import Geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from msa.centre.geo import (Circle, Polygon, geodesic_m, screen_m, screen_to_shape_m,
                            to_shape_m)
from msa.centre.proximity import (ALERT, CLEAR, JUMP, PRE_ALERT, STALE, VICTIM_HELD,
                                  VICTIM_STALE,
                                  VICTIM_ZONE, CaseRules, Engine, Fix)

G = Geodesic.WGS84
LAT, LON = 51.0543, 3.7174


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    """A point east/north of the origin, by the geodesic (not the formula under test)."""
    g = G.Direct(LAT, LON, math.degrees(math.atan2(east_m, north_m)), math.hypot(east_m, north_m))
    return float(g["lat2"]), float(g["lon2"])


def fix(east_m: float, t: float, accuracy_m: float | None = 10.0, north_m: float = 0.0,
        delay_s: float = 1.0) -> Fix:
    lat, lon = at(east_m, north_m)
    return Fix(lat, lon, accuracy_m, t, t + delay_s)


RULES = CaseRules("A", 500.0, 1000.0, True, {})


def approach(engine: Engine, positions: list[float], rules: CaseRules = RULES,
             victim_at: float = 0.0, interval_s: float = 10.0, start: float = 1_800_000_000
             ) -> list[tuple[float, str, str]]:
    """The tag at each east offset in turn (one fix every interval), the victim fixed at
    `victim_at` reporting every 30 s; the changes as (t, kind, zone)."""
    out = []
    for i, east in enumerate(positions):
        t = start + i * interval_s
        if i % 3 == 0:
            out += [(t, c.kind, c.zone) for c in engine.victim_fix(
                rules, fix(victim_at, t, 8.0), ["T"])]
        out += [(t, c.kind, c.zone) for c in engine.tag_fix("T", fix(east, t), [rules])]
    return out


# --- distances ---

@pytest.mark.parametrize("east, north", [(0, 0), (499.0, 0), (0, 1234.5), (-3000, 4000)])
def test_geodesic_distance_matches_the_direct_problem(east: float, north: float) -> None:
    assert geodesic_m(LAT, LON, *at(east, north)) == pytest.approx(math.hypot(east, north),
                                                                  abs=1e-6)


def test_distance_to_a_circle_and_a_polygon() -> None:
    home = Circle(*at(0, 0), 30.0)
    assert to_shape_m(*at(530, 0), home) == pytest.approx(500.0, abs=1e-6)
    assert to_shape_m(*at(10, 10), home) == 0.0
    square = Polygon((at(-100, -100), at(100, -100), at(100, 100), at(-100, 100)))
    assert to_shape_m(*at(0, 0), square) == 0.0
    assert to_shape_m(*at(600, 0), square) == pytest.approx(500.0, abs=0.5)
    assert to_shape_m(*at(400, 400), square) == pytest.approx(math.hypot(300, 300), abs=0.5)


@settings(max_examples=200, deadline=None)
@given(st.floats(-20_000, 20_000), st.floats(-20_000, 20_000), st.floats(0, 2_000))
def test_the_screen_never_overstates_a_distance(east: float, north: float, r: float) -> None:
    # The screen lets the rules skip the geodesic for far pairs: it must be a lower bound, or
    # a near pair would be skipped.
    lat, lon = at(east, north)
    assert screen_m(LAT, LON, lat, lon) <= geodesic_m(LAT, LON, lat, lon)
    circle = Circle(LAT, LON, r)
    assert screen_to_shape_m(lat, lon, circle) <= to_shape_m(lat, lon, circle) + 1e-6
    square = Polygon((at(-r, -r), at(r, -r), at(r, r), at(-r, r)))
    assert screen_to_shape_m(lat, lon, square) <= to_shape_m(lat, lon, square) + 1e-6


# --- alert, confirmation, hysteresis ---

def test_a_fix_deep_inside_alerts_at_once() -> None:
    # Far, then (100 s later, by car: no jump) deep inside: no confirmation is waited for.
    changes = approach(Engine(), [3000.0, 300.0], interval_s=100.0)
    assert [k for _t, k, z in changes if z == VICTIM_ZONE] == [ALERT]


def test_a_marginal_fix_needs_the_next_to_confirm() -> None:
    # u = 2 * hypot(10, 8) = 25.6 m: 510 m away is possibly (not certainly) inside R = 500 m,
    # and so is 495 m. Fixes 10 s apart, 110 m closer each, then the two marginal ones.
    e = Engine()
    trail = [1500.0 - 110.0 * i for i in range(9)] + [510.0, 495.0]
    kinds = [(k, t) for t, k, z in approach(e, trail) if z == VICTIM_ZONE]
    assert [k for k, _ in kinds] == [PRE_ALERT, ALERT]
    assert kinds[1][1] == 1_800_000_000 + 10 * 10  # on the confirming fix, not the marginal
    # A single marginal fix followed by one certainly outside raises nothing.
    e2 = Engine()
    kinds2 = [k for _t, k, z in approach(e2, trail[:10] + [540.0, 560.0])
              if z == VICTIM_ZONE]
    assert kinds2 == [PRE_ALERT]


def test_an_alert_clears_only_beyond_the_margin_and_does_not_flap() -> None:
    e = Engine()
    # In deep, then back and forth around R + 50 m for a long while: one alert, no clearing.
    slow_out = [800.0 - 10 * i for i in range(40)] + [410.0 + 10 * i for i in range(14)]
    wobble = [550.0 + (20.0 if i % 2 else -20.0) for i in range(60)]
    kinds = [k for _t, k, z in approach(e, slow_out + wobble) if z == VICTIM_ZONE]
    assert kinds.count(ALERT) == 1 and "alert cleared" not in kinds
    # Then well out (beyond R + 100 m + uncertainty): cleared, into the pre-alert ring.
    more = [k for _t, k, z in approach(e, [560.0 + 10 * i for i in range(12)],
                                       start=1_800_000_000 + 1140) if z == VICTIM_ZONE]
    assert "alert cleared" in more and ALERT not in more
    assert e.pairs[("A", "T", VICTIM_ZONE)].level == PRE_ALERT


# --- flags that never alert ---

def test_a_single_jump_towards_the_victim_is_flagged_not_alerted() -> None:
    e = Engine()
    trail = [1200.0] * 6
    approach(e, trail)
    t = 1_800_000_000 + 6 * 10
    e.victim_fix(RULES, fix(0.0, t, 8.0), ["T"])
    jumped = e.tag_fix("T", fix(200.0, t), [RULES])  # 1 km in 10 s from standing: a jump
    assert [c.kind for c in jumped] == [JUMP]
    back = e.tag_fix("T", fix(1200.0, t + 10), [RULES])
    assert ALERT not in [c.kind for c in back]
    assert e.pairs[("A", "T", VICTIM_ZONE)].level != ALERT


def test_two_fixes_that_agree_make_a_jump_real() -> None:
    e = Engine()
    approach(e, [3000.0] * 6)
    t = 1_800_000_060
    e.victim_fix(RULES, fix(0.0, t, 8.0), ["T"])
    assert [c.kind for c in e.tag_fix("T", fix(300.0, t), [RULES])] == [JUMP]
    kinds = [c.kind for c in e.tag_fix("T", fix(290.0, t + 10), [RULES])]
    assert ALERT in kinds  # the tag really is there (it was silent, or switched on)


def test_a_stale_fix_is_flagged_and_raises_nothing() -> None:
    e = Engine()
    approach(e, [3000.0] * 3)
    t = 1_800_000_030
    e.victim_fix(RULES, fix(0.0, t, 8.0), ["T"])
    late = e.tag_fix("T", fix(100.0, t, delay_s=61.0), [RULES])
    assert [c.kind for c in late] == [STALE]
    assert e.pairs[("A", "T", VICTIM_ZONE)].level == CLEAR


def test_a_victim_position_without_a_fix_is_held_then_dropped() -> None:
    # Her host has no fix from t0 on (indoors). For victim_hold_s her last position is used,
    # flagged once as held; after that it is too old: flagged once, and only the fixed zone
    # (home) can alert.
    rules = CaseRules("A", 500.0, 1000.0, True, {"home": Circle(*at(0, 0), 20.0)})
    e = Engine()
    t0 = 1_800_000_000
    e.victim_fix(rules, fix(0.0, t0, 8.0), ["T"])
    held = []
    for i in range(1, 40):
        t = t0 + 100 + i * 10
        held += [(c.kind, c.zone) for c in e.tag_fix("T", fix(1500.0 - 35 * i, t), [rules])]
    assert held.count((VICTIM_HELD, VICTIM_ZONE)) == 1
    assert (ALERT, VICTIM_ZONE) in held and (ALERT, "home") in held
    e2 = Engine()
    e2.victim_fix(rules, fix(0.0, t0, 8.0), ["T"])
    late = []
    for i in range(1, 40):
        t = t0 + 1900 + i * 10  # past victim_hold_s (1800 s)
        late += [(c.kind, c.zone) for c in e2.tag_fix("T", fix(1500.0 - 35 * i, t), [rules])]
    assert late.count((VICTIM_STALE, VICTIM_ZONE)) == 1 and (VICTIM_HELD, VICTIM_ZONE) not in late
    assert (ALERT, "home") in late and (ALERT, VICTIM_ZONE) not in late


def test_drift_with_poor_accuracy_never_confirms_from_outside() -> None:
    # Marginal fixes only confirm when the second is likely inside (within one accuracy
    # radius): two poor fixes 90 m outside R, each possibly inside, do not alert.
    e = Engine()
    trail = [290.0, 288.0, 292.0, 289.0]
    t0 = 1_800_000_000
    rules = CaseRules("A", 200.0, 400.0, True, {})
    kinds = []
    for i, east in enumerate(trail):
        t = t0 + i * 10
        e.victim_fix(rules, fix(0.0, t, 35.0), ["T"])
        kinds += [c.kind for c in e.tag_fix("T", fix(east, t + 1, 30.0), [rules])]
    assert ALERT not in kinds
    assert e.pairs[("A", "T", VICTIM_ZONE)].pending_alert  # each was possibly inside


def test_one_offender_two_victims_both_alerted() -> None:
    a, b = CaseRules("A"), CaseRules("B")
    e = Engine()
    t = 1_800_000_000
    e.victim_fix(a, fix(0.0, t, 8.0), ["T"])
    e.victim_fix(b, fix(0.0, t, 8.0, north_m=5000.0), ["T"])
    kinds = {(c.case_ref, c.kind) for c in e.tag_fix("T", fix(100.0, t + 1), [a, b])}
    assert ("A", ALERT) in kinds and ("B", ALERT) not in kinds
    later = {(c.case_ref, c.kind) for c in e.tag_fix("T", fix(150.0, t + 11, north_m=4800.0),
                                                      [a, b])}
    assert ("B", ALERT) not in later  # a jump of 4.8 km in 10 s: flagged first
    assert e.open_level("A") == ALERT


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32), st.floats(650.0, 3000.0))
def test_drift_well_outside_never_alerts(seed: int, distance_m: float) -> None:
    # Both parties still, their fixes drifting by up to their stated accuracy: a tag further
    # than R + the uncertainty margin (2 * hypot(10, 8) = 26 m) and beyond must never alert.
    import random
    rnd = random.Random(seed)
    e = Engine()
    t0 = 1_800_000_000
    for i in range(200):
        t = t0 + i * 10
        if i % 3 == 0:
            e.victim_fix(RULES, fix(rnd.uniform(-8, 8), t, 8.0, rnd.uniform(-8, 8)), ["T"])
        e.tag_fix("T", fix(distance_m + rnd.uniform(-10, 10), t, 10.0, rnd.uniform(-10, 10)),
                  [RULES])
    assert e.pairs[("A", "T", VICTIM_ZONE)].level != ALERT


def test_the_view_shows_every_open_pair_and_only_the_closest_clear_ones() -> None:
    e = Engine()
    t = 1_800_000_000
    cases = {}
    for k in range(60):  # 60 victims, each with her own tag; the first is approached
        rules = CaseRules(f"C{k:02d}")
        cases[rules.case_ref] = rules
        e.victim_fix(rules, fix(0.0, t, 8.0, north_m=10_000.0 * k), [f"T{k}"])
        east = 100.0 if k == 0 else 1500.0 + 10.0 * k
        e.tag_fix(f"T{k}", fix(east, t + 1, 10.0, north_m=10_000.0 * k), [rules])
    views = e.views(cases, t + 2, max_clear=5)
    assert [v["case_ref"] for v in views] == ["C00", "C01", "C02", "C03", "C04", "C05"]
    assert views[0]["state"] == ALERT and all(v["state"] == CLEAR for v in views[1:])
    assert len(e.views(cases, t + 2)) == 51  # the default: 50 clear ones
