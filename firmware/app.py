"""Boots the button: loads its configuration, then runs press handling, the radio and the
watchdog. An unprovisioned button stays silent on the radio and waits for USB provisioning.
"""
import asyncio

from micropython import const

import config
from button import Button
from peripheral import Peripheral
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
    flag = asyncio.ThreadSafeFlag()
    button = Button(board, st, cfg, flag.set)
    per = Peripheral(radio if radio is not None else board.radio(), board, button, cfg)
    per.start()
    asyncio.create_task(per.run())
    asyncio.create_task(_feed(board, board.watchdog(_WATCHDOG_MS), per))
    while True:
        await flag.wait()
        if button.service():
            per.alarm_now()


async def _feed(board, watchdog, per):
    """Feeds the watchdog only while the radio loop shows progress: a hung loop resets."""
    while True:
        await asyncio.sleep_ms(_FEED_MS)
        if board.ticks_diff(board.ticks_ms(), per.alive_ms) < _WATCHDOG_MS // 2:
            watchdog.feed()


def main():
    import board

    asyncio.run(run(board))
