"""Voice calls through the host's GSM modem with 3GPP TS 27.007 AT commands (ATD<number>;
AT+CLCC ATH AT+CEER AT+CLVL AT+CRSL AT+CMUT), on the same worker thread and port as the SMS
(host/modem.py), so a call and an SMS interleave as they do on the real modem.

ATD<number>; answers OK once the set-up starts; the call then goes on without final result
codes, and its end arrives as an unsolicited NO CARRIER, BUSY or NO ANSWER at any moment, also
in the middle of an SMS. The driver keeps each one it reads (GsmModem.call_urcs); ended_urcs()
hands them over, poll() first reads what the modem sent while nothing was running.
"""
from __future__ import annotations

import enum
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ModemError
from .modem import CALL_END_CODES, GsmModem, Port, mask

log = logging.getLogger(__name__)
T = TypeVar("T")

_DIAL_NUMBER = re.compile(r"\+?\d{3,20}")
_CLCC = re.compile(r'\+CLCC:\s*(\d+),([01]),([0-5]),(\d+),([01])(?:,"([^"]*)",(\d+))?.*')


class CallState(enum.IntEnum):
    """+CLCC <stat>."""

    ACTIVE = 0
    HELD = 1
    DIALLING = 2
    ALERTING = 3
    INCOMING = 4
    WAITING = 5


@dataclass(frozen=True)
class CallInfo:
    """One line of AT+CLCC. `outgoing` is <dir> 0 (mobile originated)."""

    id: int
    state: CallState
    number: str
    outgoing: bool


@dataclass(frozen=True)
class CallEnd:
    """A call-end result code the driver read (NO CARRIER, BUSY, NO ANSWER, NO DIALTONE), and
    when it read it (time.monotonic(); the modem sent it at most then)."""

    result: str
    seen_at: float


@dataclass(frozen=True)
class SilenceReport:
    """What silence() could set: the speaker at 0, the ringer at 0, the microphone open (set
    and read back). `refused` names each setting the modem would not take, and why."""

    speaker: bool
    ringer: bool
    microphone: bool
    refused: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.speaker and self.ringer and self.microphone


# (the setting's name, the command) in the order silence() sends them.
_SILENCE = (("speaker", "AT+CLVL=0"), ("ringer", "AT+CRSL=0"), ("microphone", "AT+CMUT=0"))


class VoiceCalls:
    """Voice calls on a GsmModem. Every method takes a `deadline` (time.monotonic()) and
    raises host.errors.ModemError; each failure is also logged, without the number."""

    def __init__(self, modem: GsmModem) -> None:
        self.modem = modem

    async def dial(self, number: str, *, deadline: float) -> None:
        """Places a voice call: returns once the modem started the set-up (its OK). A refusal
        at once (+CME ERROR, NO CARRIER, BUSY ...) raises ModemError, naming the cause."""
        if not _DIAL_NUMBER.fullmatch(number):
            raise ModemError("ATD", "the number must be 3 to 20 digits, optionally after +",
                             retryable=False)
        await self._do("ATD", functools.partial(self._dial, number), deadline)
        log.info("voice call to %s: set-up started", mask(number))

    async def calls(self, *, deadline: float) -> list[CallInfo]:
        """The modem's current calls (AT+CLCC); empty when there is none."""
        return await self._do("AT+CLCC", self._calls, deadline)

    async def hang_up(self, *, deadline: float) -> None:
        """Ends the call (ATH; AT+CHUP where the modem refuses ATH for voice)."""
        await self._do("ATH", self._hang_up, deadline)

    async def end_cause(self, *, deadline: float) -> str:
        """The last call's end cause as the modem words it (AT+CEER), e.g. "User busy"."""
        return await self._do("AT+CEER", self._end_cause, deadline)

    async def silence(self, *, deadline: float) -> SilenceReport:
        """Speaker and ringer to 0, the microphone open. A setting the modem refuses is
        reported and logged, never fatal; a timeout or a lost link raises."""
        report = await self._do("AT+CMUT", self._silence, deadline)
        for why in report.refused:
            log.warning("voice: the modem cannot be kept silent in full: %s", why)
        return report

    def ended_urcs(self) -> list[CallEnd]:
        """The call-end codes read since the last look, oldest first (no port access)."""
        out = []
        while True:
            try:
                out.append(CallEnd(*self.modem.call_urcs.popleft()))
            except IndexError:  # empty: another reader may have taken the last one
                return out

    async def poll(self, *, deadline: float) -> list[CallEnd]:
        """Reads what the modem sent while no command ran, then ended_urcs()."""
        await self._do("poll", self._poll, deadline)
        return self.ended_urcs()

    async def _do(self, doing: str, job: Callable[[Port, float], T], deadline: float) -> T:
        try:
            return await self.modem.run(job, doing, deadline=deadline)
        except ModemError as exc:
            log.warning("voice: %s failed: %s", doing, exc)
            raise

    # Everything below runs on the modem's worker thread, inside GsmModem.run: a ModemError
    # raised there is the modem's refusal (timeouts and a lost link surface outside as such).

    def _dial(self, number: str, port: Port, deadline: float) -> None:
        self.modem.check_registration(port, deadline)
        try:
            self.modem.command(port, f"ATD{number};", deadline, name="ATD",
                               finals=CALL_END_CODES)
        except ModemError as exc:
            if exc.family not in CALL_END_CODES:
                raise
            cause = self._end_cause(port, deadline)
            raise ModemError("ATD", f"the call was refused at once: {exc.family} ({cause})",
                             family=exc.family) from None

    def _calls(self, port: Port, deadline: float) -> list[CallInfo]:
        calls = []
        for line in self.modem.command(port, "AT+CLCC", deadline, "+CLCC:"):
            match = _CLCC.fullmatch(line)
            if match is None:  # the line itself may hold a number: not in the error
                raise ModemError("AT+CLCC", "a call list line that does not parse")
            calls.append(CallInfo(int(match[1]), CallState(int(match[3])), match[6] or "",
                                  match[2] == "0"))
        return calls

    def _hang_up(self, port: Port, deadline: float) -> None:
        try:
            self.modem.command(port, "ATH", deadline)
        except ModemError as exc:
            log.info("voice: ATH refused (%s), trying AT+CHUP", exc.meaning)
            self.modem.command(port, "AT+CHUP", deadline)

    def _end_cause(self, port: Port, deadline: float) -> str:
        lines = self.modem.command(port, "AT+CEER", deadline, "+CEER:")
        if not lines:
            raise ModemError("AT+CEER", "no +CEER line in the answer")
        # "+CEER: Normal call clearing" or, on some modems, "+CEER: "CC INFO","User busy"".
        return lines[-1][6:].strip().split('","')[-1].strip('"')

    def _silence(self, port: Port, deadline: float) -> SilenceReport:
        done: dict[str, bool] = {}
        refused: list[str] = []
        for setting, command in _SILENCE:
            try:
                self.modem.command(port, command, deadline)
                done[setting] = True
            except ModemError as exc:
                done[setting] = False
                refused.append(f"{setting}: {exc}")
        if done["microphone"]:
            try:
                read = self.modem.command(port, "AT+CMUT?", deadline, "+CMUT:")
            except ModemError as exc:
                read = [f"+CMUT: ({exc})"]
            if not read or read[-1][6:].strip() != "0":
                done["microphone"] = False
                refused.append("microphone: AT+CMUT? does not read back 0 (open)")
        return SilenceReport(done["speaker"], done["ringer"], done["microphone"],
                             tuple(refused))

    def _poll(self, port: Port, deadline: float) -> None:
        self.modem.drain(port)
