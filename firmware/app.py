"""Boots the button: loads its configuration, then runs press handling, the radio and the
watchdog, with the power mode it was provisioned for (power.py). An unprovisioned button stays
silent on the radio and waits for USB provisioning.
"""
import asyncio

from micropython import const

import config
from button import Button
from peripheral import Peripheral
from power import WAKE_BUTTON, WAKE_NONE, Power
from store import Store

_WATCHDOG_MS = const(8000)
_FEED_MS = const(2000)


async def run(board, radio=None, store=None):
    """The firmware's main task: returns only if the button is not provisioned."""
    st = store if store is not None else Store(".")
    cfg = config.load(st)
    if cfg is None:
        print("not provisioned")
        return
    wake = board.wake_cause()
    flag = asyncio.ThreadSafeFlag()
    button = Button(board, st, cfg, flag.set, boot=wake == WAKE_NONE)
    if wake == WAKE_BUTTON:
        button.press_at_wake(board.wake_ticks_ms())
    per = Peripheral(radio if radio is not None else board.radio(), board, button, cfg)
    per.power = Power(board, cfg, wake)
    per.start()
    asyncio.create_task(per.run())
    asyncio.create_task(_feed(board, board.watchdog(_WATCHDOG_MS), per))
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
    while True:
        per.wake()
        await asyncio.sleep_ms(_FEED_MS)
        if per.loops != seen:
            watchdog.feed()
        seen = per.loops


def main():
    import board

    asyncio.run(run(board))
