"""NMEA 0183 parsing: published example sentences, a table of malformed ones, the GGA + RMC
tracker, and round trips through the simulator's formatter."""
from __future__ import annotations

import calendar
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msa.wire.message import Fix, FixQuality
from msa.host.nmea import (UERE_M, UNKNOWN_HDOP, Gga, NmeaError, NmeaTracker, Other, Rmc,
                           checksum, parse)
from msa.simulator.gps import epoch_sentences, format_coordinate, format_sentence

# Published examples whose checksums are known independently of this code.
CLASSIC_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
CLASSIC_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
UBLOX_GGA = "$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B"
UBLOX_RMC = "$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57"
GSV = "$GPGSV,3,1,10,23,38,230,44,29,71,156,47,07,29,116,41,08,09,081,36*7F"


def test_published_checksums_are_reproduced() -> None:
    assert checksum(CLASSIC_GGA[1:-3]) == 0x47
    assert checksum(CLASSIC_RMC[1:-3]) == 0x6A


def test_classic_gga() -> None:
    gga = parse(CLASSIC_GGA + "\r\n")
    assert isinstance(gga, Gga)
    assert gga.talker == "GP" and gga.quality == 1 and gga.satellites == 8
    assert gga.time_of_day == 12 * 3600 + 35 * 60 + 19
    assert gga.lat == pytest.approx(48 + 7.038 / 60, abs=1e-9)
    assert gga.lon == pytest.approx(11 + 31.0 / 60, abs=1e-9)
    assert gga.hdop == 0.9 and gga.altitude_m == 545.4


def test_classic_rmc_date_time_speed_course() -> None:
    rmc = parse(CLASSIC_RMC)
    assert isinstance(rmc, Rmc) and rmc.valid
    assert rmc.date == datetime.date(1994, 3, 23)
    assert rmc.unix_time == calendar.timegm((1994, 3, 23, 12, 35, 19))
    assert rmc.speed_mps == pytest.approx(22.4 * 1852 / 3600)
    assert rmc.course_deg == 84.4


def test_ublox_sentences_with_fractional_seconds() -> None:
    gga, rmc = parse(UBLOX_GGA), parse(UBLOX_RMC)
    assert isinstance(gga, Gga) and isinstance(rmc, Rmc)
    assert gga.time_of_day == pytest.approx(9 * 3600 + 27 * 60 + 25.0)
    assert gga.lat == pytest.approx(47 + 17.11399 / 60, abs=1e-9)
    assert rmc.date == datetime.date(2002, 12, 9) and rmc.valid


def test_sentences_the_host_does_not_use_are_returned_whole() -> None:
    gsv = parse(GSV)
    assert gsv == Other("GP", "GSV", tuple(GSV[7:-3].split(",")))
    pubx = parse(format_sentence("PUBX,00,081350.00,4717.113210,N"))
    assert isinstance(pubx, Other) and pubx.talker == "P" and pubx.kind == "UBX"


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "BD", "GB", "GQ"])
def test_talker_ids(talker: str) -> None:
    gga = parse(format_sentence(talker + CLASSIC_GGA[3:-3]))
    assert isinstance(gga, Gga) and gga.talker == talker


def test_lowercase_checksum_is_accepted() -> None:
    assert isinstance(parse(CLASSIC_RMC[:-2] + "6a"), Rmc)


MALFORMED = [
    # (sentence, reason, part of the message)
    ("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", "start", "'$'"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", "checksum-missing",
     "no '*hh'"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*4", "checksum-missing",
     "two hex digits"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*G7", "checksum-missing",
     "two hex digits"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48", "checksum",
     "says 48, data gives 47"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*00", "checksum", "says 00"),
    (format_sentence("XXGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
     "talker", "'XX'"),
    (format_sentence("GPGG,123519"), "address", "'GPGG'"),
    (format_sentence("GPGGA,123519,4807.038,N"), "fields", "GGA needs 9 fields, got 3"),
    (format_sentence("GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "field",
     "hemisphere 'X'"),
    (format_sentence("GPGGA,123519,4867.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "field",
     "out of range"),
    (format_sentence("GPGGA,123519,48077.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
     "field", "ddmm.mmmm"),
    (format_sentence("GPGGA,123519,4807.038,N,,E,1,08,0.9,545.4,M,46.9,M,,"), "field",
     "dddmm.mmmm"),
    (format_sentence("GPGGA,123519,4807.038,N,01131.000,E,9,08,0.9,545.4,M,46.9,M,,"),
     "field", "fix quality 9 not in 0-8"),
    (format_sentence("GPGGA,253519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
     "field", "bad time '253519'"),
    (format_sentence("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"),
     "field", "neither A nor V"),
    (format_sentence("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W"),
     "field", "day is out of range"),
    (format_sentence("GPRMC,123519,A,4807.038,N,01131.000,E,fast,084.4,230394,003.1,W"),
     "field", "not a decimal number"),
]


@pytest.mark.parametrize("sentence,reason,message", MALFORMED,
                         ids=[f"{r}-{i}" for i, (_, r, _m) in enumerate(MALFORMED)])
def test_malformed_sentences_are_rejected_with_their_reason(sentence: str, reason: str,
                                                            message: str) -> None:
    with pytest.raises(NmeaError) as err:
        parse(sentence)
    assert err.value.reason == reason
    assert err.value.sentence == sentence.strip()
    assert err.value.source == "nmea"
    assert message in str(err.value)


def test_no_fix_sentences_have_empty_fields() -> None:
    gga_body, rmc_body = epoch_sentences(1714564800.0, 0, 0, fix=False)
    gga, rmc = parse(format_sentence(gga_body)), parse(format_sentence(rmc_body))
    assert isinstance(gga, Gga) and isinstance(rmc, Rmc)
    assert gga.quality == 0 and gga.lat is None and gga.lon is None and gga.hdop is None
    assert not rmc.valid and rmc.lat is None and rmc.speed_mps is None
    assert rmc.unix_time == 1714564800.0  # a receiver without a fix may still know the time


def test_rmc_mode_n_is_invalid_even_with_status_a() -> None:
    rmc = parse(format_sentence(UBLOX_RMC[1:-4] + "N"))
    assert isinstance(rmc, Rmc) and not rmc.valid


def _feed(tracker: NmeaTracker, *bodies: str) -> list[Fix | None]:
    return [tracker.feed(parse(format_sentence(b))) for b in bodies]


def test_tracker_joins_gga_and_rmc_of_one_epoch() -> None:
    tracker = NmeaTracker()
    gga, rmc = epoch_sentences(1714564800.25, 52.52, 13.405, hdop=1.2, altitude_m=34.5,
                               talker="GN")
    first, fix = _feed(tracker, gga, rmc)
    assert first is None  # half an epoch is not a fix
    assert fix is not None and not tracker.lost
    assert fix.time == pytest.approx(1714564800.25)


def test_tracker_fix_fields() -> None:
    tracker = NmeaTracker()
    fixes = _feed(tracker, *epoch_sentences(1714564800.0, -33.8688, 151.2093, hdop=1.2,
                                            altitude_m=34.5))
    fix = fixes[1]
    assert fix is not None
    assert fix.lat == pytest.approx(-33.8688) and fix.lon == pytest.approx(151.2093)
    assert fix.accuracy_m == pytest.approx(1.2 * UERE_M)
    assert fix.quality is FixQuality.GNSS and fix.source == "nmea"
    assert fix.altitude_m == 34.5


def test_tracker_does_not_join_different_epochs() -> None:
    tracker = NmeaTracker()
    gga, _ = epoch_sentences(1714564800.0, 52.5, 13.4)
    _, rmc = epoch_sentences(1714564801.0, 52.5, 13.4)
    assert _feed(tracker, gga, rmc) == [None, None]


def test_tracker_takes_the_time_from_rmc_across_midnight() -> None:
    tracker = NmeaTracker()
    midnight = calendar.timegm((2024, 12, 31, 23, 59, 59))
    fixes = [f for f in _feed(tracker, *epoch_sentences(midnight, 1, 1),
                              *epoch_sentences(midnight + 1, 1, 1)) if f]
    assert [f.time for f in fixes] == [midnight, midnight + 1]


@pytest.mark.parametrize("lost_half", ["gga", "rmc"])
def test_tracker_knows_when_the_fix_is_lost(lost_half: str) -> None:
    tracker = NmeaTracker()
    assert any(_feed(tracker, *epoch_sentences(1714564800.0, 52.5, 13.4)))
    good_gga, good_rmc = epoch_sentences(1714564801.0, 52.5, 13.4)
    bad_gga, bad_rmc = epoch_sentences(1714564801.0, 52.5, 13.4, fix=False)
    gga, rmc = (bad_gga, good_rmc) if lost_half == "gga" else (good_gga, bad_rmc)
    assert _feed(tracker, gga) == [None]
    assert tracker.lost == (lost_half == "gga")  # a GGA with quality 0 says so at once
    assert _feed(tracker, rmc) == [None] and tracker.lost
    assert any(_feed(tracker, *epoch_sentences(1714564802.0, 52.5, 13.4)))
    assert not tracker.lost


@pytest.mark.parametrize("quality,expected", [
    (1, FixQuality.GNSS), (2, FixQuality.DGNSS), (4, FixQuality.DGNSS),
    (5, FixQuality.DGNSS), (6, FixQuality.ESTIMATED), (8, FixQuality.SIMULATED)])
def test_gga_quality_maps_to_fix_quality(quality: int, expected: FixQuality) -> None:
    gga, rmc = epoch_sentences(1714564800.0, 10, 10)
    gga = gga.replace(",1,09,", f",{quality},09,")
    fixes = [f for f in _feed(NmeaTracker(), gga, rmc) if f]
    assert fixes[0].quality is expected


def test_missing_hdop_gives_a_poor_accuracy_not_a_good_one() -> None:
    gga, rmc = epoch_sentences(1714564800.0, 10, 10)
    gga = gga.replace(",0.9,", ",,")
    fixes = [f for f in _feed(NmeaTracker(), gga, rmc) if f]
    assert fixes[0].accuracy_m == UNKNOWN_HDOP * UERE_M


@given(st.floats(-90, 90), st.floats(-180, 180))
def test_coordinates_round_trip_through_the_simulators_formatter(lat: float,
                                                                 lon: float) -> None:
    gga = parse(format_sentence(epoch_sentences(1714564800.0, lat, lon)[0]))
    assert isinstance(gga, Gga) and gga.lat is not None and gga.lon is not None
    assert abs(gga.lat - lat) <= 1e-6 and abs(gga.lon - lon) <= 1e-6


@given(st.floats(-180, 180))
def test_formatted_minutes_never_reach_sixty(value: float) -> None:
    text, _ = format_coordinate(value, 3, "EW")
    assert float(text[3:]) < 60.0


@given(st.integers(1, 60), st.sampled_from("0123456789ABCXYZ,.-"))
def test_any_changed_character_fails_the_checksum(position: int, char: str) -> None:
    good = format_sentence(CLASSIC_GGA[1:-3]).strip()
    body = good[1:-3]
    pos = position % len(body)
    if body[pos] == char:
        return
    bad = "$" + body[:pos] + char + body[pos + 1:] + good[-3:]
    with pytest.raises(NmeaError) as err:
        parse(bad)
    assert err.value.reason == "checksum"
