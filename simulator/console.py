"""The virtual board's REPL on a TCP port, so that mpremote talks to it as to a USB board.

The interpreter runs on a pseudo-terminal; this relay joins it to one TCP client at a time.
The unix port has no soft reset, so the relay emulates it: Ctrl-D at the friendly prompt, or in
the raw REPL with nothing typed, restarts the interpreter on the same flash and says what a
board says ("MPY: soft reboot"). A reset from the friendly REPL runs main.py again; one from the
raw REPL does not, as on the ports. A soft reset or a Ctrl-C leaves the board's watchdog
running (it is held outside the interpreter, simulator/wdt.py); a hard reset ends it.
"""
from __future__ import annotations

import asyncio
import os
import pty
import termios
import tty
from collections.abc import Awaitable, Callable

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
EXIT_RESET = 75  # simhw.EXIT_RESET: the interpreter asked for a hard reset
_CTRL_A, _CTRL_B, _CTRL_D, _CTRL_E = 0x01, 0x02, 0x04, 0x05

Spawn = Callable[[int, bool], Awaitable[asyncio.subprocess.Process]]


def open_pty() -> tuple[int, int]:
    """A pty whose slave passes bytes unchanged but still turns Ctrl-C into SIGINT, so that
    a running main.py can be interrupted as on a board."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] |= termios.ISIG
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave


class Console:
    """Relays one TCP client to the interpreter; `spawn(slave_fd, run_main)` starts it."""

    def __init__(self, spawn: Spawn, on_hard_reset: Callable[[], None] | None = None) -> None:
        self._spawn = spawn
        self._on_hard_reset = on_hard_reset
        self._master = -1
        self.proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._raw = False
        self._typed = False  # bytes sent in the raw REPL since its last prompt
        self._paste = False
        self._server: asyncio.Server | None = None
        self.port = 0
        self.resets = 0
        self._swallow = b""  # output to hide until seen (the banner after a raw-mode reset)
        self._held = b""
        self._watch: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        await self._boot(run_main=True)
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _boot(self, run_main: bool) -> None:
        master, slave = open_pty()
        self.proc = await self._spawn(slave, run_main)
        os.close(slave)
        self._master = master
        asyncio.get_running_loop().add_reader(master, self._from_board, master)
        self._watch = asyncio.create_task(self._watch_exit(self.proc))

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        """A hard reset (board.reset(), `msa provision`'s last step, or the watchdog) ends
        the interpreter with EXIT_RESET: the board boots again and runs main.py, as a
        board does; any other exit leaves it off, as a crashed board stays until reset."""
        code = await proc.wait()
        if code == EXIT_RESET and proc is self.proc:
            await self.hard_reset()

    async def hard_reset(self) -> None:
        """A reset of the chip (board.reset(), or the watchdog biting wherever the board is):
        the interpreter starts afresh at the friendly REPL and runs main.py."""
        if self._on_hard_reset is not None:
            self._on_hard_reset()
        await self._halt()
        self.resets += 1
        self._raw = self._typed = self._paste = False
        await self._boot(run_main=True)

    async def _halt(self) -> None:
        loop = asyncio.get_running_loop()
        if self._master >= 0:
            loop.remove_reader(self._master)
            os.close(self._master)
            self._master = -1
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    def _from_board(self, master: int) -> None:
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(master)
            return
        if self._swallow:
            self._held += data
            if self._swallow not in self._held:
                return
            data = self._held.split(self._swallow, 1)[1]
            self._swallow = self._held = b""
        if self._writer is not None:
            self._writer.write(data)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            writer.close()  # one client at a time, as one USB cable
            return
        self._writer = writer
        try:
            while data := await reader.read(4096):
                await self._to_board(data)
        except ConnectionError:
            pass  # the cable pulled mid-write: the board goes on, as on USB
        finally:
            self._writer = None
            writer.close()

    async def _to_board(self, data: bytes) -> None:
        out = bytearray()
        for i, byte in enumerate(data):
            if self._paste:
                out.append(byte)
                if byte == _CTRL_D:
                    self._paste = False
                    self._typed = False
                continue
            if byte == _CTRL_A:
                self._raw, self._typed = True, False
            elif byte == _CTRL_B:
                self._raw = False
            elif byte == _CTRL_E and self._raw and data[i + 1:i + 3] == b"A\x01":
                self._paste = True
            elif byte == _CTRL_D and (not self._raw or not self._typed):
                self._write(bytes(out))
                out.clear()
                await self.soft_reset()
                continue
            elif byte == _CTRL_D:
                self._typed = False
            elif self._raw and byte not in b"\r\n":
                self._typed = True
            out.append(byte)
        self._write(bytes(out))

    def _write(self, data: bytes) -> None:
        if data and self._master >= 0:
            os.write(self._master, data)

    async def soft_reset(self) -> None:
        """Restarts the interpreter as a board's soft reset would."""
        raw = self._raw
        await self._halt()
        self.resets += 1
        if self._writer is not None:
            self._writer.write(b"MPY: soft reboot\r\n")
        if raw:
            self._swallow = RAW_PROMPT
            await self._boot(run_main=False)
            self._write(b"\r\x01")
            if self._writer is not None:
                self._writer.write(RAW_PROMPT)
            self._typed = False
        else:
            await self._boot(run_main=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._halt()
