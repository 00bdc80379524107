"""The contract between the victim's host and the centre about proximity (msa.wire.proximity):
round trips through both sides' functions, golden bodies, and a table of malformed bodies each
refused naming its field."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msa.wire.proximity import (ProximityError, VictimFix, Warning, ack_body, position_body,
                                read_ack, read_position, read_report_every, read_warnings,
                                warnings_body)

NOW = 1_900_000_000.0


@given(st.floats(-90, 90), st.floats(-180, 180), st.floats(0, 10_000),
       st.floats(NOW - 86_400, NOW + 300))
def test_a_position_round_trips(lat: float, lon: float, accuracy: float, t: float) -> None:
    fix = VictimFix(lat, lon, accuracy, t)
    body = json.loads(json.dumps(position_body(NOW, fix)))
    assert read_position(body, NOW) == (NOW, fix)
    assert read_position(position_body(NOW, None), NOW) == (NOW, None)


def test_golden_bodies() -> None:
    assert json.dumps(position_body(NOW, VictimFix(51.0543, 3.7174, 8.0, NOW - 1))) == (
        '{"time": 1900000000.0, "fix": {"lat": 51.0543, "lon": 3.7174, "accuracy_m": 8.0,'
        ' "time": 1899999999.0}}')
    w = Warning(7, "proximity", "alert", "victim", 140, NOW)
    assert warnings_body([w], 10) == {"warnings": [{"id": 7, "kind": "proximity",
                                                    "level": "alert", "zone": "victim",
                                                    "distance_m": 140, "at": NOW}],
                                      "report_every_s": 10}
    assert read_warnings(warnings_body([w], 10)) == ([w], 10)
    assert read_ack(ack_body(NOW, {"haptic": "ok", "hook": "failed: exit status 3"}), NOW) == (
        NOW, {"haptic": "ok", "hook": "failed: exit status 3"})


FIX = {"lat": 1.0, "lon": 2.0, "accuracy_m": 5.0, "time": NOW}


@pytest.mark.parametrize("body, field", [
    ([], "body"), ({"fix": None}, "time"), ({"time": NOW}, "fix"),
    ({"time": NOW, "fix": None, "extra": 1}, "extra"),
    ({"time": "1900000000", "fix": None}, "time"), ({"time": float("nan"), "fix": None}, "time"),
    ({"time": NOW + 301, "fix": None}, "time"), ({"time": 999_999_999.0, "fix": None}, "time"),
    ({"time": NOW, "fix": [1, 2]}, "fix"),
    ({"time": NOW, "fix": {**FIX, "lat": 90.5}}, "lat"),
    ({"time": NOW, "fix": {**FIX, "lon": True}}, "lon"),
    ({"time": NOW, "fix": {**FIX, "accuracy_m": 10_001}}, "accuracy_m"),
    ({"time": NOW, "fix": {k: v for k, v in FIX.items() if k != "time"}}, "time"),
    ({"time": NOW, "fix": {**FIX, "alt": 3}}, "alt"),
])
def test_a_malformed_position_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(ProximityError) as caught:
        read_position(body, NOW)
    assert caught.value.field == field


W = {"id": 1, "kind": "proximity", "level": "alert", "zone": "victim", "distance_m": 10,
     "at": NOW}


@pytest.mark.parametrize("body, field", [
    ({"warnings": [], "report_every_s": 9}, "report_every_s"),
    ({"warnings": [], "report_every_s": 30.5}, "report_every_s"),
    ({"warnings": {}, "report_every_s": 30}, "warnings"),
    ({"warnings": [{**W, "kind": "near"}], "report_every_s": 30}, "kind"),
    ({"warnings": [{**W, "level": "panic"}], "report_every_s": 30}, "level"),
    ({"warnings": [{**W, "zone": ""}], "report_every_s": 30}, "zone"),
    ({"warnings": [{**W, "id": 0}], "report_every_s": 30}, "id"),
    ({"warnings": [{**W, "id": 1.5}], "report_every_s": 30}, "id"),
    ({"warnings": [W, W], "report_every_s": 30}, "warnings"),
    ({"warnings": [{**W, "lat": 1}], "report_every_s": 30}, "lat"),
])
def test_a_malformed_poll_answer_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(ProximityError) as caught:
        read_warnings(body)
    assert caught.value.field == field


@pytest.mark.parametrize("body, field", [
    ({"at": NOW, "delivery": {"haptic": "buzz"}}, "haptic"),
    ({"at": NOW, "delivery": {"haptic": "failed: "}}, "haptic"),
    ({"at": NOW, "delivery": {"haptic": "failed: " + "x" * 121}}, "haptic"),
    ({"at": NOW, "delivery": {"email": "ok"}}, "email"),
    ({"at": NOW, "delivery": []}, "delivery"),
    ({"delivery": {}}, "at"),
])
def test_a_malformed_ack_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(ProximityError) as caught:
        read_ack(body, NOW)
    assert caught.value.field == field


def test_the_interval_answer() -> None:
    assert read_report_every({"report_every_s": 10}) == 10
    with pytest.raises(ProximityError):
        read_report_every({"report_every_s": 3601})


_TIME_DETAIL = "must be after 2001 and at most 300 s ahead of the centre's clock"


@pytest.mark.parametrize("read, body, field, detail", [
    ("position", [], "body", "must be a JSON object"),
    ("position", {"fix": None}, "time", "missing"),
    ("position", {"time": NOW, "fix": None, "zz": 1, "extra": 2}, "extra", "unknown field"),
    ("position", {"time": NOW, "fix": None, "x" * 50: 1}, "x" * 40, "unknown field"),
    ("position", {"time": NOW}, "fix", "missing (null when the host has no fix)"),
    ("position", {"time": "x", "fix": None}, "time", "time must be a number"),
    ("position", {"time": 0.5, "fix": None}, "time", _TIME_DETAIL),
    ("position", {"time": NOW + 300.5, "fix": None}, "time", _TIME_DETAIL),
    ("position", {"time": NOW, "fix": {**FIX, "lat": -90.5}}, "lat",
     "lat must be a finite number from -90 to 90"),
    ("position", {"time": NOW, "fix": {**FIX, "lon": -180.5}}, "lon",
     "lon must be a finite number from -180 to 180"),
    ("position", {"time": NOW, "fix": {**FIX, "lon": 180.5}}, "lon",
     "lon must be a finite number from -180 to 180"),
    ("answer", [], "answer", "must be a JSON object"),
    ("answer", {"warnings": [], "report_every_s": 30.5}, "report_every_s",
     "must be whole seconds"),
    ("answer", {"warnings": {}, "report_every_s": 30}, "warnings", "must be a list"),
    ("answer", {"warnings": [7], "report_every_s": 30}, "warning", "must be a JSON object"),
    ("answer", {"warnings": [{**W, "kind": "near"}], "report_every_s": 30}, "kind",
     "not a warning kind"),
    ("answer", {"warnings": [{**W, "level": "panic"}], "report_every_s": 30}, "level",
     "must be alert or pre-alert"),
    ("answer", {"warnings": [{**W, "zone": "z" * 65}], "report_every_s": 30}, "zone",
     "must be a name of 1 to 64 characters"),
    ("answer", {"warnings": [{**W, "distance_m": 10.5}], "report_every_s": 30}, "id",
     "id and distance_m must be whole numbers"),
    ("answer", {"warnings": [{**W, "distance_m": -1}], "report_every_s": 30}, "distance_m",
     "distance_m must be a finite number from 0 to 1e+08"),
    ("answer", {"warnings": [{**W, "distance_m": 100_000_001}], "report_every_s": 30},
     "distance_m", "distance_m must be a finite number from 0 to 1e+08"),
    ("answer", {"warnings": [{**W, "at": -0.5}], "report_every_s": 30}, "at",
     "at must be a finite number from 0 to 8.58993e+09"),
    ("answer", {"warnings": [{**W, "id": 2}, W], "report_every_s": 30}, "warnings",
     "ids must rise"),
    ("ack", [], "body", "must be a JSON object"),
    ("ack", {"at": NOW, "delivery": {"hook": 3}}, "hook",
     "ok, none, no motor, not connected or failed: <why>"),
])
def test_each_refusal_carries_its_field_and_detail(read: str, body: Any, field: str,
                                                   detail: str) -> None:
    readers: dict[str, Callable[[Any], object]] = {
        "position": lambda b: read_position(b, NOW), "answer": read_warnings,
        "ack": lambda b: read_ack(b, NOW)}
    reader = readers[read]
    with pytest.raises(ProximityError) as caught:
        reader(body)
    assert (caught.value.field, caught.value.detail) == (field, detail)
    assert str(caught.value) == f"malformed proximity message: {field}: {detail}"


def test_every_limit_itself_is_accepted() -> None:
    # Times from 2001 to 300 s ahead, the poles and the antimeridian, 0 and 10⁸ m, zones of
    # 1 and 64 characters, both levels, a warning raised at time 0.
    for t in (1_000_000_000.0, NOW + 300):
        assert read_position({"time": t, "fix": {**FIX, "time": t}}, NOW)[0] == t
    for lat, lon in [(-90.0, -180.0), (90.0, 180.0)]:
        _, fix = read_position({"time": NOW, "fix": {**FIX, "lat": lat, "lon": lon}}, NOW)
        assert fix is not None and (fix.lat, fix.lon) == (lat, lon)
    items = [{**W, "id": 1, "distance_m": 0, "zone": "z", "level": "pre-alert", "at": 0.0},
             {**W, "id": 2, "distance_m": 100_000_000, "zone": "z" * 64}]
    warnings, every = read_warnings({"warnings": items, "report_every_s": 3600})
    assert every == 3600
    assert [(w.distance_m, w.zone, w.level, w.at) for w in warnings] == [
        (0, "z", "pre-alert", 0.0), (100_000_000, "z" * 64, "alert", NOW)]
