"""The SMS channel: the "ghost call" fallback that tells the centre a button was pressed when
the IP channel did not acknowledge in time or there is no data connection. Each message goes
as two SMS through a GSM modem: an ETSI AML body with the location, then an MSA1 line the
centre verifies and dedupes on (a call event goes as its MSA1 line alone).

The MSA1 form is the wire contract's (msa.wire.msa1).
"""
from __future__ import annotations

import asyncio
import logging
import time

from msa.wire import aml
from msa.wire.errors import AmlError
from msa.wire.message import Message, MessageKind
from msa.wire.msa1 import KIND_LETTERS, render_msa1

from .dispatch import Receipt
from .errors import ChannelError, ModemError
from .modem import GsmModem, Timeouts, mask

log = logging.getLogger(__name__)


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
            msa1 = render_msa1(message.kind, message.key, message.frame, message.call)
            # A call event is one short line: it says nothing of the position.
            texts = [msa1] if message.kind is MessageKind.CALL else [aml.build(
                message.fix, identity=self.identity,
                now=message.pressed_at or message.created_at), msa1]
        except (ValueError, AmlError) as exc:
            raise ChannelError(self.name, f"message {message.key}: {exc}",
                               retryable=False) from None
        references = []
        async with self._pair:
            for text in texts:
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
