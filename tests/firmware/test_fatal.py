"""fatal.py: an error that ends the firmware is logged to a ring on flash, counted in the RTC
memory, and resets the board after a backoff that doubles per error in a row (both
interpreters)."""
import fatal
import store
from cutfs import CutFs
from sim import Reset, SimBoard


class _Dog:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


def _crash(board, st, exc, dog=None):
    """One fatal error; returns the ms waited before the reset."""
    slept = []
    try:
        fatal.handle(board, dog if dog is not None else _Dog(), exc, st, slept.append)
    except Reset:
        return sum(slept)
    raise AssertionError("fatal.handle returned instead of resetting")


def test_each_error_is_logged_counted_and_reset_after_a_doubling_backoff():
    board = SimBoard()
    st = store.Store("/flash", CutFs())
    waits = [_crash(board, st, ValueError("config %d" % i)) for i in range(6)]
    assert waits == [1000, 2000, 4000, 8000, 16000, 32000]
    assert board.resets == 6 and fatal.count(board) == 6
    ring = st.load(fatal.RECORD).split(b"\n")
    assert len(ring) == fatal.RING  # the oldest went
    assert ring[0].startswith(b"3 ValueError(") and ring[-1].startswith(b"6 ValueError(")


def test_the_watchdog_is_fed_through_the_backoff_and_the_backoff_is_capped():
    board = SimBoard()
    board.rtc_memory(b"MSAF\x00\x63")  # 99 in a row before this one
    dog = _Dog()
    waited = _crash(board, store.Store("/flash", CutFs()), OSError(5), dog)
    assert waited == 300000 and dog.fed == 300  # one feed a second: no watchdog reset first


def test_a_healthy_run_or_a_power_cut_starts_the_backoff_again():
    board = SimBoard()
    st = store.Store("/flash", CutFs())
    _crash(board, st, OSError(5))
    _crash(board, st, OSError(5))
    fatal.healthy(board)
    assert fatal.count(board) == 0 and _crash(board, st, OSError(5)) == 1000
    board.rtc = b""  # the power went: RTC memory is lost
    assert _crash(board, st, OSError(5)) == 1000


def test_a_failing_flash_still_resets():
    class _Broken:
        def load(self, _name):
            raise OSError(5)

    board = SimBoard()
    assert _crash(board, _Broken(), OSError(28)) == 1000 and board.resets == 1
