"""Voice calls in the simulated GSM modem (simulator/modem.py): the TS 27.007 call commands a
host uses (ATD<number>; AT+CLCC ATH AT+CHUP AT+CEER AT+CLVL AT+CRSL AT+CMUT), each call's
fate set by the test beforehand, the call's progress on the modem's own clock, and its end as
an unsolicited result code on the link whatever the host is doing at that moment.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .modem import SimModem

_ATD = re.compile(r"ATD([^;]*)(;?)", re.IGNORECASE)
_DIAL_STRING = re.compile(r"\+?[0-9*#]{1,20}")
_LEVEL = re.compile(r"[0-5]")
NO_CAUSE = "No cause information available"
NORMAL = "Normal call clearing"


class Session(Protocol):
    """What the voice model needs of one connection's command state."""

    async def send(self, *lines: str) -> None: ...

    async def cme_error(self, code: int) -> None: ...


class Fate(enum.Enum):
    """How the network and the called party treat a call."""

    ANSWER = "answer"  # dialling, alerting, then active
    BUSY = "busy"  # BUSY, "User busy"
    NO_ANSWER = "no answer"  # alerting, then NO ANSWER, "No answer"
    REFUSED = "refused"  # ATD answered +CME ERROR <code> (or NO CARRIER): no call at all
    REJECTED = "rejected"  # ATD answered OK, then NO CARRIER at once


@dataclass(frozen=True)
class Outcome:
    """One call's fate. `after_s` is from ATD to the answer, BUSY or NO ANSWER; the far end
    rings from `alerting_after_s` (capped at `after_s`)."""

    fate: Fate
    after_s: float = 0.0
    alerting_after_s: float = 0.0
    code: int | None = 30  # REFUSED: the +CME ERROR (30: no network service); None: NO CARRIER
    cause: str = ""  # what AT+CEER says at the end; empty: the fate's usual cause

    @classmethod
    def answer(cls, after_s: float = 0.05, alerting_after_s: float | None = None) -> Outcome:
        return cls(Fate.ANSWER, after_s, after_s / 2 if alerting_after_s is None
                   else alerting_after_s)

    @classmethod
    def busy(cls, after_s: float = 0.05) -> Outcome:
        return cls(Fate.BUSY, after_s, after_s)

    @classmethod
    def no_answer(cls, after_s: float = 0.1, alerting_after_s: float = 0.0) -> Outcome:
        return cls(Fate.NO_ANSWER, after_s, alerting_after_s)

    @classmethod
    def refused(cls, code: int | None = 30, cause: str = "") -> Outcome:
        """ATD's own answer is the refusal: +CME ERROR <code>, or with None the plain NO
        CARRIER older modems give."""
        return cls(Fate.REFUSED, code=code, cause=cause)

    @classmethod
    def rejected(cls, cause: str = "Call rejected") -> Outcome:
        return cls(Fate.REJECTED, cause=cause)


class Stat(enum.IntEnum):
    """+CLCC <stat> of a mobile-originated call."""

    ACTIVE = 0
    DIALLING = 2
    ALERTING = 3


_USUAL_CAUSE = {Fate.BUSY: ("BUSY", "User busy"), Fate.NO_ANSWER: ("NO ANSWER", "No answer")}


@dataclass(eq=False)
class SimCall:
    """The record of one ATD: times are time.monotonic() (the host's deadline clock);
    `ended_by` is "host" (ATH), "remote" (the called party) or "network". Tests wait on the
    events, never on time."""

    id: int
    number: str
    dialled_at: float
    stat: Stat = Stat.DIALLING
    alerting_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    cause: str = ""
    ended_by: str = ""
    alerting: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class SimVoice:
    """The modem's voice side, shared by all its connections (a call outlives a dropped
    link, as on a USB modem that did not reset)."""

    def __init__(self, modem: SimModem) -> None:
        self.modem = modem
        self.default = Outcome.answer()
        self.outcomes: collections.deque[Outcome] = collections.deque()
        self.calls: list[SimCall] = []  # every ATD, refused ones too
        self.placed: asyncio.Queue[SimCall] = asyncio.Queue()
        self.current: SimCall | None = None
        self.last_cause = NO_CAUSE
        # Speaker volume, ringer level, microphone mute: modem settings, not a link's.
        self.settings = {"AT+CLVL": 3, "AT+CRSL": 3, "AT+CMUT": 0}
        self.refusing: dict[str, bool] = {}  # command -> answers +CME ERROR 4 (else ERROR)
        self.ignoring: set[str] = set()  # commands answered OK that change nothing
        self._progress: asyncio.Task[None] | None = None

    # Test controls.

    def queue(self, *outcomes: Outcome) -> None:
        """The fates of the next calls, in order; after them, `default`."""
        self.outcomes.extend(outcomes)

    def refuse(self, command: str, cme: bool = True) -> None:
        """A modem model without this setting ("AT+CRSL"): +CME ERROR 4, or plain ERROR."""
        self.refusing[command.upper()] = cme

    def ignore(self, command: str) -> None:
        """A modem model that answers OK to this setting and keeps its old value (AT+CMUT
        that only takes during a call on some firmwares)."""
        self.ignoring.add(command.upper())

    def drop_call(self, cause: str = "Network out of order") -> SimCall:
        """The network loses the call now: NO CARRIER."""
        return self._end("NO CARRIER", cause, "network")

    def remote_hang_up(self) -> SimCall:
        """The called party hangs up: NO CARRIER, normal clearing."""
        return self._end("NO CARRIER", NORMAL, "remote")

    async def next_call(self, timeout_s: float = 5.0) -> SimCall:
        """The next call the host dials."""
        return await asyncio.wait_for(self.placed.get(), timeout_s)

    # The commands.

    async def command(self, session: Session, line: str) -> bool:
        """Answers `line` if it is a voice command; False if it is not one."""
        upper = line.upper().replace(" ", "")
        name, _, arg = upper.partition("=")
        if match := _ATD.fullmatch(line):
            await self._dial(session, match.group(1), voice=bool(match.group(2)))
        elif upper in ("ATH", "ATH0", "AT+CHUP"):
            if self.current is not None:
                self._end("", NORMAL, "host")
            await session.send("OK")
        elif upper == "AT+CLCC":
            call = self.current
            await session.send(*([] if call is None else [
                f'+CLCC: {call.id},0,{int(call.stat)},0,0,"{call.number}",'
                f'{145 if call.number.startswith("+") else 129}']), "OK")
        elif upper == "AT+CEER":
            await session.send(f"+CEER: {self.last_cause}", "OK")
        elif name.rstrip("?") in self.settings:
            await self._setting(session, name.rstrip("?"), arg, query=upper.endswith("?"))
        else:
            return False
        return True

    async def _setting(self, session: Session, name: str, arg: str, query: bool) -> None:
        if name in self.refusing:
            await (session.cme_error(4) if self.refusing[name] else session.send("ERROR"))
        elif query:
            await session.send(f"+{name[3:]}: {self.settings[name]}", "OK")
        elif _LEVEL.fullmatch(arg) and (name != "AT+CMUT" or arg in "01"):
            if name not in self.ignoring:
                self.settings[name] = int(arg)
            await session.send("OK")
        else:
            await session.send("ERROR")

    async def _dial(self, session: Session, number: str, voice: bool) -> None:
        if not voice:  # a data call: no data bearer on this modem
            await session.send("NO CARRIER")
            return
        if not _DIAL_STRING.fullmatch(number):
            await session.cme_error(27)
            return
        if self.current is not None:  # one call at a time; no call waiting or hold
            await session.cme_error(3)
            return
        outcome = self.outcomes.popleft() if self.outcomes else self.default
        call = SimCall(len(self.calls) + 1, number, time.monotonic())
        self.calls.append(call)
        self.placed.put_nowait(call)
        if self.modem.registration not in (1, 5) or outcome.fate is Fate.REFUSED:
            code = outcome.code if outcome.fate is Fate.REFUSED else 30
            self._close(call, outcome.cause or ("No network service" if code == 30
                                                else "Call rejected"), "network")
            await (session.send("NO CARRIER") if code is None else session.cme_error(code))
            return
        self.current = call
        await session.send("OK")
        if outcome.fate is Fate.REJECTED:
            self._end("NO CARRIER", outcome.cause, "network")
        else:
            self._progress = asyncio.create_task(self._run(call, outcome))

    async def _run(self, call: SimCall, outcome: Outcome) -> None:
        """The call's progress on the modem's clock."""
        alerting_s = min(outcome.alerting_after_s, outcome.after_s)
        await asyncio.sleep(alerting_s)
        if outcome.fate is not Fate.BUSY:
            call.stat, call.alerting_at = Stat.ALERTING, time.monotonic()
            call.alerting.set()
        await asyncio.sleep(outcome.after_s - alerting_s)
        self._progress = None  # done: _end must not cancel the task that calls it
        if outcome.fate is Fate.ANSWER:
            call.stat, call.answered_at = Stat.ACTIVE, time.monotonic()
            call.answered.set()
        else:
            urc, cause = _USUAL_CAUSE[outcome.fate]
            self._end(urc, outcome.cause or cause, "remote" if outcome.fate is Fate.BUSY
                      else "network")

    def _end(self, urc: str, cause: str, by: str) -> SimCall:
        call = self.current
        if call is None:
            raise RuntimeError("no call to end")
        if self._progress is not None:
            self._progress.cancel()
            self._progress = None
        self.current = None
        self._close(call, cause, by)
        if urc and not self.modem._hung:  # a stuck firmware says nothing
            for writer in list(self.modem._writers):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(f"\r\n{urc}\r\n".encode("ascii"))
        return call

    def _close(self, call: SimCall, cause: str, by: str) -> None:
        call.ended_at, call.cause, call.ended_by = time.monotonic(), cause, by
        self.last_cause = cause
        call.ended.set()

    async def stop(self) -> None:
        if self._progress is not None:
            self._progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._progress
