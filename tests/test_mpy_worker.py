"""The MicroPython worker that runs the firmware tests' twins: a call that never replies is
killed at the worker's deadline and fails its test, and the next call gets a fresh worker
(never the late reply of the one before)."""
from __future__ import annotations

import time

import pytest

from mpy import MicroPythonError, Worker


def test_a_hung_call_times_out_kills_the_worker_and_the_next_call_starts_afresh() -> None:
    worker = Worker(reply_timeout_s=1.0)
    try:
        assert worker.call("json", "dumps", [1, 2]) == "[1, 2]"
        first = worker._proc
        started = time.monotonic()
        with pytest.raises(MicroPythonError, match="no reply within 1 s: MicroPython killed"):
            worker.call("time", "sleep", 30)
        assert time.monotonic() - started < 15  # the deadline, not the 30 s sleep
        assert first is not None and first.poll() is not None  # killed, not left running
        assert worker.call("json", "dumps", "fresh") == '"fresh"'
        assert worker._proc is not first
    finally:
        worker.close()

