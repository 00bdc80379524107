"""What the victim's host and the centre say to each other about proximity (docs/proximity.md):
the victim's position report, the warnings the host long-polls, and the host's acknowledgement
of their delivery. Both sides build and read them here; every field is checked for form and
range before anything is stored, and whatever breaks the contract raises ProximityError naming
the field."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WireError
from .message import MAX_TIME, finite
from .tag import FUTURE_SKEW_S, MAX_TAG_ACCURACY_M, MIN_FIX_TIME

POSITION_PATH = "/v1/victim/position"
WARNINGS_PATH = "/v1/warnings"
ACK_PATH = "/v1/warnings/{id}/ack"
MAX_WAIT_S = 25  # a long poll waits at most this long (below proxies' idle timeouts of 30 s)
REPORT_EVERY_S = 30  # the victim's position, normally
REPORT_FAST_S = 10  # while a pre-alert or alert is open for her case
# What the host reports of delivering a warning: a short word, or "failed: <why>".
_OUTCOME = re.compile(r"(ok|none|no motor|not connected|failed: [ -~]{1,120})", re.ASCII)
DELIVERY_CHANNELS = frozenset({"haptic", "hook"})
WARNING_KINDS = ("proximity", "low battery", "link lost", "test")
MAX_WARNING_ID = 2 ** 53  # ids are SQLite row ids, exact in a JSON number


class ProximityError(WireError):
    """A proximity message is malformed: `field` is the one at fault."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"malformed proximity message: {field}: {detail}")


@dataclass(frozen=True)
class VictimFix:
    """The victim's position as her host fixed it (accuracy: the 68 % radius, metres)."""

    lat: float
    lon: float
    accuracy_m: float
    time: float


@dataclass(frozen=True)
class Warning:
    """A warning for the victim: an alert of `zone` ("victim": near her; else a fixed zone's
    name), with the distance rounded to 10 m, raised at `at`."""

    id: int
    kind: str
    level: str
    zone: str
    distance_m: int
    at: float

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "level": self.level, "zone": self.zone,
                "distance_m": self.distance_m, "at": self.at}


def _object(obj: object, what: str, fields: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(obj, dict):
        raise ProximityError(what, "must be a JSON object")
    unknown = set(obj) - fields
    if unknown:
        raise ProximityError(str(sorted(unknown)[0])[:40], "unknown field")
    return obj


def _number(obj: Mapping[str, object], name: str, low: float, high: float) -> float:
    if name not in obj:
        raise ProximityError(name, "missing")
    try:
        return finite(obj[name], low, high, name)
    except ValueError as exc:
        raise ProximityError(name, str(exc)) from None


def _time(obj: Mapping[str, object], name: str, now: float) -> float:
    value = _number(obj, name, 0.0, MAX_TIME)
    if not MIN_FIX_TIME <= value <= now + FUTURE_SKEW_S:
        raise ProximityError(name, f"must be after 2001 and at most {FUTURE_SKEW_S:g} s ahead"
                             " of the centre's clock")
    return value


def position_body(when: float, fix: VictimFix | None) -> dict[str, object]:
    """The host's report: `fix` None when it has none (indoors)."""
    return {"time": when, "fix": None if fix is None else {
        "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m, "time": fix.time}}


def read_position(obj: object, now: float) -> tuple[float, VictimFix | None]:
    """A report as the centre reads it: when it was sent and the fix, if any."""
    body = _object(obj, "body", frozenset({"time", "fix"}))
    when = _time(body, "time", now)
    if "fix" not in body:
        raise ProximityError("fix", "missing (null when the host has no fix)")
    if body["fix"] is None:
        return when, None
    fix = _object(body["fix"], "fix", frozenset({"lat", "lon", "accuracy_m", "time"}))
    return when, VictimFix(_number(fix, "lat", -90.0, 90.0), _number(fix, "lon", -180.0, 180.0),
                           _number(fix, "accuracy_m", 0.0, MAX_TAG_ACCURACY_M),
                           _time(fix, "time", now))


def read_report_every(obj: object) -> int:
    """The centre's answer to a report (and to a poll): how often to report now."""
    body = _object(obj, "answer", frozenset({"report_every_s", "warnings"}))
    every = _number(body, "report_every_s", REPORT_FAST_S, 3600)
    if every != int(every):
        raise ProximityError("report_every_s", "must be whole seconds")
    return int(every)


def warnings_body(warnings: list[Warning], report_every_s: int) -> dict[str, object]:
    return {"warnings": [w.as_json() for w in warnings], "report_every_s": report_every_s}


def read_warnings(obj: object) -> tuple[list[Warning], int]:
    """A poll's answer as the host reads it: the warnings, oldest first, and the interval."""
    every = read_report_every(obj)
    assert isinstance(obj, dict)  # read_report_every checked it
    if not isinstance(obj.get("warnings"), list):
        raise ProximityError("warnings", "must be a list")
    out = []
    for item in obj["warnings"]:
        w = _object(item, "warning", frozenset({"id", "kind", "level", "zone", "distance_m",
                                                "at"}))
        kind, level, zone = w.get("kind"), w.get("level"), w.get("zone")
        if kind not in WARNING_KINDS:
            raise ProximityError("kind", "not a warning kind")
        if level not in ("alert", "pre-alert"):
            raise ProximityError("level", "must be alert or pre-alert")
        if not isinstance(zone, str) or not 0 < len(zone) <= 64:
            raise ProximityError("zone", "must be a name of 1 to 64 characters")
        ident = _number(w, "id", 1, MAX_WARNING_ID)
        distance = _number(w, "distance_m", 0, 100_000_000)
        if ident != int(ident) or distance != int(distance):
            raise ProximityError("id", "id and distance_m must be whole numbers")
        out.append(Warning(int(ident), str(kind), str(level), zone, int(distance),
                           _number(w, "at", 0.0, MAX_TIME)))
    if [w.id for w in out] != sorted({w.id for w in out}):
        raise ProximityError("warnings", "ids must rise")
    return out, every


def ack_body(when: float, delivery: Mapping[str, str]) -> dict[str, object]:
    """The host's acknowledgement of a warning: how each channel delivered it."""
    return {"at": when, "delivery": dict(delivery)}


def read_ack(obj: object, now: float) -> tuple[float, dict[str, str]]:
    """An acknowledgement as the centre reads it."""
    body = _object(obj, "body", frozenset({"at", "delivery"}))
    when = _time(body, "at", now)
    delivery = _object(body.get("delivery"), "delivery", DELIVERY_CHANNELS)
    out: dict[str, str] = {}
    for channel, outcome in delivery.items():
        if not isinstance(outcome, str) or not _OUTCOME.fullmatch(outcome):
            raise ProximityError(channel, "ok, none, no motor, not connected or failed: <why>")
        out[channel] = outcome
    return when, out
