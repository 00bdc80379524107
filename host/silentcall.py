"""The silent call (issue 16): after each alarm's first delivery attempt, a voice call from the
host's modem to the centre's voice number, the victim's side silenced and the microphone open
so the operator can listen in; redialled with backoff while the incident is open, hung up when
the centre resolves it; the incident's tracking kept going while a call is up and for the
tracking window after it ends (docs/dispatch.md, "The silent call").

The modem's one worker thread also sends the SMS: every step here is one short AT command
(ATD answers at the set-up, the call is followed by polling AT+CLCC), so an SMS waits behind
at most one of them.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from msa.wire.message import Message, MessageKind

from .dispatcher import Clock, RealClock
from .errors import ModemError
from .outbox import Outbox
from .voicecall import CallState, VoiceCalls

log = logging.getLogger("msa.host.silentcall")

_STEP_S = 2.0  # one AT step's limit: what an SMS may have to wait behind
_POLL_FAILURES = 3  # AT+CLCC failing this many times in a row: the call counts as ended
_UP = (CallState.DIALLING, CallState.ALERTING, CallState.ACTIVE, CallState.HELD)


@dataclass(frozen=True)
class VoiceSettings:
    """The `voice` block of the sms channel (docs/configuration.md)."""

    number: str
    redial_for_s: float = 1800.0  # redials only this long after the incident's first dial
    redial_first_s: float = 5.0
    redial_max_s: float = 60.0
    poll_s: float = 1.0


class CallEventKind(enum.Enum):
    ATTEMPT = "attempt"  # a call is about to be placed (silence, then ATD)
    DIALLING = "dialling"  # ATD was taken: the set-up runs
    ALERTING = "alerting"  # the centre's side rings
    ANSWERED = "answered"  # the call is active: the operator can listen
    ENDED = "ended"  # over, or never set up; `cause` says why


@dataclass(frozen=True)
class CallEvent:
    """One step of a call for an incident: `at` on the dispatcher's clock, `attempt` counted
    from 1 per incident, `cause` for ENDED (the modem's words, or what the host did)."""

    kind: CallEventKind
    at: float
    attempt: int
    cause: str = ""


# The seam to the centre: told of every call event, by incident key. The service commits each
# in the outbox as a CALL message of the incident (host/service.py, report_call_event).
CallObserver = Callable[[str, CallEvent], None]


class SilentCaller:
    """One per modem: one call at a time. after_first_attempt() is the dispatcher's hook."""

    def __init__(self, voice: VoiceCalls, outbox: Outbox, settings: VoiceSettings, *,
                 window_s: float, clock: Clock | None = None,
                 on_call_event: CallObserver | None = None) -> None:
        self.voice = voice
        self.outbox = outbox
        self.settings = settings
        self.window_s = window_s
        self.clock = clock or RealClock()
        self._observer = on_call_event
        self._wanted: dict[str, float | None] = {}  # incident -> its first dial (clock time)
        self._attempts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.calling = ""  # the incident the call under way is for ("" none)

    def after_first_attempt(self, message: Message) -> None:
        """An alarm's first delivery attempt is under way: call for its incident. Only starts
        a task; a call already under way (another alarm's) covers this one too."""
        key = message.incident
        if message.kind is not MessageKind.ALARM or not key or key in self._wanted:
            return
        self._wanted[key] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="silent-call")
        elif self.calling:
            log.info("incident %s: the call for incident %s covers it: no second call",
                     key, self.calling)

    async def close(self) -> None:
        """Stops following calls; a call that is up stays up (the modem keeps it)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        """Calls for the wanted incidents, one call at a time, until none is left open."""
        delays: dict[str, int] = {}  # incident -> failed calls in a row (the backoff step)
        while (key := self._next()) is not None:
            answered = await self._call(key)
            delays[key] = 0 if answered else delays.get(key, 0) + 1
            if self._next() is None:
                break
            s = self.settings
            delay = min(s.redial_max_s, s.redial_first_s * 2 ** max(0, delays[key] - 1))
            log.info("incident %s: redialling in %.0f s", key, delay)
            await self.clock.sleep(delay)
        self.calling = ""

    def _next(self) -> str | None:
        """The oldest wanted incident still open and within its redial time; the others are
        forgotten."""
        now = self.clock.time()
        open_keys = {i.key for i in self.outbox.incidents(now)}
        for key, first in list(self._wanted.items()):
            if key not in open_keys:
                del self._wanted[key]
                log.info("incident %s: closed: no further call", key)
            elif first is not None and now >= first + self.settings.redial_for_s:
                del self._wanted[key]
                log.info("incident %s: no redial after %.0f s from the first dial", key,
                         self.settings.redial_for_s)
        return next(iter(self._wanted), None)

    def _emit(self, key: str, kind: CallEventKind, cause: str = "") -> None:
        event = CallEvent(kind, self.clock.time(), self._attempts.get(key, 0), cause)
        if self._observer is not None:
            try:
                self._observer(key, event)
            except Exception:  # an observer's bug must not end the call's supervision
                log.exception("incident %s: the call event observer failed", key)

    async def _call(self, key: str) -> bool:
        """One call for the incident, from silence and ATD to its end; True if answered."""
        self.calling = key
        self._attempts[key] = self._attempts.get(key, 0) + 1
        if self._wanted.get(key) is None:  # the redial time counts from the first try
            self._wanted[key] = self.clock.time()
        self._emit(key, CallEventKind.ATTEMPT)
        self.voice.ended_urcs()  # an earlier call's end code is not this one's
        try:
            report = await self.voice.silence(deadline=_soon())
            dialled_at = time.monotonic()
            await self.voice.dial(self.settings.number, deadline=_soon())
        except ModemError as exc:  # voicecall logged it, naming the command
            self._emit(key, CallEventKind.ENDED, f"not placed: {exc}")
            return False
        self._emit(key, CallEventKind.DIALLING)
        return await self._follow(key, dialled_at, mic_open=report.microphone)

    async def _follow(self, key: str, dialled_at: float, mic_open: bool) -> bool:
        """Polls the call until it ends or the incident is closed (then hangs up)."""
        seen: set[CallState] = set()
        failures = 0
        while True:
            self._extend(self.clock.time() + self.window_s)
            await self.clock.sleep(self.settings.poll_s)
            if key not in {i.key for i in self.outbox.incidents(self.clock.time())}:
                await self._hang_up(key)
                return CallState.ACTIVE in seen
            try:
                calls = [c for c in await self.voice.calls(deadline=_soon()) if c.outgoing]
            except ModemError:  # logged by voicecall
                failures += 1
                if failures < _POLL_FAILURES:
                    continue
                self._ended(key, "the modem stopped answering AT+CLCC")
                return CallState.ACTIVE in seen
            failures = 0
            ends = [e for e in self.voice.ended_urcs() if e.seen_at >= dialled_at]
            state = calls[0].state if calls and calls[0].state in _UP else None
            if ends or state is None:
                cause = ends[0].result if ends else "no call in AT+CLCC"
                try:
                    cause = f"{cause}: {await self.voice.end_cause(deadline=_soon())}"
                except ModemError:
                    pass  # logged by voicecall; the end code alone says enough
                self._ended(key, cause)
                return CallState.ACTIVE in seen
            if state is CallState.ALERTING and state not in seen:
                self._emit(key, CallEventKind.ALERTING)
            if state is CallState.ACTIVE and state not in seen:
                self._emit(key, CallEventKind.ANSWERED)
                if not mic_open:  # some modems take AT+CMUT only once a call is active
                    try:
                        mic_open = (await self.voice.silence(deadline=_soon())).microphone
                    except ModemError:
                        pass  # logged by voicecall
            seen.add(state)

    def _ended(self, key: str, cause: str) -> None:
        self._extend(self.clock.time() + self.window_s)
        self._emit(key, CallEventKind.ENDED, cause)

    async def _hang_up(self, key: str) -> None:
        try:
            await self.voice.hang_up(deadline=_soon())
        except ModemError:
            pass  # logged by voicecall; the centre's end of the call can still hang up
        self._emit(key, CallEventKind.ENDED, "hung up: the centre resolved the incident")

    def _extend(self, until: float) -> None:
        """Tracking goes on until `until` for every wanted incident (a call covers them
        all: one victim, one modem)."""
        for key in list(self._wanted):
            self.outbox.extend_incident(key, until)


def _soon() -> float:
    return time.monotonic() + _STEP_S
