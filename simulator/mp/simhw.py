"""The virtual board's hardware in real time: the sim board's pin, ADC and one-shot timers,
driven over the bridge (topic "board"); timers run from an asyncio task as soft IRQs do.

Deep sleep ends the interpreter with EXIT_DEEPSLEEP after one line on stdout saying for how
long and whether the button may wake it; the simulator (vboard.py) keeps the board off the air
until then and boots it again with MSA_WAKE (the wake's cause, as board.wake_cause() gives it),
MSA_WAKE_MS (the wake's instant on the shared monotonic clock) and MSA_PIN (the contact's level).
"""
import asyncio
import os
import sys
import time

import simlink
# On the virtual board the sim board module is the device's board.py.
from board import ADC_MAX_COUNTS, ADC_REF_MV, DIVIDER_DEN, DIVIDER_NUM, SimButton

EXIT_RESET = 75  # the process manager restarts the board when it exits with this code
EXIT_DEEPSLEEP = 76  # ... and keeps it asleep until its timer or a press when it exits so
SLEEP_LINE = "MSA-DEEPSLEEP"  # followed by the timer in ms and 1 if a press may wake it


def wake_cause():
    """0 after a power-on or reset, 1 after a wake by the button, 2 by the timer."""
    return int(os.getenv("MSA_WAKE") or 0)


def wake_ticks_ms(now_ms):
    """The wake's instant in the unix port's ticks (CLOCK_MONOTONIC ms, as the simulator's
    clock); now_ms when the board was not woken."""
    return int(os.getenv("MSA_WAKE_MS") or now_ms)


def deepsleep(ms, wake_on_button):
    """Ends the interpreter as a deep sleep does; the simulator wakes the board again."""
    print(SLEEP_LINE, max(0, int(ms)), 1 if wake_on_button else 0)
    sys.exit(EXIT_DEEPSLEEP)


def _nothing(_timer):
    pass


class Timer:
    """One-shot timer on the real clock: a sleeping task per start, so it fires on time."""

    def __init__(self, hw, timer_id):
        self.id = timer_id
        self._task = None
        self._callback = _nothing

    def start(self, delay_ms, callback):
        self.cancel()
        self._callback = callback
        self._task = asyncio.create_task(self._after(max(0, delay_ms)))

    async def _after(self, delay_ms):
        await asyncio.sleep_ms(delay_ms)
        self._task = None
        self._callback(self)

    def cancel(self):
        task, self._task = self._task, None
        if task is not None:
            task.cancel()


class Watchdog:
    def __init__(self, hw, timeout_ms):
        self._hw = hw
        self.timeout_ms = timeout_ms
        self.fed_ms = time.ticks_ms()
        hw.watchdog = self

    def feed(self):
        self.fed_ms = time.ticks_ms()


class Hardware:
    """The process-wide simulated hardware (created on first use by board/sim.py)."""

    def __init__(self):
        self.pin_level = int(os.getenv("MSA_PIN") or 1)  # 1 released: the button is active low
        self.battery_mv = 3950
        self.button = SimButton(self)
        self.timers = []
        self.watchdog = None
        self._finger = asyncio.Lock()
        self.link = simlink.get()
        self.link.on("board", self._on_message)
        asyncio.create_task(self._watch())

    def battery_counts(self):
        counts = self.battery_mv * DIVIDER_DEN // DIVIDER_NUM * ADC_MAX_COUNTS // ADC_REF_MV
        return min(max(counts, 0), ADC_MAX_COUNTS)

    def set_pressed(self, pressed):
        level = 0 if pressed else 1
        if level != self.pin_level:
            self.pin_level = level
            self.button.edge()

    def Timer(self, timer_id):
        timer = Timer(self, timer_id)
        self.timers.append(timer)
        return timer

    async def _edges(self, edges):
        async with self._finger:  # one finger: press scripts play one after another
            await self._play(edges)

    async def _play(self, edges):
        for dt, pressed in edges:
            if dt:
                await asyncio.sleep_ms(dt)
            self.set_pressed(pressed)

    def _on_message(self, msg):
        op = msg["op"]
        if op == "edges":
            asyncio.create_task(self._edges(msg["edges"]))
        elif op == "battery":
            self.battery_mv = msg["mv"]
        elif op == "reset":
            sys.exit(EXIT_RESET)
        return {"pin": self.pin_level, "battery_mv": self.battery_mv, "ticks": time.ticks_ms()}

    async def _watch(self):
        """The watchdog: resets the board if the firmware stops feeding it."""
        while True:
            dog = self.watchdog
            if dog is None:
                await asyncio.sleep_ms(1000)
                continue
            left = dog.timeout_ms - time.ticks_diff(time.ticks_ms(), dog.fed_ms)
            if left <= 0:
                sys.exit(EXIT_RESET)  # the watchdog bites: the board resets
            await asyncio.sleep_ms(left)
