"""The reference centre's SIA DC-09 receiver: takes SIA-DCS events over TCP and UDP, checks and
decrypts them with the contract's codec (msa.wire.dc09), answers ACK / NAK / DUH, and hands each
accepted event to the centre.

Limits, so that no sender can freeze it: a TCP connection must bring its first message within
FIRST_MESSAGE_S and then speak at least every IDLE_S; a message once begun must end within
READ_S; at most MAX_PER_PEER connections per address and MAX_CONNECTIONS in all (more are
closed at once); at most MAX_DATAGRAMS datagrams in hand. A datagram that is not a readable
DC-09 message gets no answer at all (an answer to a forged source address would make this
receiver a reflector). Repeated log lines are rate-limited."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from msa.wire.dc09 import Dc09Message, Dc09Reply, Token, decode, encode, stamp, within_window
from msa.wire.errors import Dc09Error

from .errors import CentreError
from .ratelog import Throttle

_LOG = logging.getLogger(__name__)
_throttled = Throttle(_LOG)
_MAX_MESSAGE = 4096  # the length field allows 4095 bytes of body
FIRST_MESSAGE_S = 10.0  # a new connection that says nothing for this long is closed
IDLE_S = 120.0  # a connection that brought a message may wait this long for the next
READ_S = 10.0  # from a message's first byte to its <CR>
MAX_CONNECTIONS = 512
MAX_PER_PEER = 16  # a host keeps one; a few more cover reconnects behind one NAT address
MAX_DATAGRAMS = 1024  # UDP messages being answered at once; more are dropped (senders retry)
# Broken rules that no retry cures get DUH ("understood, will not process"): an unsupported
# message or event, a key that does not fit. Everything else may be line damage or a sender's
# clock, so it gets NAK, which carries our clock and invites a retry.
_DUH_REASONS = frozenset({"token", "code", "no-key", "key", "pad", "decrypt"})


class _Datagrams(asyncio.DatagramProtocol):
    """One DC-09 message per datagram, answered to its sender."""

    def __init__(self, server: Dc09Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram transport, though Python 3.11's does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.server.busy >= MAX_DATAGRAMS:
            _throttled.warning("udp-full", "DC-09: %d datagrams in hand, one dropped",
                               MAX_DATAGRAMS)
            return
        self.server.spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: Any) -> None:
        answer = await self.server.answer_datagram(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


class Dc09Server:
    """Listens on `host`:`port` for TCP and on the same port number for UDP (port 0: any free
    one; `port` then tells which). `key_for(account)` gives an account's AES key, None for a
    plain account (it may raise CentreError: the message is NAKed); `on_message` returns False
    to refuse an event (DUH)."""

    def __init__(self, *, key_for: Callable[[str], bytes | None],
                 on_message: Callable[[Dc09Message], Awaitable[bool]],
                 host: str = "127.0.0.1", port: int = 0, receiver: str = "0", line: str = "0",
                 clock: Callable[[], float] = time.time) -> None:
        self._key_for, self._on_message = key_for, on_message
        self._host, self.port = host, port
        self._receiver, self._line, self._clock = receiver, line, clock
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._peers: dict[str, int] = {}  # address -> open TCP connections
        self.refused_connections = 0

    async def start(self) -> None:
        self._tcp = await asyncio.start_server(self._serve, self._host, self.port,
                                               limit=_MAX_MESSAGE)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(self._host, self.port))

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def busy(self) -> int:
        """Messages being answered now (datagrams in hand)."""
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, raw: bytes) -> bytes:
        """The reply to one framed message (TCP: every message gets one); accepted events go
        to on_message first."""
        reply = await self._answer(raw, answer_garbage=True)
        assert reply is not None  # with answer_garbage, every path replies
        return reply

    async def answer_datagram(self, raw: bytes) -> bytes | None:
        """As answer(), but a datagram that is not a readable DC-09 message gets None: no
        reply (an answer to a forged source address would reflect traffic at a victim)."""
        return await self._answer(raw, answer_garbage=False)

    async def _answer(self, raw: bytes, answer_garbage: bool) -> bytes | None:
        try:
            return await self._answer_keyed(raw, answer_garbage)
        except CentreError as exc:  # key_for could not read the keys: NAK, the sender retries
            _throttled.warning("keys", "DC-09 message not answered with its key: %s", exc)
            return self._reply(Token.NAK, None, self._clock())

    async def _answer_keyed(self, raw: bytes, answer_garbage: bool) -> bytes | None:
        now = self._clock()
        try:
            message = decode(raw, self._key_for)
        except Dc09Error as exc:
            _throttled.warning(exc.reason, "DC-09 message rejected (%s): %s", exc.reason,
                               exc.detail[:120])
            if not answer_garbage:
                return None
            return self._reply(Token.DUH if exc.reason in _DUH_REASONS else Token.NAK, None, now)
        if not isinstance(message, Dc09Message):
            _throttled.warning("reply", "DC-09 %s sent to a receiver", message.token.value)
            return self._reply(Token.DUH, None, now) if answer_garbage else None
        if self._key_for(message.account) is not None and not message.encrypted:
            # The account is keyed: a plain message is a downgrade or a stranger.
            _throttled.warning("plain", "DC-09 account %s: plain message for an encrypted"
                               " account", message.account)
            return self._reply(Token.DUH, message, now)
        if message.timestamp is not None and not within_window(message.timestamp, now):
            _throttled.log(logging.INFO, "window", "DC-09 account %s: timestamp %s outside the"
                           " window, NAK with ours", message.account,
                           message.timestamp.isoformat())
            return self._reply(Token.NAK, message, now)
        try:
            accepted = await self._on_message(message)
        except CentreError as exc:  # the centre could not store it: NAK, the sender retries
            _throttled.warning("store", "DC-09 account %s: not stored: %s", message.account, exc)
            return self._reply(Token.NAK, message, now)
        except Exception:  # a fault of ours, not the sender's: NAK so that it tries again
            _LOG.exception("DC-09 account %s: on_message failed", message.account)
            return self._reply(Token.NAK, message, now)
        return self._reply(Token.ACK if accepted else Token.DUH, message, now)

    def _reply(self, token: Token, message: Dc09Message | None, now: float) -> bytes:
        nak = token is Token.NAK
        reply = Dc09Reply(
            token=token, seq=0 if nak or message is None else message.seq,
            account="" if nak or message is None else message.account,
            receiver=self._receiver if message is None else message.receiver,
            line=self._line if message is None else message.line, timestamp=stamp(now))
        key = self._key_for(message.account) if message and message.encrypted else None
        return encode(reply, key)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "?"
        if (len(self._writers) >= MAX_CONNECTIONS
                or self._peers.get(peer, 0) >= MAX_PER_PEER):
            self.refused_connections += 1
            _throttled.warning("conn-cap", "DC-09: connection from %s refused (%d open, %d"
                               " from it)", peer, len(self._writers), self._peers.get(peer, 0))
            writer.close()
            return
        self._writers.add(writer)
        self._peers[peer] = self._peers.get(peer, 0) + 1
        idle_s = FIRST_MESSAGE_S
        try:
            while True:
                first = await asyncio.wait_for(reader.readexactly(1), idle_s)
                raw = first + await asyncio.wait_for(reader.readuntil(b"\r"), READ_S)
                start = raw.rfind(b"\n")  # a message starts at its LF; drop noise before it
                writer.write(await self.answer(raw[start:] if start >= 0 else raw))
                await writer.drain()
                idle_s = IDLE_S
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # the sender went away, went quiet, or sent no DC-09: its connection ends
        finally:
            self._writers.discard(writer)
            left = self._peers.pop(peer, 1) - 1
            if left:
                self._peers[peer] = left
            writer.close()
