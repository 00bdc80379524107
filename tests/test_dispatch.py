"""Dispatch from verified events to the reference centre over HTTPS: the durable outbox, the
channel's TLS and refusals, exactly-once counting at the centre across a host crash, and
tracking every 10 s for 2 h on a simulated clock."""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from msa.centre.registry import Case
from msa.centre.server import RunningCentre, start_centre
from msa.centre.tls import make_tls
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind
from msa.host.dispatch import Receipt
from msa.host.dispatcher import Dispatcher, Policy
from msa.host.errors import ChannelError
from msa.host.events import Via, event_for
from msa.host.https import HttpsChannel
from msa.host.outbox import Outbox

from backends import State, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401

T = TypeVar("T")
KEY = secrets.token_bytes(32)
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0A0B0C0D


class StillSource:
    """A location source that always knows the same place (a home gateway's)."""

    name = "still"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def best(self) -> Fix | None:
        return Fix(51.0543, 3.7174, 8.0, self._clock(), FixQuality.FIXED, "fixed")


class VirtualClock:
    """Simulated time: every sleep jumps the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def run(body: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), timeout)
    return asyncio.run(main())


async def centre_at(state: State) -> RunningCentre:
    running = await start_centre(state.config())
    running.centre.registry.put_case(Case("C-1", "V. Victim", "+32470000001", "S. Suspect",
                                          measures=("no contact",), weapons=True))
    running.centre.registry.register(BID, CENTRE_KEY, "C-1")
    return running


def button_frame(kind: hp.Kind, seq: int, boot: int = 1) -> bytes:
    """What the button sends the host (34 bytes)."""
    return hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID, boot_id=boot, seq=seq,
                           gesture=hp.Gesture.HOLD, battery_pct=77, age_ms=300)


def frame(kind: hp.Kind, seq: int, boot: int = 1) -> bytes:
    """What the host passes on to the centre (26 bytes)."""
    return hp.centre_frame(button_frame(kind, seq, boot))


def alarm_message(seq: int, raw: bytes | None = None) -> Message:
    raw = raw or frame(hp.Kind.ALARM, seq)
    key = Message.event_key(BID, 1, seq)
    return Message(key=key, kind=MessageKind.ALARM, button_id=BID, frame=raw,
                   created_at=time.time(), incident=key)


def channel(c: RunningCentre, **kw: Any) -> HttpsChannel:
    # A host of the button's case, with credentials of its own (as `msa case issue`).
    token = c.issue_host("C-1", f"host-{secrets.token_hex(4)}").token
    args: dict[str, Any] = {"base_url": c.api_url, "token": token,
                            "ca_file": str(c.tls.ca_cert)}
    args.update(kw)
    return HttpsChannel(**args)


def test_alarm_is_created_once_with_case_and_location(state: State) -> None:
    async def body() -> tuple[Receipt, Receipt, list[dict[str, Any]]]:
        c = await centre_at(state)
        ch = channel(c)
        try:
            m = alarm_message(5)
            fix = StillSource().best()
            m = Message(**{**m.__dict__, "fix": fix})
            first = await ch.send(m)
            again = await ch.send(m)  # the host retried: counted once
            return first, again, c.centre.incidents()
        finally:
            await ch.close()
            await c.stop()
    first, again, incidents = run(body)
    assert first.reference == again.reference == "INC-000001" and not first.closed
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc["case"] == {"case_ref": "C-1", "victim": "V. Victim", "victim_phone":
                           "+32470000001", "suspect": "S. Suspect", "suspect_notes": "",
                           "measures": ["no contact"], "weapons": True}
    assert inc["track"][0]["lat"] == pytest.approx(51.0543)  # type: ignore[index]
    assert inc["test"] is False and inc["battery_pct"] == 77


@pytest.mark.parametrize("case, retryable, words", [
    ("forged", False, "rejected: frame tag"),
    ("wrong_token", False, "401"),
    ("untrusted_ca", False, "TLS certificate not trusted"),
    ("nobody_listening", True, "Cannot connect"),
])
def test_refusals_and_failures_are_clear(tmp_path: Path, state: State, case: str,
                                         retryable: bool, words: str) -> None:
    async def body() -> ChannelError:
        c = await centre_at(state)
        raw = bytearray(frame(hp.Kind.ALARM, 9))
        kw: dict[str, Any] = {}
        if case == "forged":
            raw[-1] ^= 1
        elif case == "wrong_token":
            kw["token"] = "guess"
        elif case == "untrusted_ca":
            kw["ca_file"] = str(make_tls(tmp_path / "other").ca_cert)
        ch = channel(c, **kw)
        if case == "nobody_listening":
            await c.stop()
        try:
            with pytest.raises(ChannelError) as err:
                await ch.send(alarm_message(9, bytes(raw)))
            return err.value
        finally:
            await ch.close()
            if case != "nobody_listening":
                assert c.centre.count() == 0
                await c.stop()
    err = run(body)
    assert err.retryable is retryable and words in str(err), str(err)


def test_host_killed_before_delivery_delivers_on_restart_exactly_once(
        tmp_path: Path, state: State) -> None:
    async def body() -> tuple[int, int]:
        c = await centre_at(state)
        raw = button_frame(hp.Kind.ALARM, 12)
        event = event_for(hp.verify(raw, KEYS), Via.GATT, time.time())
        # First life: the channel points nowhere, so the alarm stays in the outbox; the
        # process then dies (nothing is closed cleanly).
        dead = Dispatcher(Outbox(tmp_path / "outbox.db"),
                          [HttpsChannel(base_url="https://127.0.0.1:9/v1", token="t0ken-of-the-test-centre",
                                        deadline_s=0.5)], StillSource())
        await dead.submit(event)
        await dead.submit(event)  # the button's retransmission before the crash: deduped
        # Second life: a new dispatcher on the same outbox file, a working channel.
        delivered = asyncio.Event()

        async def seen(_m: Message, _r: Receipt) -> None:
            delivered.set()
        ch = channel(c)
        alive = Dispatcher(Outbox(tmp_path / "outbox.db"), [ch], StillSource(),
                           observer=seen)
        task = asyncio.create_task(alive.run())
        await asyncio.wait_for(delivered.wait(), 10)
        await alive.stop()
        await task
        await ch.close()
        counted = c.centre.count(MessageKind.ALARM)
        left = alive.outbox.undelivered()
        await c.stop()
        return counted, left
    counted, left = run(body)
    assert counted == 1 and left == 0


def test_tracking_every_10_s_for_2_h_then_stops(tmp_path: Path, state: State) -> None:
    async def body() -> tuple[list[dict[str, Any]], float]:
        c = await centre_at(state)
        clock = VirtualClock()
        ch = channel(c, deadline_s=10)
        d = Dispatcher(Outbox(tmp_path / "outbox.db"), [ch], StillSource(clock.time),
                       Policy(), clock)
        raw = button_frame(hp.Kind.ALARM, 20)
        await d.submit(event_for(hp.verify(raw, KEYS), Via.GATT, clock.time()))
        opened = clock.time()
        task = asyncio.create_task(d.run())
        while clock.time() < opened + 7300 or d.outbox.undelivered():
            await asyncio.sleep(0.001)
        await d.stop()
        await task
        await ch.close()
        incidents = c.centre.incidents()
        await c.stop()
        return incidents, opened
    incidents, opened = run(body, timeout=120)
    track = incidents[0]["track"]
    times = [p["fix_time"] for p in track]
    gaps = {round(b - a, 6) for a, b in zip(times, times[1:])}
    assert gaps == {10.0}
    assert times[-1] - opened <= 7200 and times[-1] - opened > 7180
    assert len(track) == 720  # the alarm's own fix, then one every 10 s for 2 h


def test_host_killed_after_the_centre_accepted_but_before_the_receipt_counts_once(
        tmp_path: Path, state: State) -> None:
    async def body() -> tuple[int, str, int]:
        c = await centre_at(state)
        outbox = Outbox(tmp_path / "outbox.db")
        raw = frame(hp.Kind.ALARM, 30)
        m = alarm_message(30, raw)
        outbox.put(m)
        ch = channel(c)
        first = await ch.send(m)  # the centre committed it ...
        await ch.close()
        outbox.close()  # ... and the host died before committing the receipt.
        delivered: asyncio.Queue[Receipt] = asyncio.Queue()

        async def seen(_m: Message, r: Receipt) -> None:
            delivered.put_nowait(r)
        ch2 = channel(c)
        d = Dispatcher(Outbox(tmp_path / "outbox.db"), [ch2], StillSource(), observer=seen)
        task = asyncio.create_task(d.run())
        again = await asyncio.wait_for(delivered.get(), 10)
        await d.stop()
        await task
        await ch2.close()
        counted = c.centre.count(MessageKind.ALARM)
        incidents = len(c.centre.incidents())
        await c.stop()
        assert again.reference == first.reference
        return counted, again.channel, incidents
    counted, via, incidents = run(body)
    assert counted == 1 and incidents == 1 and via == "https"


def test_centre_warns_of_silent_buttons_and_low_batteries(state: State) -> None:
    from msa.centre.core import Centre, Inbound, Verdict
    from msa.centre.registry import Registry

    now = [1_800_000_000.0]
    reg = Registry(state.registry)
    reg.put_case(Case("C-9", "V"))
    reg.register(BID, CENTRE_KEY, "C-9")
    centre = Centre(state.records, reg, clock=lambda: now[0])
    assert centre.warnings() == [{"button_id": BID, "case_ref": "C-9", "warning": "silent",
                                  "last_seen": None}]
    hb = frame(hp.Kind.HEARTBEAT, 40)
    got = centre.ingest(Inbound("https", Message.event_key(BID, 1, 40), MessageKind.HEARTBEAT,
                                BID, hb, received_at=now[0]))
    assert got.verdict is Verdict.ACCEPTED and centre.warnings() == []
    now[0] += 181
    assert [w["warning"] for w in centre.warnings()] == ["silent"]
    low = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.LOW_BATTERY, button_id=BID,
                                          boot_id=1, seq=41, battery_pct=9, age_ms=5))
    centre.ingest(Inbound("https", Message.event_key(BID, 1, 41), MessageKind.LOW_BATTERY, BID,
                          low, received_at=now[0]))
    assert centre.warnings() == [{"button_id": BID, "case_ref": "C-9", "warning": "low battery",
                                  "battery_pct": 9}]
    # A heartbeat's frame cannot pass for an alarm: the kinds must match.
    forged = centre.ingest(Inbound("https", Message.event_key(BID, 1, 40), MessageKind.ALARM,
                                   BID, hb, incident=Message.event_key(BID, 1, 40)))
    assert forged.verdict is Verdict.REJECTED and "does not match" in forged.reason
    centre.close()
    reg.close()
