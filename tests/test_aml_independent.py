"""AML bodies (ETSI TS 103 625, the AML SMS format) read by a second parser written here from
the published field list alone, not from wire/aml.py: what the host builds for a fix must read
back to that fix's values, and both parsers must agree on the published examples."""
from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from msa.wire import aml
from msa.wire.message import Fix, FixQuality

# The published attribute list, in its order: header A"ML=1, then these, ml last.
ORDER = ("lt", "lg", "rd", "top", "lc", "pm", "si", "ei", "mcc", "mnc", "ml")
PUBLISHED = [  # Android ELS's published examples of the format (also in tests/test_aml.py)
    'A"ML=1;lt=+00.00000;lg=+000.00000;rd=N;top=20220131173734;lc=0;pm=N;'
    'si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=127',
    'A"ML=1;lt=+55.74297;lg=-4.26880;rd=10;top=20130717175329;lc=95;pm=G;'
    'si=234302543446355;ei=356708041746734;mcc=234;mnc=30;ml=127',
]


def read(body: str) -> dict[str, Any]:
    """The second parser: attribute=value pairs split at ";" after the header."""
    header, _, rest = body.partition(";")
    assert header == 'A"ML=1'
    pairs = [part.split("=", 1) for part in rest.split(";")]
    assert tuple(k for k, _ in pairs) == ORDER
    raw = dict(pairs)
    for key in ("lt", "lg"):  # always signed, exactly five decimals
        sign, digits = raw[key][0], raw[key][1:]
        whole, _, frac = digits.partition(".")
        assert sign in "+-" and whole.isdigit() and len(frac) == 5 and frac.isdigit(), key
    top = raw["top"]
    assert len(top) == 14 and top.isdigit()
    return {
        "lat": Decimal(raw["lt"]), "lon": Decimal(raw["lg"]),
        "radius_m": None if raw["rd"] == "N" else int(raw["rd"]),
        "time": dt.datetime(int(top[0:4]), int(top[4:6]), int(top[6:8]), int(top[8:10]),
                            int(top[10:12]), int(top[12:14]), tzinfo=dt.timezone.utc),
        "confidence": int(raw["lc"]), "method": raw["pm"], "imsi": raw["si"],
        "imei": raw["ei"], "mcc": raw["mcc"], "mnc": raw["mnc"], "length": int(raw["ml"]),
    }


def five(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(Decimal("0.00001"), rounding=ROUND_HALF_EVEN)


@pytest.mark.parametrize("body", PUBLISHED)
def test_both_parsers_agree_on_the_published_examples(body: str) -> None:
    mine, theirs = read(body), aml.parse(body)
    assert mine["length"] == len(body) == theirs.length
    assert (mine["radius_m"], mine["time"], mine["confidence"], mine["method"], mine["imsi"],
            mine["imei"], mine["mcc"], mine["mnc"]) == (
        theirs.radius_m, theirs.time, theirs.confidence, theirs.method.value, theirs.imsi,
        theirs.imei, theirs.mcc, theirs.mnc)
    if theirs.has_location:
        assert (float(mine["lat"]), float(mine["lon"])) == (theirs.lat, theirs.lon)


FIXES = [
    Fix(51.0543212, 3.7174, 8.0, 1_795_000_000, FixQuality.GNSS, "nmea"),
    Fix(-33.868820, 151.209296, 12.2, 1_795_000_123.9, FixQuality.DGNSS, "gpsd"),
    Fix(40.416775, -3.70379, 0.4, 946_684_800, FixQuality.ESTIMATED, "sim"),
    Fix(0.0, -0.000004, 5000.0, 1_795_000_000, FixQuality.FIXED, "fixed"),
    Fix(-89.999999, 179.999999, 1e7, 4_102_444_799, FixQuality.GNSS, "sim"),
]
METHOD = {FixQuality.GNSS: "G", FixQuality.DGNSS: "G", FixQuality.ESTIMATED: "G",
          FixQuality.SIMULATED: "G", FixQuality.FIXED: "C"}


@pytest.mark.parametrize("fix", FIXES, ids=lambda f: f.source + str(f.lat))
def test_the_body_built_for_a_fix_reads_back_to_that_fix(fix: Fix) -> None:
    ident = aml.Identity(imsi="206011234567890", imei="35675309123456", mcc="206", mnc="01")
    body = aml.build(fix, now=0, identity=ident)
    got = read(body)
    assert got["length"] == len(body) <= 160
    assert got["lat"] == five(fix.lat) and got["lon"] == five(fix.lon)
    assert got["radius_m"] == min(math.ceil(fix.accuracy_m), 9_999_999)
    assert got["time"] == dt.datetime.fromtimestamp(int(fix.time), dt.timezone.utc)
    assert (got["confidence"], got["method"]) == (68, METHOD[fix.quality])
    assert (got["imsi"], got["imei"], got["mcc"], got["mnc"]) == (
        "206011234567890", "35675309123456", "206", "01")


def test_no_fix_builds_the_published_no_location_form() -> None:
    got = read(aml.build(None, now=1_795_000_000))
    assert (got["lat"], got["lon"], got["radius_m"], got["confidence"], got["method"]) == (
        Decimal("0"), Decimal("0"), None, 0, "N")
    assert got["time"] == dt.datetime.fromtimestamp(1_795_000_000, dt.timezone.utc)
