"""main.py on a virtual board with its REPL relay (as `msa sim board`): the watchdog first,
and an error anywhere after it logged to flash and reset with a backoff, never a board left
at the REPL. The unmodified firmware in MicroPython; the watchdog and RTC memory held by the
simulator (simulator/wdt.py)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from msa.simulator.air import Air
from msa.simulator.vboard import VirtualBoard

from test_technician_usb import put_record, record


def test_a_boot_that_fails_is_logged_and_reset_with_a_backoff(tmp_path: Path) -> None:
    flash = tmp_path / "flash"

    async def go() -> tuple[list[bytes], bytes, int]:
        flash.mkdir()
        board = VirtualBoard(Air(), flash)
        board.install()
        put_record(flash, "config", b"{not json")  # a config the firmware cannot read
        await board.start_console()
        try:
            for _ in range(400):  # two errors in a row: 1 s, then 2 s of backoff
                ring = record(flash, "fatal")
                if ring is not None and len(ring.split(b"\n")) >= 2:
                    break
                await asyncio.sleep(0.025)
            ring = record(flash, "fatal")
            assert ring is not None
            assert board.console is not None
            return ring.split(b"\n"), board.wdt.rtc, board.console.resets
        finally:
            await board.close()
    ring, rtc, resets = asyncio.run(go())
    assert ring[0].startswith(b"1 ValueError(") and ring[1].startswith(b"2 ValueError(")
    assert rtc[:4] == b"MSAF" and rtc[4:] >= b"\x00\x02" and resets >= 1
