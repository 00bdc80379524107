"""The firmware benchmark section at a tiny scale: the heap read from inside the running
firmware, the smallest-heap bisection (which must also be able to fail), the .mpy image and
the heap-locked press path give sane values."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from msa.bench import firmware
from msa.bench.figures import Figure, Options
from msa.tools.firmware import boards, compile_board


def by_name(figures: list[Figure]) -> dict[str, Figure]:
    return {f.name: f for f in figures}


def value(figures: dict[str, Figure], name: str) -> float:
    v = figures[name].value
    assert v is not None, figures[name].note
    return v


@pytest.mark.micropython
def test_firmware_section_reports_sane_footprint(tmp_path: Path) -> None:
    figures = firmware.run(Options(root=tmp_path, scale=0.01))
    assert {f.section for f in figures} == {"firmware"}
    got = by_name(figures)
    code = value(got, "of which firmware code loaded from .mpy")
    hw = value(got, "virtual hardware's code (left out above)")
    whole = value(got, "whole interpreter heap after boot")
    for name in ("heap after boot, connected and bonded",
                 "heap after boot, advertising (no host yet)"):
        after_boot = value(got, name)
        assert code < after_boot < whole < 256  # KiB: objects on top of the code, in the heap
        assert got[name].target == 24.0
    assert 5 < code and 1 < hw
    assert whole == pytest.approx(after_boot + hw, abs=8)  # plus the interpreter's own
    # Alarms do not leak: well under a kilobyte each.
    assert abs(value(got, "heap growth over 1 alarms")) < 1024
    smallest = value(got, "smallest heap it boots, bonds and alarms in")
    assert whole - hw < smallest <= 256
    for board in boards():
        kib = sum(c.size for c in compile_board(board, tmp_path / "check" / board)) / 1024
        assert value(got, f".mpy image, {board}") == pytest.approx(kib, abs=0.01)
    assert got["heap allocations on the press path"].value == 0


@pytest.mark.micropython
def test_a_heap_too_small_is_seen_to_fail(tmp_path: Path) -> None:
    assert asyncio.run(firmware.runs_in(tmp_path, 32, 1)) is False


@pytest.mark.micropython
def test_interpreter_baseline_is_small() -> None:
    assert 0 < firmware.baseline_heap() < 8 * 1024
