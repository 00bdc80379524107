"""Provisioning a new key opens the bond window again (docs/technician.md, "The bond window"):
the script `msa provision` runs on the device clears the last case's bonds, on the virtual
board's flash with the firmware's own modules in MicroPython."""
from __future__ import annotations

import asyncio
from pathlib import Path

import store
from bonds import Bonds

from msa.simulator.air import Air
from msa.simulator.vboard import VirtualBoard
from msa.tools import provisioning


def test_provisioning_clears_the_last_cases_bonds_and_opens_the_window(tmp_path: Path) -> None:
    async def main() -> str:
        board = VirtualBoard(Air(), tmp_path / "flash")
        board.install()
        old = Bonds(store.Store(str(board.flash)))
        old.set(2, b"old-host", b"keys")
        old.close_window()
        old.flush()
        cfg = {"button_id": 7, "key": "11" * 32, "centre_key": "22" * 32}
        try:
            return await board.run_snippet(provisioning.config_script(cfg))
        finally:
            await board.close()
    out = asyncio.run(main())
    assert "SAVED 7 True" in out
    again = Bonds(store.Store(str(tmp_path / "flash")))
    assert not again.closed and again.get(2, 0, b"old-host") is None
