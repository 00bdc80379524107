"""The proximity rules at their edges (centre/proximity.py, centre/geo.py), each documented rule
checked on exact values where a small change to the code would move it: jumps judged against
the predicted motion (3 m/s², 70 m/s, the 120 s velocity window), an old fix ignored silently,
unknown accuracy counted as 50 m, stale and held-position limits, the far-pair screen, the
confirmation and hysteresis thresholds, clearing into the pre-alert or into clear, flags raised
once while they last, acknowledgement, open_level and the operator's view. docs/proximity.md
("The rules") states each rule; tests/test_proximity_rules.py has the scenarios."""
from __future__ import annotations

import math

import pytest
from geographiclib.geodesic import Geodesic

from msa.centre.geo import (Circle, Polygon, geodesic_m, local_m, screen_m, screen_to_shape_m,
                            spherical_m, to_shape_m)
from msa.centre.proximity import (ALERT, CLEAR, JUMP, PRE_ALERT, STALE, VICTIM_HELD,
                                  VICTIM_STALE, VICTIM_ZONE, CaseRules, Change, Engine, Fix,
                                  Params, Track, shape_json)

G = Geodesic.WGS84
LAT, LON = 51.0543, 3.7174
T0 = 1_800_000_000.0
U = 2 * math.hypot(10.0, 8.0)  # a pair's uncertainty: tag 10 m, victim 8 m


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    """A point east/north of the origin, by the geodesic (not the code under test)."""
    g = G.Direct(LAT, LON, math.degrees(math.atan2(east_m, north_m)), math.hypot(east_m, north_m))
    return float(g["lat2"]), float(g["lon2"])


def fix(east_m: float, t: float, accuracy_m: float | None = 10.0, north_m: float = 0.0,
        delay_s: float = 1.0) -> Fix:
    lat, lon = at(east_m, north_m)
    return Fix(lat, lon, accuracy_m, t, t + delay_s)


def kinds(changes: list[Change]) -> list[str]:
    return [c.kind for c in changes]


# --- Track: jumps judged against the predicted motion ---

def test_a_standing_track_allows_half_3_m_s2_dt2_plus_the_uncertainty() -> None:
    # Standing still (velocity 0), then 10 s later: 0.5 * 3 * 10² + 2 * hypot(10, 10)
    # = 150 + 28.3 = 178.3 m is as far as a car can get; beyond is a jump.
    for moved, verdict in [(174.0, None), (183.0, JUMP)]:
        for east, north in [(moved, 0.0), (0.0, moved), (-moved, 0.0), (0.0, -moved)]:
            track = Track(Params())
            assert track.judge(fix(0.0, T0)) is None
            assert track.judge(fix(0.0, T0 + 10)) is None
            assert track.velocity == (0.0, 0.0)
            assert track.judge(fix(east, T0 + 20, north_m=north)) == verdict


def test_unknown_accuracy_counts_as_50_m_in_the_jump_slack() -> None:
    # Slack 2 * hypot(50, 50) = 141.4 m: 150 + 141.4 = 291.4 m in 10 s from standing.
    for moved, verdict in [(286.0, None), (297.0, JUMP)]:
        track = Track(Params())
        track.judge(fix(0.0, T0, None))
        track.judge(fix(0.0, T0 + 10, None))
        assert track.judge(fix(moved, T0 + 20, None)) == verdict


def test_the_path_is_predicted_from_the_velocity_east_and_north() -> None:
    # 10 m/s east and 5 m/s north: 10 s on, the tag is anywhere from the last fix (it braked)
    # to 100 m east, 50 m north of it (it kept going); the allowance (178.3 m) is around that
    # stretch, not around the last fix alone.
    ue, un = 100.0 / math.hypot(100.0, 50.0), 50.0 / math.hypot(100.0, 50.0)
    for de, dn, verdict in [(100.0 + 170.0 * ue, 50.0 + 170.0 * un, None),  # beyond the end
                            (-185.0 * ue, -185.0 * un, JUMP),  # behind where it was
                            (-170.0 * ue, -170.0 * un, None),
                            (50.0 - 170.0 * un, 25.0 + 170.0 * ue, None),  # aside, midway
                            (50.0 + 185.0 * un, 25.0 - 185.0 * ue, JUMP),
                            (0.0, 0.0, None)]:  # stopped dead: braking is no jump
        track = Track(Params())
        track.judge(fix(0.0, T0))
        assert track.judge(fix(100.0, T0 + 10, north_m=50.0)) is None
        vx, vy = track.velocity or (0.0, 0.0)
        assert vx == pytest.approx(10.0, abs=0.05) and vy == pytest.approx(5.0, abs=0.05)
        assert track.judge(fix(100.0 + de, T0 + 20, north_m=50.0 + dn)) == verdict


def test_more_than_70_m_s_is_a_jump_whatever_the_history() -> None:
    # Only one fix before: no velocity, only the speed limit: 70 * 10 + 28.3 = 728.3 m.
    for moved, verdict in [(720.0, None), (737.0, JUMP)]:
        track = Track(Params())
        track.judge(fix(0.0, T0))
        assert track.judge(fix(moved, T0 + 10)) == verdict
        assert track.velocity is None or verdict is None


def test_a_velocity_is_taken_only_from_fixes_within_120_s() -> None:
    # 10 m/s east over 120 s: the velocity counts, and a turn back of 300 m is a jump. Over
    # 121 s it does not: only the speed limit applies and the same turn is accepted.
    for gap_s, verdict in [(120.0, JUMP), (121.0, None)]:
        track = Track(Params())
        track.judge(fix(0.0, T0))
        assert track.judge(fix(10.0 * gap_s, T0 + gap_s)) is None
        assert (track.velocity is None) == (gap_s > 120.0)
        assert track.judge(fix(10.0 * gap_s - 200.0, T0 + gap_s + 10)) == verdict


def test_a_velocity_over_one_second_counts() -> None:
    # Fixes 1 s apart, 10 m: 10 m/s; the next second a fix 40 m behind the last is 40 m off
    # the stretch it can be on (allowance 1.5 + 28.3 m): a jump; 25 m behind is not.
    for behind, verdict in [(40.0, JUMP), (25.0, None)]:
        track = Track(Params())
        track.judge(fix(0.0, T0))
        track.judge(fix(10.0, T0 + 1))
        assert track.velocity is not None and track.velocity[0] == pytest.approx(10.0, abs=0.05)
        assert track.judge(fix(10.0 - behind, T0 + 2)) == verdict


def test_an_old_or_repeated_fix_is_old_and_changes_nothing() -> None:
    track = Track(Params())
    first = fix(0.0, T0)
    track.judge(first)
    assert track.judge(fix(500.0, T0)) == "old"  # the same time: a repeat
    assert track.judge(fix(0.0, T0 - 5)) == "old"
    assert track.last is first and track.held is None


def test_a_jump_is_made_real_only_by_a_later_fix_agreeing_with_it() -> None:
    track = Track(Params())
    track.judge(fix(0.0, T0))
    track.judge(fix(0.0, T0 + 10))
    jump = fix(1000.0, T0 + 20)
    assert track.judge(jump) == JUMP and track.held is jump
    # The same jump again (its very time): not a second fix, still a jump.
    assert track.judge(fix(1000.0, T0 + 20)) == JUMP
    # A second fix agreeing with the held one: both taken, the velocity from one to the other.
    second = fix(1050.0, T0 + 30)
    assert track.judge(second) is None
    assert track.last is second and track.held is None
    assert track.velocity is not None
    assert track.velocity[0] == pytest.approx(5.0, abs=0.05)
    assert track.velocity[1] == pytest.approx(0.0, abs=0.05)


def test_a_fix_agreeing_with_neither_replaces_the_held_jump() -> None:
    track = Track(Params())
    track.judge(fix(0.0, T0))
    track.judge(fix(0.0, T0 + 10))
    assert track.judge(fix(1000.0, T0 + 20)) == JUMP
    other = fix(-1000.0, T0 + 30)
    assert track.judge(other) == JUMP and track.held is other
    assert track.last is not None and track.last.fix_time == T0 + 10


# --- tag fixes: stale, old, jump ---

RULES = CaseRules("A", 500.0, 1000.0, True, {})


def test_a_fix_received_60_s_late_counts_and_a_later_one_is_stale() -> None:
    for delay, flagged in [(60.0, False), (60.5, True)]:
        e = Engine()
        e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
        out = e.tag_fix("T", fix(100.0, T0 + 1, delay_s=delay), [RULES])
        if flagged:
            assert out == [Change(STALE, "A", "T", "", T0 + 1 + delay)]
            assert "T" not in e.tags  # a stale fix never enters the track
            assert ("A", "T", VICTIM_ZONE) not in e.pairs
        else:
            assert kinds(out) == [ALERT]


def test_a_flag_goes_to_every_linked_case_and_is_raised_each_time() -> None:
    a, b = CaseRules("A"), CaseRules("B")
    e = Engine()
    late = fix(100.0, T0, delay_s=100.0)
    assert e.tag_fix("T", late, [a, b]) == [Change(STALE, "A", "T", "", T0 + 100),
                                           Change(STALE, "B", "T", "", T0 + 100)]
    again = fix(100.0, T0 + 10, delay_s=100.0)
    assert kinds(e.tag_fix("T", again, [a, b])) == [STALE, STALE]  # an event, not a state
    assert e.flags[("A", "T")] == {STALE: T0 + 110} == e.flags[("B", "T")]


def test_an_old_fix_is_ignored_silently() -> None:
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
    assert kinds(e.tag_fix("T", fix(3000.0, T0 + 1), [RULES])) == []
    pair = e.pairs[("A", "T", VICTIM_ZONE)]
    before = (pair.level, pair.near_m, pair.tag)
    assert e.tag_fix("T", fix(100.0, T0 + 1), [RULES]) == []  # repeated time, elsewhere
    assert e.tag_fix("T", fix(100.0, T0 - 9), [RULES]) == []
    assert (pair.level, pair.near_m, pair.tag) == before
    assert e.flags.get(("A", "T"), {}) == {}


def test_a_jump_is_flagged_and_keeps_the_last_accepted_fix_in_the_view() -> None:
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
    first = fix(3000.0, T0 + 1)
    e.tag_fix("T", first, [RULES])
    e.tag_fix("T", fix(3000.0, T0 + 11), [RULES])
    assert e.tag_fix("T", fix(100.0, T0 + 21), [RULES]) == [
        Change(JUMP, "A", "T", "", T0 + 22)]
    assert e.pairs[("A", "T", VICTIM_ZONE)].level == CLEAR


# --- the victim's position ---

def test_a_victim_position_none_or_jumping_changes_nothing() -> None:
    e = Engine()
    assert e.victim_fix(RULES, None, ["T"]) == []
    assert RULES.case_ref not in e.victims
    e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
    e.victim_fix(RULES, fix(0.0, T0 + 10, 8.0), ["T"])
    e.tag_fix("T", fix(2000.0, T0 + 11), [RULES])
    # Her position jumps 1.9 km in 10 s, next to the tag: held aside, nothing raised, and the
    # last one stays in use.
    assert e.victim_fix(RULES, fix(1900.0, T0 + 20, 8.0), ["T"]) == []
    assert e.victims["A"].last is not None and e.victims["A"].last.fix_time == T0 + 10
    assert e.pairs[("A", "T", VICTIM_ZONE)].level == CLEAR


def test_a_victim_position_is_judged_against_tags_fresh_within_60_s() -> None:
    # The tag's last fix at T0; her position received 60 s after it still counts, 61 s not.
    for received, raised in [(T0 + 60, [ALERT]), (T0 + 61, [])]:
        e = Engine()
        e.tag_fix("T", fix(100.0, T0, delay_s=0.0), [RULES])
        her = Fix(*at(0.0), 8.0, received - 1, received)
        out = e.victim_fix(RULES, her, ["T", "unknown tag"])
        assert kinds(out) == raised
        if raised:
            assert out[0].at == received and out[0].distance_m == pytest.approx(100.0)


def test_unknown_accuracy_counts_as_50_m_for_the_pair() -> None:
    # Tag accuracy unknown: u = 2 * hypot(50, 8) against her, 2 * 50 against a fixed zone.
    rules = CaseRules("A", 500.0, 1000.0, True, {"home": Circle(*at(0.0), 0.0)})
    e = Engine()
    e.victim_fix(rules, fix(0.0, T0, 8.0), ["T"])
    out = e.tag_fix("T", fix(300.0, T0 + 1, None), [rules])
    by_zone = {c.zone: c for c in out}
    assert by_zone[VICTIM_ZONE].near_m == pytest.approx(300.0 - 2 * math.hypot(50.0, 8.0))
    assert by_zone["home"].near_m == pytest.approx(300.0 - 100.0)
    assert by_zone["home"].at == T0 + 2 and by_zone["home"].distance_m == pytest.approx(300.0)
    # And her position without an accuracy: u = 2 * hypot(10, 50).
    e2 = Engine()
    e2.victim_fix(rules, fix(0.0, T0, None), ["T"])
    out2 = e2.tag_fix("T", fix(300.0, T0 + 1), [rules])
    assert out2[0].zone == VICTIM_ZONE
    assert out2[0].near_m == pytest.approx(300.0 - 2 * math.hypot(10.0, 50.0))
    view = e2.views({"A": rules}, T0 + 2)
    assert view[-1]["zone"] == VICTIM_ZONE
    assert view[-1]["victim"] == {"lat": at(0.0)[0], "lon": at(0.0)[1], "fix_time": T0,
                                  "accuracy_m": 50.0}


def test_a_held_position_grows_half_a_metre_per_second_beyond_120_s() -> None:
    # Her fix 100 s + 120 s old: accuracy 8 + 0.5 * 100 = 58 m.
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0, delay_s=0.0), ["T"])
    out = e.tag_fix("T", fix(300.0, T0 + 220, delay_s=0.0), [RULES])
    assert kinds(out) == [VICTIM_HELD, ALERT]
    assert out[0] == Change(VICTIM_HELD, "A", "T", VICTIM_ZONE, T0 + 220)
    assert out[1].near_m == pytest.approx(300.0 - 2 * math.hypot(10.0, 58.0))


@pytest.mark.parametrize("age_s, flag", [(120.0, None), (120.5, VICTIM_HELD),
                                         (1800.0, VICTIM_HELD), (1800.5, VICTIM_STALE)])
def test_her_position_is_fresh_to_120_s_and_held_to_1800_s(age_s: float, flag: str | None
                                                            ) -> None:
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0, delay_s=0.0), ["T"])
    out = e.tag_fix("T", fix(300.0, T0 + age_s, delay_s=0.0), [RULES])
    flags = [k for k in kinds(out) if k in (VICTIM_HELD, VICTIM_STALE)]
    assert flags == ([] if flag is None else [flag])
    pair = e.pairs[("A", "T", VICTIM_ZONE)]
    if flag == VICTIM_STALE:
        assert pair.distance_m is None and pair.victim is None
    else:
        assert pair.distance_m == pytest.approx(300.0)
        assert (ALERT in kinds(out)) == (age_s < 1000)  # at 1800 s her 848 m uncertainty


def test_held_and_too_old_are_raised_once_while_they_last_and_again_after() -> None:
    e = Engine()
    tag_t = T0
    her_t = T0

    def tag(age_s: float) -> list[str]:
        nonlocal tag_t
        tag_t += 10
        return kinds(e.tag_fix("T", fix(3000.0, tag_t, delay_s=0.0), [RULES]))

    # No position of hers at all: too old, once.
    assert tag(0) == [VICTIM_STALE]
    assert tag(0) == []
    assert e.flags[("A", "T")] == {VICTIM_STALE: T0 + 10}
    her_t = tag_t
    e.victim_fix(RULES, fix(0.0, her_t, 8.0, delay_s=0.0), ["T"])
    assert tag(0) == []  # fresh: the too-old flag is down
    assert VICTIM_STALE not in e.flags[("A", "T")]
    tag_t = her_t + 200
    assert tag(0) == [VICTIM_HELD]
    assert tag(0) == []
    e.victim_fix(RULES, fix(0.0, tag_t + 1, 8.0, delay_s=0.0), ["T"])
    assert tag(0) == []  # fresh again: held is down
    assert VICTIM_HELD not in e.flags[("A", "T")]
    tag_t += 200
    assert tag(0) == [VICTIM_HELD]  # held again: told again
    tag_t += 2000
    assert tag(0) == [VICTIM_STALE]
    assert VICTIM_HELD not in e.flags[("A", "T")]


def test_a_pair_keeps_the_tag_and_her_position_it_was_judged_on() -> None:
    e = Engine()
    her = fix(0.0, T0, 8.0)
    e.victim_fix(RULES, her, ["T"])
    tag = fix(3000.0, T0 + 1)
    e.tag_fix("T", tag, [RULES])
    pair = e.pairs[("A", "T", VICTIM_ZONE)]
    assert pair.tag is tag and pair.victim is her
    view = e.views({"A": RULES}, T0 + 2)[0]
    assert view["tag"] == {"lat": tag.lat, "lon": tag.lon, "fix_time": tag.fix_time,
                           "accuracy_m": 10.0}
    assert view["victim"] == {"lat": her.lat, "lon": her.lon, "fix_time": her.fix_time,
                              "accuracy_m": 8.0}
    # Her position too old: the pair still shows where the tag is, and no position of hers.
    e2 = Engine()
    late = fix(3000.0, T0 + 1)
    e2.tag_fix("T", late, [RULES])
    pair2 = e2.pairs[("A", "T", VICTIM_ZONE)]
    assert pair2.tag is late and pair2.victim is None


# --- the far-pair screen ---

def test_a_far_pair_keeps_the_screens_lower_bound_and_no_distance() -> None:
    e = Engine()
    her = fix(0.0, T0, 8.0)
    e.victim_fix(RULES, her, ["T"])
    tag = fix(5000.0, T0 + 1)
    assert e.tag_fix("T", tag, [RULES]) == []
    pair = e.pairs[("A", "T", VICTIM_ZONE)]
    assert pair.distance_m is None
    assert pair.near_m == pytest.approx(screen_m(tag.lat, tag.lon, her.lat, her.lon) - U)
    assert pair.near_m is not None and 4850.0 < pair.near_m < 5000.0 - U
    # A fixed zone the same.
    home = Circle(*at(0.0), 100.0)
    rules = CaseRules("H", 500.0, 1000.0, False, {"home": home})
    e2 = Engine()
    e2.tag_fix("T", tag, [rules])
    near = e2.pairs[("H", "T", "home")].near_m
    assert near == pytest.approx(screen_to_shape_m(tag.lat, tag.lon, home) - 20.0)


def test_the_screen_only_skips_pairs_beyond_the_prealert_radius() -> None:
    # 1060 m: the screen's bound is 1039.4, less u (25.6) = 1013.8 > 1000: skipped. At 1040 m
    # the bound less u is 993.6: measured (distance known), no pre-alert (far 1065.6).
    for east, skipped in [(1060.0, True), (1040.0, False)]:
        e = Engine()
        e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
        e.tag_fix("T", fix(east, T0 + 1), [RULES])
        pair = e.pairs[("A", "T", VICTIM_ZONE)]
        assert (pair.distance_m is None) == skipped
        if not skipped:
            assert pair.distance_m == pytest.approx(east)
            assert pair.near_m == pytest.approx(east - U)


def test_the_screen_resets_a_pending_confirmation() -> None:
    # 1010 m: possibly inside the pre-alert radius (near 984), not likely (d - u/2 = 997.2 is
    # inside! but there is no fix before it to confirm): pending. Then a far fix (skipped by
    # the screen) must forget it, so that the next marginal fix is not taken as confirmed.
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
    assert e.tag_fix("T", fix(1010.0, T0 + 1), [RULES]) == []
    pair = e.pairs[("A", "T", VICTIM_ZONE)]
    assert pair.pending_pre and not pair.pending_alert
    e.victim_fix(RULES, fix(0.0, T0 + 90, 8.0), ["T"])
    assert e.tag_fix("T", fix(1200.0, T0 + 100), [RULES]) == []
    assert pair.distance_m is None and not pair.pending_pre
    assert e.tag_fix("T", fix(1005.0, T0 + 200), [RULES]) == []
    assert pair.level == CLEAR and pair.pending_pre


def test_an_open_pair_is_always_measured_even_far_away() -> None:
    # An alerted pair must be measured to be cleared, whatever the screen says.
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0), ["T"])
    assert kinds(e.tag_fix("T", fix(100.0, T0 + 1), [RULES])) == [ALERT]
    e.victim_fix(RULES, fix(0.0, T0 + 100, 8.0), ["T"])
    out = e.tag_fix("T", fix(3000.0, T0 + 101), [RULES])
    assert kinds(out) == ["alert cleared"]
    assert out[0].distance_m == pytest.approx(3000.0) and out[0].near_m == pytest.approx(
        3000.0 - U)
    assert e.pairs[("A", "T", VICTIM_ZONE)].level == CLEAR


# --- alert, confirmation, clearing (a fixed zone: u = 2 * 10 = 20 m exactly) ---

POINT = Circle(*at(0.0), 0.0)
ZONE = CaseRules("Z", 500.0, 1000.0, False, {"home": POINT})


def feed(e: Engine, east: float, t: float, rules: CaseRules = ZONE) -> list[Change]:
    return e.tag_fix("T", fix(east, t, delay_s=0.0), [rules])


def fresh_at(*positions: float) -> tuple[Engine, list[list[str]]]:
    """A new engine, the tag at each position in turn, 100 s apart (no jumps)."""
    e = Engine()
    return e, [kinds(feed(e, east, T0 + 100 * i)) for i, east in enumerate(positions)]


def test_alert_at_once_when_certainly_inside() -> None:
    # far = d + 20 <= 500.
    assert fresh_at(479.0)[1] == [[ALERT]]
    assert fresh_at(481.0)[1] == [[PRE_ALERT]]
    assert fresh_at(979.0)[1] == [[PRE_ALERT]]
    assert fresh_at(981.0)[1] == [[]]


def test_a_change_carries_distance_near_and_time() -> None:
    e = Engine()
    (c,) = feed(e, 300.0, T0)
    assert (c.kind, c.case_ref, c.tag_id, c.zone, c.at) == (ALERT, "Z", "T", "home", T0)
    assert c.distance_m == pytest.approx(300.0) and c.near_m == pytest.approx(280.0)


def test_near_is_never_below_zero() -> None:
    e = Engine()
    feed(e, 5.0, T0)
    pair = e.pairs[("Z", "T", "home")]
    assert pair.near_m == 0.0 and pair.distance_m == pytest.approx(5.0)


def test_a_marginal_fix_confirms_only_when_likely_and_the_one_before_possible() -> None:
    # Possibly inside R: near = d - 20 <= 500 (d <= 520). Likely: d - 10 <= 500 (d <= 510).
    assert fresh_at(519.0, 509.0)[1] == [[PRE_ALERT], [ALERT]]
    assert fresh_at(521.0, 509.0)[1] == [[PRE_ALERT], []]  # the first not even possible
    assert fresh_at(519.0, 511.0)[1] == [[PRE_ALERT], []]  # the second not likely
    e, seen = fresh_at(519.0, 511.0, 509.0)  # the second kept it pending
    assert seen == [[PRE_ALERT], [], [ALERT]]
    # The same for the pre-alert radius.
    assert fresh_at(1019.0, 1009.0)[1] == [[], [PRE_ALERT]]
    assert fresh_at(1021.0, 1009.0)[1] == [[], []]
    assert fresh_at(1019.0, 1011.0)[1] == [[], []]
    assert fresh_at(1019.0, 1011.0, 1009.0)[1] == [[], [], [PRE_ALERT]]


def test_an_alert_clears_beyond_r_plus_100_into_the_prealert_or_clear() -> None:
    # Cleared when near = d - 20 > 600 (d > 620); into the pre-alert while near <= 1100.
    e, seen = fresh_at(300.0, 619.0)
    assert seen == [[ALERT], []]
    e, seen = fresh_at(300.0, 621.0)
    assert seen == [[ALERT], ["alert cleared"]]
    pair = e.pairs[("Z", "T", "home")]
    assert pair.level == PRE_ALERT and pair.since == T0 + 100
    e, seen = fresh_at(300.0, 1119.0)
    assert seen == [[ALERT], ["alert cleared"]] and e.open_level("Z") == PRE_ALERT
    e, seen = fresh_at(300.0, 1121.0)
    assert seen == [[ALERT], ["alert cleared"]] and e.open_level("Z") == CLEAR
    assert e.pairs[("Z", "T", "home")].since == T0 + 100


def test_a_prealert_clears_beyond_its_radius_plus_100() -> None:
    assert fresh_at(800.0, 1119.0)[1] == [[PRE_ALERT], []]
    e, seen = fresh_at(800.0, 1121.0)
    assert seen == [[PRE_ALERT], ["pre-alert cleared"]]
    assert e.pairs[("Z", "T", "home")].level == CLEAR
    # A pre-alerted pair alerted on a marginal fix confirmed by the next.
    assert fresh_at(800.0, 515.0, 509.0)[1] == [[PRE_ALERT], [], [ALERT]]


def test_an_alert_that_stays_raises_nothing_and_forgets_pending() -> None:
    e, seen = fresh_at(300.0, 300.0, 550.0)
    assert seen == [[ALERT], [], []]
    pair = e.pairs[("Z", "T", "home")]
    assert pair.level == ALERT and pair.since == T0 and not pair.pending_alert
    assert not pair.pending_pre


def test_a_cleared_alert_needs_confirmation_again() -> None:
    # After clearing, a single marginal fix does not alert at once (pending was reset).
    e, seen = fresh_at(300.0, 640.0, 515.0)
    assert seen == [[ALERT], ["alert cleared"], []]
    assert e.pairs[("Z", "T", "home")].pending_alert


# --- acknowledgement, open level ---

def test_acknowledgement_holds_until_the_next_change() -> None:
    e = Engine()
    assert not e.acknowledge("Z", "T", "home")  # no such pair
    feed(e, 1500.0, T0)
    assert not e.acknowledge("Z", "T", "home")  # clear: nothing to acknowledge
    feed(e, 800.0, T0 + 100)
    pair = e.pairs[("Z", "T", "home")]
    assert pair.level == PRE_ALERT and not pair.acknowledged
    assert e.acknowledge("Z", "T", "home") and pair.acknowledged
    feed(e, 300.0, T0 + 200)  # a new alert: to be acknowledged again
    assert pair.level == ALERT and not pair.acknowledged
    assert e.acknowledge("Z", "T", "home")
    feed(e, 700.0, T0 + 300)  # cleared into the pre-alert: again
    assert pair.level == PRE_ALERT and not pair.acknowledged
    assert e.acknowledge("Z", "T", "home")
    feed(e, 1200.0, T0 + 400)
    assert pair.level == CLEAR and not pair.acknowledged
    assert not e.acknowledge("Z", "T", "home")


def test_open_level_is_the_most_severe_pair_of_the_case() -> None:
    rules = CaseRules("Z", 500.0, 1000.0, False, {"home": POINT,
                                                  "work": Circle(*at(0.0, 3000.0), 0.0)})
    e = Engine()
    assert e.open_level("Z") == CLEAR
    feed(e, 1500.0, T0, rules)
    assert e.open_level("Z") == CLEAR
    feed(e, 800.0, T0 + 100, rules)
    assert e.open_level("Z") == PRE_ALERT
    e.tag_fix("T2", fix(0.0, T0 + 100, north_m=2900.0, delay_s=0.0), [rules])
    assert e.open_level("Z") == ALERT
    assert e.open_level("other") == CLEAR


# --- the operator's view ---

def test_a_fixed_zones_view_shows_its_shape_and_no_victim() -> None:
    square = Polygon((at(-100, -100), at(100, -100), at(100, 100), at(-100, 100)))
    rules = CaseRules("Z", 310.0, 900.0, False, {"home": POINT, "work": square})
    e = Engine()
    tag = fix(300.0, T0, None, delay_s=0.0)
    e.tag_fix("T", tag, [rules])
    e.acknowledge("Z", "T", "work")
    views = e.views({"Z": rules}, T0)
    assert [v["zone"] for v in views] == ["home", "work"]
    home, work = views
    assert home["shape"] == {"circle": {"lat": POINT.lat, "lon": POINT.lon, "radius_m": 0.0}}
    assert work["shape"] == shape_json(square) == {
        "polygon": [list(c) for c in square.corners]}
    assert home["victim"] is None and work["victim"] is None
    assert home["tag"] == work["tag"] == {"lat": tag.lat, "lon": tag.lon, "fix_time": T0,
                                          "accuracy_m": 50.0}
    assert home["alert_radius_m"] == 310.0 and home["prealert_radius_m"] == 900.0
    assert home["state"] == PRE_ALERT and work["state"] == ALERT
    assert home["since"] == T0 and work["acknowledged"] and not home["acknowledged"]
    assert home["distance_m"] == pytest.approx(300.0)
    assert home["near_m"] == pytest.approx(200.0)  # unknown accuracy: u = 2 * 50
    assert home["flags"] == []
    # A case the caller does not pass is not shown.
    assert e.views({}, T0) == []


def test_a_flag_is_shown_for_600_s_and_a_lasting_one_while_it_lasts() -> None:
    e = Engine()
    e.victim_fix(RULES, fix(0.0, T0, 8.0, delay_s=0.0), ["T"])
    e.tag_fix("T", fix(3000.0, T0, delay_s=0.0), [RULES])
    e.tag_fix("T", fix(3000.0, T0 + 10, delay_s=100.0), [RULES])  # stale, raised at T0 + 110

    def flags(now: float) -> object:
        (view,) = e.views({"A": RULES}, now, max_clear=0)
        return view["flags"]

    assert flags(T0 + 710) == [STALE]
    assert e.views({"A": RULES}, T0 + 711, max_clear=0) == []
    assert flags(T0 + 200) == [STALE]
    assert e.views({"A": RULES}, T0 + 200, flag_shown_s=50.0, max_clear=0) == []
    # Her position held: shown however long ago it was raised, with the stale fix while new.
    e.tag_fix("T", fix(3000.0, T0 + 300, delay_s=0.0), [RULES])
    assert flags(T0 + 400) == [STALE, VICTIM_HELD]
    assert flags(T0 + 5000) == [VICTIM_HELD]
    e.tag_fix("T", fix(3000.0, T0 + 2000, delay_s=0.0), [RULES])
    assert flags(T0 + 9000) == [VICTIM_STALE]


def test_the_clear_pairs_shown_are_the_closest() -> None:
    e = Engine()
    cases = {}
    for k, east in enumerate([4000.0, 2000.0, 3000.0, 1500.0, 1100.0]):
        rules = CaseRules(f"C{k}", 500.0, 1000.0, False, {"home": POINT})
        cases[rules.case_ref] = rules
        e.tag_fix(f"T{k}", fix(east, T0, delay_s=0.0), [rules])
    shown = [v["case_ref"] for v in e.views(cases, T0, max_clear=2)]
    assert shown == ["C3", "C4"]
    shown = [v["case_ref"] for v in e.views(cases, T0, max_clear=4)]
    assert shown == ["C1", "C2", "C3", "C4"]
    assert len(e.views(cases, T0, max_clear=5)) == 5
    assert e.views(cases, T0, max_clear=0) == []


def test_views_are_ordered_by_case_tag_and_zone_and_show_open_ones_beyond_max_clear() -> None:
    rules = CaseRules("Z", 500.0, 1000.0, False, {"b": POINT, "a": Circle(*at(0.0), 100.0)})
    e = Engine()
    e.tag_fix("U", fix(5000.0, T0, delay_s=0.0), [rules])
    e.tag_fix("T", fix(700.0, T0, delay_s=0.0), [rules])
    views = e.views({"Z": rules}, T0, max_clear=0)
    assert [(v["tag_id"], v["zone"]) for v in views] == [("T", "a"), ("T", "b")]
    views = e.views({"Z": rules}, T0, max_clear=1)
    assert [(v["tag_id"], v["zone"]) for v in views] == [("T", "a"), ("T", "b"), ("U", "a")]


# --- distances (centre/geo.py) ---

SQUARE = Polygon((at(-100, -100), at(100, -100), at(100, 100), at(-100, 100)))


@pytest.mark.parametrize("east, north, inside", [
    (0, 0, True), (99, 0, True), (-99, 0, True), (0, 99, True), (0, -99, True),
    (99, 99, True), (-99, -99, True), (101, 0, False), (-101, 0, False), (0, 101, False),
    (0, -101, False), (150, 50, False), (-150, -50, False), (50, 150, False)])
def test_inside_a_polygon(east: float, north: float, inside: bool) -> None:
    d = to_shape_m(*at(east, north), SQUARE)
    assert (d == 0.0) == inside


def test_inside_a_triangle_from_every_side() -> None:
    # A slanted triangle: the crossing's abscissa matters, not just the corners' signs.
    tri = Polygon((at(0, -100), at(300, 200), at(-100, 100)))
    assert to_shape_m(*at(0, 0), tri) == 0.0
    assert to_shape_m(*at(150, 0), tri) > 0.0  # right of the edge from (0,-100) to (300,200)
    assert to_shape_m(*at(100, 50), tri) == 0.0
    assert to_shape_m(*at(-60, 0), tri) > 0.0
    assert to_shape_m(*at(-40, 60), tri) == 0.0
    # Half a metre right of the slanted edge (x = y + 100): outside, 0.5 / sqrt(2) from it.
    assert to_shape_m(*at(100.5, 0), tri) == pytest.approx(0.5 / math.sqrt(2), abs=0.05)


@pytest.mark.parametrize("east, north, expected", [
    (600, 0, 500.0), (-600, 0, 500.0), (0, 350, 250.0), (0, -350, 250.0),
    (400, 400, math.hypot(300, 300)), (-400, 400, math.hypot(300, 300)),
    (-400, -400, math.hypot(300, 300)), (400, -400, math.hypot(300, 300)),
    (150, 20, 50.0), (20, -150, 50.0)])
def test_distance_to_each_edge_and_corner_of_a_polygon(east: float, north: float,
                                                       expected: float) -> None:
    assert to_shape_m(*at(east, north), SQUARE) == pytest.approx(expected, abs=0.5)


def test_a_polygon_with_a_repeated_corner() -> None:
    # A zero-length edge is a point: its distance is to that point.
    poly = Polygon((at(0, 0), at(0, 0), at(100, 100), at(-100, 100)))
    assert to_shape_m(*at(0, -50), poly) == pytest.approx(50.0, abs=0.5)


def test_spherical_and_screen_values() -> None:
    # Haversine on the mean sphere: one degree of a meridian is R * pi / 180.
    assert spherical_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(6_371_008.8 * math.pi / 180)
    assert spherical_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(6_371_008.8 * math.pi / 180)
    assert spherical_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(6_371_008.8 * math.pi)
    assert spherical_m(10.0, 20.0, 10.0, 20.0) == 0.0
    lat, lon = at(3000.0, 4000.0)
    s = spherical_m(LAT, LON, lat, lon)
    assert s == pytest.approx(5000.0, rel=0.006)
    assert screen_m(LAT, LON, lat, lon) == pytest.approx(s * 0.99 - 10.0)
    assert screen_m(LAT, LON, LAT, LON) == 0.0
    home = Circle(LAT, LON, 1000.0)
    assert screen_to_shape_m(lat, lon, home) == pytest.approx((s - 1000.0) * 0.99 - 10.0)
    assert screen_to_shape_m(LAT, LON, home) == 0.0


def test_the_polygon_screen_is_from_its_first_corner_less_its_span() -> None:
    tri = Polygon((at(0, 0), at(200, 0), at(0, 100)))
    lat, lon = at(5000.0, 0.0)
    span = spherical_m(*tri.corners[0], *tri.corners[1])
    expected = (spherical_m(lat, lon, *tri.corners[0]) - span) * 0.99 - 10.0
    assert screen_to_shape_m(lat, lon, tri) == pytest.approx(expected)


def test_local_plane_offsets() -> None:
    # Exact to a few centimetres over hundreds of metres (the track's motion checks).
    for east, north in [(300.0, 0.0), (0.0, 300.0), (-200.0, 150.0)]:
        e, n = local_m(LAT, LON, *at(east, north))
        assert e == pytest.approx(east, abs=1.5) and n == pytest.approx(north, abs=1.5)
    # Across the antimeridian the short way round.
    e, n = local_m(0.0, 179.999, 0.0, -179.999)
    assert e == pytest.approx(6_371_008.8 * math.radians(0.002)) and n == 0.0
    e, _ = local_m(0.0, -179.999, 0.0, 179.999)
    assert e == pytest.approx(-6_371_008.8 * math.radians(0.002))
    # At 60° north a degree of longitude is half the equator's (mid-latitude of the pair).
    e, _ = local_m(59.0, 0.0, 61.0, 0.001)
    assert e == pytest.approx(6_371_008.8 * math.radians(0.001) * 0.5)


def test_geodesic_distance_of_a_known_pair() -> None:
    assert geodesic_m(LAT, LON, *at(1234.5, -678.9)) == pytest.approx(
        math.hypot(1234.5, 678.9), abs=1e-6)


# --- each limit exactly: "<=" means on the limit counts (fixed zone: u = 20 m exactly) ---

def dist(east: float) -> float:
    """The tag's distance to POINT at `east`, as the rules measure it."""
    return to_shape_m(*at(east), POINT)


def run(rules: CaseRules, *positions: float, params: Params | None = None
        ) -> tuple[Engine, list[list[str]]]:
    e = Engine(params)
    return e, [kinds(feed(e, east, T0 + 100 * i, rules)) for i, east in enumerate(positions)]


def test_far_exactly_at_a_radius_is_certainly_inside() -> None:
    r = dist(480.0) + 20.0
    assert run(CaseRules("Z", r, 1000.0, False, {"home": POINT}), 480.0)[1] == [[ALERT]]
    p = dist(980.0) + 20.0
    assert run(CaseRules("Z", 500.0, p, False, {"home": POINT}), 980.0)[1] == [[PRE_ALERT]]


def test_near_exactly_at_a_radius_is_possibly_inside() -> None:
    # The first fix only possibly inside (near == R), the second likely inside: confirmed.
    r = dist(520.0) - 20.0
    rules = CaseRules("Z", r, 1000.0, False, {"home": POINT})
    assert run(rules, 520.0, 505.0)[1] == [[PRE_ALERT], [ALERT]]
    p = dist(1020.0) - 20.0
    rules = CaseRules("Z", 500.0, p, False, {"home": POINT})
    assert run(rules, 1020.0, 1005.0)[1] == [[], [PRE_ALERT]]


def test_likely_exactly_at_a_radius_confirms() -> None:
    r = dist(508.0) - 10.0  # d - u/2 == R on the second fix
    rules = CaseRules("Z", r, 1000.0, False, {"home": POINT})
    assert run(rules, 515.0, 508.0)[1] == [[PRE_ALERT], [ALERT]]
    p = dist(1008.0) - 10.0
    rules = CaseRules("Z", 500.0, p, False, {"home": POINT})
    assert run(rules, 1015.0, 1008.0)[1] == [[], [PRE_ALERT]]


def test_likely_is_confirm_sigmas_accuracy_radii() -> None:
    # confirm_sigmas 1.5: likely inside when d - 1.5 * 10 <= R; 513 - 15 = 498.
    params = Params(confirm_sigmas=1.5)
    assert run(ZONE, 519.0, 513.0, params=params)[1] == [[PRE_ALERT], [ALERT]]
    assert run(ZONE, 519.0, 516.0, params=params)[1] == [[PRE_ALERT], []]


def test_near_exactly_at_the_clearing_margin_does_not_clear() -> None:
    near = dist(700.0) - 20.0
    r = near - 100.0
    assert r + 100.0 == near
    rules = CaseRules("Z", r, 1000.0, False, {"home": POINT})
    e, seen = run(rules, 300.0, 700.0)
    assert seen == [[ALERT], []] and e.open_level("Z") == ALERT
    near = dist(1300.0) - 20.0
    p = near - 100.0
    assert p + 100.0 == near
    rules = CaseRules("Z", 500.0, p, False, {"home": POINT})
    e, seen = run(rules, 1000.0, 1300.0)
    assert seen == [[PRE_ALERT], []] and e.open_level("Z") == PRE_ALERT


def test_an_alert_cleared_exactly_at_the_prealert_margin_stays_prealerted() -> None:
    near = dist(1120.0) - 20.0
    p = near - 100.0
    assert p + 100.0 == near
    rules = CaseRules("Z", 500.0, p, False, {"home": POINT})
    e, seen = run(rules, 300.0, 1120.0)
    assert seen == [[ALERT], ["alert cleared"]] and e.open_level("Z") == PRE_ALERT


def test_a_cleared_prealert_needs_confirmation_again() -> None:
    # 1009 m is likely inside the pre-alert radius, but the fix before (1130 m) was not even
    # possibly inside: nothing yet.
    e, seen = run(ZONE, 800.0, 1130.0, 1009.0)
    assert seen == [[PRE_ALERT], ["pre-alert cleared"], []]


def test_the_screen_bound_exactly_at_the_prealert_radius_is_measured() -> None:
    tag = fix(1100.0, T0, delay_s=0.0)
    p = screen_to_shape_m(tag.lat, tag.lon, POINT) - 20.0
    e = Engine()
    e.tag_fix("T", tag, [CaseRules("Z", 500.0, p, False, {"home": POINT})])
    assert e.pairs[("Z", "T", "home")].distance_m == pytest.approx(1100.0)


def test_exactly_the_speed_limit_is_not_a_jump() -> None:
    # Exact accuracies (0 m: no slack), fixes 1 s apart; the limit set to the very speed.
    a, b = Fix(*at(0.0), 0.0, T0, T0), Fix(*at(30.0, 20.0), 0.0, T0 + 1, T0 + 1)
    speed = math.hypot(*local_m(a.lat, a.lon, b.lat, b.lon))
    track = Track(Params(max_speed_mps=speed))
    track.judge(a)
    assert track.judge(b) is None
    track = Track(Params(max_speed_mps=speed * 0.999))
    track.judge(a)
    assert track.judge(b) == JUMP


def test_exactly_the_acceleration_limit_is_not_a_jump() -> None:
    a = Fix(*at(0.0), 0.0, T0, T0)
    b = Fix(*at(10.0), 0.0, T0 + 1, T0 + 1)
    c = Fix(*at(20.0, 3.0), 0.0, T0 + 2, T0 + 2)
    vx, vy = local_m(a.lat, a.lon, b.lat, b.lon)
    east, north = local_m(b.lat, b.lon, c.lat, c.lon)
    residual = math.hypot(east - vx, north - vy)  # 1 s on: the path predicts b + v
    for accel, verdict in [(2 * residual, None), (2 * residual * 0.999, JUMP)]:
        track = Track(Params(max_accel_mps2=accel))
        track.judge(a)
        track.judge(b)
        assert track.judge(c) == verdict


# --- several tags, several cases ---

def test_her_position_is_judged_against_every_tag_after_an_unknown_or_silent_one() -> None:
    e = Engine()
    e.tag_fix("old", fix(200.0, T0, delay_s=0.0), [RULES])
    e.tag_fix("T", fix(100.0, T0 + 100, delay_s=0.0), [RULES])
    her = Fix(*at(0.0), 8.0, T0 + 100, T0 + 101)
    out = e.victim_fix(RULES, her, ["unknown", "old", "T"])
    assert [(c.tag_id, c.kind) for c in out] == [("T", ALERT)]


def test_a_case_not_passed_to_the_view_is_left_out_not_the_rest() -> None:
    a = CaseRules("A", 500.0, 1000.0, False, {"home": POINT})
    b = CaseRules("B", 500.0, 1000.0, False, {"home": POINT})
    e = Engine()
    e.tag_fix("T", fix(300.0, T0, delay_s=0.0), [a, b])
    assert [v["case_ref"] for v in e.views({"B": b}, T0)] == ["B"]


def test_a_tag_too_poorly_located_to_tell_comes_first_of_the_clear_ones() -> None:
    # A 600 m fix (a cell tower) on the zone: near 0, far 1200 > 1000: clear, but as near as
    # can be; a 1.5 km away fix of the same quality: near 0.5 m. The first is shown first.
    rules = {f"C{k}": CaseRules(f"C{k}", 500.0, 1000.0, False, {"home": POINT})
             for k in range(2)}
    e = Engine()
    e.tag_fix("T1", fix(1200.5, T0, 600.0, delay_s=0.0), [rules["C1"]])
    e.tag_fix("T0", fix(0.0, T0, 600.0, delay_s=0.0), [rules["C0"]])
    assert e.pairs[("C0", "T0", "home")].near_m == 0.0
    assert e.pairs[("C1", "T1", "home")].near_m == pytest.approx(0.5)
    assert e.open_level("C0") == e.open_level("C1") == CLEAR
    assert [v["case_ref"] for v in e.views(rules, T0, max_clear=1)] == ["C0"]


def test_a_point_just_inside_an_edge_is_inside() -> None:
    # Half a metre inside the east edge, and half a metre outside it.
    assert to_shape_m(*at(99.5, 10.0), SQUARE) == 0.0
    assert to_shape_m(*at(100.5, 10.0), SQUARE) == pytest.approx(0.5, abs=0.05)


def test_antipodal_points_do_not_break_the_haversine() -> None:
    # h rounds a hair above 1 here (82°N 0° and 82°S 180°: 1 + 2⁻⁵²): half the circumference,
    # not a math domain error.
    assert spherical_m(82.0, 0.0, -82.0, 180.0) == pytest.approx(6_371_008.8 * math.pi)


def test_a_fast_tag_northwards_is_judged_along_its_own_way() -> None:
    # 30 m/s due north: 300 m further on is where it should be (no jump); 540 m on (54 m/s,
    # under the speed limit) is 240 m past anywhere it could have got to without accelerating
    # at 4.8 m/s^2 (allowance 150 + 28.3 m): a jump.
    for ahead, verdict in [(300.0, None), (540.0, JUMP)]:
        track = Track(Params())
        track.judge(fix(0.0, T0))
        assert track.judge(fix(0.0, T0 + 10, north_m=300.0)) is None
        assert track.judge(fix(0.0, T0 + 20, north_m=300.0 + ahead)) == verdict
