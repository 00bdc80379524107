"""The SMS channel: the "ghost call" fallback that tells the centre a button was pressed when
the IP channel did not acknowledge in time or there is no data connection. Each message goes
as two SMS through a GSM modem: an ETSI AML body with the location, then an MSA1 line the
centre verifies and dedupes on.

The MSA1 SMS, one line of GSM 7-bit text, at most 100 characters::

    MSA1 <kind> <key> <frame>

- `MSA1`: format and version.
- `<kind>`: one letter, A alarm, T test, L location update, B low battery.
- `<key>`: the message's idempotency key as the outbox holds it ("<button_id hex8>-<boot_id>-
  <seq>", a location update adding "/<update_no>"), which the centre dedupes on.
- `<frame>`: the button's authenticated 26-byte frame, 52 lowercase hex digits; the centre
  checks its tag with the button's key, so a host cannot forge an alarm by SMS either.

Example: `MSA1 A 0badc0de-3-17 0103…` (the key's button, boot and sequence number are also
inside the frame; the centre checks they agree). The centre pairs it with the AML SMS that
came just before from the same sender.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from . import aml
from .dispatch import Message, MessageKind, Receipt
from .errors import AmlError, ChannelError, ModemError
from .modem import GsmModem, Timeouts, mask
from .protocol import FRAME_LEN

log = logging.getLogger(__name__)

MSA1_TAG = "MSA1"
KIND_LETTERS: dict[MessageKind, str] = {
    MessageKind.ALARM: "A",
    MessageKind.TEST: "T",
    MessageKind.LOCATION: "L",
    MessageKind.LOW_BATTERY: "B",
}
_LETTER_KINDS = {letter: kind for kind, letter in KIND_LETTERS.items()}
# What an outbox key looks like; anything else would not survive the SMS or the centre's parse.
_KEY = re.compile(r"[0-9a-f]{8}-[0-9]{1,5}-[0-9]{1,10}(/[1-9][0-9]{0,5})?", re.ASCII)


@dataclass(frozen=True)
class Msa1:
    """A parsed MSA1 SMS."""

    kind: MessageKind
    key: str
    frame: bytes


def render_msa1(kind: MessageKind, key: str, frame: bytes) -> str:
    """The MSA1 line for a message; ValueError for a kind SMS does not carry or a bad field."""
    if kind not in KIND_LETTERS:
        raise ValueError(f"{kind.value} messages do not go by SMS")
    if not _KEY.fullmatch(key):
        raise ValueError("the key is not an outbox key")
    if len(frame) != FRAME_LEN:
        raise ValueError(f"a frame is {FRAME_LEN} bytes, got {len(frame)}")
    return f"{MSA1_TAG} {KIND_LETTERS[kind]} {key} {frame.hex()}"


def parse_msa1(text: str) -> Msa1:
    """Parses an MSA1 SMS (the centre's side); ValueError says what is wrong."""
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != MSA1_TAG:
        raise ValueError(f"not an {MSA1_TAG} message")
    _, letter, key, frame_hex = parts
    if letter not in _LETTER_KINDS:
        raise ValueError(f"unknown kind letter {letter!r}")
    if not _KEY.fullmatch(key):
        raise ValueError("malformed key")
    if not re.fullmatch(r"[0-9a-f]{%d}" % (2 * FRAME_LEN), frame_hex):
        raise ValueError(f"the frame must be {2 * FRAME_LEN} lowercase hex digits")
    return Msa1(kind=_LETTER_KINDS[letter], key=key, frame=bytes.fromhex(frame_hex))


class SmsChannel:
    """A Channel to the centre's SMS number through a GSM modem.

    There is no end-to-end acknowledgement by SMS: send() returns once the modem reported
    "+CMGS: <mr>" for both SMS, i.e. the network's SMS centre took them. That is the
    acknowledgement this channel gives; the Receipt's reference is the two message references
    "<aml mr>/<msa1 mr>". A failure after the AML SMS went leaves it sent; sending again
    repeats both, which the centre dedupes on the MSA1 key.
    """

    def __init__(self, *, url: str, number: str, baudrate: int = 115200,
                 deadline_s: float = 30.0, identity: aml.Identity | None = None,
                 timeouts: Timeouts | None = None, name: str = "sms") -> None:
        self.name = name
        self.deadline_s = deadline_s
        self.number = number
        self.identity = identity or aml.Identity()
        self.modem = GsmModem(url, baudrate=baudrate, timeouts=timeouts)
        # One message's two SMS go back to back: the centre pairs an MSA1 with the AML before.
        self._pair = asyncio.Lock()

    def accepts(self, kind: MessageKind) -> bool:
        # HEARTBEAT and BOOT never: each SMS costs money and seconds of the modem's time.
        return kind in KIND_LETTERS

    async def send(self, message: Message) -> Receipt:
        if not self.accepts(message.kind):
            raise ChannelError(self.name, f"{message.kind.value} messages do not go by SMS",
                               retryable=False)
        deadline = time.monotonic() + self.deadline_s
        try:
            msa1 = render_msa1(message.kind, message.key, message.frame)
            position = aml.build(message.fix, identity=self.identity,
                                 now=message.pressed_at or message.created_at)
        except (ValueError, AmlError) as exc:
            raise ChannelError(self.name, f"message {message.key}: {exc}",
                               retryable=False) from None
        references = []
        async with self._pair:
            for text in (position, msa1):
                try:
                    references.append(await self.modem.send_sms(self.number, text,
                                                                deadline=deadline))
                except ModemError as exc:
                    raise ChannelError(self.name, str(exc), retryable=exc.retryable) from None
        log.info("message %s sent by SMS to %s", message.key, mask(self.number))
        return Receipt(channel=self.name, key=message.key, acked_at=time.time(),
                       reference="/".join(map(str, references)))

    async def close(self) -> None:
        await self.modem.close()
