"""The virtual board's hardware in real time: the sim board's pin, ADC and one-shot timers,
driven over the bridge (topic "board"); timers run from an asyncio task as soft IRQs do.

Deep sleep ends the interpreter with EXIT_DEEPSLEEP after one line on stdout saying for how
long and whether the button may wake it; the simulator (vboard.py) keeps the board off the air
until then and boots it again with MSA_WAKE (the wake's cause, as board.wake_cause() gives it),
MSA_WAKE_MS (the wake's instant on the shared monotonic clock) and MSA_PIN (the contact's level).

The watchdog and the RTC memory live in the simulator (simulator/wdt.py), not in this process,
as on an ESP32 they live outside the interpreter: a soft reset or a Ctrl-C ends this process
or its program, not them. This side only tells the simulator, in one datagram each, that the
watchdog was started or reconfigured, was fed, or that the RTC memory changed (MSA_WDT: the
simulator's address and this process's token; MSA_RTC: the RTC memory at this boot, in hex).
"""
import asyncio
import os
import socket
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


def reset():
    """A hard reset: the simulator's watchdog holder restarts the board (the process waits to
    be ended); without a simulator, the process ends with EXIT_RESET."""
    if os.getenv("MSA_WDT"):
        _tell("reset")
        while True:
            time.sleep_ms(1000)
    sys.exit(EXIT_RESET)


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


_wdt = None  # (socket, address, token) once a message was sent


def _tell(message):
    """One datagram to the simulator's watchdog; nothing without a simulator (a bare
    interpreter on the flash folder: no watchdog, no RTC, as on a board without power)."""
    global _wdt
    if _wdt is None:
        spec = os.getenv("MSA_WDT")
        if not spec:
            return
        host, port, token = spec.split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _wdt = (sock, socket.getaddrinfo(host, int(port))[0][-1], token)
    sock, address, token = _wdt
    sock.sendto(("%s %s" % (token, message)).encode(), address)


class Watchdog:
    """machine.WDT as on the ESP32: starting it again reconfigures it; there is no stop."""

    def __init__(self, timeout_ms):
        if timeout_ms <= 0:
            raise ValueError("timeout")
        self.timeout_ms = timeout_ms
        _tell("wdt %d" % timeout_ms)

    def feed(self):
        _tell("feed")


_rtc = None


def rtc_memory(data=None):
    """machine.RTC().memory(): at most 2048 bytes, kept across resets, lost with the power."""
    global _rtc
    if _rtc is None:
        _rtc = bytes.fromhex(os.getenv("MSA_RTC") or "")
    if data is not None:
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        _rtc = bytes(data)
        _tell("rtc " + _rtc.hex())
    return _rtc


class Hardware:
    """The process-wide simulated hardware (created on first use by board/sim.py)."""

    def __init__(self):
        self.pin_level = int(os.getenv("MSA_PIN") or 1)  # 1 released: the button is active low
        self.battery_mv = 3950
        self.button = SimButton(self)
        self.timers = []
        self._finger = asyncio.Lock()
        self.link = simlink.get()
        self.link.on("board", self._on_message)

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
            reset()
        return {"pin": self.pin_level, "battery_mv": self.battery_mv, "ticks": time.ticks_ms()}
