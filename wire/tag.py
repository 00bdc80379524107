"""What a perpetrator's GPS tag sends the centre, and how the centre reads it: the OsmAnd
protocol (query or form parameters, as Traccar Client and many commercial trackers send them)
and the centre's own JSON form. Every field is checked for form and range before anything else
sees it; what cannot be accepted raises TagError naming the field (docs/proximity.md)."""
from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WireError
from .message import MAX_ALTITUDE_M, MAX_TIME, finite

MAX_TAG_ACCURACY_M = 10_000.0  # a fix vaguer than 10 km cannot place anyone near anyone
FUTURE_SKEW_S = 300.0  # a fix time further ahead of the centre's clock is a wrong clock
MIN_FIX_TIME = 1_000_000_000.0  # 2001: an earlier fix time is an unset clock
LOW_BATTERY_PCT = 20.0  # the default threshold at and below which the operator is warned
MAX_SPEED = 1_000.0  # OsmAnd speed (knots) above this is garbage
MAX_HDOP = 100.0
# The tag's secret id: URL-safe base64 of at least 128 bits (22 characters), at most 128.
TAG_SECRET = re.compile(r"[A-Za-z0-9_-]{22,128}", re.ASCII)
# OsmAnd numbers as text: plain decimals only (no "nan", "inf", exponents, "_" or spaces).
_DECIMAL = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?", re.ASCII)
_UNIX = re.compile(r"[0-9]{1,13}", re.ASCII)
_ALARM = re.compile(r"[A-Za-z]{1,32}", re.ASCII)
TAMPER_ALARMS = frozenset({"tampering", "removing"})  # Traccar's alarm names for a tag forced
MAX_PARAM_LEN = 256  # no genuine OsmAnd value is longer


class TagError(WireError):
    """A tag's report is malformed: `field` is the one at fault."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"malformed tag report: {field}: {detail}")


@dataclass(frozen=True)
class TagReport:
    """One checked report: a position (accuracy None when the tag gave none), when it was
    fixed (Unix seconds), and the tag's battery and tamper state when it said them."""

    lat: float
    lon: float
    accuracy_m: float | None
    time: float
    battery_pct: float | None = None
    tamper: bool = False


def _number(params: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not _DECIMAL.fullmatch(text):
        raise TagError(name, "must be a plain decimal number")
    try:
        return finite(float(text), low, high, name)
    except ValueError as exc:
        raise TagError(name, str(exc)) from None


def _required(params: Mapping[str, str], name: str, low: float, high: float) -> float:
    value = _number(params, name, low, high)
    if value is None:
        raise TagError(name, "missing")
    return value


def _fix_time(value: float, now: float, name: str) -> float:
    if not MIN_FIX_TIME <= value <= min(MAX_TIME, now + FUTURE_SKEW_S):
        raise TagError(name, f"must be after 2001 and at most {FUTURE_SKEW_S:g} s ahead of the"
                       " centre's clock")
    return value


def osmand_time(text: str | None, now: float) -> float:
    """An OsmAnd timestamp as Unix seconds: digits are seconds, or milliseconds when too large
    for 32-bit seconds (as Traccar reads them); otherwise ISO 8601 (no zone: UTC)."""
    if text is None or text == "":
        raise TagError("timestamp", "missing")
    if _UNIX.fullmatch(text):
        value = int(text)
        seconds = float(value) if value < 2 ** 31 else value / 1000.0
    else:
        if len(text) > 40 or not text.isascii():
            raise TagError("timestamp", "neither Unix time nor ISO 8601")
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)
            seconds = parsed.timestamp()
        except (ValueError, OverflowError):
            raise TagError("timestamp", "neither Unix time nor ISO 8601") from None
    return _fix_time(seconds, now, "timestamp")


def read_osmand(params: Mapping[str, str], now: float) -> tuple[str, TagReport]:
    """An OsmAnd report's parameters (query and form merged, each name once): the secret id it
    names and the report. TagError for anything malformed; the id is not yet looked up."""
    for name, value in params.items():
        if len(value) > MAX_PARAM_LEN:
            raise TagError(name[:20], "too long")
    secret = params.get("id") or params.get("deviceid") or ""
    if not TAG_SECRET.fullmatch(secret):
        raise TagError("id", "missing or malformed")
    lat = _required(params, "lat", -90.0, 90.0)
    lon = _required(params, "lon", -180.0, 180.0)
    accuracy = _number(params, "accuracy", 0.0, MAX_TAG_ACCURACY_M)
    # Checked though not kept: a report with a garbage field is garbage as a whole.
    _number(params, "hdop", 0.0, MAX_HDOP)
    _number(params, "altitude", -MAX_ALTITUDE_M, MAX_ALTITUDE_M)
    _number(params, "speed", 0.0, MAX_SPEED)
    _number(params, "bearing", 0.0, 360.0)
    _number(params, "heading", 0.0, 360.0)
    battery = _number(params, "batt", 0.0, 100.0)
    alarm = params.get("alarm")
    if alarm is not None and alarm != "" and not _ALARM.fullmatch(alarm):
        raise TagError("alarm", "malformed")
    return secret, TagReport(lat, lon, accuracy, osmand_time(params.get("timestamp"), now),
                             battery, alarm in TAMPER_ALARMS)


_JSON_FIELDS = frozenset({"lat", "lon", "accuracy_m", "time", "battery_pct", "tamper"})


def read_tag_json(obj: object, now: float) -> TagReport:
    """The centre's JSON form: {"lat", "lon", "accuracy_m", "time"} required (time in Unix
    seconds), "battery_pct" and "tamper" (a boolean) optional, no other field."""
    if not isinstance(obj, dict):
        raise TagError("body", "must be a JSON object")
    unknown = set(obj) - _JSON_FIELDS
    if unknown:
        raise TagError(str(sorted(unknown)[0])[:40], "unknown field")
    try:
        lat = finite(obj["lat"], -90.0, 90.0, "lat")
        lon = finite(obj["lon"], -180.0, 180.0, "lon")
        accuracy = finite(obj["accuracy_m"], 0.0, MAX_TAG_ACCURACY_M, "accuracy_m")
        when = _fix_time(finite(obj["time"], 0.0, MAX_TIME, "time"), now, "time")
        battery = obj.get("battery_pct")
        battery = None if battery is None else finite(battery, 0.0, 100.0, "battery_pct")
    except KeyError as exc:
        raise TagError(str(exc).strip("'"), "missing") from None
    except ValueError as exc:
        raise TagError("body", str(exc)) from None
    tamper = obj.get("tamper", False)
    if not isinstance(tamper, bool):
        raise TagError("tamper", "must be true or false")
    return TagReport(lat, lon, accuracy, when, battery, tamper)
