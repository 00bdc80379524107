"""Real mpremote against a virtual board's REPL over socket://, as against a USB board."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from msa.simulator.air import Air
from msa.simulator.vboard import VirtualBoard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


async def mpremote(port: int, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        MPREMOTE, "connect", f"socket://127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode()


def test_mpremote_exec_fs_run_and_soft_reset(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("print('hello from', 6 * 7)\n")

    async def go() -> dict[str, tuple[int, str]]:
        board = VirtualBoard(Air(), tmp_path / "flash")
        board.install()
        port = await board.start_console()
        try:
            out = {
                "exec": await mpremote(port, "exec", "print(1 + 1)"),
                "cp": await mpremote(port, "fs", "cp", str(tmp_path / "hello.py"), ":hello.py"),
                "ls": await mpremote(port, "fs", "ls"),
                "run": await mpremote(port, "run", str(tmp_path / "hello.py")),
                "import": await mpremote(port, "exec", "import hello"),
                "cat": await mpremote(port, "fs", "cat", ":version.py"),
            }
            out["resets"] = (board.console.resets if board.console else -1, "")
            return out
        finally:
            await board.close()
    out = asyncio.run(go())
    assert out["exec"] == (0, "2\n")
    assert out["cp"][0] == 0 and (tmp_path / "flash" / "hello.py").read_text().startswith("print")
    assert out["ls"][0] == 0 and "hello.py" in out["ls"][1] and "main.py" in out["ls"][1]
    assert out["run"] == (0, "hello from 42\n")
    assert out["import"] == (0, "hello from 42\n")
    assert 'VERSION = "' in out["cat"][1]
    assert out["resets"][0] >= 5  # plain mpremote soft-resets before each command


async def boots(flash: Path, expected: str) -> None:
    """Waits (bounded) until main.py has recorded `expected` boots on the flash."""
    marker = flash / "boots.txt"
    for _ in range(200):
        if marker.exists() and marker.read_text() == expected:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"boots: {marker.read_text() if marker.exists() else None!r}")


def test_soft_reset_from_the_friendly_repl_runs_main_again(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("with open('boots.txt', 'a') as f:\n    f.write('x')\n")

    async def go() -> str:
        board = VirtualBoard(Air(), flash)
        port = await board.start_console()
        try:
            await boots(flash, "x")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\r\x03\x03\r\x02\r\x04")  # interrupt, friendly REPL, Ctrl-D
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"soft reboot\r\n"), 10)
            await boots(flash, "xx")  # main.py ran again: it appends as it boots
            writer.close()
            return (flash / "boots.txt").read_text()
        finally:
            await board.close()
    assert asyncio.run(go()) == "xx"


# A main.py that starts the watchdog as the firmware does, notes each boot, and feeds it
# while it runs: only a board stopped at the REPL goes unfed.
_FED_MAIN = """import board, time
w = board.watchdog(%d)
with open('boots.txt', 'a') as f:
    f.write('x')
while True:
    w.feed()
    time.sleep_ms(100)
"""


def test_the_watchdog_survives_ctrl_c_and_soft_reset_and_bites_at_the_repl(
        tmp_path: Path) -> None:
    """As an ESP32's machine.WDT: mpremote's Ctrl-C and soft reset (its `exec`) stop the
    program, not the watchdog; unfed at the REPL, it resets the board, which runs main.py."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(_FED_MAIN % 1500)

    async def go() -> tuple[tuple[int, str], int, int | None]:
        board = VirtualBoard(Air(), flash)
        board.install()
        (flash / "main.py").write_text(_FED_MAIN % 1500)
        port = await board.start_console()
        try:
            await boots(flash, "x")
            out = await mpremote(port, "exec", "print('at the REPL')")  # Ctrl-C, soft reset
            await boots(flash, "xx")  # unfed since: bitten, rebooted, main.py ran again
            return out, board.wdt.bites, board.wdt.timeout_ms
        finally:
            await board.close()
    out, bites, timeout_ms = asyncio.run(go())
    assert out == (0, "at the REPL\n")
    assert bites == 1 and timeout_ms == 1500  # started again by main.py after the bite


def test_the_watchdog_can_be_reconfigured_but_not_stopped(tmp_path: Path) -> None:
    flash = tmp_path / "flash"

    async def go() -> tuple[tuple[int, str], int, int | None, str]:
        board = VirtualBoard(Air(), flash)
        board.install()
        (flash / "main.py").write_text(_FED_MAIN % 1500)
        port = await board.start_console()
        try:
            await boots(flash, "x")
            out = await mpremote(port, "exec", "import board\n"
                                 "w = board.watchdog(60000)\n"
                                 "print(hasattr(w, 'deinit') or hasattr(w, 'stop'))")
            await asyncio.sleep(3)  # twice the first timeout: reconfigured, it does not bite
            return out, board.wdt.bites, board.wdt.timeout_ms, (flash / "boots.txt").read_text()
        finally:
            await board.close()
    out, bites, timeout_ms, booted = asyncio.run(go())
    assert out == (0, "False\n")
    assert bites == 0 and timeout_ms == 60000 and booted == "x"


def test_rtc_memory_survives_resets_but_not_a_power_cut(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    count_main = ("import board\n"
                  "m = board.rtc_memory()\n"
                  "n = (m[0] if m else 0) + 1\n"
                  "board.rtc_memory(bytes([n]))\n"
                  "with open('boots.txt', 'a') as f:\n"
                  "    f.write(str(n))\n"
                  "if n < 3:\n"
                  "    board.reset()\n"
                  "import asyncio\n"
                  "asyncio.run(asyncio.sleep(60))\n")

    async def go() -> str:
        board = VirtualBoard(Air(), flash)
        board.install()
        (flash / "main.py").write_text(count_main)
        port = await board.start_console()
        try:
            await boots(flash, "123")  # two hard resets: the memory was kept
            code, _ = await mpremote(port, "exec", "import board; print(board.rtc_memory())")
            assert code == 0
            await boots(flash, "123")
            assert board.console is not None
            await board.console.close()  # the power goes
            board.wdt.power_cut()
            await board.start_console()
            await boots(flash, "123123")  # from 1 again: the memory went with the power
            return (flash / "boots.txt").read_text()
        finally:
            await board.close()
    assert asyncio.run(go()) == "123123"
