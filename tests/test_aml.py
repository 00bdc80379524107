"""ETSI TS 103 625 AML SMS bodies: published examples, round trips and malformed bodies."""
from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msa.wire import aml
from msa.wire.message import MAX_ACCURACY_M, Fix, FixQuality
from msa.wire.errors import AmlError

UK = aml.Identity(imsi="234159000000000", imei="123456789012345", mcc="234", mnc="15")
# Android ELS's published examples, which follow the ETSI format. The calculated one is
# published with ml=126, but the body is 127 characters long; ml counts the whole message.
NO_LOCATION = ('A"ML=1;lt=+00.00000;lg=+000.00000;rd=N;top=20220131173734;lc=0;pm=N;'
               'si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=127')
CALCULATED = ('A"ML=1;lt=+51.53321;lg=-0.12601;rd=14;top=20220131171748;lc=68;pm=W;'
              'si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=127')
GNSS = ('A"ML=1;lt=+55.74297;lg=-4.26880;rd=10;top=20130717175329;lc=95;pm=G;'
        'si=234302543446355;ei=356708041746734;mcc=234;mnc=30;ml=127')


def _unix(text: str) -> float:
    return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc).timestamp()


def test_no_location_form_is_the_published_one() -> None:
    assert aml.build(None, now=_unix("20220131173734"), identity=UK) == NO_LOCATION
    report = aml.parse(NO_LOCATION)
    assert not report.has_location
    assert (report.lat, report.lon, report.radius_m, report.confidence) == (None, None, None, 0)


def test_calculated_location_renders_as_published() -> None:
    report = aml.Report(lat=51.53321, lon=-0.12601, radius_m=14,
                        time=dt.datetime(2022, 1, 31, 17, 17, 48, tzinfo=dt.timezone.utc),
                        confidence=68, method=aml.Method.WIFI, imsi=UK.imsi, imei=UK.imei,
                        mcc=UK.mcc, mnc=UK.mnc, length=0)
    assert aml.render(report) == CALCULATED
    assert aml.parse(CALCULATED) == aml.Report(**{**report.__dict__, "length": 127})


def test_gnss_example_parses() -> None:
    report = aml.parse(GNSS)
    assert (report.lat, report.lon, report.radius_m, report.confidence) == (
        55.74297, -4.2688, 10, 95)
    assert report.method is aml.Method.GNSS
    assert report.time == dt.datetime(2013, 7, 17, 17, 53, 29, tzinfo=dt.timezone.utc)
    assert (report.imsi, report.imei, report.mcc, report.mnc, report.length) == (
        "234302543446355", "356708041746734", "234", "30", 127)


def test_fix_builds_with_signs_five_decimals_and_rounded_up_radius() -> None:
    fix = Fix(lat=-0.000001, lon=7.5, accuracy_m=12.2, time=_unix("20240229235959"),
              quality=FixQuality.DGNSS, source="nmea")
    body = aml.build(fix, now=0)
    assert ";lt=+0.00000;lg=+7.50000;rd=13;top=20240229235959;lc=68;pm=G;" in body
    assert body.endswith(f";ml={len(body)}")


def test_configured_location_and_unbounded_accuracy() -> None:
    # An infinite accuracy is no Fix at all (issue 12); the largest a Fix holds is capped.
    with pytest.raises(ValueError):
        Fix(lat=1, lon=2, accuracy_m=math.inf, time=0, quality=FixQuality.FIXED, source="fixed")
    fix = Fix(lat=1, lon=2, accuracy_m=MAX_ACCURACY_M, time=0, quality=FixQuality.FIXED,
              source="fixed")
    report = aml.parse(aml.build(fix, now=0))
    assert (report.method, report.radius_m) == (aml.Method.CELL, aml.MAX_RADIUS_M)


def test_identity_is_checked() -> None:
    with pytest.raises(ValueError, match="si"):
        aml.Identity(imsi="12")
    with pytest.raises(ValueError, match="mnc"):
        aml.Identity(mnc="1a")


@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180), accuracy=st.floats(0, 1e7),
       when=st.floats(0, 4e9), quality=st.sampled_from(FixQuality))
def test_round_trip(lat: float, lon: float, accuracy: float, when: float,
                    quality: FixQuality) -> None:
    fix = Fix(lat=lat, lon=lon, accuracy_m=accuracy, time=when, quality=quality, source="sim")
    body = aml.build(fix, now=0, identity=UK)
    report = aml.parse(body)
    assert len(body) == report.length <= aml.MAX_LENGTH
    assert report.lat is not None and report.lon is not None
    assert abs(report.lat - lat) <= 5e-6 + 1e-9 and abs(report.lon - lon) <= 5e-6 + 1e-9
    assert report.radius_m == min(math.ceil(accuracy), aml.MAX_RADIUS_M)
    assert report.time.timestamp() == int(when)
    assert report.confidence == aml.FIX_CONFIDENCE and report.has_location


def _swap(old: str, new: str, body: str = GNSS) -> str:
    """The GNSS example with one change and its ml corrected, so only the change is wrong."""
    changed = body.replace(old, new, 1).rsplit(";ml=", 1)[0]
    return aml._with_length(changed)


MALFORMED = [
    ("header", 'AML=1' + GNSS[6:]),
    ("header", GNSS.replace('A"ML=1', 'A"ML=2')),
    ("ml", ";".join(GNSS.split(";")[:-2] + GNSS.split(";")[-1:])),  # mnc missing
    ("lt", _swap("lt=+55.74297;lg=-4.26880", "lg=-4.26880;lt=+55.74297")),  # order
    ("lt", _swap("lt=+55.74297", "lt=55.74297")),  # no sign
    ("lt", _swap("lt=+55.74297", "lt=+55.7430")),  # 4 decimals
    ("lt", _swap("lt=+55.74297", "lt=+91.00000")),
    ("lg", _swap("lg=-4.26880", "lg=-181.00000")),
    ("lg", _swap("lg=-4.26880", "lg=")),
    ("rd", _swap("rd=10", "rd=-10")),
    ("rd", _swap("rd=10", "rd=N")),  # N only without a location
    ("top", _swap("top=20130717175329", "top=20131317175329")),
    ("top", _swap("top=20130717175329", "top=2013071717532")),
    ("lc", _swap("lc=95", "lc=101")),
    ("pm", _swap("pm=G", "pm=X")),
    ("rd", _swap("pm=G", "pm=N")),  # no location, yet a radius
    ("lt", _swap("lt=+00.00000", "lt=+10.00000", NO_LOCATION)),
    ("lc", _swap("lc=0", "lc=68", NO_LOCATION)),
    ("si", _swap("si=234302543446355", "si=23430254344635X")),
    ("ei", _swap("ei=356708041746734", "ei=3567")),
    ("mcc", _swap("mcc=234", "mcc=23")),
    ("mnc", _swap("mnc=30", "mnc=3")),
    ("ml", GNSS.replace("ml=127", "ml=126")),
    ("ml", GNSS.replace("ml=127", "ml=")),
    ("ml", GNSS + ";xx=1"),
]


@pytest.mark.parametrize(("field", "body"), MALFORMED)
def test_malformed_bodies_name_the_attribute(field: str, body: str) -> None:
    with pytest.raises(AmlError) as err:
        aml.parse(body)
    assert err.value.field == field and err.value.body == body
    assert "55.7" not in str(err.value)  # never the position in a message


def test_too_long_to_build() -> None:
    fix = Fix(lat=1, lon=2, accuracy_m=3, time=0, quality=FixQuality.GNSS, source="sim")
    with pytest.raises(AmlError, match="more than one SMS"):
        aml.render(aml.Report(**{**aml.parse(aml.build(fix, now=0)).__dict__,
                                 "imsi": "1" * 60}))
