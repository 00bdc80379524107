"""The DC-09 receiver's time window (DC-09 5.5.2: 40 s behind to 20 s ahead of the receiver's
clock) at its edges, in the codec and at the centre's receiver, and a NAK's clock resync
against pysiaalarm, an independent receiver, with the sender's clock skewed."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from pysiaalarm import CommunicationsProtocol, SIAAccount
from pysiaalarm.aio import SIAClient
from pysiaalarm.event import SIAEvent

from msa.centre.dc09 import Dc09Server
from msa.host import dc09_channel
from msa.wire import dc09
from msa.wire import protocol as hp
from msa.wire.dc09 import Dc09Message, Dc09Reply, Token
from msa.host.dc09_channel import Dc09Channel
from msa.wire.message import Message, MessageKind

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x1A2B3C4D
T0 = 1_700_000_000
FRAME = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.ALARM, button_id=BID,
                                        boot_id=3, seq=17, gesture=hp.Gesture.HOLD,
                                        battery_pct=80, age_ms=1200))
MESSAGE = Message(key=Message.event_key(BID, 3, 17), kind=MessageKind.ALARM, button_id=BID,
                  frame=FRAME, created_at=T0)
WAIT_S = 10.0  # how long a test waits for something that must happen
# (seconds the message's timestamp is ahead of the receiver's clock, inside the window?)
EDGES = [(-41, False), (-40, True), (-39, True), (0, True), (19, True), (20, True),
         (21, False)]


@pytest.mark.parametrize("ahead_s, inside", EDGES)
def test_the_window_at_its_edges(ahead_s: int, inside: bool) -> None:
    assert dc09.within_window(dc09.stamp(T0 + ahead_s), T0) is inside


@pytest.mark.parametrize("ahead_s, inside", EDGES)
def test_the_centre_acks_inside_and_naks_outside_with_its_clock(ahead_s: int,
                                                                inside: bool) -> None:
    got: list[Dc09Message] = []

    async def on_message(msg: Dc09Message) -> bool:
        got.append(msg)
        return True

    server = Dc09Server(key_for=dc09.no_keys, on_message=on_message, clock=lambda: T0)
    event = dc09.event_for(MESSAGE, seq=7, receiver="1", line="1", at=T0 + ahead_s)
    reply = dc09.decode(asyncio.run(server.answer(dc09.encode(event))))
    assert isinstance(reply, Dc09Reply)
    assert reply.token is (Token.ACK if inside else Token.NAK)
    assert len(got) == (1 if inside else 0)  # outside the window: nothing reaches the centre
    assert reply.timestamp == dc09.stamp(T0)  # the receiver's own clock, for a resync


@pytest.mark.parametrize("skew_s", [-100.0, 100.0])
def test_a_nak_resyncs_a_skewed_sender_against_pysiaalarm(monkeypatch: pytest.MonkeyPatch,
                                                           skew_s: float) -> None:
    # The sender's clock is off by skew_s; pysiaalarm's is the real one.
    monkeypatch.setattr(dc09_channel, "time",
                        SimpleNamespace(time=lambda: time.time() + skew_s))

    async def run() -> tuple[float, list[SIAEvent], list[str]]:
        events: asyncio.Queue[SIAEvent] = asyncio.Queue()

        async def on_event(event: SIAEvent) -> None:
            events.put_nowait(event)

        client: Any = SIAClient("127.0.0.1", 0, [SIAAccount("1A2B3C4D")], on_event,
                                protocol=CommunicationsProtocol.TCP)
        await client.async_start()
        seen: list[str] = []
        server = client.sia_server
        parse = server.parse_and_check_event

        def spy(data: bytes) -> Any:  # what pysiaalarm answered, line by line
            event = parse(data)
            seen.append("none" if event is None else str(getattr(event.response, "name", "")))
            return event

        server.parse_and_check_event = spy
        port = client.server.sockets[0].getsockname()[1]
        channel = Dc09Channel(host="127.0.0.1", port=port, key=None, account=None,
                              receiver="1", line="1", transport="tcp", deadline_s=WAIT_S)
        try:
            receipt = await channel.send(MESSAGE)
            assert receipt.key == MESSAGE.key  # ACKed after the resync
            got = [await asyncio.wait_for(events.get(), WAIT_S)]
            return channel.clock_offset_s, got, seen
        finally:
            await channel.close()
            await client.async_stop()

    offset, got, seen = asyncio.run(run())
    assert seen == ["NAK", "ACK"]  # refused for the skewed time, accepted once resynced
    assert abs(offset + skew_s) <= 2  # the receiver's clock minus ours, to its 1 s resolution
    assert got[0].code == "PA" and got[0].account == "1A2B3C4D"
