"""The dispatcher's policy on virtual time with scripted channels (docs/dispatch.md, "Never lose
an alarm" and "Tracking"): the 1, 2, 4 … 30 s backoff, also across a restart; a refusal for good
never costs another SMS; the heartbeat TTL; "resolved" stops tracking; a second press gets its
own two hours; the SMS goes at fallback_after_s from the press even when the IP channels hang.

The outbox is the real SQLite one; only time is virtual (tests/vtime.py), so every assertion is
on the exact second the policy acted."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import vtime
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind
from msa.host.dispatch import Receipt
from msa.host.dispatcher import Dispatcher, Policy
from msa.host.errors import ChannelError
from msa.host.events import Via, event_for
from msa.host.outbox import Outbox

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0A0B0C0D
T0 = vtime.T0
SMS_KINDS = frozenset({MessageKind.ALARM, MessageKind.TEST, MessageKind.LOCATION,
                       MessageKind.LOW_BATTERY})

# What a scripted channel does with the n-th (0-based) try of one message.
Script = Callable[[Message, int], str]


@dataclass(frozen=True)
class Call:
    at: float  # seconds after T0
    key: str
    kind: MessageKind
    update_no: int


class Scripted:
    """A channel that does what its script says: "ack", "closed" (ack, incident resolved),
    "fail" (retryable), "refuse" (for good) or "hang" (never answers)."""

    def __init__(self, name: str, script: Script, clock: vtime.LoopClock,
                 deadline_s: float = 2.0, kinds: frozenset[MessageKind] | None = None) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self.calls: list[Call] = []
        self._script, self._clock, self._kinds = script, clock, kinds

    def accepts(self, kind: MessageKind) -> bool:
        return self._kinds is None or kind in self._kinds

    async def send(self, message: Message) -> Receipt:
        now = self._clock.time()
        n = sum(1 for c in self.calls if c.key == message.key)
        self.calls.append(Call(now - T0, message.key, message.kind, message.update_no))
        what = self._script(message, n)
        if what == "hang":
            await asyncio.get_running_loop().create_future()
        if what in ("fail", "refuse"):
            raise ChannelError(self.name, f"scripted {what}", retryable=what == "fail")
        assert what in ("ack", "closed"), what
        return Receipt(channel=self.name, key=message.key, acked_at=now, reference="INC-1",
                       closed=what == "closed")

    async def close(self) -> None:
        return None

    def times(self, key: str | None = None) -> list[float]:
        return [c.at for c in self.calls if key is None or c.key == key]


class Place:
    """A location source on the virtual clock: always a fresh fix, or never one."""

    name = "place"

    def __init__(self, clock: vtime.LoopClock, known: bool = True) -> None:
        self._clock, self._known = clock, known

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def best(self) -> Fix | None:
        if not self._known:
            return None
        return Fix(51.0543, 3.7174, 8.0, self._clock.time(), FixQuality.GNSS, "sim")


def always(what: str) -> Script:
    return lambda _m, _n: what


async def submit(d: Dispatcher, clock: vtime.LoopClock, kind: hp.Kind, seq: int,
                 age_ms: int = 300) -> Message:
    raw = hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID, boot_id=1, seq=seq,
                          gesture=hp.Gesture.HOLD if kind is hp.Kind.ALARM else hp.Gesture.NONE,
                          battery_pct=80, age_ms=age_ms)
    return await d.submit(event_for(hp.verify(raw, KEYS), Via.GATT, clock.time()))


async def run_until(d: Dispatcher, t: float) -> None:
    """Runs the dispatcher until `t` seconds after T0 on the virtual clock, then stops it."""
    task = asyncio.create_task(d.run())
    await asyncio.sleep(T0 + t - vtime.LoopClock().time())
    await d.stop()
    await task


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


def test_retries_back_off_1_2_4_to_30_s_and_carry_on_after_a_restart(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float], int]:
        clock = vtime.LoopClock()
        first = Scripted("dc09", always("fail"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [first], Place(clock, False), Policy(), clock)
        m = await submit(d, clock, hp.Kind.LOW_BATTERY, 1)
        await run_until(d, 10)  # tries at 0, 1, 3, 7 s; the host then stops
        d.outbox.close()
        again = Scripted("dc09", always("fail"), clock)
        d2 = Dispatcher(Outbox(tmp_path / "o.db"), [again], Place(clock, False), Policy(),
                        clock)
        await run_until(d2, 200)
        return first.times(m.key), again.times(m.key), d2.outbox.attempts(m.key)

    before, after, attempts = vtime.run(body)
    assert before == [0.0, 1.0, 3.0, 7.0]
    # The restarted host goes on where the first stopped: the next wait is 8 s, then 16, 30.
    assert gaps(before + after) == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert attempts == len(before) + len(after)


@pytest.mark.parametrize("ip", ["fail", "refuse"])
def test_a_refusal_for_good_never_costs_another_sms(tmp_path: Path, ip: str) -> None:
    """The SMS channel refused the alarm for good (say, an unassigned number). Whether the IP
    channel keeps failing or refused it for good too, the alarm is kept and retried, and the
    SMS is never sent for it again."""
    async def body() -> tuple[Scripted, Scripted, int]:
        clock = vtime.LoopClock()
        dc09 = Scripted("dc09", always(ip), clock)
        sms = Scripted("sms", always("refuse"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, dc09], Place(clock, False), Policy(),
                       clock)
        await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 600)
        return dc09, sms, d.outbox.undelivered()

    dc09, sms, undelivered = vtime.run(body)
    assert sms.times() == [0.0]  # after the IP channel had its try, once, never again
    assert undelivered == 1  # kept: a refusal loses nothing
    if ip == "fail":
        assert len(dc09.times()) >= 20  # retried with backoff, 30 s apart at most
    else:
        assert len(dc09.times()) >= 2 and min(gaps(dc09.times())) >= 30  # rarely


def test_a_refused_ip_channel_is_not_tried_again_while_another_one_fails(tmp_path: Path) -> None:
    async def body() -> tuple[Scripted, Scripted]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("refuse"), clock)
        dc09 = Scripted("dc09", always("fail"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https, dc09], Place(clock, False),
                       Policy(), clock)
        await submit(d, clock, hp.Kind.LOW_BATTERY, 1)
        await run_until(d, 120)
        return https, dc09

    https, dc09 = vtime.run(body)
    assert https.times() == [0.0] and dc09.times()[:4] == [0.0, 1.0, 3.0, 7.0]


def test_an_undeliverable_heartbeat_is_dropped_after_its_ttl(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], tuple[float | None, str | None, int, str | None] | None,
                              int]:
        clock = vtime.LoopClock()
        dc09 = Scripted("dc09", always("fail"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [dc09], Place(clock, False), Policy(), clock)
        m = await submit(d, clock, hp.Kind.HEARTBEAT, 1)
        await run_until(d, 900)
        return dc09.times(m.key), d.outbox.status(m.key), d.outbox.undelivered()

    times, status, undelivered = vtime.run(body)
    ttl = Policy().heartbeat_ttl_s
    assert times[-1] <= ttl and times[-1] > ttl - Policy().retry_max_s  # tried until the TTL
    assert status is not None and status[0] is not None and status[1] == ""
    assert status[3] == "stale heartbeat" and undelivered == 0


def test_resolved_by_the_centre_stops_tracking(tmp_path: Path) -> None:
    def centre(m: Message, _n: int) -> str:
        return "closed" if m.kind is MessageKind.LOCATION and m.update_no == 3 else "ack"

    async def body() -> tuple[list[int], int]:
        clock = vtime.LoopClock()
        https = Scripted("https", centre, clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock), Policy(), clock)
        await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 300)
        updates = [c.update_no for c in https.calls if c.kind is MessageKind.LOCATION]
        return updates, len(d.outbox.incidents(clock.time()))

    updates, still_open = vtime.run(body)
    assert updates == [1, 2, 3] and still_open == 0


def test_a_second_press_gets_its_own_two_hours(tmp_path: Path) -> None:
    async def body() -> tuple[Message, Message, Scripted]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("ack"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock), Policy(), clock)
        first = await submit(d, clock, hp.Kind.ALARM, 1)
        task = asyncio.create_task(d.run())
        await asyncio.sleep(3600)
        second = await submit(d, clock, hp.Kind.ALARM, 2)
        await asyncio.sleep(7200 + 60)
        await d.stop()
        await task
        return first, second, https

    first, second, https = vtime.run(body)
    window = Policy().track_window_s

    def track(incident: Message) -> list[float]:
        return [c.at for c in https.calls
                if c.kind is MessageKind.LOCATION and c.key.startswith(incident.key + "/")]

    one, two = track(first), track(second)
    assert set(gaps(one)) == {10.0} and set(gaps(two)) == {10.0}
    assert window - 20 < one[-1] <= window  # the first press's two hours...
    assert window + 3600 - 20 < two[-1] <= window + 3600  # ...and the second's own
    assert two[0] - 3600 <= 10


@pytest.mark.parametrize("deadline_s, age_ms", [(2.0, 1200), (10.0, 1200), (60.0, 0)],
                         ids=["documented-deadlines", "long-deadlines", "press-just-now"])
def test_the_sms_goes_at_fallback_after_s_from_the_press_while_ip_channels_hang(
        tmp_path: Path, deadline_s: float, age_ms: int) -> None:
    async def body() -> tuple[Scripted, Scripted, Scripted, Message]:
        clock = vtime.LoopClock()
        dc09 = Scripted("dc09", always("hang"), clock, deadline_s=deadline_s)
        https = Scripted("https", always("hang"), clock, deadline_s=deadline_s)
        sms = Scripted("sms", always("ack"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, dc09, https], Place(clock, False),
                       Policy(), clock)
        m = await submit(d, clock, hp.Kind.ALARM, 1, age_ms=age_ms)
        await run_until(d, 30)
        return dc09, https, sms, m

    dc09, https, sms, m = vtime.run(body)
    pressed = -age_ms / 1000
    assert dc09.times() == [0.0]  # the IP channels came first ...
    assert sms.times() == [pytest.approx(pressed + Policy().fallback_after_s, abs=1e-3)]
    assert len(https.times()) <= 1  # ... and the SMS delivered it: nothing is tried again
