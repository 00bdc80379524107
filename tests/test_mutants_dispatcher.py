"""The dispatcher's exact numbers on virtual time, where mutation testing found a change that no
other test noticed (docs/testing.md lists them): the policy's defaults, each timeout, the
fallback order, concurrency, tracking on a short window, what a delivery records.

Channels and the location source are the scripted ones of tests/test_dispatch_policy.py; the
outbox is the real SQLite one."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import vtime
from msa.host.dispatch import Receipt
from msa.host.dispatcher import FALLBACK_TYPES, MESSAGE_KINDS, Dispatcher, Policy
from msa.host.errors import HostError
from msa.host.outbox import Outbox
from msa.wire import protocol as hp
from msa.wire.message import Message, MessageKind
from test_dispatch_policy import SMS_KINDS, Place, Scripted, always, run_until, submit

T0 = vtime.T0


def test_policy_defaults_are_the_documented_ones() -> None:
    assert Policy() == Policy(fallback_after_s=5.0, retry_first_s=1.0, retry_max_s=30.0,
                              heartbeat_ttl_s=300.0, track_interval_s=10.0,
                              track_window_s=7200.0, concurrency=4)
    assert FALLBACK_TYPES == {"sms"}
    assert {k: v.value for k, v in MESSAGE_KINDS.items()} == {
        hp.Kind.ALARM: "alarm", hp.Kind.TEST: "test", hp.Kind.HEARTBEAT: "heartbeat",
        hp.Kind.LOW_BATTERY: "low_battery", hp.Kind.BOOT: "boot"}


def test_a_dispatcher_needs_a_channel(tmp_path: Path) -> None:
    with pytest.raises(HostError) as err:
        Dispatcher(Outbox(tmp_path / "o.db"), [], Place(vtime.LoopClock(), False))
    assert str(err.value) == "no dispatch channel configured"


def test_submit_stores_each_kind_with_what_the_centre_needs(tmp_path: Path) -> None:
    async def body() -> tuple[list[Message], Outbox, float]:
        clock = vtime.LoopClock()
        d = Dispatcher(Outbox(tmp_path / "o.db"), [Scripted("https", always("ack"), clock)],
                       Place(clock), Policy(track_window_s=100.0), clock)
        out = [await submit(d, clock, kind, seq, age_ms=1500)
               for seq, kind in enumerate(MESSAGE_KINDS, 1)]
        return out, d.outbox, clock.time()

    messages, box, now = vtime.run(body)
    for m, kind in zip(messages, MESSAGE_KINDS):
        assert m.kind is MESSAGE_KINDS[kind] and m.button_id == 0x0A0B0C0D
        assert m.created_at == now and m.pressed_at == pytest.approx(now - 1.5)
        assert m.battery_pct == 80 and m.fix is not None and m.fix.time == now
        assert m.incident == (m.key if kind is hp.Kind.ALARM else "")
        assert m.key == Message.event_key(0x0A0B0C0D, 1, messages.index(m) + 1)
    assert box.due(now + 1) == sorted(messages, key=lambda m: (
        ["alarm", "test", "low_battery", "boot", "heartbeat"].index(m.kind.value)))
    [incident] = box.incidents(now)
    assert incident.key == messages[0].key and incident.track_until == now + 100.0


def test_a_second_submit_of_the_same_event_does_not_extend_its_tracking(tmp_path: Path) -> None:
    async def body() -> float:
        clock = vtime.LoopClock()
        d = Dispatcher(Outbox(tmp_path / "o.db"), [Scripted("https", always("ack"), clock)],
                       Place(clock), Policy(track_window_s=100.0), clock)
        await submit(d, clock, hp.Kind.ALARM, 1)
        await asyncio.sleep(50)
        await submit(d, clock, hp.Kind.ALARM, 1)
        return d.outbox.incidents(clock.time())[0].track_until

    assert vtime.run(body) == T0 + 100.0


@pytest.mark.parametrize("kind,times", [
    # an alarm pressed 10 s ago, no SMS to fall back to: at least 0.5 s per try
    (hp.Kind.ALARM, [0.0, 1.5, 4.0, 8.5]),
    # any other kind waits the channel's own 2 s deadline
    (hp.Kind.LOW_BATTERY, [0.0, 3.0, 7.0, 13.0]),
])
def test_each_try_waits_its_deadline_then_backs_off(tmp_path: Path, kind: hp.Kind,
                                                   times: list[float]) -> None:
    async def body() -> list[float]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("hang"), clock, deadline_s=2.0)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False), Policy(), clock)
        m = await submit(d, clock, kind, 1, age_ms=10_000)
        await run_until(d, 14)
        return https.times(m.key)

    assert vtime.run(body) == times


def test_the_ip_channel_gets_what_is_left_of_the_fallback_time(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float]]:
        clock = vtime.LoopClock()
        dc09 = Scripted("dc09", always("hang"), clock, deadline_s=10.0)
        sms = Scripted("sms:modem", always("ack"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, dc09], Place(clock, False), Policy(),
                       clock)
        await submit(d, clock, hp.Kind.ALARM, 1, age_ms=2000)
        await run_until(d, 20)
        return dc09.times(), sms.times()

    dc09, sms = vtime.run(body)
    assert dc09 == [0.0] and sms == [pytest.approx(3.0, abs=1e-3)]  # 5 s from the press


def test_after_the_first_round_the_ip_channel_is_tried_again_before_the_sms(
        tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float]]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("fail"), clock)
        sms = Scripted("sms", always("fail"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, https], Place(clock, False), Policy(),
                       clock)
        await submit(d, clock, hp.Kind.ALARM, 1, age_ms=60_000)  # pressed a minute ago
        await run_until(d, 4)
        return https.times(), sms.times()

    https, sms = vtime.run(body)
    # first round: the ghost-call deadline is long past, so no IP try before the SMS; later
    # rounds give the IP channel half a second at least, as it may have come back
    assert https == [1.0, 3.0] and sms == [0.0, 1.0, 3.0]


def test_concurrency_bounds_how_many_messages_are_in_flight(tmp_path: Path) -> None:
    def run(concurrency: int) -> list[float]:
        async def body() -> list[float]:
            clock = vtime.LoopClock()
            https = Scripted("https", lambda m, n: "hang" if n == 0 else "ack", clock,
                             deadline_s=2.0)
            d = Dispatcher(Outbox(tmp_path / f"o{concurrency}.db"), [https],
                           Place(clock, False), Policy(concurrency=concurrency), clock)
            for seq in (1, 2, 3):
                await submit(d, clock, hp.Kind.LOW_BATTERY, seq)
            await run_until(d, 10)
            return https.times()
        return vtime.run(body)

    # one at a time: 1 hangs to 2; 2 hangs to 4; then 1 (due at 3, oldest) is acked, 3 hangs
    # to 6; 2 (due at 5) goes at 6, and 3 again at 7
    assert run(1) == [0.0, 2.0, 4.0, 4.0, 6.0, 7.0]
    # two: 1 and 2 hang to 2, 3 takes a free slot at 2; 1 and 2 are acked at 3, 3 at 5
    assert run(2) == [0.0, 0.0, 2.0, 3.0, 3.0, 5.0]
    assert run(4) == [0.0, 0.0, 0.0, 3.0, 3.0, 3.0]


def test_a_delivery_records_its_receipt_reference_and_tells_the_observer(
        tmp_path: Path) -> None:
    heard: list[tuple[str, Receipt]] = []

    async def observer(m: Message, r: Receipt) -> None:
        heard.append((m.key, r))

    async def body() -> tuple[Outbox, Message, float]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("ack"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock), Policy(), clock,
                       observer)
        m = await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 1)
        return d.outbox, m, clock.time()

    box, m, now = vtime.run(body)
    assert heard == [(m.key, Receipt("https", m.key, T0, "INC-1"))]
    assert box.status(m.key) == (T0, "https", 0, None)
    assert box.incidents(now)[0].reference == "INC-1"


def test_tracking_sends_numbered_updates_each_interval_until_the_window_ends(
        tmp_path: Path) -> None:
    async def body() -> tuple[list[Message], Message]:
        clock = vtime.LoopClock()
        sent: list[Message] = []

        def ack(m: Message, _n: int) -> str:
            sent.append(m)
            return "ack"

        https = Scripted("https", ack, clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock),
                       Policy(track_interval_s=10.0, track_window_s=35.0), clock)
        alarm = await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 100)
        return [m for m in sent if m.kind is MessageKind.LOCATION], alarm

    updates, alarm = vtime.run(body)
    assert [u.key for u in updates] == [f"{alarm.key}/{n}" for n in (1, 2, 3)]
    assert [u.update_no for u in updates] == [1, 2, 3]
    assert [u.created_at for u in updates] == [T0 + 10, T0 + 20, T0 + 30]
    assert all(u.incident == alarm.key and u.frame == alarm.frame and u.fix is not None
               and u.button_id == alarm.button_id for u in updates)


def test_no_fix_no_update_and_the_numbering_waits(tmp_path: Path) -> None:
    async def body() -> tuple[list[int], int]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("ack"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False),
                       Policy(track_window_s=35.0), clock)
        await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 100)
        return ([c.update_no for c in https.calls if c.kind is MessageKind.LOCATION],
                len(https.calls))

    assert vtime.run(body) == ([], 1)


def test_a_heartbeat_is_tried_at_its_ttl_and_dropped_after(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], str | None]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("fail"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False),
                       Policy(heartbeat_ttl_s=3.0), clock)
        m = await submit(d, clock, hp.Kind.HEARTBEAT, 1)
        await run_until(d, 60)
        status = d.outbox.status(m.key)
        return https.times(), None if status is None else status[3]

    assert vtime.run(body) == ([0.0, 1.0, 3.0], "stale heartbeat")


def test_a_kind_no_channel_carries_waits_at_the_backoff(tmp_path: Path) -> None:
    async def body() -> tuple[int, str | None]:
        clock = vtime.LoopClock()
        sms = Scripted("sms", always("ack"), clock, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms], Place(clock, False), Policy(), clock)
        m = await submit(d, clock, hp.Kind.BOOT, 1)
        await run_until(d, 10)
        status = d.outbox.status(m.key)
        return d.outbox.attempts(m.key), None if status is None else status[3]

    attempts, error = vtime.run(body)
    assert attempts == 4 and error == "no channel carries this kind"  # at 0, 1, 3, 7 s


def test_urgent_messages_never_take_more_slots_than_free(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float]]:
        clock = vtime.LoopClock()
        https = Scripted("https", lambda m, n: "hang" if n == 0 else "ack", clock,
                         deadline_s=2.0)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False),
                       Policy(concurrency=2), clock)
        task = asyncio.create_task(d.run())
        await submit(d, clock, hp.Kind.HEARTBEAT, 1)  # in flight, hanging until 2.0
        await asyncio.sleep(0.5)
        a1 = await submit(d, clock, hp.Kind.ALARM, 2)
        a2 = await submit(d, clock, hp.Kind.ALARM, 3)
        await asyncio.sleep(10)
        await d.stop()
        await task
        return https.times(a1.key), https.times(a2.key)

    first, second = vtime.run(body)
    assert first[0] == 0.5 and second[0] == 2.0  # one free slot: the second alarm waits


def test_a_message_in_flight_does_not_hold_up_the_next_one(tmp_path: Path) -> None:
    async def body() -> list[float]:
        clock = vtime.LoopClock()
        https = Scripted("https", lambda m, n: "hang" if m.kind is MessageKind.ALARM else "ack",
                         clock, deadline_s=2.0)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False),
                       Policy(concurrency=2), clock)
        task = asyncio.create_task(d.run())
        await submit(d, clock, hp.Kind.ALARM, 1)
        await asyncio.sleep(0.5)
        low = await submit(d, clock, hp.Kind.LOW_BATTERY, 2)
        await asyncio.sleep(1)
        await d.stop()
        await task
        return https.times(low.key)

    assert vtime.run(body) == [0.5]


def test_a_short_backoff_is_waited_exactly(tmp_path: Path) -> None:
    async def body() -> list[float]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("fail"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock, False),
                       Policy(retry_first_s=0.25), clock)
        m = await submit(d, clock, hp.Kind.LOW_BATTERY, 1)
        await run_until(d, 2)
        return https.times(m.key)

    assert vtime.run(body) == [0.0, 0.25, 0.75, 1.75]


def test_half_a_second_left_still_goes_to_the_ip_channel_first(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float]]:
        clock = vtime.LoopClock()
        dc09 = Scripted("dc09", always("hang"), clock, deadline_s=10.0)
        sms = Scripted("sms:modem:0", always("ack"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, dc09], Place(clock, False), Policy(),
                       clock)
        await submit(d, clock, hp.Kind.ALARM, 1, age_ms=4500)
        await run_until(d, 5)
        return dc09.times(), sms.times()

    dc09, sms = vtime.run(body)
    assert dc09 == [0.0] and sms == [pytest.approx(0.5, abs=1e-3)]


def test_closed_by_the_centre_is_recorded_with_its_reason(tmp_path: Path) -> None:
    import sqlite3

    async def body() -> Message:
        clock = vtime.LoopClock()
        https = Scripted("https", always("closed"), clock)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [https], Place(clock), Policy(), clock)
        m = await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 1)
        return m

    m = vtime.run(body)
    row = sqlite3.connect(tmp_path / "o.db").execute(
        "SELECT closed_at, close_reason, reference FROM incidents WHERE key = ?",
        (m.key,)).fetchone()
    assert row[1:] == ("resolved by the centre", "INC-1") and row[0] is not None


def test_the_real_clock_sleeps_and_tells_unix_time() -> None:
    import time

    from msa.host.dispatcher import RealClock

    clock = RealClock()
    before = time.monotonic()
    asyncio.run(clock.sleep(0.05))
    assert time.monotonic() - before >= 0.05
    assert abs(clock.time() - time.time()) < 1.0


def test_the_error_kept_for_a_failed_round_names_each_channel_tried(tmp_path: Path) -> None:
    async def body() -> list[str | None]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("fail"), clock)
        sms = Scripted("sms", always("fail"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, https], Place(clock, False), Policy(),
                       clock)
        m = await submit(d, clock, hp.Kind.ALARM, 1, age_ms=60_000)
        task = asyncio.create_task(d.run())
        errors = []
        for _ in range(2):
            await asyncio.sleep(0.5 if not errors else 1.0)  # to 0.5, then 1.5
            status = d.outbox.status(m.key)
            errors.append(None if status is None else status[3])
        await d.stop()
        await task
        return errors

    first, second = vtime.run(body)
    # first round: the IP time is spent, so the SMS alone was tried; then both
    assert first == "channel sms: scripted fail"
    assert second == "channel https: scripted fail; channel sms: scripted fail"


def test_a_refused_sms_by_any_modem_name_is_never_sent_again(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], list[float]]:
        clock = vtime.LoopClock()
        https = Scripted("https", always("refuse"), clock)
        sms = Scripted("sms:modem:0", always("refuse"), clock, deadline_s=60, kinds=SMS_KINDS)
        d = Dispatcher(Outbox(tmp_path / "o.db"), [sms, https], Place(clock, False), Policy(),
                       clock)
        await submit(d, clock, hp.Kind.ALARM, 1)
        await run_until(d, 200)
        return https.times(), sms.times()

    https, sms = vtime.run(body)
    assert sms == [0.0] and len(https) >= 4  # the IP channel again every 30 s; never the SMS
