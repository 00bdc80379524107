"""GSM modem driver: sends text-mode SMS with 3GPP TS 27.005/27.007 AT commands over a pyserial
URL (`/dev/ttyUSB2`, `socket://127.0.0.1:PORT`), the blocking serial I/O on a worker thread of
its own so the event loop never waits on the port.

Every step has a timeout and the whole send an absolute deadline (`time.monotonic()`). After a
timeout or a lost link the port is closed; the next send opens it again and re-initialises the
modem, which is how the driver recovers from a modem reset or a USB re-enumeration.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from dataclasses import dataclass

import serial

from .errors import ModemError

log = logging.getLogger(__name__)

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

# TS 27.005 §3.2.5 +CMS ERROR codes: meaning, and whether trying again can help. 0-127 are
# TS 24.011 RP causes, 128-255 TS 23.040 TP-FCS values, 300-500 the modem's own.
CMS_ERRORS: dict[int, tuple[str, bool]] = {
    1: ("unassigned (unallocated) number", False),
    8: ("operator determined barring", False),
    10: ("call barred", False),
    21: ("short message transfer rejected", False),
    27: ("destination out of service", True),
    28: ("unidentified subscriber", False),
    29: ("facility rejected", False),
    30: ("unknown subscriber", False),
    38: ("network out of order", True),
    41: ("temporary failure", True),
    42: ("congestion", True),
    47: ("resources unavailable, unspecified", True),
    50: ("requested facility not subscribed", False),
    69: ("requested facility not implemented", False),
    81: ("invalid short message transfer reference value", True),
    95: ("invalid message, unspecified", False),
    96: ("invalid mandatory information", False),
    97: ("message type non-existent or not implemented", False),
    98: ("message not compatible with short message protocol state", True),
    99: ("information element non-existent or not implemented", False),
    111: ("protocol error, unspecified", True),
    127: ("interworking, unspecified", True),
    128: ("telematic interworking not supported", False),
    143: ("unspecified TP-PID error", False),
    144: ("data coding scheme (alphabet) not supported", False),
    159: ("unspecified TP-DCS error", False),
    176: ("TPDU not supported", False),
    192: ("SC busy", True),
    193: ("no SC subscription", False),
    194: ("SC system failure", True),
    195: ("invalid SME address", False),
    196: ("destination SME barred", False),
    197: ("SM rejected, duplicate SM", False),
    255: ("unspecified error cause", True),
    300: ("ME failure", True),
    301: ("SMS service of ME reserved", True),
    302: ("operation not allowed", False),
    303: ("operation not supported", False),
    304: ("invalid PDU mode parameter", False),
    305: ("invalid text mode parameter", False),
    310: ("(U)SIM not inserted", False),
    311: ("(U)SIM PIN required", False),
    312: ("PH-(U)SIM PIN required", False),
    313: ("(U)SIM failure", False),
    314: ("(U)SIM busy", True),
    315: ("(U)SIM wrong", False),
    316: ("(U)SIM PUK required", False),
    317: ("(U)SIM PIN2 required", False),
    318: ("(U)SIM PUK2 required", False),
    320: ("memory failure", True),
    321: ("invalid memory index", False),
    322: ("memory full", True),
    330: ("SMSC address unknown", False),
    331: ("no network service", True),
    332: ("network timeout", True),
    340: ("no +CNMA acknowledgement expected", True),
    500: ("unknown error", True),
}
# TS 27.007 §9.2 +CME ERROR codes the commands used here can give.
CME_ERRORS: dict[int, tuple[str, bool]] = {
    0: ("phone failure", True),
    3: ("operation not allowed", False),
    4: ("operation not supported", False),
    10: ("SIM not inserted", False),
    11: ("SIM PIN required", False),
    12: ("SIM PUK required", False),
    13: ("SIM failure", False),
    14: ("SIM busy", True),
    15: ("SIM wrong", False),
    30: ("no network service", True),
    31: ("network timeout", True),
    32: ("network not allowed, emergency calls only", False),
    100: ("unknown", True),
}
# +CREG <stat>: meaning, and for the unregistered ones whether waiting can help.
CREG_STATES: dict[int, tuple[str, bool]] = {
    0: ("not registered, not searching for an operator", True),
    1: ("registered, home network", True),
    2: ("not registered, searching for an operator", True),
    3: ("registration denied", False),
    4: ("registration state unknown", True),
    5: ("registered, roaming", True),
}
REGISTERED = frozenset({1, 5})


def explain(family: str, code: int) -> tuple[str, bool]:
    """Meaning of a +CMS/+CME ERROR code and whether retrying can help (unknown: it might)."""
    table = CMS_ERRORS if family == "+CMS ERROR" else CME_ERRORS
    if code in table:
        return table[code]
    if family == "+CMS ERROR":
        if code < 128:
            return ("network (RP) cause", True)
        if code < 256:
            return ("SMS centre (TP-FCS) failure", True)
        if code >= 512:
            return ("manufacturer specific error", True)
    return ("unknown error code", True)


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


class _Port:
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
        self._port: _Port | None = None
        self._doing = ""  # the command under way, for errors
        self._stale: list[_Port] = []  # ports set aside after a failure, to close
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="modem")
        self._closed = False

    async def send_sms(self, number: str, text: str, *, deadline: float) -> int:
        """Sends one SMS and returns its message reference (+CMGS: <mr>). `deadline` is a
        time.monotonic() value. Raises ModemError."""
        if not _NUMBER.fullmatch(number):
            raise ModemError("AT+CMGS", "the number must be 3 to 20 digits, optionally after +",
                             retryable=False)
        payload = gsm_encode(text)  # refused before anything touches the port
        if self._closed:
            raise ModemError("AT+CMGS", "the modem driver is closed", retryable=False)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._send, number, payload,
                                              deadline)
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

    def _send(self, number: str, payload: bytes, deadline: float) -> int:
        if time.monotonic() >= deadline:  # queued behind another send: the port is fine
            raise ModemError("AT+CMGS", "the deadline passed before the send began")
        self._doing = "open"
        try:
            port = self._port or self._open(deadline)
            self._check_registration(port, deadline)
            mr = self._submit(port, number, payload, deadline)
        except _Timeout:
            self._detach(cancel=True)
            raise ModemError(self._doing, "no answer in time") from None
        except (serial.SerialException, OSError) as exc:
            self._detach()
            raise ModemError(self._doing, f"link to the modem lost: {exc}") from None
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

    def _open(self, deadline: float) -> _Port:
        if time.monotonic() >= deadline:
            raise _Timeout
        self._port = port = _Port(self.url, self.baudrate, self.timeouts.command_s)
        port.write(ESC)  # a modem left in text entry by an earlier run drops it now
        try:
            for command in ("AT", "ATE0", "AT+CMEE=1", "AT+CMGF=1", 'AT+CSCS="GSM"'):
                self._command(port, command, deadline)
        except ModemError:
            self._detach()  # refused set-up: try it all again next time
            raise
        log.info("modem at %s initialised", self.url)
        return port

    def _command(self, port: _Port, command: str, deadline: float,
                 info: str = "") -> list[str]:
        """Runs one command; returns its information lines starting with `info`. Echo and
        unsolicited result codes are skipped, whatever arrives in between."""
        name = self._doing = command.split("=")[0]
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
            if info and line.startswith(info):
                lines.append(line)
            elif line != command:  # not our own echo
                log.debug("modem: unsolicited %s", _urc_name(line))

    def _check_registration(self, port: _Port, deadline: float) -> None:
        # The answer is "+CREG: <n>,<stat>[,...]"; a URC is "+CREG: <stat>[,"<lac>",...]".
        answers = [ln[6:].replace(" ", "").split(",")
                   for ln in self._command(port, "AT+CREG?", deadline, "+CREG:")]
        solicited = [a for a in answers if len(a) >= 2 and a[1].isdigit()]
        if not solicited:
            raise ModemError("AT+CREG?", "no registration status in the answer")
        stat = int(solicited[-1][1])
        meaning, retry = CREG_STATES.get(stat, ("unknown registration status", True))
        if stat not in REGISTERED:
            raise ModemError("AT+CREG?", f"not registered to a network: {meaning}", code=stat,
                             family="CREG", retryable=retry)

    def _submit(self, port: _Port, number: str, payload: bytes, deadline: float) -> int:
        self._doing = "AT+CMGS"
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
                log.debug("modem: unsolicited %s", _urc_name(line))
