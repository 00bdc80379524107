"""GSM modem driver: sends text-mode SMS with 3GPP TS 27.005/27.007 AT commands over a pyserial
URL (`/dev/ttyUSB2`, `socket://127.0.0.1:PORT`), the blocking serial I/O on a worker thread of
its own so the event loop never waits on the port.

Every step has a timeout and the whole send an absolute deadline (`time.monotonic()`). After a
timeout or a lost link the port is closed; the next send opens it again and re-initialises the
modem, which is how the driver recovers from a modem reset or a USB re-enumeration.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import serial

from .atcodes import CME_ERRORS as CME_ERRORS
from .atcodes import CMS_ERRORS as CMS_ERRORS
from .atcodes import CREG_STATES, REGISTERED
from .atcodes import explain as explain
from .errors import ModemError

log = logging.getLogger(__name__)
T = TypeVar("T")

# 3GPP TS 23.038 default alphabet: the character at index n is septet n (0x1B escapes to the
# extension table).
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = "\f^{}\\[~]|€"
_SEPTET = {ch: i for i, ch in enumerate(GSM_BASIC)}
# Septets the modem acts on while it collects the text after "> ": Ctrl-Z (Ξ) sends, ESC
# cancels (so the extension table, reached through ESC, is out too), CR/LF start a new prompt,
# and NUL ends the text in many modem firmwares.
_TEXT_MODE_CONTROL = {0x00: "NUL", 0x0A: "line feed", 0x0D: "carriage return",
                      0x1A: "Ctrl-Z", 0x1B: "ESC"}
MAX_SEPTETS = 160
CTRL_Z = b"\x1a"
ESC = b"\x1b"
_NUMBER = re.compile(r"\+?\d{3,20}")
# V.250 result codes that end a voice call: unsolicited after ATD's OK (or ATD's own final).
CALL_END_CODES = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"})


def gsm_encode(text: str) -> bytes:
    """The text as GSM default alphabet septets (what AT+CSCS="GSM" expects), one per byte.
    Raises ModemError for characters text mode cannot carry and for more than 160 septets."""
    out = bytearray()
    for pos, ch in enumerate(text):
        septet = _SEPTET.get(ch)
        if septet is None:
            where = "needs ESC, which cancels text mode" if ch in GSM_EXTENSION else \
                "is not in the GSM 7-bit default alphabet"
            raise ModemError("AT+CMGS", f"character {ch!r} at {pos} {where}", retryable=False)
        if septet in _TEXT_MODE_CONTROL:
            raise ModemError("AT+CMGS", f"character at {pos} is {_TEXT_MODE_CONTROL[septet]}, "
                             "which the modem acts on in text mode", retryable=False)
        out.append(septet)
    if len(out) > MAX_SEPTETS:
        raise ModemError("AT+CMGS", f"{len(out)} characters, more than one SMS ({MAX_SEPTETS})",
                         retryable=False)
    return bytes(out)


def gsm_decode(data: bytes) -> str:
    """The inverse of gsm_encode for the basic table (a simulated modem's side)."""
    if any(b >= len(GSM_BASIC) for b in data):
        raise ValueError("a byte above 0x7F is not a GSM septet")
    return "".join(GSM_BASIC[b] for b in data)


def mask(number: str) -> str:
    """A phone number for logs: its last two digits only."""
    return "…" + number[-2:]


@dataclass(frozen=True)
class Timeouts:
    """Per-step limits in seconds; each is also cut short by the send's deadline."""

    command_s: float = 2.0  # AT, ATE0, AT+CMEE, AT+CMGF, AT+CSCS, AT+CREG?
    prompt_s: float = 5.0  # AT+CMGS to the "> " prompt
    submit_s: float = 60.0  # Ctrl-Z to +CMGS: the network's round trip


class _Timeout(Exception):
    """A step ran out of time (internal: becomes a ModemError naming the command)."""


_PROMPT = "> "
_POLL_S = 0.05  # serial read timeout: how often a step looks at its deadline


class Port:
    """One open connection to the modem, used from the worker thread only."""

    def __init__(self, url: str, baudrate: int, write_timeout: float) -> None:
        try:
            self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=_POLL_S,
                                                write_timeout=write_timeout)
        except ValueError as exc:  # a malformed URL: no retry fixes it
            raise ModemError("open", f"bad modem URL: {exc}", retryable=False) from None
        except (serial.SerialException, OSError) as exc:
            raise ModemError("open", f"cannot open the modem port: {exc}") from None
        self._buf = b""

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def event(self, deadline: float, prompt: bool = False) -> str:
        """The next non-empty line, or _PROMPT when `prompt` and the modem asks for text."""
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            if prompt and self._buf.lstrip(b"\r\n").startswith(b">"):
                self._buf = b""
                return _PROMPT
            if time.monotonic() >= deadline:
                raise _Timeout
            self._buf += self.serial.read(max(1, self.serial.in_waiting))

    def pending(self) -> list[str]:
        """The whole lines the modem already sent, without waiting for more."""
        for _ in range(4096):  # a modem that never stops talking still lets a command through
            if not self.serial.in_waiting:
                break
            self._buf += self.serial.read(self.serial.in_waiting)
        lines = []
        while (line := self._pop_line()) is not None:
            lines.append(line)
        return lines

    def _pop_line(self) -> str | None:
        while True:
            ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if not ends:
                return None
            raw, self._buf = self._buf[:min(ends)], self._buf[min(ends) + 1:]
            if raw.strip():
                return raw.strip().decode("latin-1")

    def close(self) -> None:
        try:
            self.serial.close()
        except (serial.SerialException, OSError):
            pass  # closing a port that is already gone


def _final(line: str) -> tuple[str, int | None, str] | None:
    """(family, code, text) if the line is a final result code, else None."""
    if line in ("OK", "ERROR"):
        return (line, None, line)
    for family in ("+CMS ERROR", "+CME ERROR"):
        if line.startswith(family + ":"):
            value = line[len(family) + 1:].strip()
            return (family, int(value), value) if value.isdigit() else (family, None, value)
    return None


def _failure(command: str, family: str, code: int | None, text: str) -> ModemError:
    if family == "ERROR":  # no detail: whether a retry helps cannot be told, so it may
        return ModemError(command, "the modem answered ERROR")
    if code is None:  # a verbose (AT+CMEE=2) answer
        return ModemError(command, text, family=family)
    meaning, retry = explain(family, code)
    return ModemError(command, meaning, code=code, family=family, retryable=retry)


def _urc_name(line: str) -> str:
    """What to log of a line nobody asked for: a result code's name, never other text (a
    modem that ignored ATE0 echoes the SMS, and that holds a position)."""
    name = line.split(":")[0][:12]
    return name if re.fullmatch(r"[+^]?[A-Z]+", name) else "text"


def _until(limit: float, deadline: float) -> float:
    """When a step with this time limit must end, within the send's deadline."""
    return min(time.monotonic() + limit, deadline)


class GsmModem:
    """Sends SMS through one modem. Calls are serialised on the modem's own worker thread; a
    cancelled caller leaves the running step to finish at its own deadline."""

    def __init__(self, url: str, *, baudrate: int = 115200,
                 timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeouts = timeouts or Timeouts()
        self._port: Port | None = None
        self._doing = ""  # the command under way, for errors
        self._stale: list[Port] = []  # ports set aside after a failure, to close
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="modem")
        self._closed = False
        # Call-end result codes the worker read unasked, with when (time.monotonic()): appended
        # on the worker, taken by host/voicecall.py from any thread (deque ends are atomic).
        self.call_urcs: collections.deque[tuple[str, float]] = collections.deque(maxlen=64)

    async def send_sms(self, number: str, text: str, *, deadline: float) -> int:
        """Sends one SMS and returns its message reference (+CMGS: <mr>). `deadline` is a
        time.monotonic() value. Raises ModemError."""
        if not _NUMBER.fullmatch(number):
            raise ModemError("AT+CMGS", "the number must be 3 to 20 digits, optionally after +",
                             retryable=False)
        payload = gsm_encode(text)  # refused before anything touches the port
        return await self.run(functools.partial(self._send, number, payload), "AT+CMGS",
                              deadline=deadline)

    async def run(self, job: Callable[[Port, float], T], doing: str, *, deadline: float) -> T:
        """Runs `job(port, deadline)` on the worker thread, in turn with every send and job
        before it, the port open and the modem initialised: how host/voicecall.py shares the
        one port with the SMS. A timeout or a lost link sets the port aside. Raises
        ModemError (`doing` names the step when the driver is closed)."""
        if self._closed:
            raise ModemError(doing, "the modem driver is closed", retryable=False)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._job, job, doing, deadline)
        except ModemError:
            # pyserial's socket close sleeps 0.3 s: queued after the failure, not on its time.
            loop.run_in_executor(self._executor, self._close_stale)
            raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._shut)
        self._executor.shutdown(wait=False)

    # Everything below runs on the worker thread.

    def _job(self, job: Callable[[Port, float], T], doing: str, deadline: float) -> T:
        if time.monotonic() >= deadline:  # queued behind another step: the port is fine
            raise ModemError(doing, "the deadline passed before it began")
        self._doing = "open"
        try:
            return job(self._port or self._open(deadline), deadline)
        except _Timeout:
            self._detach(cancel=True)
            raise ModemError(self._doing, "no answer in time") from None
        except (serial.SerialException, OSError) as exc:
            self._detach()
            raise ModemError(self._doing, f"link to the modem lost: {exc}") from None

    def _send(self, number: str, payload: bytes, port: Port, deadline: float) -> int:
        self.check_registration(port, deadline)
        mr = self._submit(port, number, payload, deadline)
        log.info("SMS to %s accepted by the network, reference %d", mask(number), mr)
        return mr

    def _detach(self, cancel: bool = False) -> None:
        """Sets the port aside to be closed; the next send opens it again and re-initialises
        the modem, whatever state a timeout or a reset left it in."""
        port, self._port = self._port, None
        if port is None:
            return
        if cancel:  # leave text entry if the modem sits in it
            try:
                port.write(ESC)
            except (serial.SerialException, OSError):
                pass  # the link is what failed
        self._stale.append(port)

    def _close_stale(self) -> None:
        while self._stale:
            self._stale.pop().close()

    def _shut(self) -> None:
        self._detach()
        self._close_stale()

    def _open(self, deadline: float) -> Port:
        if time.monotonic() >= deadline:
            raise _Timeout
        self._port = port = Port(self.url, self.baudrate, self.timeouts.command_s)
        port.write(ESC)  # a modem left in text entry by an earlier run drops it now
        try:
            for command in ("AT", "ATE0", "AT+CMEE=1", "AT+CMGF=1", 'AT+CSCS="GSM"'):
                self.command(port, command, deadline)
        except ModemError:
            self._detach()  # refused set-up: try it all again next time
            raise
        log.info("modem at %s initialised", self.url)
        return port

    def command(self, port: Port, command: str, deadline: float, info: str = "", *,
                name: str = "", finals: frozenset[str] = frozenset()) -> list[str]:
        """Runs one command (on the worker, inside run()); returns its information lines
        starting with `info`. Echo and unsolicited result codes are skipped, whatever arrives
        in between; a line in `finals` ends the command as a ModemError. `name` is what
        errors call it (never a number: ATD's)."""
        name = self._doing = name or command.split("=")[0]
        self.drain(port)  # an earlier URC is never taken for this command's answer
        port.write(command.encode("ascii") + b"\r")
        step = _until(self.timeouts.command_s, deadline)
        lines: list[str] = []
        while True:
            line = port.event(step)
            final = _final(line)
            if final is not None:
                if final[0] == "OK":
                    return lines
                raise _failure(name, *final)
            if line in finals:
                raise ModemError(name, f"the modem answered {line}", family=line)
            if info and line.startswith(info):
                lines.append(line)
            elif line != command:  # not our own echo
                self._unsolicited(line)

    def drain(self, port: Port) -> None:
        """Takes in what the modem sent unasked since the last step."""
        for line in port.pending():
            self._unsolicited(line)

    def _unsolicited(self, line: str) -> None:
        if line in CALL_END_CODES:
            self.call_urcs.append((line, time.monotonic()))
            log.info("modem: a voice call ended: %s", line)
        else:
            log.debug("modem: unsolicited %s", _urc_name(line))

    def check_registration(self, port: Port, deadline: float) -> None:
        # The answer is "+CREG: <n>,<stat>[,...]"; a URC is "+CREG: <stat>[,"<lac>",...]".
        answers = [ln[6:].replace(" ", "").split(",")
                   for ln in self.command(port, "AT+CREG?", deadline, "+CREG:")]
        solicited = [a for a in answers if len(a) >= 2 and a[1].isdigit()]
        if not solicited:
            raise ModemError("AT+CREG?", "no registration status in the answer")
        stat = int(solicited[-1][1])
        meaning, retry = CREG_STATES.get(stat, ("unknown registration status", True))
        if stat not in REGISTERED:
            raise ModemError("AT+CREG?", f"not registered to a network: {meaning}", code=stat,
                             family="CREG", retryable=retry)

    def _submit(self, port: Port, number: str, payload: bytes, deadline: float) -> int:
        self._doing = "AT+CMGS"
        self.drain(port)
        port.write(f'AT+CMGS="{number}"\r'.encode("ascii"))
        step = _until(self.timeouts.prompt_s, deadline)
        while True:
            event = port.event(step, prompt=True)
            if event == _PROMPT:
                break
            final = _final(event)
            if final is not None:
                if final[0] == "OK":
                    raise ModemError("AT+CMGS", "OK without a prompt for the text")
                raise _failure("AT+CMGS", *final)
        port.write(payload + CTRL_Z)
        step = _until(self.timeouts.submit_s, deadline)
        mr: int | None = None
        while True:
            line = port.event(step)
            final = _final(line)
            if final is not None:
                if final[0] != "OK":
                    raise _failure("AT+CMGS", *final)
                if mr is None:
                    raise ModemError("AT+CMGS", "OK without a message reference")
                return mr
            if line.startswith("+CMGS:") and line[6:].strip().isdigit():
                mr = int(line[6:].strip())
            else:  # a URC, or the echoed text on a modem that ignored ATE0
                self._unsolicited(line)
