"""The press path allocates nothing: pin interrupt, debounce, gesture and the hand-over to the
main loop run with MicroPython's heap locked (any allocation would raise MemoryError)."""
from __future__ import annotations

import pytest

from mpy import MicroPythonError, Worker


@pytest.mark.micropython
@pytest.mark.parametrize("hold_ms", [2500, 400])
def test_press_path_runs_with_the_heap_locked(mp: Worker, hold_ms: int) -> None:
    gestures, alarm = mp.call("props", "press_path_allocation_free", hold_ms)
    assert (gestures, alarm) == ((1, True) if hold_ms >= 2000 else (0, False))


@pytest.mark.micropython
def test_heap_lock_really_catches_an_allocation(mp: Worker) -> None:
    with pytest.raises(MicroPythonError, match="MemoryError"):
        mp.call("heapcheck", "allocate_while_locked")
