"""The DC-09 dispatch channel: delivers each outbox message as one SIA-DCS event to an alarm
receiving centre over TCP (one persistent connection) or UDP, and returns once it is ACKed;
with several receivers of one centre, to the first of them that ACKs within the deadline."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from msa.wire.dc09 import (CARRIED_KINDS, KEY_LENGTHS, Dc09Message, Dc09Reply, Token, check_route, decode, encode, event_for, next_seq)
from msa.wire.message import Message, MessageKind
from .dispatch import Receipt
from .errors import ChannelError, ConfigError
from .failover import Failover
from msa.wire.errors import Dc09Error

_LOG = logging.getLogger(__name__)
_MAX_REPLY = 4096  # a reply is a few dozen bytes; more is not a DC-09 receiver


class _Datagrams(asyncio.DatagramProtocol):
    """Queues what arrives on the UDP socket (replies, or the socket's errors) for send()."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.inbox.put_nowait(exc if isinstance(exc, OSError) else OSError(str(exc)))


class Dc09Channel:
    """SIA DC-09 to one receiver. One message is in flight at a time; a NAK that carries the
    receiver's clock resyncs ours and the message goes once more; DUH is final (on an encrypted
channel only an encrypted DUH: a plain one, like any NAK, is retryable); silence until
    `deadline_s` is a retryable ChannelError. UDP retransmits every `retry_s` within the
    deadline; TCP reconnects once when the kept connection turns out dead."""

    def __init__(self, *, host: str, port: int, key: bytes | None, account: str | None,
                 receiver: str, line: str, transport: Literal["tcp", "udp"],
                 deadline_s: float, retry_s: float = 2.0, name: str = "dc09") -> None:
        if key is not None and len(key) not in KEY_LENGTHS:
            raise ConfigError("dc09.key", "16, 24 or 32 bytes (AES-128/192/256)")
        if transport not in ("tcp", "udp"):
            raise ConfigError("dc09.transport", '"tcp" or "udp"')
        if not (deadline_s > 0 and retry_s > 0):
            raise ConfigError("dc09.deadline_s", "a positive number of seconds")
        try:
            check_route(1, account or "000", receiver, line, event=True)
        except ValueError as exc:
            raise ConfigError("dc09.account/receiver/line", str(exc)) from None
        self.name = name
        self.deadline_s = deadline_s
        self._host, self._port, self._transport = host, port, transport
        self._key = key
        self._account, self._receiver, self._line = account, receiver, line
        self._retry_s = retry_s
        self._seq = 0
        self._offset = 0.0  # the receiver's clock minus ours, as its last NAK told us
        self._lock = asyncio.Lock()
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._udp: tuple[asyncio.DatagramTransport, _Datagrams] | None = None

    @property
    def clock_offset_s(self) -> float:
        """How far the receiver's clock is ahead of ours (learnt from NAKs)."""
        return self._offset

    def accepts(self, kind: MessageKind) -> bool:
        return kind in CARRIED_KINDS  # a SIA code for every kind but CALL (dc09.EVENT_CODES)

    async def send(self, message: Message) -> Receipt:
        try:
            async with asyncio.timeout(self.deadline_s):
                async with self._lock:
                    self._seq = next_seq(self._seq)
                    await self._deliver(message, self._seq)
        except TimeoutError:
            self._drop_stream()  # a late answer on it would be taken for the next message's
            raise ChannelError(self.name, f"{message.key}: no answer from "
                               f"{self._host}:{self._port} within {self.deadline_s:g} s") from None
        return Receipt(channel=self.name, key=message.key, acked_at=time.time(),
                       endpoint=self.endpoint)

    @property
    def endpoint(self) -> str:
        """The receiver as host:port."""
        return f"{self._host}:{self._port}"

    async def close(self) -> None:
        self._drop_stream()
        if self._udp is not None:
            self._udp[0].close()
            self._udp = None

    async def _deliver(self, message: Message, seq: int) -> None:
        resynced = False
        while True:
            try:
                event = event_for(message, seq=seq, account=self._account,
                                  receiver=self._receiver, line=self._line,
                                  at=time.time() + self._offset)
                raw = encode(event, self._key)
            except (ValueError, Dc09Error) as exc:
                raise ChannelError(self.name, f"{message.key}: {exc}", retryable=False) from None
            reply = await (self._tcp(raw, event) if self._transport == "tcp"
                           else self._udp_exchange(raw, event))
            if reply.token is Token.ACK:
                return
            if reply.token is Token.DUH:
                if self._key is not None and not reply.encrypted:
                    # Anyone on the path can write a plain DUH; only the receiver can encrypt
                    # one. Taking it as final would let a forger silence this channel.
                    raise ChannelError(self.name, f"{message.key}: plain DUH on an encrypted"
                                       " channel, not taken as a refusal")
                raise ChannelError(self.name, f"{message.key}: refused by the receiver (DUH)",
                                   retryable=False)
            if resynced or reply.timestamp is None:
                raise ChannelError(self.name, f"{message.key}: NAK"
                                   f"{' after a clock resync' if resynced else ''}")
            self._offset = reply.timestamp.timestamp() - time.time()
            resynced = True
            _LOG.info("%s: NAK, receiver clock %+.0f s from ours; sending %s again",
                      self.name, self._offset, message.key)

    def _reply(self, raw: bytes, event: Dc09Message) -> Dc09Reply | None:
        """The reply in `raw` if it answers `event`; None for a late answer to an earlier one."""
        try:
            reply = decode(raw, lambda _account: self._key)
        except Dc09Error as exc:
            raise ChannelError(self.name, f"unreadable answer ({exc.reason}: {exc.detail})"
                               ) from None
        if not isinstance(reply, Dc09Reply):
            raise ChannelError(self.name, "the receiver answered with an event, not a reply")
        if reply.token is not Token.NAK and (reply.seq, reply.account) != (event.seq,
                                                                            event.account):
            return None
        if reply.token is Token.ACK and self._key is not None and not reply.encrypted:
            # Anyone on the path can write a plain ACK; only the receiver can encrypt one.
            raise ChannelError(self.name, "plain ACK to an encrypted message")
        return reply

    async def _tcp(self, raw: bytes, event: Dc09Message) -> Dc09Reply:
        while True:
            kept = self._stream is not None
            try:
                return await self._tcp_once(raw, event)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                self._drop_stream()
                if not kept:  # a fresh connection failed: the centre is down or unreachable
                    raise ChannelError(self.name, f"TCP {self._host}:{self._port}: "
                                       f"{type(exc).__name__}: {exc}") from None
            except BaseException:
                self._drop_stream()
                raise

    async def _tcp_once(self, raw: bytes, event: Dc09Message) -> Dc09Reply:
        if self._stream is None:
            self._stream = await asyncio.open_connection(self._host, self._port,
                                                         limit=_MAX_REPLY)
        reader, writer = self._stream
        writer.write(raw)
        await writer.drain()
        while True:
            answer = await reader.readuntil(b"\r")
            start = answer.rfind(b"\n")  # a reply starts at its LF; anything before is noise
            reply = self._reply(answer[start:] if start >= 0 else answer, event)
            if reply is not None:
                return reply

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None

    async def _udp_exchange(self, raw: bytes, event: Dc09Message) -> Dc09Reply:
        if self._udp is None:
            try:
                transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                    _Datagrams, remote_addr=(self._host, self._port))
            except OSError as exc:
                raise ChannelError(self.name, f"UDP {self._host}:{self._port}: {exc}") from None
            self._udp = (transport, protocol)
        transport, protocol = self._udp
        while not protocol.inbox.empty():  # leftovers belong to messages already settled
            protocol.inbox.get_nowait()
        while True:  # datagrams get lost: send again every retry_s until send()'s deadline
            transport.sendto(raw)
            try:
                async with asyncio.timeout(self._retry_s):
                    while True:
                        got = await protocol.inbox.get()
                        if isinstance(got, OSError):
                            raise ChannelError(self.name, f"UDP {self._host}:{self._port}: {got}")
                        reply = self._reply(got, event)
                        if reply is not None:
                            return reply
            except TimeoutError:
                _LOG.debug("%s: no answer within %g s, sending again", self.name, self._retry_s)


class Dc09Receivers:
    """SIA DC-09 to several receivers of one centre (they share its records, so an event sent
    to two is counted once). Attempts are staggered as for HTTPS (host/failover.py), in
    parallel, not one after the other: a receiver that has not answered after deadline_s / n,
    or failed at once (refused connection, NAK), gets the next one beside it, and the first
    ACK wins; a DUH is final. Each receiver keeps its own connection, sequence and clock."""

    def __init__(self, *, receivers: Sequence[tuple[str, int]], deadline_s: float,
                 name: str = "dc09", **common: Any) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self._each = {f"{host}:{port}": Dc09Channel(host=host, port=port, deadline_s=deadline_s,
                                                    name=name, **common)
                      for host, port in receivers}
        self._receivers = Failover(name, [f"{h}:{p}" for h, p in receivers], deadline_s)

    @property
    def receivers(self) -> tuple[str, ...]:
        """host:port of each receiver, in the order the next message tries them."""
        return self._receivers.order

    def accepts(self, kind: MessageKind) -> bool:
        return kind in CARRIED_KINDS

    async def send(self, message: Message) -> Receipt:
        _receiver, receipt = await self._receivers.first(
            lambda receiver: self._each[receiver].send(message),
            final=lambda error: not error.retryable)
        return receipt

    async def close(self) -> None:
        for channel in self._each.values():
            await channel.close()
