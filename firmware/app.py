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
    watchdog = board.watchdog(_WATCHDOG_MS)
    asyncio.create_task(per.run())
    while True:
        try:
            await asyncio.wait_for_ms(flag.wait(), _FEED_MS)
        except asyncio.TimeoutError:
            pass
        if button.service():
            per.wake()
        # Feed only while the radio loop is alive too: a hung loop must reset the button.
        if board.ticks_diff(board.ticks_ms(), per.alive_ms) < _WATCHDOG_MS // 2:
            watchdog.feed()


def main():
    import board

    asyncio.run(run(board))
