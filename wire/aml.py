"""ETSI TS 103 625 Advanced Mobile Location (AML) SMS bodies, version 1: builds one from a fix
(or the spec's no-location form) and parses one back into a typed report.

A body is `A"ML=1;lt=…;lg=…;rd=…;top=…;lc=…;pm=…;si=…;ei=…;mcc=…;mnc=…;ml=…`, the attributes
in exactly that order, separated by `;`:

| key | value |
|---|---|
| lt, lg | WGS84 latitude and longitude in degrees, always signed, 5 decimal places |
| rd | radius of the location area in whole metres (`N` when there is no location) |
| top | time of positioning, `YYYYMMDDhhmmss`, UTC |
| lc | level of confidence, percent, that the handset is inside the area (0 without location) |
| pm | positioning method: G (GNSS), W (Wi-Fi), C (cell), N (no location) |
| si, ei | IMSI and IMEI of the sender |
| mcc, mnc | the network's mobile country and network codes |
| ml | length of the whole message, this attribute and the header included |

Without a location the spec's form is `lt=+00.00000;lg=+000.00000;rd=N;…;lc=0;pm=N`, `top`
then being the time the message was made.
"""
from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .message import Fix, FixQuality
from .errors import AmlError

HEADER = 'A"ML=1'
MAX_LENGTH = 160  # one GSM 7-bit SMS
# A radius past this means "somewhere on Earth"; the cap keeps rd to 7 digits and the body short.
MAX_RADIUS_M = 9_999_999
# Fix.accuracy_m is a ~68% (one sigma) radius, so that is the confidence it carries.
FIX_CONFIDENCE = 68
_TOP_FORMAT = "%Y%m%d%H%M%S"
_NO_LAT = "+00.00000"
_NO_LON = "+000.00000"


class Method(enum.Enum):
    """The `pm` attribute: how the handset found its position."""

    GNSS = "G"
    WIFI = "W"
    CELL = "C"
    NONE = "N"


# The spec has no letter for a configured location (a home gateway): "C" says "a fixed,
# network-style position, not a satellite measurement"; its rd carries how coarse it is.
_METHODS: dict[FixQuality, Method] = {
    FixQuality.GNSS: Method.GNSS,
    FixQuality.DGNSS: Method.GNSS,
    FixQuality.ESTIMATED: Method.GNSS,  # dead reckoning continues a GNSS track
    FixQuality.SIMULATED: Method.GNSS,
    FixQuality.FIXED: Method.CELL,
}


@dataclass(frozen=True)
class Identity:
    """The sender's identity for si/ei/mcc/mnc. The host does not always know it (a modem's
    SIM is not read here): all zeros then, which a PSAP reads as "not given"."""

    imsi: str = "000000000000000"
    imei: str = "000000000000000"
    mcc: str = "000"
    mnc: str = "00"

    def __post_init__(self) -> None:
        for key, value in (("si", self.imsi), ("ei", self.imei), ("mcc", self.mcc),
                           ("mnc", self.mnc)):
            field = _BY_KEY[key]
            if not field.pattern.fullmatch(value):
                raise ValueError(f"{key} must be {field.what}, got {len(value)} characters")


@dataclass(frozen=True)
class Report:
    """A parsed AML body. lat, lon and radius_m are None in the no-location form."""

    lat: float | None
    lon: float | None
    radius_m: int | None
    time: dt.datetime  # timezone-aware, UTC
    confidence: int
    method: Method
    imsi: str
    imei: str
    mcc: str
    mnc: str
    length: int

    @property
    def has_location(self) -> bool:
        return self.method is not Method.NONE


def _degrees(value: float | None, empty: str) -> str:
    if value is None:
        return empty
    text = f"{value:+.5f}"
    return "+" + text[1:] if text == f"-{0:.5f}" else text  # no "-0.00000"


def _radius(report: Report) -> str:
    return "N" if report.radius_m is None else str(report.radius_m)


def _parse_radius(value: str) -> int | None:
    return None if value == "N" else int(value)


def _parse_top(value: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value, _TOP_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError("not a calendar date and time") from None


@dataclass(frozen=True)
class _Field:
    key: str
    attr: str  # the Report attribute it maps to
    pattern: re.Pattern[str]
    what: str  # for error messages: what the value must be
    render: Callable[[Report], str]
    parse: Callable[[str], Any]


def _f(key: str, attr: str, pattern: str, what: str, render: Callable[[Report], str],
       parse: Callable[[str], Any] = str) -> _Field:
    # ASCII: \\d alone would also take other scripts' digits, which int() then reads.
    return _Field(key, attr, re.compile(pattern, re.ASCII), what, render, parse)


# The attributes between the header and ml, in the order the spec fixes.
FIELDS: tuple[_Field, ...] = (
    _f("lt", "lat", r"[+-]\d{1,2}\.\d{5}", "signed degrees with 5 decimals",
       lambda r: _degrees(r.lat, _NO_LAT), float),
    _f("lg", "lon", r"[+-]\d{1,3}\.\d{5}", "signed degrees with 5 decimals",
       lambda r: _degrees(r.lon, _NO_LON), float),
    _f("rd", "radius_m", r"\d{1,7}|N", "whole metres or N", _radius, _parse_radius),
    _f("top", "time", r"\d{14}", "YYYYMMDDhhmmss (UTC)",
       lambda r: r.time.astimezone(dt.timezone.utc).strftime(_TOP_FORMAT), _parse_top),
    _f("lc", "confidence", r"\d{1,3}", "a percentage", lambda r: str(r.confidence), int),
    _f("pm", "method", r"[GWCN]", "one of G, W, C, N", lambda r: r.method.value, Method),
    _f("si", "imsi", r"\d{6,15}", "an IMSI of 6 to 15 digits", lambda r: r.imsi),
    _f("ei", "imei", r"\d{14,16}", "an IMEI of 14 to 16 digits", lambda r: r.imei),
    _f("mcc", "mcc", r"\d{3}", "3 digits", lambda r: r.mcc),
    _f("mnc", "mnc", r"\d{2,3}", "2 or 3 digits", lambda r: r.mnc),
)
_BY_KEY = {field.key: field for field in FIELDS}


def _with_length(head: str) -> str:
    """Appends ml, whose value counts its own digits: the smallest self-consistent length."""
    length = len(head) + len(";ml=") + 1
    while len(str(length)) + len(head) + len(";ml=") != length:
        length += 1
    return f"{head};ml={length}"


def render(report: Report) -> str:
    """The body for a report (its `length` is recomputed, not trusted)."""
    head = ";".join([HEADER, *(f"{f.key}={f.render(report)}" for f in FIELDS)])
    body = _with_length(head)
    if len(body) > MAX_LENGTH:
        raise AmlError("ml", f"{len(body)} characters, more than one SMS ({MAX_LENGTH})", body)
    return body


def build(fix: Fix | None, *, now: float, identity: Identity | None = None) -> str:
    """The AML body for a fix, or the spec's no-location form (its top = `now`, Unix time)."""
    ident = identity or Identity()
    if fix is None:
        report = Report(lat=None, lon=None, radius_m=None, time=_utc(now), confidence=0,
                        method=Method.NONE, imsi=ident.imsi, imei=ident.imei, mcc=ident.mcc,
                        mnc=ident.mnc, length=0)
    else:
        # Rounded up: never claim better than known (an infinite accuracy becomes the cap).
        radius = math.ceil(min(fix.accuracy_m, MAX_RADIUS_M))
        report = Report(lat=fix.lat, lon=fix.lon, radius_m=radius, time=_utc(fix.time),
                        confidence=FIX_CONFIDENCE, method=_METHODS[fix.quality],
                        imsi=ident.imsi, imei=ident.imei, mcc=ident.mcc, mnc=ident.mnc,
                        length=0)
    return render(report)


def _utc(unix: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(unix), dt.timezone.utc)


def parse(body: str) -> Report:
    """Parses an AML version 1 body; raises AmlError naming the first attribute that is wrong.
    Error messages never quote lt/lg values (a position is personal data)."""
    parts = body.split(";")
    if parts[0] != HEADER:
        raise AmlError("header", f"must start with {HEADER}", body)
    expected = [f.key for f in FIELDS] + ["ml"]
    if len(parts) != len(expected) + 1:
        raise AmlError("ml", f"{len(parts) - 1} attributes, expected {len(expected)}", body)
    values: dict[str, Any] = {}
    for part, field in zip(parts[1:], FIELDS):
        key, sep, value = part.partition("=")
        if key != field.key or not sep:
            raise AmlError(field.key, f"expected attribute {field.key} here, found {key!r}", body)
        if not field.pattern.fullmatch(value):
            raise AmlError(field.key, f"must be {field.what}", body)
        try:
            values[field.attr] = field.parse(value)
        except ValueError as exc:
            raise AmlError(field.key, str(exc), body) from None
    key, sep, value = parts[-1].partition("=")
    if key != "ml" or not sep or not re.fullmatch(r"[0-9]{1,3}", value):
        raise AmlError("ml", "the last attribute must be ml=<length>", body)
    if int(value) != len(body):
        raise AmlError("ml", f"says {value} characters, the message has {len(body)}", body)
    report = Report(length=len(body), **values)
    _check(report, parts, body)
    # The no-location form's coordinates are placeholders, not a position.
    return replace(report, lat=None, lon=None) if report.method is Method.NONE else report


def _check(report: Report, parts: list[str], body: str) -> None:
    """The rules between attributes, and the ranges their patterns cannot express."""
    if report.lat is not None and abs(report.lat) > 90:
        raise AmlError("lt", "latitude beyond +-90 degrees", body)
    if report.lon is not None and abs(report.lon) > 180:
        raise AmlError("lg", "longitude beyond +-180 degrees", body)
    if report.confidence > 100:
        raise AmlError("lc", "confidence above 100%", body)
    if (report.method is Method.NONE) != (report.radius_m is None):
        raise AmlError("rd", "rd=N goes with pm=N, and only with it", body)
    if report.method is Method.NONE:
        if parts[1:3] != [f"lt={_NO_LAT}", f"lg={_NO_LON}"]:
            raise AmlError("lt", "pm=N carries lt=+00.00000 and lg=+000.00000", body)
        if report.confidence != 0:
            raise AmlError("lc", "pm=N carries lc=0", body)
