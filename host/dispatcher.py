"""Turns verified button events into deliveries to the centre: stores each as a message in the
outbox (with the best location at hand, never waiting for a fix), delivers it over the
configured channels in order with deadlines and failover (the SMS "ghost call" when the IP
channels have not acknowledged within `fallback_after_s` of the press), retries until a receipt
is committed, and sends tracking updates and the silent call's events for open alarms.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .dispatch import SEND_BUDGET_S, Channel, LocationSource, Receipt
from msa.wire.call import CallPayload
from msa.wire.message import Message, MessageKind
from . import crashpoint
from .errors import ChannelError, HostError
from .events import ButtonEvent
from .outbox import Incident, Outbox
from msa.wire.protocol import Kind

log = logging.getLogger("msa.host.dispatcher")

MESSAGE_KINDS: dict[Kind, MessageKind] = {
    Kind.ALARM: MessageKind.ALARM,
    Kind.TEST: MessageKind.TEST,
    Kind.HEARTBEAT: MessageKind.HEARTBEAT,
    Kind.LOW_BATTERY: MessageKind.LOW_BATTERY,
    Kind.BOOT: MessageKind.BOOT,
}
# Channel types that are a last resort: tried only once the others had their chance.
FALLBACK_TYPES = frozenset({"sms"})


class Clock(Protocol):
    """Time for the dispatcher: the real one, or a simulated one in tests."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Policy:
    """How hard and how long the dispatcher tries; defaults as the field system works."""

    fallback_after_s: float = 5.0  # press -> ghost-call SMS if no IP channel acknowledged
    retry_first_s: float = 1.0
    retry_max_s: float = 30.0
    heartbeat_ttl_s: float = 300.0  # an older undelivered heartbeat no longer matters
    track_interval_s: float = 10.0
    track_window_s: float = 7200.0  # tracking lasts this long after the (latest) press
    concurrency: int = 4


Observer = Callable[[Message, Receipt], Awaitable[None]]
# Told of each alarm as its first delivery attempt in this process gets under way (the silent
# call, host/silentcall.py): it must only start work of its own, never wait.
AttemptHook = Callable[[Message], None]


class Dispatcher:
    """submit() is the BLE link's sink; run() delivers and tracks until stop()."""

    def __init__(self, outbox: Outbox, channels: Sequence[Channel], location: LocationSource,
                 policy: Policy | None = None, clock: Clock | None = None,
                 observer: Observer | None = None,
                 after_first_attempt: AttemptHook | None = None) -> None:
        if not channels:
            raise HostError("no dispatch channel configured")
        self.outbox = outbox
        self.channels = tuple(channels)
        self.location = location
        self.policy = policy or Policy()
        self.clock = clock or RealClock()
        self._observer = observer
        self._after_first = after_first_attempt
        self._attempted: set[str] = set()  # alarms whose first attempt the hook was told of
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        # Channels that refused a message for good (a retry there cannot help): skipped for it
        # until the host restarts, so a refusal never costs another SMS or another wait.
        self._refused: dict[str, set[str]] = {}

    def set_attempt_hook(self, hook: AttemptHook) -> None:
        """Sets the first-attempt hook after construction (the silent caller, which reports
        its events back here, is made once the dispatcher exists)."""
        self._after_first = hook

    # --- in: verified events ---
    async def submit(self, event: ButtonEvent) -> Message:
        """Commits the event as a message (with the best fix now, or none) and wakes
        delivery. Returns once it is durable: the link acknowledges the button after this."""
        now = self.clock.time()
        frame = event.frame
        kind = MESSAGE_KINDS[frame.kind]
        key = Message.event_key(frame.button_id, frame.boot_id, frame.seq)
        message = Message(key=key, kind=kind, button_id=frame.button_id, frame=frame.raw,
                          created_at=now, fix=self.location.best(),
                          pressed_at=event.pressed_at, battery_pct=frame.battery_pct,
                          incident=key if kind is MessageKind.ALARM else "")
        if self.outbox.put(message) and kind is MessageKind.ALARM:
            self.outbox.open_incident(message, now + self.policy.track_window_s)
        self._wake.set()
        return message

    def call_event(self, incident: str, call: CallPayload) -> Message | None:
        """Commits a call event of an incident (the silent call's observer) as a CALL
        message, numbered in order, and wakes delivery: it goes like a location update."""
        message = self.outbox.add_call(incident, call, self.clock.time())
        if message is None:
            log.warning("incident %s: call event %s not reported: the incident has the most"
                        " call events there may be", incident, call.event.value)
        self._wake.set()
        return message

    # --- the loops ---
    async def run(self) -> None:
        tracker = asyncio.create_task(self._track())
        try:
            await self._deliver_loop()
        finally:
            tracker.cancel()
            for task in list(self._inflight.values()):
                task.cancel()
            await asyncio.gather(tracker, *self._inflight.values(), return_exceptions=True)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _deliver_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            now = self.clock.time()
            free = self.policy.concurrency - len(self._inflight)
            if free > 0:
                for message in self.outbox.due(now, limit=free + len(self._inflight)):
                    if message.key in self._inflight or free <= 0:
                        continue
                    free -= 1
                    task = asyncio.create_task(self._deliver(message))
                    self._inflight[message.key] = task
                    task.add_done_callback(self._done)
            await self._sleep_until_due()

    def _done(self, task: asyncio.Task[None]) -> None:
        for key, t in list(self._inflight.items()):
            if t is task:
                del self._inflight[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery failed unexpectedly", exc_info=task.exception())
        self._wake.set()

    async def _sleep_until_due(self) -> None:
        # Messages in flight are left out: their own delivery wakes us when it ends, and
        # counting one that is due would turn this wait into a busy loop until then.
        nxt = self.outbox.next_try(skip=self._inflight)
        wait = None if nxt is None else max(0.0, nxt - self.clock.time())
        if wait == 0.0 and len(self._inflight) >= self.policy.concurrency:
            wait = None  # due, but every slot is busy: a finishing delivery wakes us
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            if wait is None:
                await waker
            else:
                sleeper = asyncio.ensure_future(self.clock.sleep(wait))
                await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                sleeper.cancel()
        finally:
            waker.cancel()

    async def _deliver(self, message: Message) -> None:
        p = self.policy
        if (message.kind is MessageKind.HEARTBEAT
                and self.clock.time() - message.created_at > p.heartbeat_ttl_s):
            self.outbox.drop(message.key, "stale heartbeat")
            return
        errors: list[str] = []
        refused = self._refused.setdefault(message.key, set())
        for channel in self._route(message):
            if channel.name in refused:
                continue
            timeout = self._timeout(channel, message)
            if timeout <= 0:
                continue  # the ghost-call deadline has passed: on to the SMS
            self._first_attempt(message)
            budget = SEND_BUDGET_S.set(timeout)  # copied into the send's task below
            try:
                receipt = await asyncio.wait_for(channel.send(message), timeout)
            except asyncio.TimeoutError:
                errors.append(f"{channel.name}: no acknowledgement within {timeout:.1f} s")
                continue
            except ChannelError as exc:
                errors.append(str(exc))
                if not exc.retryable:
                    refused.add(channel.name)
                continue
            finally:
                SEND_BUDGET_S.reset(budget)
            crashpoint.reached(crashpoint.ACCEPTED, message.kind.value)
            await self._delivered(message, receipt)
            return
        n = self.outbox.attempts(message.key)  # failed tries so far, kept across restarts
        delay = min(p.retry_max_s, p.retry_first_s * 2 ** n)
        if refused and refused >= {c.name for c in self._route(message)}:
            delay = p.retry_max_s  # every channel refused it: kept, tried again rarely,
            # but only where a try costs nothing: a refused SMS is never sent again.
            self._refused[message.key] = {n for n in refused if n.split(":", 1)[0]
                                          in FALLBACK_TYPES}
        error = "; ".join(errors) or "no channel carries this kind"
        log.warning("%s %s not delivered (try %d): %s", message.kind.value, message.key, n + 1,
                    error)
        self.outbox.failed(message.key, error, self.clock.time() + delay)

    def _first_attempt(self, message: Message) -> None:
        """Tells the hook of an alarm's first try here, on the loop's next turn: once the
        send is under way, so the hook can never delay it (nor raise into it)."""
        if (self._after_first is None or message.kind is not MessageKind.ALARM
                or message.key in self._attempted):
            return
        self._attempted.add(message.key)
        asyncio.get_running_loop().call_soon(self._after_first, message)

    def _route(self, message: Message) -> list[Channel]:
        usable = [c for c in self.channels if c.accepts(message.kind)]
        # Fallback channels go last whatever their place in the list.
        return ([c for c in usable if _type(c) not in FALLBACK_TYPES]
                + [c for c in usable if _type(c) in FALLBACK_TYPES])

    def _timeout(self, channel: Channel, message: Message) -> float:
        """A channel's own deadline; before a fallback, never past the ghost-call deadline
        counted from the press (or from when the host learnt of it)."""
        if _type(channel) in FALLBACK_TYPES or message.kind not in (MessageKind.ALARM,
                                                                   MessageKind.TEST):
            return channel.deadline_s
        start = message.pressed_at or message.created_at
        left = self.policy.fallback_after_s - (self.clock.time() - start)
        if left <= 0 and self.outbox.attempts(message.key) == 0 and any(
                _type(c) in FALLBACK_TYPES for c in self._route(message)):
            return 0.0  # the first round's IP time is spent: the ghost call goes now
        return max(0.5, min(channel.deadline_s, left))

    async def _delivered(self, message: Message, receipt: Receipt) -> None:
        self.outbox.delivered(receipt)
        self._refused.pop(message.key, None)
        if message.incident:
            self.outbox.set_reference(message.incident, receipt.reference)
            if receipt.closed:
                self.outbox.close_incident(message.incident, "resolved by the centre")
        log.info("%s %s delivered via %s", message.kind.value, message.key, receipt.channel)
        if self._observer is not None:
            await self._observer(message, receipt)

    async def _track(self) -> None:
        """Every interval, a location update for each open incident."""
        interval = self.policy.track_interval_s
        while True:
            await self.clock.sleep(interval)
            now = self.clock.time()
            for incident in self.outbox.incidents(now):
                self._update(incident, now)
            self._wake.set()

    def _update(self, incident: Incident, now: float) -> None:
        fix = self.location.best()
        if fix is None:
            return  # nothing new to say; the centre sees the last fix age
        n = incident.next_update_no
        self.outbox.add_update(incident, Message(
            key=f"{incident.key}/{n}", kind=MessageKind.LOCATION, button_id=incident.button_id,
            frame=incident.frame, created_at=now, fix=fix, update_no=n,
            incident=incident.key))


def _type(channel: Channel) -> str:
    return channel.name.split(":", 1)[0]
