"""The silent call (host/silentcall.py, issue 16) with the real Dispatcher and SQLite outbox, the
real SMS channel and voice driver, and the simulated modem over its real TCP port: a call after
every alarm, after the first delivery attempt and never delaying it or the SMS fallback;
redialled with backoff after a drop, not after resolve or redial_for_s; tracking while a call
is up and window_s after it; a modem that refuses ATD (or is dead) leaves the alarm and the SMS
alone, each modem error one log line naming the command, never the number.

Time is virtual (tests/vtime.py), with one change: while the modem's worker thread runs a step
the loop waits for it in real time and the virtual clock stands still, so the modem's work takes
no virtual time and every assertion is on the exact second the policy acted. What the worker's
queue costs the SMS in real time is checked apart (the SMS's own real duration)."""
from __future__ import annotations

import asyncio
import logging
import selectors
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

import vtime
from msa.wire import protocol as hp
from msa.wire.message import Message, MessageKind
from msa.host.dispatch import Receipt
from msa.host.dispatcher import Dispatcher, Policy
from msa.host.modem import GsmModem, Port
from msa.host.outbox import Outbox
from msa.host.silentcall import CallEvent, CallEventKind, SilentCaller, VoiceSettings
from msa.host.sms import SmsChannel
from msa.host.voicecall import VoiceCalls
from msa.simulator.modem import DeliveredSms, SimModem
from msa.simulator.modem_voice import Outcome, SimCall
from test_dispatch_policy import T0, Place, Scripted, always, submit

T = TypeVar("T")
VOICE = "+4930112110"  # the centre's voice number
SMS = "+32470999112"  # the centre's SMS number
BACKOFF = VoiceSettings(VOICE, redial_for_s=1800, redial_first_s=5, redial_max_s=60, poll_s=1)


class _ModemSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.busy = 0  # executor jobs running (the modem's worker)

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if self.busy:  # the worker is at the port: wait for it in real time, time stands
            return list(super().select(0.002 if timeout is None else min(timeout, 0.002)))
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise vtime.Deadlock("virtual-time loop: nothing scheduled and nothing to read")
        self.now += timeout
        return []


class ModemLoop(asyncio.SelectorEventLoop):
    """vtime's loop, holding the virtual clock while a worker thread runs a job."""

    def __init__(self) -> None:
        self._modem_selector = _ModemSelector()
        super().__init__(self._modem_selector)

    def time(self) -> float:
        return self._modem_selector.now

    def run_in_executor(self, executor: Any, func: Callable[..., T],
                        *args: Any) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._modem_selector.busy += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future[Any]) -> None:
        self._modem_selector.busy -= 1


def vrun(body: Callable[[], Awaitable[T]], limit_s: float = 86_400.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), limit_s)
    with asyncio.Runner(loop_factory=ModemLoop) as runner:
        return runner.run(main())


class Timed(Scripted):
    """A scripted IP channel that also notes each try's real start (time.monotonic())."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.started: list[float] = []
        self.notify: Callable[[], None] = lambda: None

    async def send(self, message: Message) -> Receipt:
        self.started.append(time.monotonic())
        self.notify()
        return await super().send(message)


class RealTimed(SmsChannel):
    """The real SMS channel, noting when each send began and ended in real time."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.took: list[float] = []

    async def send(self, message: Message) -> Receipt:
        began = time.monotonic()
        try:
            return await super().send(message)
        finally:
            self.took.append(time.monotonic() - began)


@dataclass
class Rig:
    sim: SimModem
    dispatcher: Dispatcher
    ip: Timed
    sms: RealTimed
    clock: vtime.LoopClock
    caller: SilentCaller | None
    events: list[tuple[str, CallEvent]] = field(default_factory=list)
    sms_at: list[float] = field(default_factory=list)  # virtual seconds after T0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def kinds(self, key: str) -> list[tuple[CallEventKind, float]]:
        return [(e.kind, e.at - T0) for k, e in self.events if k == key]

    async def until(self, ok: Callable[[], bool]) -> None:
        """Waits for the events (call events, SMS) until ok() holds."""
        while not ok():
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def rig(tmp_path: Path, *, ip: str = "ack", call: bool = True,
              settings: VoiceSettings = BACKOFF, policy: Policy | None = None,
              modem_url: str | None = None) -> AsyncIterator[Rig]:
    sim = SimModem()
    await sim.start()
    clock = vtime.LoopClock()
    policy = policy or Policy()
    ip_channel = Timed("https", always(ip), clock, deadline_s=10)  # the fallback comes first
    sms = RealTimed(url=modem_url or sim.url, number=SMS, deadline_s=60)
    outbox = Outbox(tmp_path / "outbox.db")
    caller = None
    if call:
        voice = VoiceCalls(sms.modem)  # one modem: the SMS channel's, as the service does
        caller = SilentCaller(voice, outbox, settings, window_s=policy.track_window_s,
                              clock=clock, on_call_event=lambda k, e: note(k, e))
    d = Dispatcher(outbox, [sms, ip_channel], Place(clock), policy, clock,
                   after_first_attempt=None if caller is None else caller.after_first_attempt)
    r = Rig(sim, d, ip_channel, sms, clock, caller)
    ip_channel.notify = r.changed.set

    def note(key: str, event: CallEvent) -> None:
        r.events.append((key, event))
        r.changed.set()

    async def on_sms(_sms: DeliveredSms) -> None:
        r.sms_at.append(clock.time() - T0)
        r.changed.set()
    sim.on_sms = on_sms
    task = asyncio.create_task(d.run())
    try:
        yield r
    finally:
        await d.stop()
        await task
        if caller is not None:
            await caller.close()
        await sms.close()
        await sim.stop()
        outbox.close()


async def alarm(r: Rig, seq: int, age_ms: int = 300) -> Message:
    return await submit(r.dispatcher, r.clock, hp.Kind.ALARM, seq, age_ms=age_ms)


async def answered(r: Rig) -> SimCall:
    call = await r.sim.voice.next_call(timeout_s=60)
    await asyncio.wait_for(call.answered.wait(), 60)
    return call


def test_a_call_is_placed_after_every_alarm_to_the_configured_number(tmp_path: Path) -> None:
    async def body() -> tuple[list[SimCall], list[str], Rig]:
        async with rig(tmp_path) as r:
            r.sim.voice.queue(Outcome.answer(after_s=3))  # ringing long enough to be seen
            first = await alarm(r, 1)
            one = await answered(r)
            r.dispatcher.outbox.close_incident(first.key, "resolved by the centre")
            await asyncio.wait_for(one.ended.wait(), 60)  # hung up by the host
            second = await alarm(r, 2)
            two = await answered(r)
            return [one, two], [first.key, second.key], r

    (one, two), keys, r = vrun(body)
    assert one.number == two.number == VOICE
    assert one.ended_by == "host"  # the centre resolved: the host hung up
    assert [k for k, _ in r.kinds(keys[0])][:4] == [
        CallEventKind.ATTEMPT, CallEventKind.DIALLING, CallEventKind.ALERTING,
        CallEventKind.ANSWERED]
    assert r.kinds(keys[0])[-1][0] is CallEventKind.ENDED
    assert [e.attempt for k, e in r.events if k == keys[1]][0] == 1


@pytest.mark.parametrize("call", [False, True], ids=["without-call", "with-call"])
def test_the_first_attempt_is_not_delayed_and_atd_comes_after_it(tmp_path: Path,
                                                                 call: bool) -> None:
    async def body() -> tuple[list[float], list[float], SimCall | None]:
        async with rig(tmp_path, call=call) as r:
            m = await alarm(r, 1)
            placed = await r.sim.voice.next_call() if call else None
            await r.until(lambda: bool(r.ip.times(m.key)))
            return r.ip.times(m.key), r.ip.started, placed

    times, started, placed = vrun(body)
    assert times == [0.0]  # the press's first attempt at once, with the call as without
    if placed is not None:
        assert placed.dialled_at > started[0]  # ATD only once the attempt was under way


@pytest.mark.parametrize("call", [False, True], ids=["without-call", "with-call"])
def test_the_sms_goes_at_fallback_after_s_with_the_call_as_without(tmp_path: Path,
                                                                   call: bool) -> None:
    steps: list[tuple[str, float]] = []  # (step, real seconds) of each job on the worker

    async def body() -> tuple[list[float], list[float], list[SimCall]]:
        async with rig(tmp_path, ip="hang", call=call) as r:
            timed_steps(r.sms.modem, steps)
            await alarm(r, 1)
            await r.until(lambda: len(r.sms_at) == 2)  # the AML and the MSA1
            return r.sms_at, r.sms.took, r.sim.voice.calls

    sms_at, took, calls = vrun(body)
    fallback = Policy().fallback_after_s - 0.3  # from the press, 300 ms before the event
    assert sms_at == [pytest.approx(fallback, abs=1e-6)] * 2
    assert len(calls) == (1 if call else 0)
    # Real time, which the virtual clock leaves out: every voice step on the modem's worker
    # is short (a few ms here), so the SMS waits behind one at most.
    voice_steps = [s for s in steps if s[0] != "AT+CMGS"]
    assert bool(voice_steps) == call and max(t for _, t in voice_steps or [("", 0)]) < 0.5
    assert took[0] < 1.0, took


def timed_steps(modem: GsmModem, steps: list[tuple[str, float]]) -> None:
    """Notes how long each job holds the modem's worker (time at the port, in real time)."""
    run = modem.run

    async def timed(job: Callable[[Port, float], T], doing: str, *, deadline: float) -> T:
        def step(port: Port, until: float) -> T:
            began = time.monotonic()
            try:
                return job(port, until)
            finally:
                steps.append((doing, time.monotonic() - began))
        return await run(step, doing, deadline=deadline)
    modem.run = timed  # type: ignore[method-assign]


def test_a_dropped_call_is_redialled_with_backoff(tmp_path: Path) -> None:
    async def body() -> tuple[Rig, str]:
        async with rig(tmp_path) as r:
            r.sim.voice.queue(Outcome.answer(), Outcome.busy(), Outcome.busy(),
                              Outcome.answer())
            m = await alarm(r, 1)
            await answered(r)
            await asyncio.sleep(30)
            r.sim.voice.drop_call()
            for _ in range(3):  # busy, busy, answered
                await r.sim.voice.next_call(timeout_s=600)
            await r.until(lambda: [k for k, _ in r.kinds(m.key)].count(
                CallEventKind.ANSWERED) == 2)
            return r, m.key

    r, key = vrun(body)
    events = r.kinds(key)
    attempts = [at for k, at in events if k is CallEventKind.ATTEMPT]
    ends = [at for k, at in events if k is CallEventKind.ENDED]
    # After an answered call that dropped: the first step; after each failed one, doubled.
    assert [round(a - e, 6) for a, e in zip(attempts[1:], ends)] == [5.0, 5.0, 10.0]
    first_end = next(e for _, e in r.events if e.kind is CallEventKind.ENDED)
    assert first_end.cause == "NO CARRIER: Network out of order"  # the drop, with its cause
    assert [e.attempt for _, e in r.events if e.kind is CallEventKind.ATTEMPT] == [1, 2, 3, 4]


def test_resolve_hangs_up_and_nothing_is_redialled_or_tracked_after(tmp_path: Path) -> None:
    async def body() -> tuple[SimCall, int, list[float], float]:
        async with rig(tmp_path) as r:
            m = await alarm(r, 1)
            call = await answered(r)
            await asyncio.sleep(100)
            r.dispatcher.outbox.close_incident(m.key, "resolved by the centre")
            resolved = r.clock.time() - T0
            await asyncio.wait_for(call.ended.wait(), 60)
            await asyncio.sleep(3600)
            updates = [c.at for c in r.ip.calls if c.kind is MessageKind.LOCATION]
            return call, len(r.sim.voice.calls), updates, resolved

    call, calls, updates, resolved = vrun(body)
    assert call.ended_by == "host" and calls == 1
    assert max(updates) <= resolved  # the centre's resolve ends tracking too


def test_no_redial_after_redial_for_s(tmp_path: Path) -> None:
    settings = VoiceSettings(VOICE, redial_for_s=60, redial_first_s=5, redial_max_s=20,
                             poll_s=1)

    async def body() -> tuple[Rig, str]:
        async with rig(tmp_path, settings=settings) as r:
            r.sim.voice.default = Outcome.busy()
            m = await alarm(r, 1)
            await asyncio.sleep(3600)
            return r, m.key

    r, key = vrun(body)
    attempts = [at for k, at in r.kinds(key) if k is CallEventKind.ATTEMPT]
    assert len(attempts) == len(r.sim.voice.calls) >= 4
    assert attempts[-1] - attempts[0] < 60  # none after redial_for_s from the first
    assert attempts[-1] - attempts[0] > 60 - 20 - 2  # ... but up to it (max step 20 s)


def test_tracking_runs_while_the_call_is_up_and_window_s_after_it(tmp_path: Path) -> None:
    policy = Policy(track_window_s=300, track_interval_s=10)
    # The call outlasts redial_for_s: once it ends, no redial keeps tracking going.
    settings = VoiceSettings(VOICE, redial_for_s=60)

    async def body() -> tuple[list[float], float, float]:
        async with rig(tmp_path, policy=policy, settings=settings) as r:
            m = await alarm(r, 1)
            await answered(r)
            await asyncio.sleep(1000)  # long past the press's own 300 s
            r.sim.voice.remote_hang_up()
            await r.until(lambda: r.kinds(m.key)[-1][0] is CallEventKind.ENDED)
            ended = r.kinds(m.key)[-1][1]
            await asyncio.sleep(1000)
            updates = [c.at for c in r.ip.calls if c.kind is MessageKind.LOCATION]
        # In the outbox's database: a restarted host tracks until the same second.
        again = Outbox(tmp_path / "outbox.db")
        until = [i.track_until for i in again.incidents(T0 + ended)]
        again.close()
        return updates, ended, until[0] - T0

    updates, ended, until = vrun(body)
    assert until == pytest.approx(ended + 300)
    assert set(round(b - a, 6) for a, b in zip(updates, updates[1:])) == {10.0}
    assert ended + 300 - 10 < updates[-1] <= ended + 300  # window_s after the call's end
    assert ended > 1000


@pytest.mark.parametrize("modem", ["refused", "rejected", "dead"])
def test_a_modem_that_refuses_atd_leaves_the_alarm_and_the_sms_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, modem: str) -> None:
    caplog.set_level(logging.INFO)

    ended: list[str] = []

    async def body(ip: str) -> tuple[Rig, str]:
        async with rig(tmp_path / ip, ip=ip, modem_url="socket://127.0.0.1:9"
                       if modem == "dead" else None) as r:
            r.sim.voice.default = (Outcome.refused(code=30) if modem == "refused"
                                   else Outcome.rejected())
            m = await alarm(r, 1)
            await r.until(lambda: [k for k, _ in r.kinds(m.key)].count(
                CallEventKind.ENDED) >= 2)
            await r.until(lambda: len(r.sms_at) == 2 or ip == "ack")
            return r, m.key

    # A dead modem sends no SMS either: there, the data alarm is what must go on.
    for ip in ("ack",) if modem == "dead" else ("ack", "hang"):
        (tmp_path / ip).mkdir()
        r, key = vrun(lambda: body(ip))
        assert r.ip.times(key)[0] == 0.0
        if ip == "hang":  # the SMS at the fallback time, both of its messages
            assert r.sms_at == [pytest.approx(Policy().fallback_after_s - 0.3, abs=1e-6)] * 2
        ended += [e.cause for _, e in r.events if e.kind is CallEventKind.ENDED]
    failures = [rec for rec in caplog.records if rec.name == "msa.host.voicecall"
                and rec.levelno == logging.WARNING]
    if modem == "rejected":  # the network ended the call: a call event, no modem error
        assert not failures and all(c.startswith("NO CARRIER: ") for c in ended)
    else:  # one warning per failed try, naming the command
        command = {"refused": "ATD", "dead": "open"}[modem]
        assert len(failures) == len(ended) == sum(c.startswith("not placed: ") for c in ended)
        assert all(command in rec.getMessage() for rec in failures), failures
    for rec in caplog.records:  # not in any line: the numbers, beyond their last two digits
        assert VOICE[1:-2] not in rec.getMessage() and SMS[1:-2] not in rec.getMessage()


def test_the_time_from_the_press_to_atd(tmp_path: Path) -> None:
    """Measured, not asserted on (a benchmark's job): printed with -s."""
    async def once(n: int) -> float:
        sim = SimModem()
        await sim.start()
        sms = SmsChannel(url=sim.url, number=SMS)
        outbox = Outbox(tmp_path / f"o{n}.db")
        caller = SilentCaller(VoiceCalls(sms.modem), outbox, BACKOFF, window_s=7200)
        ip = Scripted("https", always("ack"), _Wall())
        d = Dispatcher(outbox, [sms, ip], Place(_Wall()), Policy(),
                       after_first_attempt=caller.after_first_attempt)
        task = asyncio.create_task(d.run())
        pressed = time.monotonic()
        await submit(d, _Wall(), hp.Kind.ALARM, 1, age_ms=0)
        call = await sim.voice.next_call()
        await d.stop()
        await task
        await caller.close()
        await sms.close()
        await sim.stop()
        outbox.close()
        assert call.number == VOICE
        return call.dialled_at - pressed

    samples = [asyncio.run(once(n)) for n in range(5)]
    print(f"\npress -> ATD at the simulated modem: median {statistics.median(samples) * 1000:.1f}"
          f" ms of {[round(s * 1000, 1) for s in samples]}")
    assert all(s > 0 for s in samples)


class _Wall:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
