"""The MSA1 SMS form: one line carrying a message's kind, its key and the button's frame,
for the SMS channel and the centre's inbox.

The MSA1 SMS, one line of GSM 7-bit text, at most 100 characters::

    MSA1 <kind> <key> <frame>

- `MSA1`: format and version.
- `<kind>`: one letter, A alarm, T test, L location update, B low battery, C call event.
- `<key>`: the message's idempotency key as the outbox holds it ("<button_id hex8>-<boot_id>-
  <seq>", a location update adding "/<update_no>", a call event "/c<n>"), which the centre
  dedupes on.
- `<frame>`: the button's authenticated 26-byte frame, 52 lowercase hex digits; the centre
  checks its tag with the button's key, so a host cannot forge an alarm by SMS either.
- A call event (C) adds a fifth word, `<letter><at>/<attempt>` (wire/call.py's short form:
  the event's letter, its Unix time in whole seconds, the attempt), and goes alone, with no
  AML SMS before it; its cause is left out (the IP channels carry it).

Example: `MSA1 A 0badc0de-3-17 0103…` (the key's button, boot and sequence number are also
inside the frame; the centre checks they agree). The centre pairs it with the AML SMS that
came just before from the same sender.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .call import CALL_SUFFIX, CallPayload
from .message import EVENT_KEY, UPDATE_SUFFIX, MessageKind
from .protocol import CENTRE_FRAME_LEN

MSA1_TAG = "MSA1"
KIND_LETTERS: dict[MessageKind, str] = {
    MessageKind.ALARM: "A",
    MessageKind.TEST: "T",
    MessageKind.LOCATION: "L",
    MessageKind.LOW_BATTERY: "B",
    MessageKind.CALL: "C",
}
_LETTER_KINDS = {letter: kind for kind, letter in KIND_LETTERS.items()}
# What an outbox key looks like; anything else would not survive the SMS or the centre's parse.
_KEY = re.compile(rf"{EVENT_KEY.pattern}(/{UPDATE_SUFFIX.pattern}|/{CALL_SUFFIX.pattern})?",
                  re.ASCII)


@dataclass(frozen=True)
class Msa1:
    """A parsed MSA1 SMS."""

    kind: MessageKind
    key: str
    frame: bytes
    call: CallPayload | None = None  # a call event's (C), else None


def render_msa1(kind: MessageKind, key: str, frame: bytes,
                call: CallPayload | None = None) -> str:
    """The MSA1 line for a message; ValueError for a kind SMS does not carry or a bad field."""
    if (kind is MessageKind.CALL) != (call is not None):
        raise ValueError("a call event, and only one, carries its call")
    if kind not in KIND_LETTERS:
        raise ValueError(f"{kind.value} messages do not go by SMS")
    if not _KEY.fullmatch(key):
        raise ValueError("the key is not an outbox key")
    if len(frame) != CENTRE_FRAME_LEN:
        raise ValueError(f"a frame is {CENTRE_FRAME_LEN} bytes, got {len(frame)}")
    line = f"{MSA1_TAG} {KIND_LETTERS[kind]} {key} {frame.hex()}"
    return line if call is None else f"{line} {call.short()}"


def parse_msa1(text: str) -> Msa1:
    """Parses an MSA1 SMS (the centre's side); ValueError says what is wrong."""
    parts = text.split(" ")
    # One space between words, and as many words as the kind has: 5 for a call event, else 4.
    if parts[0] != MSA1_TAG or len(parts) < 4 or "" in parts:
        raise ValueError(f"not an {MSA1_TAG} message")
    letter, key, frame_hex = parts[1:4]
    if letter not in _LETTER_KINDS:
        raise ValueError(f"unknown kind letter {letter!r}")
    kind = _LETTER_KINDS[letter]
    if len(parts) != (5 if kind is MessageKind.CALL else 4):
        raise ValueError(f"not an {MSA1_TAG} message")
    if not _KEY.fullmatch(key):
        raise ValueError("malformed key")
    if not re.fullmatch(r"[0-9a-f]{%d}" % (2 * CENTRE_FRAME_LEN), frame_hex):
        raise ValueError(f"the frame must be {2 * CENTRE_FRAME_LEN} lowercase hex digits")
    call = CallPayload.from_short(parts[4]) if len(parts) == 5 else None
    return Msa1(kind=kind, key=key, frame=bytes.fromhex(frame_hex), call=call)
