"""Proximity scenario files (issue 14, part 6): every field checked with an error naming the
file and the field, a timeline deterministic from the seed with the stated noise, jumps,
silence, tamper, no-fix and late uploads where the file puts them, a geodesic ground truth
checked against hand computation, and the shipped set: at least 35 files, each loading, each
expectation equal to its own ground truth, the whole set within the replay's budget."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msa.simulator import scenario
from msa.simulator.errors import ScenarioError, SimError
from msa.simulator.scenario import TagSample, VictimSample
from msa.simulator.scenario_format import parse
from msa.simulator.scenario_truth import BAND_M, Plane, distance_m

SHIPPED = scenario.shipped()
CLEAR_M = 100.0  # an alert clears only beyond R + 100 m (docs/proximity.md)

BASE = """
title = "t"
about = "a"
seed = 1
duration_s = 600
origin = [51.0, 3.7]

[[victims]]
case = "A"
track = [[0, 0, 0]]
gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }
no_fix = [[100, 200]]
zones = [ { name = "home", circle = [0, 0, 30] } ]

[[tags]]
name = "T"
cases = ["A"]
interval_s = 10
track = [[0, 2000, 0], [150, 500, 0]]
gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }
jumps = [ { at_s = 300, east_m = -200, north_m = 0 } ]
silent = [[400, 450]]
tamper_at_s = 500
battery = [[0, 80], [600, 70]]
delayed = [[0, 50, 20]]
buffered = [[60, 90]]

[expect]
alerts = { A = 1 }
prealerts = { A = [1, 2] }
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_base_document_loads(tmp_path: Path) -> None:
    s = scenario.load(write(tmp_path, BASE))
    assert s.victim("A").prealert_radius_m == 1000.0 and s.victim("A").moving_zone
    assert s.tag("T").delayed[0].delay_s == 20 and s.expect.alert_within_s == 20


BAD = [
    ("seed = 1", "seed = -1", "seed"),
    ("seed = 1", 'seed = "1"', "seed"),
    ("duration_s = 600", "duration_s = 0", "duration_s"),
    ('title = "t"', 'title = ""', "title"),
    ('about = "a"', "", "about"),
    ("origin = [51.0, 3.7]", "origin = [91.0, 3.7]", "origin[0]"),
    ("origin = [51.0, 3.7]", "origin = [51.0]", "origin"),
    ('seed = 1', 'seed = 1\ncolour = "red"', "colour"),
    ('case = "A"', 'case = "A B"', "victims[0].case"),
    ("track = [[0, 0, 0]]", "track = [[5, 0, 0]]", "victims[0].track[0][0]"),
    ("track = [[0, 0, 0]]", "track = [[0, 0]]", "victims[0].track[0]"),
    ("track = [[0, 0, 0]]", "track = [[0, 0, 0], [0, 1, 1]]", "victims[0].track[1][0]"),
    ("track = [[0, 0, 0]]", "track = [[0, 60000, 0]]", "victims[0].track[0][1]"),
    ("track = [[0, 0, 0]]", "track = [[0, 40000, 40000]]", "victims[0].track[0]"),
    ("gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }\nno_fix",
     "gps = { accuracy_m = 10, sigma_m = 5 }\nno_fix", "victims[0].gps.tau_s"),
    ("gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }\nno_fix",
     "gps = { accuracy_m = 10, sigma_m = -5, tau_s = 60 }\nno_fix", "victims[0].gps.sigma_m"),
    ("gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }\nno_fix",
     "gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60, hdop = 1 }\nno_fix",
     "victims[0].gps.hdop"),
    ("no_fix = [[100, 200]]", "no_fix = [[200, 100]]", "victims[0].no_fix[0]"),
    ("no_fix = [[100, 200]]", "no_fix = [[100, 200], [150, 300]]", "victims[0].no_fix[1]"),
    ("no_fix = [[100, 200]]", "no_fix = [[100, 700]]", "victims[0].no_fix[0][1]"),
    ('case = "A"', 'case = "A"\nalert_radius_m = 5', "victims[0].alert_radius_m"),
    ('case = "A"', 'case = "A"\nprealert_radius_m = 400', "victims[0].prealert_radius_m"),
    ('case = "A"', 'case = "A"\nmoving_zone = 1', "victims[0].moving_zone"),
    ('circle = [0, 0, 30]', 'circle = [0, 0, 0]', "victims[0].zones[0].circle[2]"),
    ('circle = [0, 0, 30]', 'circle = [0, 0, 30], polygon = [[0, 0], [1, 0], [0, 1]]',
     "victims[0].zones[0]"),
    ('circle = [0, 0, 30]', 'polygon = [[0, 0], [10, 10], [10, 0], [0, 10]]',
     "victims[0].zones[0].polygon"),
    ('circle = [0, 0, 30]', 'polygon = [[0, 0], [10, 0]]', "victims[0].zones[0].polygon"),
    ('name = "home"', 'name = "victim"', "victims[0].zones[0].name"),
    ('cases = ["A"]', 'cases = ["B"]', "tags[0].cases"),
    ('cases = ["A"]', 'cases = []', "tags[0].cases"),
    ('cases = ["A"]', 'cases = ["A", "A"]', "tags[0].cases"),
    ('name = "T"', 'name = "A"', "tags"),
    ("interval_s = 10", "interval_s = 0", "tags[0].interval_s"),
    ("interval_s = 10", "interval_s = 10.5", "tags[0].interval_s"),
    ("at_s = 300", "at_s = 420", "tags[0].jumps[0].at_s"),
    ("east_m = -200, north_m = 0", "east_m = -200", "tags[0].jumps[0].north_m"),
    ("tamper_at_s = 500", "tamper_at_s = 900", "tags[0].tamper_at_s"),
    ("battery = [[0, 80], [600, 70]]", "battery = [[0, 80], [600, 170]]",
     "tags[0].battery[1][1]"),
    ("battery = [[0, 80], [600, 70]]", "battery = [[0, 80], [0, 70]]",
     "tags[0].battery[1][0]"),
    ("delayed = [[0, 50, 20]]", "delayed = [[0, 50]]", "tags[0].delayed[0]"),
    ("delayed = [[0, 50, 20]]", "delayed = [[0, 50, 0]]", "tags[0].delayed[0][2]"),
    ("buffered = [[60, 90]]", "buffered = [[40, 90]]", "tags[0].buffered"),
    ("alerts = { A = 1 }", "alerts = { }", "expect.alerts.A"),
    ("alerts = { A = 1 }", "alerts = { A = 1, B = 0 }", "expect.alerts.B"),
    ("alerts = { A = 1 }", "alerts = { A = -1 }", "expect.alerts.A"),
    ("prealerts = { A = [1, 2] }", "prealerts = { A = [2, 1] }", "expect.prealerts.A[1]"),
    ("prealerts = { A = [1, 2] }", "prealerts = { A = 1 }", "expect.prealerts.A"),
    ("prealerts = { A = [1, 2] }", 'warnings = ["tag on fire"]', "expect.warnings[0]"),
    ("prealerts = { A = [1, 2] }", "alert_within_s = 0", "expect.alert_within_s"),
    ("[expect]", "[expected]", "expect"),
    ("seed = 1", "seed = 1 = 2", "toml"),
]


@pytest.mark.parametrize("old,new,field", BAD, ids=[b[2] + ":" + b[1][:25] for b in BAD])
def test_a_bad_field_is_named_with_the_file(tmp_path: Path, old: str, new: str,
                                             field: str) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        scenario.load(path)
    assert (info.value.path, info.value.field) == (str(path), field)
    assert str(path) in str(info.value) and field in str(info.value)
    assert isinstance(info.value, SimError)  # the CLI's boundary prints it as `msa: ...`


def test_unreadable_and_non_utf8_files_are_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        scenario.load(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError) as info:
        scenario.load(write(tmp_path, "", "empty.toml"))
    assert info.value.field == "about"  # an empty document: the first missing field by name
    (tmp_path / "latin1.toml").write_bytes('title = "caf\xe9"'.encode("latin-1"))
    with pytest.raises(ScenarioError) as info:
        scenario.load(tmp_path / "latin1.toml")
    assert info.value.field in ("file", "toml")
    with pytest.raises(ScenarioError, match="not a folder"):
        scenario.load_dir(tmp_path / "nowhere")


def test_load_dir_sorts_by_file_name(tmp_path: Path) -> None:
    for name in ("b.toml", "a.toml", "c.txt"):
        write(tmp_path, BASE.replace('title = "t"', f'title = "{name}"'), name)
    assert [s.title for s in scenario.load_dir(tmp_path)] == ["a.toml", "b.toml"]


# ---- the timeline ---------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_timeline_whatever_is_asked_first(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    first = scenario.load(path)
    second = scenario.load(path)
    second.victim_fix("A", 333.3)  # asking out of order changes nothing
    assert first.timeline() == second.timeline()
    other = scenario.load(write(tmp_path, BASE.replace("seed = 1", "seed = 2"), "o.toml"))
    assert first.timeline() != other.timeline()


def test_timeline_is_in_delivery_order_with_delays_and_buffers(tmp_path: Path) -> None:
    s = scenario.load(write(tmp_path, BASE))
    line = s.timeline()
    keys = [x.sent_s if isinstance(x, TagSample) else x.t_s for x in line]
    assert keys == sorted(keys)
    tags = {x.t_s: x for x in line if isinstance(x, TagSample)}
    assert all(tags[t].sent_s == t + 20 for t in (0, 10, 40))  # delayed [0, 50) by 20 s
    assert all(tags[t].sent_s == 90 for t in (60, 70, 80))  # buffered [60, 90): sent at 90
    assert tags[50.0].sent_s == 50 and tags[90.0].sent_s == 90
    assert not any(400 <= t < 450 for t in tags)  # silent
    assert [t for t, x in tags.items() if x.tamper] == [t for t in tags if t >= 500]
    assert [t for t, x in tags.items() if x.jumped] == [300.0]
    assert tags[0.0].battery_pct == 80 and tags[300.0].battery_pct == 75
    victims = [x for x in line if isinstance(x, VictimSample)]
    assert [v.t_s for v in victims] == [30.0 * k for k in range(20)]
    assert [v.t_s for v in victims if v.fix is None] == [120.0, 150.0, 180.0]
    assert s.victim_fix("A", 199.0) is None and s.victim_fix("A", 200.0) is not None


def test_a_jump_displaces_one_fix_by_the_stated_distance(tmp_path: Path) -> None:
    s = scenario.load(write(tmp_path, BASE))
    tags = {x.t_s: x for x in s.tag_samples("T")}
    true = s.true_position("T", 300.0)
    jumped = distance_m(true, (tags[300.0].lat, tags[300.0].lon))
    assert 150 < jumped < 250  # 200 m, plus the receiver's error
    for t in (290.0, 310.0):
        assert distance_m(s.true_position("T", t), (tags[t].lat, tags[t].lon)) < 50


def test_a_case_without_a_moving_zone_reports_nothing(tmp_path: Path) -> None:
    text = BASE.replace('case = "A"', 'case = "A"\nmoving_zone = false')
    s = scenario.load(write(tmp_path, text))
    assert s.victim_samples("A") == [] and not any(
        isinstance(x, VictimSample) for x in s.timeline())


def test_noise_statistics_follow_the_gauss_markov_model(tmp_path: Path) -> None:
    sigma, white, tau, acc = 6.0, 1.0, 60.0, 9.0
    text = BASE.replace("duration_s = 600", "duration_s = 40000").replace(
        "track = [[0, 2000, 0], [150, 500, 0]]", "track = [[0, 800, 600]]").replace(
        "gps = { accuracy_m = 10, sigma_m = 5, tau_s = 60 }\njumps",
        f"gps = {{ accuracy_m = {acc}, sigma_m = {sigma}, tau_s = {tau}, white_m = {white} }}"
        "\njumps").replace("no_fix = [[100, 200]]", "no_fix = []")
    for field in ("jumps", "silent", "delayed", "buffered"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(field))
    s = scenario.load(write(tmp_path, text))
    samples = s.tag_samples("T")
    true = s.true_position("T", 0)
    lat_m = distance_m(true, (true[0] + 0.001, true[1])) / 0.001
    lon_m = distance_m(true, (true[0], true[1] + 0.001)) / 0.001
    east = [(x.lon - true[1]) * lon_m for x in samples]
    north = [(x.lat - true[0]) * lat_m for x in samples]
    expected_std = math.hypot(sigma, white)
    for axis in (east, north):
        # 4,000 fixes, about 330 independent stretches of tau: mean within ~4 standard errors
        assert abs(statistics.fmean(axis)) < 4 * sigma / math.sqrt(330)
        assert 0.8 * expected_std < statistics.pstdev(axis) < 1.2 * expected_std
        # correlation one tau apart (6 fixes of 10 s): e^-1 = 0.37 for the Markov part
        m = statistics.fmean(axis)
        c = [a - m for a in axis]
        rho = sum(a * b for a, b in zip(c, c[6:])) / sum(a * a for a in c)
        assert 0.2 < rho < 0.55
    accuracies = [x.accuracy_m for x in samples]
    assert 0.9 * acc < statistics.median(accuracies) < 1.1 * acc
    assert min(accuracies) > 0


# ---- the ground truth -----------------------------------------------------------------------

def straight(tmp_path: Path, zone: str, moving: bool = True,
             speed: float = 10.0) -> scenario.Scenario:
    """A tag coming straight west from 2000 m east of the origin at `speed` m/s."""
    t_end = 2000 / speed
    text = BASE.replace("track = [[0, 2000, 0], [150, 500, 0]]",
                        f"track = [[0, 2000, 0], [{t_end}, 0, 0]]").replace(
        'zones = [ { name = "home", circle = [0, 0, 30] } ]', zone)
    if not moving:
        text = text.replace('case = "A"', 'case = "A"\nmoving_zone = false')
    return scenario.load(write(tmp_path, text, f"{zone[:3]}{moving}{speed}.toml"))


def test_true_crossings_of_a_straight_approach(tmp_path: Path) -> None:
    s = straight(tmp_path, "zones = []")
    # 2000 m at 10 m/s: within 500 m at 150 s, within 1000 m at 100 s
    assert s.true_crossings("A", 500) == [pytest.approx(150, abs=0.01)]
    assert s.true_crossings("A", 1000) == [pytest.approx(100, abs=0.01)]
    assert s.crossings("A", 500)[0].zone == "victim" and s.crossings("A", 500)[0].tag == "T"
    assert s.true_crossings("A", 2500) == [0.0]  # within from the start
    circle = straight(tmp_path, 'zones = [ { name = "home", circle = [0, 0, 100] } ]', False)
    assert circle.true_crossings("A", 500) == [pytest.approx(140, abs=0.01)]  # 600 m out
    square = straight(tmp_path, 'zones = [ { name = "work", polygon = [[-50, -50], [50, -50],'
                      ' [50, 50], [-50, 50]] } ]', False)
    assert square.true_crossings("A", 500) == [pytest.approx(145, abs=0.01)]  # edge at 50 m
    both = straight(tmp_path, 'zones = [ { name = "home", circle = [0, 0, 100] } ]')
    assert [(c.zone, round(c.t_s)) for c in both.crossings("A", 500)] == [
        ("home", 140), ("victim", 150)]


def test_true_position_is_placed_by_geodesics_from_the_origin(tmp_path: Path) -> None:
    s = straight(tmp_path, "zones = []")
    for t in (0.0, 37.5, 150.0):
        assert distance_m(s.origin, s.true_position("T", t)) == pytest.approx(
            2000 - 10 * t, abs=0.001)


def test_intervals_end_when_the_tag_leaves(tmp_path: Path) -> None:
    text = BASE.replace("track = [[0, 2000, 0], [150, 500, 0]]",
                        "track = [[0, 2000, 0], [150, 500, 0], [250, 500, 0], [400, 2000, 0]]")
    s = scenario.load(write(tmp_path, text.replace("zones = [ { name = \"home\", circle ="
                                                   " [0, 0, 30] } ]", "zones = []")))
    (inside,) = s.true_intervals("A", 600)
    assert inside.start_s == pytest.approx(140, abs=0.01)
    assert inside.end_s == pytest.approx(260, abs=0.01)
    assert [round(c.t_s) for c in s.true_episodes("A", 600, CLEAR_M)] == [140]


@settings(max_examples=25, deadline=None)
@given(closest=st.floats(50, 950), speed=st.floats(1, 60))
def test_a_straight_pass_crosses_exactly_when_geometry_says(closest: float,
                                                            speed: float) -> None:
    radius = 500.0
    doc = {"title": "p", "about": "p", "seed": 1, "duration_s": 8000.0, "origin": [50.0, 4.0],
           "victims": [{"case": "A", "track": [[0, 0, 0]],
                        "gps": {"accuracy_m": 10, "sigma_m": 5, "tau_s": 60}}],
           "tags": [{"name": "T", "cases": ["A"], "interval_s": 10,
                     "track": [[0, -3000, closest], [6000 / speed, 3000, closest]],
                     "gps": {"accuracy_m": 10, "sigma_m": 5, "tau_s": 60}}],
           "expect": {"alerts": {"A": 0}}}
    s = scenario.Scenario(parse(doc, Path("mem.toml")))
    crossings = s.true_crossings("A", radius)
    if closest < radius - 0.01:
        t_closest = 3000 / speed
        assert crossings == [pytest.approx(t_closest - math.sqrt(radius ** 2 - closest ** 2)
                                           / speed, abs=0.02)]
    elif closest > radius + 0.01:
        assert crossings == []


def test_a_grazing_pass_shorter_than_a_second_is_found() -> None:
    # 499.99 m at 50 m/s: within 500 m for 6.3 m of road, 0.13 s, between two 1 s samples
    doc = {"title": "g", "about": "g", "seed": 1, "duration_s": 200.0, "origin": [50.0, 4.0],
           "victims": [{"case": "A", "track": [[0, 0, 0]],
                        "gps": {"accuracy_m": 10, "sigma_m": 5, "tau_s": 60}}],
           "tags": [{"name": "T", "cases": ["A"], "interval_s": 10,
                     # sampled each 1 s at x = -25 and +25 m: both outside
                     "track": [[0, -3025, 499.99], [120, 2975, 499.99]],
                     "gps": {"accuracy_m": 10, "sigma_m": 5, "tau_s": 60}}],
           "expect": {"alerts": {"A": 1}}}
    grazing = scenario.Scenario(parse(doc, Path("g.toml")))
    assert len(grazing.true_crossings("A", 500)) == 1


def test_the_flat_screen_agrees_with_geodesics_far_inside_its_band() -> None:
    plane = Plane((51.0, 3.7))
    for (e1, n1), (e2, n2) in [((0, 0), (3000, 4000)), ((-20000, 15000), (-19500, 15300)),
                               ((30000, -30000), (29000, -29800)), ((45000, 0), (44000, 600))]:
        flat = math.hypot(e2 - e1, n2 - n1)
        geo = distance_m(plane.latlon(e1, n1), plane.latlon(e2, n2))
        assert abs(flat - geo) < BAND_M / 10, (flat, geo)


# ---- the shipped set ------------------------------------------------------------------------

def shipped() -> list[scenario.Scenario]:
    return scenario.load_dir(SHIPPED)


def test_at_least_35_shipped_scenarios_load_with_their_story() -> None:
    found = shipped()
    assert len(found) >= 35
    for s in found:
        assert len(s.about) > 150 and s.title, s.path.name
        assert set(s.expect.alerts) == {v.case for v in s.victims}


def test_shipped_expectations_are_their_own_ground_truth() -> None:
    for s in shipped():
        for v in s.victims:
            alerts = s.true_episodes(v.case, v.alert_radius_m, CLEAR_M)
            assert len(alerts) == s.expect.alerts[v.case], (s.path.name, v.case, alerts)
            low, high = s.expect.prealerts.get(v.case, (0, 10_000))
            pre = s.true_episodes(v.case, v.prealert_radius_m, CLEAR_M)
            assert low <= len(pre) <= high, (s.path.name, v.case, pre)


def test_the_shipped_set_covers_the_issue_and_fits_the_replay_budget() -> None:
    found = shipped()
    samples = sum(len(s.tag_times(t.name)) for s in found for t in s.tags) + sum(
        math.ceil(s.duration_s / scenario.VICTIM_REPORT_S) for s in found
        for v in s.victims if v.moving_zone)
    assert samples < 200_000
    titles = " ".join(s.title.lower() for s in found)
    for needed in ("on foot", "50 km/h", "bus", "24 h", "jumps", "silent", "removed",
                   "without a fix", "two protected"):
        assert needed in titles, needed
    drift = [s for s in found if "drift" in s.path.name]
    assert len(drift) >= 4 and sum(s.duration_s for s in drift) >= 3 * 86_400
    assert any(t.jumps for s in found for t in s.tags)
    assert any(t.buffered for s in found for t in s.tags)
    assert any(t.tamper_at_s is not None for s in found for t in s.tags)
    assert any(v.no_fix for s in found for v in s.victims)
    assert any(z.polygon for s in found for v in s.victims for z in v.zones)
