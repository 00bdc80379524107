"""The finger on a virtual board's button, kept on the simulator's side: it knows where the
contact is whatever the board does, so a board that deep-sleeps, boots or wakes in the middle
of a press script still feels the press as hardware would (vboard.py).

A press script is played twice: by the board itself, on its own clock, when it is awake as the
script starts (exact timing for the firmware), and here, in real time, to know the level at
every instant. An edge that comes after the board has booted again (its process is new) is
forwarded to it one by one; a press edge while it sleeps wakes it.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Edges = list[list[Any]]  # [[dt_ms, pressed], ...]
Feel = Callable[[bool], Awaitable[None]]


def monotonic_ms() -> int:
    """The clock the unix MicroPython's ticks_ms() reads (CLOCK_MONOTONIC, ms)."""
    return int(time.monotonic() * 1000)


class Finger:
    """The contact's level in real time; play() runs scripts one after another (one finger)."""

    def __init__(self) -> None:
        self.pressed = False
        self._down = asyncio.Event()  # set while the contact is closed
        self._turn = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def play(self, edges: Edges, feel: Feel) -> None:
        """Plays a script in the background; `feel(pressed)` hears each edge as it happens."""
        task = asyncio.create_task(self._play(edges, feel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, edges: Edges, feel: Feel) -> None:
        async with self._turn:
            for dt, pressed in edges:
                if dt:
                    await asyncio.sleep(dt / 1000)
                self.pressed = bool(pressed)
                if self.pressed:
                    self._down.set()
                else:
                    self._down.clear()
                await feel(self.pressed)

    async def idle(self) -> None:
        """Returns once every script given so far has been played."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def wake(self, timer_ms: int, armed: bool) -> bool:
        """A deep sleep: True when a press ends it (the wake is level-triggered, as on the
        ESP32: a contact already closed wakes the board at once), False when the timer does."""
        if not armed:
            await asyncio.sleep(timer_ms / 1000)
            return False
        try:
            await asyncio.wait_for(self._down.wait(), timer_ms / 1000)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
