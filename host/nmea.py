"""NMEA 0183 for the host's GPS sources: checksummed sentence parsing (GGA, RMC), coordinate
conversion, and a tracker that joins the GGA and RMC of one epoch into a `Fix`."""
from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass

from msa.wire.message import MAX_ALTITUDE_M, Fix, FixQuality
from .errors import LocationError

# User Equivalent Range Error: the 1-sigma range error of one satellite for a single-frequency
# civil receiver (clock, ephemeris, ionosphere, troposphere, multipath). The GPS SPS
# performance standard and receiver datasheets put it at about 4-6 m; HDOP x UERE then
# approximates the 1-sigma (~68%) horizontal radius that `Fix.accuracy_m` promises.
UERE_M = 5.0
# A fix without HDOP still goes out, but with a poor accuracy rather than an invented good one.
UNKNOWN_HDOP = 20.0
KNOT_MPS = 1852.0 / 3600.0
# HDOP as receivers write it: above 0, at most 99.99 ("no fix" on some). Anything else (a
# negative, 1e999, NaN) is a broken sentence, never a Fix: one HDOP of -1 used to end the reader.
MAX_HDOP = 100.0
# Fields are plain decimals: float() alone would also take "inf", "nan", "1e999", "1_0".
_DECIMAL = re.compile(r"[+-]?[0-9]{1,9}(?:\.[0-9]{0,9})?", re.ASCII)
_UNSIGNED = re.compile(r"[0-9]{1,3}", re.ASCII)
_TIME = re.compile(r"[0-9]{6}(?:\.[0-9]{0,4})?", re.ASCII)
_LAT = re.compile(r"[0-9]{4}(?:\.[0-9]{0,9})?", re.ASCII)
_LON = re.compile(r"[0-9]{5}(?:\.[0-9]{0,9})?", re.ASCII)

# Talker ids a GNSS receiver uses (NMEA 0183 v4.11); anything else is not a position source.
TALKERS: dict[str, str] = {
    "GP": "GPS", "GL": "GLONASS", "GA": "Galileo", "GB": "BeiDou", "BD": "BeiDou",
    "GQ": "QZSS", "QZ": "QZSS", "GI": "NavIC", "GN": "multi-constellation",
}

# GGA fix quality -> how the position was obtained; 0 is "no fix" and never becomes a Fix.
GGA_QUALITY: dict[int, FixQuality] = {
    1: FixQuality.GNSS, 2: FixQuality.DGNSS, 3: FixQuality.GNSS, 4: FixQuality.DGNSS,
    5: FixQuality.DGNSS, 6: FixQuality.ESTIMATED, 7: FixQuality.FIXED, 8: FixQuality.SIMULATED,
}


class NmeaError(LocationError):
    """One sentence was rejected: `reason` is the rule it broke, `sentence` the raw text."""

    def __init__(self, reason: str, sentence: str, detail: str = "") -> None:
        self.reason = reason
        self.sentence = sentence
        super().__init__("nmea", f"{reason}{': ' + detail if detail else ''} in {sentence!r}")


@dataclass(frozen=True)
class Gga:
    """Global positioning system fix data. Position fields are None when there is no fix."""

    talker: str
    time_of_day: float | None  # seconds since 00:00 UTC
    lat: float | None
    lon: float | None
    quality: int  # 0 = no fix, 1 = GPS, 2 = DGPS, ... 8 = simulator
    satellites: int | None
    hdop: float | None
    altitude_m: float | None  # above mean sea level


@dataclass(frozen=True)
class Rmc:
    """Recommended minimum data: the one sentence that carries the date."""

    talker: str
    time_of_day: float | None
    valid: bool  # status A (and mode not N); V means the receiver has no usable fix
    lat: float | None
    lon: float | None
    speed_mps: float | None
    course_deg: float | None
    date: datetime.date | None

    @property
    def unix_time(self) -> float | None:
        if self.date is None or self.time_of_day is None:
            return None
        return calendar.timegm(self.date.timetuple()) + self.time_of_day


@dataclass(frozen=True)
class Other:
    """A well-formed sentence of a type the host does not use (GSV, GSA, VTG, proprietary)."""

    talker: str
    kind: str
    fields: tuple[str, ...]


Sentence = Gga | Rmc | Other


def checksum(body: str) -> int:
    """XOR of every character between '$' and '*'."""
    value = 0
    for char in body.encode("ascii", errors="replace"):
        value ^= char
    return value


def _time(raw: str) -> float | None:
    if not raw:
        return None
    if not _TIME.fullmatch(raw):
        raise ValueError(f"bad time {raw[:20]!r} (want hhmmss.ss)")
    hours, minutes, seconds = int(raw[0:2]), int(raw[2:4]), float(raw[4:])
    if hours > 23 or minutes > 59 or seconds >= 61:  # 60.x: a leap second
        raise ValueError(f"bad time {raw!r}")
    return hours * 3600 + minutes * 60 + seconds


def _date(raw: str) -> datetime.date | None:
    if not raw:
        return None
    if len(raw) != 6 or not raw.isascii() or not raw.isdigit():
        raise ValueError(f"bad date {raw[:20]!r}")
    year = int(raw[4:6])
    # Two-digit years: NMEA receivers of this century; 80-99 only from old logs.
    return datetime.date(2000 + year if year < 80 else 1900 + year, int(raw[2:4]), int(raw[0:2]))


def _coordinate(raw: str, hemisphere: str, degree_digits: int, signs: str) -> float | None:
    """ddmm.mmmm (lat) or dddmm.mmmm (lon) with its hemisphere letter -> signed degrees."""
    if not raw and not hemisphere:
        return None
    if len(hemisphere) != 1 or hemisphere not in signs:
        raise ValueError(f"bad hemisphere {hemisphere!r} (want one of {signs})")
    if not (_LAT if degree_digits == 2 else _LON).fullmatch(raw):
        raise ValueError(f"bad coordinate (want {'d' * degree_digits}mm.mmmm)")
    degrees, minutes = int(raw[:degree_digits]), float(raw[degree_digits:])
    if minutes >= 60.0 or degrees > (90 if degree_digits == 2 else 180):
        raise ValueError("coordinate out of range")
    value = degrees + minutes / 60.0
    if value > (90.0 if degree_digits == 2 else 180.0):
        raise ValueError("coordinate out of range")
    return -value if hemisphere == signs[1] else value


def _float(raw: str) -> float | None:
    if not raw:
        return None
    if not _DECIMAL.fullmatch(raw):
        raise ValueError(f"not a decimal number: {raw[:20]!r}")
    return float(raw)


def _int(raw: str) -> int | None:
    if not raw:
        return None
    if not _UNSIGNED.fullmatch(raw):
        raise ValueError(f"not a small whole number: {raw[:20]!r}")
    return int(raw)


def _hdop(raw: str) -> float | None:
    hdop = _float(raw)
    if hdop is None or hdop == 0.0:
        return None  # not given (some receivers write 0.0 for "unknown")
    if not 0.0 < hdop <= MAX_HDOP:
        raise ValueError(f"HDOP {hdop:g} not above 0 and at most {MAX_HDOP:g}")
    return hdop


def _altitude(raw: str) -> float | None:
    altitude = _float(raw)
    if altitude is not None and not -MAX_ALTITUDE_M <= altitude <= MAX_ALTITUDE_M:
        raise ValueError("altitude out of range")
    return altitude


def _gga(talker: str, f: list[str]) -> Gga:
    quality = _int(f[5]) or 0
    if not 0 <= quality <= 8:
        raise ValueError(f"fix quality {quality} not in 0-8")
    return Gga(talker, _time(f[0]), _coordinate(f[1], f[2], 2, "NS"),
               _coordinate(f[3], f[4], 3, "EW"), quality, _int(f[6]), _hdop(f[7]),
               _altitude(f[8]))


def _rmc(talker: str, f: list[str]) -> Rmc:
    if f[1] not in ("A", "V"):
        raise ValueError(f"status {f[1]!r} is neither A nor V")
    # NMEA 2.3+ adds a mode indicator (field 12); N means "not valid" whatever the status says.
    mode_ok = len(f) < 12 or f[11] != "N"
    speed = _float(f[6])
    return Rmc(talker, _time(f[0]), f[1] == "A" and mode_ok, _coordinate(f[2], f[3], 2, "NS"),
               _coordinate(f[4], f[5], 3, "EW"), None if speed is None else speed * KNOT_MPS,
               _float(f[7]), _date(f[8]))


# Sentence type -> (fields it must have at least, parser of those fields).
_PARSERS: dict[str, tuple[int, Callable[[str, list[str]], Sentence]]] = {
    "GGA": (9, _gga),
    "RMC": (9, _rmc),
}


def parse(line: str) -> Sentence:
    """One sentence ("$GPGGA,...*hh", with or without CR LF) -> its parsed form; NmeaError
    when the framing, checksum, talker or a field is wrong."""
    text = line.strip()
    if not text.startswith("$"):
        raise NmeaError("start", text, "a sentence starts with '$'")
    star = text.rfind("*")
    if star < 0:
        raise NmeaError("checksum-missing", text, "no '*hh' at the end")
    body, given = text[1:star], text[star + 1:]
    if len(given) != 2 or any(c not in "0123456789abcdefABCDEF" for c in given):
        raise NmeaError("checksum-missing", text, f"{given!r} is not two hex digits")
    if int(given, 16) != checksum(body):
        raise NmeaError("checksum", text, f"says {given.upper()}, data gives "
                                          f"{checksum(body):02X}")
    address, *fields = body.split(",")
    if address.startswith("P"):  # proprietary: P + manufacturer id, no talker
        return Other("P", address[1:], tuple(fields))
    talker, kind = address[:2], address[2:]
    if len(address) != 5 or not address.isalpha():
        raise NmeaError("address", text, f"{address!r} is not a talker id and sentence type")
    if talker not in TALKERS:
        raise NmeaError("talker", text, f"unknown talker id {talker!r}")
    if kind not in _PARSERS:
        return Other(talker, kind, tuple(fields))
    needed, parser = _PARSERS[kind]
    if len(fields) < needed:
        raise NmeaError("fields", text, f"{kind} needs {needed} fields, got {len(fields)}")
    try:
        return parser(talker, fields)
    except ValueError as err:
        raise NmeaError("field", text, str(err)) from err


class NmeaTracker:
    """Joins GGA and RMC of the same epoch into a Fix: the date and time come from RMC,
    fix quality and HDOP from GGA. `lost` is True once either says there is no fix."""

    def __init__(self, uere_m: float = UERE_M) -> None:
        self.uere_m = uere_m
        self.lost = False
        self._gga: Gga | None = None
        self._rmc: Rmc | None = None

    def feed(self, sentence: Sentence) -> Fix | None:
        """Take one sentence; return the Fix it completes, if any."""
        if isinstance(sentence, Gga):
            self._gga = sentence
            if sentence.quality == 0:
                self.lost = True
        elif isinstance(sentence, Rmc):
            self._rmc = sentence
            if not sentence.valid:
                self.lost = True
        else:
            return None
        return self._join()

    def _join(self) -> Fix | None:
        gga, rmc = self._gga, self._rmc
        if gga is None or rmc is None or gga.time_of_day is None:
            return None
        if rmc.time_of_day is None or round(gga.time_of_day, 2) != round(rmc.time_of_day, 2):
            return None  # the other half of this epoch has not arrived yet
        self._gga = self._rmc = None
        when = rmc.unix_time
        if (gga.quality == 0 or not rmc.valid or gga.lat is None or gga.lon is None
                or when is None):
            self.lost = True
            return None
        hdop = UNKNOWN_HDOP if gga.hdop is None else gga.hdop
        try:
            fix = Fix(lat=gga.lat, lon=gga.lon, accuracy_m=hdop * self.uere_m, time=when,
                      quality=GGA_QUALITY[gga.quality], source="nmea", altitude_m=gga.altitude_m)
        except ValueError as err:  # e.g. a date past what a Fix may hold: not a fix
            self.lost = True
            raise NmeaError("fix", f"{gga.talker}GGA+RMC", str(err)) from None
        self.lost = False
        return fix
