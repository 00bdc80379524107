"""The messages every channel carries from host to centre, and the positions in them:
a fix, its quality, a message and its kind. Every number passes `finite()` where it enters."""
from __future__ import annotations

import enum
import math
import re
import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # wire/call.py imports this module's checks
    from .call import CallPayload


# What a position may say. Anything outside is refused where it enters (a receiver, a decoder),
# never stored: one Infinity in the centre's state made its operator page unreadable.
MAX_ACCURACY_M = 10_000_000.0  # a 68% radius beyond this says nothing (AML's rd: 7 digits)
MAX_ALTITUDE_M = 100_000.0  # above or below sea level
MAX_TIME = 2.0 ** 33  # Unix seconds (the year 2242): a fix time beyond is garbage

# Message keys. A button event's key is "<button_id hex8>-<boot_id>-<seq>"; a tracking update's
# is its incident's key and "/<n>", n from 1 to MAX_UPDATE_NO without sign or leading zero.
# The host numbers an incident's updates 1, 2, 3 ... one per tracking interval (at least 1 s)
# for at most the longest tracking window (86,400 s): no genuine n is above MAX_UPDATE_NO.
# The centre builds every key it stores from the verified frame; these say what a key may be.
MAX_UPDATE_NO = 86_400
EVENT_KEY = re.compile(r"[0-9a-f]{8}-[0-9]{1,5}-[0-9]{1,10}", re.ASCII)
UPDATE_SUFFIX = re.compile(r"[1-9][0-9]{0,5}", re.ASCII)


def finite(value: object, low: float, high: float, what: str) -> float:
    """`value` as a float if it is a real number (not a bool, not NaN or infinite) within
    [low, high]; ValueError naming `what` otherwise. Every decoder's numbers pass here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ValueError(f"{what} is out of range") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{what} must be a finite number from {low:g} to {high:g}")
    return number


class FixQuality(enum.Enum):
    """How a position was obtained (NMEA GGA fix quality, gpsd mode, or configured)."""

    GNSS = "gnss"  # a standard GPS/GNSS fix
    DGNSS = "dgnss"  # differential, RTK or better
    ESTIMATED = "estimated"  # dead reckoning
    FIXED = "fixed"  # a configured location (a home gateway), not a measurement
    SIMULATED = "simulated"  # the simulator's scripted track


@dataclass(frozen=True)
class Fix:
    """One position. `accuracy_m` is the horizontal radius of ~68% confidence (HDOP-based for
    NMEA, gpsd's eph, or configured); `time` is the Unix time of the fix itself."""

    lat: float
    lon: float
    accuracy_m: float
    time: float
    quality: FixQuality
    source: str  # "nmea", "gpsd", "fixed", "sim"
    altitude_m: float | None = None

    def __post_init__(self) -> None:
        # Ranges and finiteness in one place: a Fix that exists is fit to store and to show.
        # (Messages name no position: a position is personal data.)
        finite(self.lat, -90.0, 90.0, "latitude")
        finite(self.lon, -180.0, 180.0, "longitude")
        finite(self.accuracy_m, 0.0, MAX_ACCURACY_M, "accuracy_m")
        finite(self.time, 0.0, MAX_TIME, "fix time")
        if self.altitude_m is not None:
            finite(self.altitude_m, -MAX_ALTITUDE_M, MAX_ALTITUDE_M, "altitude_m")

    def as_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "accuracy_m": self.accuracy_m,
                "time": self.time, "quality": self.quality.value, "source": self.source,
                "altitude_m": self.altitude_m}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fix:
        """The inverse of as_dict(); quality and source may be missing (a GNSS fix of unknown
        origin). Raises KeyError, TypeError or ValueError for malformed input."""
        alt = d.get("altitude_m")
        source = d.get("source", "unknown")
        if not isinstance(source, str) or not 0 < len(source) <= 16:
            raise ValueError("source must be a short string")
        # Numbers as numbers: a string or a bool is malformed, not converted.
        return cls(lat=_number(d["lat"]), lon=_number(d["lon"]),
                   accuracy_m=_number(d["accuracy_m"]), time=_number(d["time"]),
                   quality=FixQuality(d.get("quality", "gnss")), source=source,
                   altitude_m=None if alt is None else _number(alt))

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.time


def _number(value: object) -> float:
    """A JSON number as a float; the range checks are Fix's (ValueError, TypeError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError("number out of range") from None


class MessageKind(enum.Enum):
    """What a dispatch message says. Values are stored in the outbox: never change them."""

    ALARM = "alarm"  # the wearer raised the alarm: dispatch police
    TEST = "test"  # a test alarm: show it, dispatch no one
    LOCATION = "location"  # a tracking update for an open alarm
    LOW_BATTERY = "low_battery"  # the button's battery fell to the threshold
    HEARTBEAT = "heartbeat"  # the button is alive (IP channels only, never SMS)
    BOOT = "boot"  # the button restarted (reset, power cut or tampering)
    CALL = "call"  # a step of an incident's silent call (wire/call.py)


# Kinds that open an incident at the centre; the others attach to a button or an incident.
INCIDENT_KINDS = frozenset({MessageKind.ALARM, MessageKind.TEST})
# Kinds that belong to an open incident: each carries its alarm's frame and a key
# "<incident>/<suffix>" (a LOCATION's suffix "<n>", a CALL's "c<n>": wire/call.py).
UPDATE_KINDS = frozenset({MessageKind.LOCATION, MessageKind.CALL})


@dataclass(frozen=True)
class Message:
    """One thing to deliver to the centre, as the outbox keeps it.

    `key` is the idempotency key the centre dedupes on: for a button event
    "<button_id hex8>-<boot_id>-<seq>", for a tracking update the incident's key plus
    "/<update_no>". `frame` is the button's own authenticated 26-byte frame (the centre
    verifies its tag again, so a compromised host cannot forge an alarm); a LOCATION update
    or a CALL event carries the frame of the alarm it belongs to (a CALL's key ends in
    "/c<n>", and `call` says what happened). `created_at` is when the host committed it.
    """

    key: str
    kind: MessageKind
    button_id: int
    frame: bytes = field(repr=False)
    created_at: float
    fix: Fix | None = None
    pressed_at: float | None = None  # when the press began, by the host's clock
    battery_pct: int | None = None
    update_no: int = 0
    incident: str = ""  # the incident's key (ALARM/TEST: its own key)
    call: CallPayload | None = None  # a CALL's event, else None

    @staticmethod
    def event_key(button_id: int, boot_id: int, seq: int) -> str:
        return f"{button_id:08x}-{boot_id}-{seq}"
