"""msa provision --power, run as a technician runs it, with the real mpremote against a virtual
board's REPL: the mode reaches the button's configuration, and its heartbeat period the
centre's registry (so a sleeping button is not reported silent between its hourly wakes)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from msa.centre.registry import Registry

from test_technician_usb import board_on, config_on, msa, registry_with_case


def test_provision_for_sleep_and_for_connected_mode(tmp_path: Path) -> None:
    reg = registry_with_case(tmp_path)
    common = ("--case", "GENT-2026-0147", "--registry", str(reg))
    runs: dict[str, tuple[int, str, str]] = {}
    configs: dict[str, dict[str, object] | None] = {}

    async def go() -> None:
        for mode in ("sleep", "connected"):
            flash = tmp_path / f"flash-{mode}"
            async with board_on(flash, install=True) as port:
                runs[mode] = await msa("provision", "--port", port, *common, "--power", mode)
                configs[mode] = config_on(flash)
        runs["nap"] = await msa("provision", "--port", "socket://127.0.0.1:1", *common,
                                "--power", "nap")
    asyncio.run(go())

    code, stdout, stderr = runs["sleep"]
    assert code == 0, stderr
    sleepy = configs["sleep"]
    assert sleepy is not None and sleepy["power"] == "sleep" and sleepy["heartbeat_s"] == 3600
    assert "power sleep, heartbeat every 3600 s" in stdout
    code, stdout, stderr = runs["connected"]
    assert code == 0, stderr
    awake = configs["connected"]
    # The default mode is not written: the record is as firmware before power modes wrote it.
    assert awake is not None and "power" not in awake and awake["heartbeat_s"] == 60
    assert "power connected, heartbeat every 60 s" in stdout
    registry = Registry(reg)
    try:
        periods = registry.heartbeat_periods()
        assert periods == {int(str(sleepy["button_id"])): 3600,
                           int(str(awake["button_id"])): 60}
    finally:
        registry.close()
    code, _, stderr = runs["nap"]
    assert code == 2 and "nap" in stderr  # refused by the command line, before any device
