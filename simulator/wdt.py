"""A virtual board's watchdog and RTC memory, held by the simulator outside the interpreter.

On an ESP32 both live outside MicroPython's interpreter (ports/esp32/machine_wdt.c): a started
`machine.WDT` survives a soft reset and mpremote's Ctrl-C, can be reconfigured with a new
timeout but never stopped, and when it is not fed it resets the chip, wherever the program is
(running, at the REPL, in the middle of a technician's copy). The RTC memory survives every
reset and deep sleep but not a power cut. The virtual board's interpreter restarts at each soft
reset, so both are kept here; its simhw module tells this object, one UDP datagram each, when
the watchdog is started or reconfigured (which also feeds it), fed, or the RTC memory set, and
asks it for a hard reset (board.reset(): the interpreter under the REPL relay runs main.py
with -i, where SystemExit only returns to the prompt).

Each interpreter process gets a fresh token in its environment; datagrams from an earlier
process (still in flight when it was killed) are ignored.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

RTC_MEMORY_MAX = 2048  # bytes: ESP32 MicroPython's MICROPY_HW_RTC_USER_MEM_MAX


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[bytes], None]) -> None:
        self._handle = handle

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._handle(data)


class Watchdog:
    """One board's watchdog and RTC memory; `reset` resets the board (a hard reset)."""

    def __init__(self, reset: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._reset = reset
        self.timeout_ms: int | None = None  # None: not started since the last hard reset
        self.rtc = b""
        self.bites = 0
        self.port = 0
        self._token = ""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._biting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._transport is None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self._received), local_addr=("127.0.0.1", 0))
            self._transport = transport
            self.port = int(transport.get_extra_info("sockname")[1])

    def env(self) -> dict[str, str]:
        """For a new interpreter process: where to report, its token, the RTC memory."""
        self._token = secrets.token_hex(4)
        return {"MSA_WDT": f"127.0.0.1:{self.port}:{self._token}", "MSA_RTC": self.rtc.hex()}

    def _received(self, data: bytes) -> None:
        parts = data.decode(errors="replace").split()
        if len(parts) < 2 or parts[0] != self._token:
            return
        if parts[1] == "wdt" and len(parts) == 3 and parts[2].isdigit():
            self.timeout_ms = int(parts[2])  # started, or reconfigured: fed too
            self._arm()
        elif parts[1] == "feed" and self.timeout_ms is not None:
            self._arm()
        elif parts[1] == "rtc":
            data_hex = parts[2] if len(parts) == 3 else ""
            self.rtc = bytes.fromhex(data_hex)[:RTC_MEMORY_MAX]
        elif parts[1] == "reset":
            self._reset_board()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self.timeout_ms is not None
        self._timer = asyncio.get_running_loop().call_later(self.timeout_ms / 1000, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self.bites += 1
        self._reset_board()

    def _reset_board(self) -> None:
        self.hard_reset()
        self._biting = asyncio.create_task(self._reset())

    def hard_reset(self) -> None:
        """A reset of the chip (board.reset(), the watchdog's own, a deep-sleep wake): the
        watchdog is off until the firmware starts it again; the RTC memory stays."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.timeout_ms = None
        self._token = ""

    def power_cut(self) -> None:
        """The power goes: the RTC memory too."""
        self.hard_reset()
        self.rtc = b""

    async def close(self) -> None:
        self.hard_reset()
        if self._biting is not None:
            self._biting.cancel()
            await asyncio.gather(self._biting, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
            self._transport = None
