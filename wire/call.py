"""The silent call's events as host and centre exchange them (issue 16): what a CALL message
says (the event, when, which attempt, why it ended), the form of its key, and the checks every
decoder applies (JSON for HTTPS, the short MSA1 form for SMS)."""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from .message import MAX_TIME, finite

# A call event's key is its incident's key and "/c<n>", n from 1 to MAX_CALL_NO without sign
# or leading zero: the host numbers an incident's call events 1, 2, 3 ... in order. Five events
# an attempt and redials with backoff for a bounded time: no genuine n comes near the bound.
MAX_CALL_NO = 999
CALL_SUFFIX = re.compile(r"c([1-9][0-9]{0,2})", re.ASCII)
MAX_ATTEMPT = 999
MAX_CAUSE_LEN = 80
MIN_TIME = 1_000_000_000.0  # 2001: a call event's time before this is a clock not set
_CAUSE = re.compile(r"[ -~]{0,%d}" % MAX_CAUSE_LEN, re.ASCII)  # printable ASCII


class CallEvent(enum.Enum):
    """A step of a call. Values go on the wire and in both sides' stores: never change them."""

    ATTEMPT = "attempt"  # a call is about to be placed
    DIALLING = "dialling"  # the modem took ATD: the set-up runs
    ALERTING = "alerting"  # the centre's side rings
    ANSWERED = "answered"  # the call is up: the operator can listen
    ENDED = "ended"  # over, or never set up; the cause says why


# One letter per event for the MSA1 SMS line (wire/msa1.py).
EVENT_LETTERS: dict[CallEvent, str] = {
    CallEvent.ATTEMPT: "T",
    CallEvent.DIALLING: "D",
    CallEvent.ALERTING: "R",
    CallEvent.ANSWERED: "A",
    CallEvent.ENDED: "E",
}
LETTER_EVENTS = {letter: event for event, letter in EVENT_LETTERS.items()}


def call_no(suffix: str) -> int | None:
    """n of a key's suffix "c<n>" in its one accepted form (None for any other form)."""
    match = CALL_SUFFIX.fullmatch(suffix)
    if match is None:
        return None
    n = int(match[1])
    return n if n <= MAX_CALL_NO else None


def clean_cause(text: str) -> str:
    """A cause fit for the wire: printable ASCII (others become "?"), cut to MAX_CAUSE_LEN. The
    host's side: a modem's words may be anything; the decoders refuse what this never makes."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable[:MAX_CAUSE_LEN]


@dataclass(frozen=True)
class CallPayload:
    """One call event. Checked where it is made: a CallPayload that exists is fit to store."""

    event: CallEvent
    at: float  # Unix seconds, by the host's clock
    attempt: int  # the incident's call attempt, from 1
    cause: str = ""  # why it ended (ENDED), else usually ""

    def __post_init__(self) -> None:
        if not isinstance(self.event, CallEvent):
            raise ValueError("event is not a call event")
        finite(self.at, MIN_TIME, MAX_TIME, "call time")
        if (isinstance(self.attempt, bool) or not isinstance(self.attempt, int)
                or not 1 <= self.attempt <= MAX_ATTEMPT):
            raise ValueError(f"attempt must be an integer from 1 to {MAX_ATTEMPT}")
        if not isinstance(self.cause, str) or not _CAUSE.fullmatch(self.cause):
            raise ValueError(f"cause must be printable ASCII of at most {MAX_CAUSE_LEN}"
                             " characters")

    def as_json(self) -> dict[str, Any]:
        return {"event": self.event.value, "at": self.at, "attempt": self.attempt,
                "cause": self.cause}

    @classmethod
    def from_json(cls, obj: object) -> CallPayload:
        """The inverse of as_json(), every field checked: exactly these four keys, the event
        one of the table's, numbers as numbers. ValueError says what is wrong."""
        if not isinstance(obj, dict) or set(obj) != {"event", "at", "attempt", "cause"}:
            raise ValueError("call must be an object of event, at, attempt and cause")
        event = obj["event"]
        if not isinstance(event, str) or event not in _EVENT_VALUES:
            raise ValueError("call event is unknown")
        at = obj["at"]
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise ValueError("call time must be a number")
        return cls(_EVENT_VALUES[event], float(finite(at, MIN_TIME, MAX_TIME, "call time")),
                   obj["attempt"], obj["cause"])

    def short(self) -> str:
        """The SMS form "<letter><at>/<attempt>": one word, the cause left out (an SMS has
        no room for it: the IP channels carry it)."""
        return f"{EVENT_LETTERS[self.event]}{int(self.at)}/{self.attempt}"

    @classmethod
    def from_short(cls, word: str) -> CallPayload:
        match = _SHORT.fullmatch(word)
        if match is None:
            raise ValueError("malformed call event")
        return cls(LETTER_EVENTS[match[1]], float(int(match[2])), int(match[3]))


_EVENT_VALUES = {event.value: event for event in CallEvent}
_SHORT = re.compile(r"([%s])([1-9][0-9]{9})/([1-9][0-9]{0,2})" % "".join(LETTER_EVENTS),
                    re.ASCII)
