"""After an error that ended the firmware (main.py): a line in a small ring on flash, then a
reset after a backoff that doubles with each fatal error in a row, so a board that cannot
boot retries gently and never waits at the REPL. Imported only when something went wrong.

The count of fatal errors in a row is kept in the RTC memory (board.rtc_memory(): it survives
the reset, not a power cut) and cleared by app.py once the firmware has run a healthy minute.
"""
import struct

from micropython import const

RECORD = "fatal"  # the ring's store record (erased by `msa wipe`)
RING = const(4)  # entries kept, newest last
_ENTRY_MAX = const(120)  # bytes of one entry
_BACKOFF_MAX_S = const(300)
_RTC_MAGIC = b"MSAF"
_RTC_FORMAT = ">4sH"
_FEED_MS = const(1000)


def count(board):
    """Fatal errors in a row before this boot (0 after a power-on or a healthy run)."""
    raw = board.rtc_memory()
    if len(raw) != 6 or raw[:4] != _RTC_MAGIC:
        return 0
    return struct.unpack(_RTC_FORMAT, raw)[1]


def healthy(board):
    """The firmware has run well: the next fatal error starts the backoff again."""
    if count(board):
        board.rtc_memory(b"")


def log(st, n, exc):
    """Appends `n exception` to the ring on flash, lines oldest first (the oldest goes)."""
    raw = st.load(RECORD)
    ring = raw.split(b"\n")[1 - RING:] if raw else []
    ring.append(("%d %r" % (n, exc)).encode()[:_ENTRY_MAX].replace(b"\n", b" "))
    st.save(RECORD, b"\n".join(ring))


def handle(board, watchdog, exc, st=None, sleep_ms=None):
    """Counts the error (RTC memory), logs it (flash), waits out the backoff feeding the
    watchdog, and resets the board. Never returns on a board. Logging is best effort: the
    flash may be what failed."""
    n = count(board) + 1
    board.rtc_memory(struct.pack(_RTC_FORMAT, _RTC_MAGIC, min(n, 0xFFFF)))
    try:
        if st is None:
            from store import Store

            st = Store(".")
        log(st, n, exc)
    except Exception:  # noqa: S110  (the reset below matters more than the log)
        pass
    if sleep_ms is None:
        from time import sleep_ms
    # 1, 2, 4, ... s, at most five minutes.
    left = min(1 << min(n - 1, 9), _BACKOFF_MAX_S) * 1000
    while left > 0:
        if watchdog is not None:
            watchdog.feed()
        step = min(left, _FEED_MS)
        sleep_ms(step)
        left -= step
    board.reset()
