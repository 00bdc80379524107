"""A simulated GSM modem on 127.0.0.1, reachable by pyserial as `socket://127.0.0.1:PORT`: it
answers the TS 27.005/27.007 AT commands the host's driver uses like a real modem, delivers
each SMS to a queue (and an optional callback) for the reference centre, places voice calls
(simulator/modem_voice.py, `SimModem.voice`), and takes faults: lost registration, +CMS ERROR
on a send, a hang, a dropped link, unsolicited result codes.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from msa.host.modem import CME_ERRORS, CMS_ERRORS, CTRL_Z, ESC, MAX_SEPTETS, gsm_decode

from .modem_voice import SimVoice

_CR = 0x0D
# URCs a real modem may emit at any time between lines (the driver must skip them).
URCS = ("RING", "+CREG: 1", '+CMTI: "SM",3', '+CREG: 1,"00C3","1A2B"', "+CRING: VOICE")
_CMGS = re.compile(r'AT\+CMGS="(\+?\d+)"', re.IGNORECASE)


@dataclass(frozen=True)
class DeliveredSms:
    """One SMS the simulated network delivered: destination number, text, Unix time."""

    number: str
    text: str
    time: float


OnSms = Callable[[DeliveredSms], Awaitable[None]]


class SimModem:
    """The modem. `start()` listens on an ephemeral port; `url` is what pyserial opens.

    `registration` is the +CREG status (1 home, 5 roaming; 0/2/3/4 not registered).
    `urc_rate` is the chance of a URC, drawn from `urcs`, before each line the modem sends
    (1.0: before every one).
    """

    def __init__(self, *, on_sms: OnSms | None = None, registration: int = 1,
                 urc_rate: float = 0.0, urcs: tuple[str, ...] = URCS, seed: int = 0) -> None:
        self.on_sms = on_sms
        self.registration = registration
        self.urc_rate = urc_rate
        self.urcs = urcs
        self.deliveries: asyncio.Queue[DeliveredSms] = asyncio.Queue()
        self.connections = 0  # how many times a client connected
        self._random = random.Random(seed)
        self._next_mr = 0
        self._fail_next: int | None = None
        self._drop_next = False
        self._hung = False
        self._urc_after: tuple[str, str] | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._sessions: set[asyncio.Task[None]] = set()
        self.voice = SimVoice(self)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulated modem is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        await self.voice.stop()
        self.drop_connections()
        await asyncio.gather(*self._sessions)  # each ends on its link's close
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # Fault controls.

    def set_registration(self, stat: int) -> None:
        """The network registration status +CREG? reports from now on."""
        self.registration = stat

    def fail_next_send(self, code: int) -> None:
        """The next SMS is refused with +CMS ERROR <code> after its text is entered."""
        self._fail_next = code

    def drop_next_send(self) -> None:
        """The link drops when the next AT+CMGS arrives, as when a USB modem resets."""
        self._drop_next = True

    def hang(self) -> None:
        """Stop answering anything (the modem's firmware is stuck) until resume()."""
        self._hung = True

    def resume(self) -> None:
        self._hung = False

    def urc_after(self, command: str, urc: str) -> None:
        """Sends `urc` right after the answer to the next command starting with `command`:
        the moment a host may take it for the answer to its following command."""
        self._urc_after = (command.upper(), urc)

    def drop_connections(self) -> None:
        """Closes every open link now."""
        for writer in list(self._writers):
            writer.close()

    # One connection.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)
        session = _Session(self, writer)
        try:
            while data := await reader.read(256):
                if not self._hung:
                    await session.feed(data)
        except (ConnectionError, _Dropped):
            pass  # the client or a fault closed the link: that is this session's end
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _urc(self) -> str:
        if self.urc_rate and self._random.random() < self.urc_rate:
            return f"\r\n{self._random.choice(self.urcs)}\r\n"
        return ""

    async def _deliver(self, sms: DeliveredSms) -> int:
        mr, self._next_mr = self._next_mr, (self._next_mr + 1) % 256  # TP-MR is one octet
        await self.deliveries.put(sms)
        if self.on_sms is not None:
            await self.on_sms(sms)
        return mr


class _Dropped(Exception):
    """A fault closed the link."""


class _Session:
    """The command state of one connection: echo, error mode, text mode, character set."""

    def __init__(self, modem: SimModem, writer: asyncio.StreamWriter) -> None:
        self.modem = modem
        self.writer = writer
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.cscs = "IRA"
        self.line = bytearray()
        self.text: bytearray | None = None  # collecting an SMS's text after "> "
        self.number = ""
        self.tail = ""  # a urc_after() code to follow this command's answer

    async def send(self, *lines: str) -> None:
        for n, line in enumerate(lines):
            if n:  # the modem's clock runs between lines: a call's URC can land in an answer
                await asyncio.sleep(0)
            text = self.modem._urc() + f"\r\n{line}\r\n"
            if n == len(lines) - 1 and self.tail:
                # urc_after(): in the same write as the final answer, so that it is there
                # before the host can send its next command.
                text, self.tail = text + f"\r\n{self.tail}\r\n", ""
            self.writer.write(text.encode("latin-1"))
        await self.writer.drain()

    async def feed(self, data: bytes) -> None:
        for byte in data:
            if self.text is not None:
                await self._text_byte(byte)
            elif byte == _CR:
                line, self.line = self.line.decode("latin-1").strip(), bytearray()
                if self.echo:
                    self.writer.write(line.encode("latin-1") + b"\r")
                if line:
                    after = self.modem._urc_after
                    if after is not None and line.upper().startswith(after[0]):
                        self.modem._urc_after = None
                        self.tail = after[1]  # written with the answer's last line
                    await self._command(line)
                    self.tail = ""
            elif byte not in (0x0A, ESC[0], CTRL_Z[0]):  # stray LF, ESC, Ctrl-Z: ignored
                self.line.append(byte)

    async def _command(self, line: str) -> None:
        upper = line.upper()
        settings = {"AT+CMEE": ("cmee", {"0", "1", "2"}), "AT+CMGF": ("cmgf", {"0", "1"})}
        name, _, arg = upper.partition("=")
        if upper == "AT":
            await self.send("OK")
        elif upper in ("ATE", "ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            await self.send("OK")
        elif name in settings and arg in settings[name][1]:
            setattr(self, settings[name][0], int(arg))
            await self.send("OK")
        elif upper.endswith("?") and upper[:-1] in settings:
            await self.send(f"{upper[2:-1]}: {getattr(self, settings[upper[:-1]][0])}", "OK")
        elif name == "AT+CSCS" and arg in ('"GSM"', '"IRA"'):
            self.cscs = arg.strip('"')
            await self.send("OK")
        elif upper == "AT+CSCS?":
            await self.send(f'+CSCS: "{self.cscs}"', "OK")
        elif upper == "AT+CREG?":
            await self.send(f"+CREG: 0,{self.modem.registration}", "OK")
        elif match := _CMGS.fullmatch(line):
            await self._start_text(match.group(1))
        elif await self.modem.voice.command(self, line):
            pass
        else:
            await self.send("ERROR")  # unknown commands: plain ERROR, whatever +CMEE says

    async def _start_text(self, number: str) -> None:
        if self.cmgf != 1:  # PDU mode wants a length here, not a number
            await self.cms_error(304)
            return
        if self.modem._drop_next:
            self.modem._drop_next = False
            raise _Dropped
        self.number = number
        self.text = bytearray()
        self.writer.write((self.modem._urc() + "\r\n> ").encode("latin-1"))
        await self.writer.drain()

    async def _text_byte(self, byte: int) -> None:
        assert self.text is not None
        if byte == ESC[0]:  # cancelled: nothing is sent
            self.text = None
            await self.send("OK")
        elif byte == CTRL_Z[0]:
            text, self.text = bytes(self.text), None
            await self._submit(text)
        elif byte == _CR:  # a line break in the text: the modem prompts again
            self.text.append(0x0A)
            self.writer.write(b"\r\n> ")
        else:
            self.text.append(byte)

    async def _submit(self, raw: bytes) -> None:
        try:
            text = gsm_decode(raw) if self.cscs == "GSM" else raw.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            await self.cms_error(305)
            return
        if len(text) > MAX_SEPTETS:
            await self.cms_error(305)
        elif self.modem.registration not in (1, 5):
            await self.cms_error(331)
        elif self.modem._fail_next is not None:
            code, self.modem._fail_next = self.modem._fail_next, None
            await self.cms_error(code)
        else:
            mr = await self.modem._deliver(DeliveredSms(self.number, text, time.time()))
            await self.send(f"+CMGS: {mr}", "OK")

    async def cms_error(self, code: int) -> None:
        await self._coded("+CMS ERROR", code, CMS_ERRORS.get(code, ("unknown error",))[0])

    async def cme_error(self, code: int) -> None:
        await self._coded("+CME ERROR", code, CME_ERRORS.get(code, ("unknown",))[0])

    async def _coded(self, family: str, code: int, verbose: str) -> None:
        """An error as AT+CMEE says: plain ERROR, the number, or the words."""
        await self.send("ERROR" if self.cmee == 0 else
                        f"{family}: {code if self.cmee == 1 else verbose}")
