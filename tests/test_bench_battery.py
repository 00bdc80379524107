"""The battery model (bench/battery.py): its arithmetic on a hand-computed case, and that it
follows the firmware's and the boards' sources when they change. No timing involved."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from msa.bench import battery as b
from msa.bench.figures import Figure, Options
from msa.tools.firmware import BOARD_DIR, FIRMWARE_DIR

BOARD = b.Board(name="hand", capacity_mah=1000, active_ua=20000, idle_ua=10000,
                radio_ua=50000, light_sleep_ua=100, deep_sleep_ua=10, board_ua=40,
                divider_ua=10, boot_ms=600, can_sleep=True)
FW = b.Firmware(idle_interval_ms=250, burst_interval_ms=20, burst_ms=3000, heartbeat_s=60,
                sleep_heartbeat_s=3600, linger_ms=1000, wake_window_ms=15000, hold_ms=2000)
LINK = b.Link(25.0, 0)


def test_the_assumptions_are_the_ones_the_hand_computation_uses() -> None:
    assert (b.CONN_EVENT_MS, b.ADV_EVENT_MS, b.FIRMWARE_START_MS, b.ROM_BOOT_MS) == \
        (1.0, 2.0, 400.0, 150.0)
    assert (b.FIND_ADVERTS, b.SESSION_EVENTS, b.HEARTBEAT_WORK_MS, b.PRESSES_PER_DAY) == \
        (1.0, 20, 30.0, 1.0)
    assert (b.USABLE_FRACTION, b.SELF_DISCHARGE_PCT_MONTH) == (0.9, 3.0)


def test_connected_mode_arithmetic() -> None:
    # 50 µA board + divider; 10 mA idle; a 50 µC event (50 mA for 1 ms) every 25 ms: 2 mA;
    # a heartbeat each 60 s: (10 mA more for 30 ms + one 50 µC event) = 350 µC / 60 s.
    assert b.connected_ua(BOARD, FW, LINK) == pytest.approx(50 + 10000 + 2000 + 350 / 60)
    # 900 mAh usable over (12,055.83 µA + 41.67 µA self-discharge: 3 % of 1000 mAh a month).
    assert b.life_days(BOARD, 12055.8333) == pytest.approx(900000 / 12097.5 / 24, rel=1e-6)
    assert b.life_days(BOARD, 12055.8333) == pytest.approx(3.0998, abs=1e-4)


def test_peripheral_latency_and_light_sleep_arithmetic() -> None:
    # Latency 3 at 25 ms: the peripheral listens every 100 ms: 0.5 mA of events.
    assert b.connected_ua(BOARD, FW, b.Link(25.0, 3)) == pytest.approx(
        50 + 10000 + 500 + 350 / 60)
    # Light sleep: 100 µA floor; each event also wakes the CPU (20 mA for 1 ms: 20 µC).
    hb = ((20000 - 100) * 30 + 50000 * 1) / 1000 / 60
    assert b.connected_ua(BOARD, FW, LINK, light_sleep=True) == pytest.approx(
        50 + 100 + 70 * 40 + hb)


def test_sleep_mode_arithmetic() -> None:
    beat = b.heartbeat_wake(BOARD, FW, LINK)
    # Boot 600 + 400 ms at 20 mA; idle 10 mA for 250 (one advert) + 20 x 25 (session)
    # + 1000 ms (linger); radio 50 mA for 2 ms (advert) + (20 + 40 events) x 1 ms; 30 ms
    # of heartbeat work at 10 mA above idle.
    assert beat.charge_uc == pytest.approx(20000 + 17500 + 3100 + 300)
    assert beat.awake_ms == pytest.approx(1000 + 250 + 500 + 1000)
    press = b.press_wake(BOARD, FW, LINK)
    # ... plus the rest of the hold once booted (150 + 2000 - 1000 ms at 10 mA) and a whole
    # 3 s burst at 20 ms (150 adverts of 2 ms at 50 mA).
    assert press.charge_uc == pytest.approx(40900 + 11500 + 15000)
    assert press.awake_ms == pytest.approx(2750 + 1150)
    beats = 86400 / (3600 + 2.75)
    awake_s = (beats * 2750 + 3900) / 1000
    day_uc = beats * 40900 + 67400 + 10 * (86400 - awake_s)
    assert b.sleep_ua(BOARD, FW, LINK) == pytest.approx(50 + day_uc / 86400)
    absent = b.absent_wake(BOARD, FW)
    assert absent.charge_uc == pytest.approx(20000 + 150000 + 50000 * 2 * 60 / 1000)


def test_latency_arithmetic() -> None:
    assert b.press_to_host_ms(BOARD, FW, sleeping=False, link=LINK) == 2025
    assert b.press_to_host_ms(BOARD, FW, sleeping=True) == 150 + 2000 + 20
    slow = b.Board(**{**BOARD.__dict__, "boot_ms": 2500.0})
    assert b.press_to_host_ms(slow, FW, sleeping=True) == 2500 + 400 + 20  # boot outlasts


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    fw, boards = tmp_path / "firmware", tmp_path / "board"
    shutil.copytree(FIRMWARE_DIR, fw)
    shutil.copytree(BOARD_DIR, boards)
    return fw, boards


def _set(path: Path, pattern: str, replacement: str) -> None:
    text, n = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert n == 1, pattern
    path.write_text(text)


def _life(figures: list[Figure], name: str) -> float:
    value = next(f.value for f in figures if f.name == name)
    assert value is not None
    return value


def test_the_model_reads_the_firmware_and_follows_it(tmp_path: Path) -> None:
    fw_dir, board_dir = _copy(tmp_path)
    read = b.load_firmware(fw_dir)
    assert read.sleep_heartbeat_s == b.constants(fw_dir / "power.py")["SLEEP_HEARTBEAT_S"]
    assert read.idle_interval_ms * 1000 == b.constants(fw_dir / "advert.py")["IDLE_INTERVAL_US"]
    assert (read.heartbeat_s, read.hold_ms) == (60, 2000)  # config.py's LIMITS defaults
    sleep = "xiao_esp32c3: sleep mode, life"
    before = b.figures(fw_dir, board_dir)
    _set(fw_dir / "power.py", r"^SLEEP_HEARTBEAT_S = const\(\d+\)",
         "SLEEP_HEARTBEAT_S = const(7200)")
    longer = b.figures(fw_dir, board_dir)
    assert _life(longer, sleep) > _life(before, sleep) * 1.1
    _set(fw_dir / "power.py", r"^_LINGER_MS = const\(\d+\)", "_LINGER_MS = const(20000)")
    lingering = b.figures(fw_dir, board_dir)
    assert _life(lingering, sleep) < _life(longer, sleep)
    _set(fw_dir / "config.py", r'"hold_ms": \(2000,', '"hold_ms": (3000,')
    held = b.figures(fw_dir, board_dir)
    latency = "xiao_esp32c3: press to alarm at host, connected"
    assert _life(held, latency) == _life(before, latency) + 1000


def test_the_model_reads_the_boards(tmp_path: Path) -> None:
    fw_dir, board_dir = _copy(tmp_path)
    xiao = b.load_board("xiao_esp32c3", board_dir)
    assert xiao.capacity_mah == 500 and xiao.can_sleep
    assert not b.load_board("pico_w", board_dir).can_sleep  # its wake_on_button raises
    _set(board_dir / "xiao_esp32c3.py", r"^CAPACITY_MAH = 500", "CAPACITY_MAH = 1000")
    bigger = b.figures(fw_dir, board_dir, ("xiao_esp32c3",))
    before = b.figures(boards=("xiao_esp32c3",))
    name = "xiao_esp32c3: connected mode, life"
    # Twice the cell, twice the life (but for its self-discharge, which doubles too).
    assert _life(bigger, name) == pytest.approx(2 * _life(before, name), rel=0.002)


def test_the_section_reports_both_modes_with_the_issues_targets(tmp_path: Path) -> None:
    figures = b.run(Options(root=tmp_path))
    assert {f.section for f in figures} == {"battery"}
    named = {f.name: f for f in figures}
    connected = named["xiao_esp32c3: connected mode, life"]
    asleep = named["xiao_esp32c3: sleep mode, life"]
    assert connected.target == 7 and asleep.target == 182
    # MicroPython's awake CPU alone caps the connected life: no model can hide that.
    board = b.load_board("xiao_esp32c3")
    ceiling = board.capacity_mah / (board.idle_ua / 1000) / 24
    assert connected.value is not None and connected.value < ceiling and connected.met is False
    assert asleep.value is not None and asleep.value > 30 * connected.value
    assert named["pico_w: sleep mode, life"].value is None  # no wake on its button
    for board_name in b.BOARDS:
        assert named[f"{board_name}: connected mode, life"].value is not None
