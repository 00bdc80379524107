"""Boots the button: loads its configuration, then runs press handling, the radio and the
watchdog's feeding, with the power mode it was provisioned for (power.py). An unprovisioned
button stays silent on the radio and waits for USB provisioning, fed. main.py started the
watchdog before this module was even imported, and resets the board on any error from here.
"""
import asyncio

from micropython import const

import config
from button import Button
from peripheral import Peripheral
from power import WAKE_BUTTON, WAKE_NONE, Power
from store import Store

_WATCHDOG_MS = const(8000)  # what main.py starts; here only if none was given
_FEED_MS = const(2000)
# Fed this long without trouble, the firmware is healthy: the fatal backoff starts again.
_HEALTHY_MS = const(60000)


async def run(board, radio=None, store=None, watchdog=None):
    """The firmware's main task: runs for good (an unprovisioned button waits, fed)."""
    if watchdog is None:
        watchdog = board.watchdog(_WATCHDOG_MS)
    st = store if store is not None else Store(".")
    cfg = config.load(st)
    if cfg is None:
        print("not provisioned")
        while True:
            watchdog.feed()
            await asyncio.sleep_ms(_FEED_MS)
    wake = board.wake_cause()
    flag = asyncio.ThreadSafeFlag()
    button = Button(board, st, cfg, flag.set, boot=wake == WAKE_NONE)
    if wake == WAKE_BUTTON:
        button.press_at_wake(board.wake_ticks_ms())
    per = Peripheral(radio if radio is not None else board.radio(), board, button, cfg)
    per.power = Power(board, cfg, wake)
    per.start()
    asyncio.create_task(per.run())
    asyncio.create_task(_feed(board, watchdog, per))
    while True:
        await flag.wait()
        if button.service():
            per.alarm_now()


async def _feed(board, watchdog, per):
    """Feeds the watchdog only while the radio loop answers: each period the loop is woken,
    and one that did not run since (hung) goes unfed, so the board resets. An idle loop may
    sleep until its next deadline (a heartbeat a minute or an hour away): waking it here is
    what tells idle from hung."""
    seen = per.loops
    fed_ms = 0
    while True:
        per.wake()
        await asyncio.sleep_ms(_FEED_MS)
        if per.loops != seen:
            watchdog.feed()
            fed_ms += _FEED_MS
            if fed_ms == _HEALTHY_MS:
                import fatal

                fatal.healthy(board)
        seen = per.loops


def main(watchdog=None):
    """main.py's entry: `watchdog` is the one it started before anything else."""
    import board

    asyncio.run(run(board, watchdog=watchdog))
