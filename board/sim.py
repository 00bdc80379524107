"""Simulated board: a virtual clock, a button pin with interrupts, one-shot timers, a battery
ADC and a vibration motor whose pin keeps its transitions, all driven (or read back) by the
simulator or a test. Same interface as the real boards.

Time only moves when the driver calls advance()/run_until(): due timers fire in deadline order,
each at its own deadline, so tests are exact and never sleep. ticks_ms() wraps like the ports'
(period 2**30), and a run can start just before the wrap.
"""
from micropython import const

NAME = "sim"
BUTTON_ACTIVE_LOW = True
ADC_MAX_COUNTS = 4095
ADC_REF_MV = 3300
DIVIDER_NUM = 2  # battery -> 2:1 divider -> ADC pin, as on the XIAO ESP32-C3 guides
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 500
# Figures for the battery model: the sim borrows the XIAO ESP32-C3's (see that board).
CURRENT_UA_ACTIVE = 28000
CURRENT_UA_IDLE = 21000
CURRENT_UA_RADIO = 90000
CURRENT_UA_LIGHT_SLEEP = 130
CURRENT_UA_DEEP_SLEEP = 5
CURRENT_UA_BOARD = 39
CURRENT_UA_DIVIDER = 10
BOOT_MS = 690
BLE_BONDING = True
BLE_PRIVACY = True
VIBRATION_PIN = 0  # a simulated motor (SimMotor): tests read its pattern back
# What `msa flash` checks on the device before copying (tools/device.py reads it):
# needs: MicroPython 1.24.0 (the firmware's asyncio and bluetooth use, as checked)

TICKS_PERIOD = 1 << 30
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)


def ticks_add(ticks, delta):
    """Same contract as time.ticks_add."""
    return (ticks + delta) & _TICKS_MASK


def ticks_diff(end, start):
    """Same contract as time.ticks_diff: signed, correct across the wrap."""
    return ((end - start + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def _nothing(_timer):
    pass


class Slept(Exception):
    """SimBoard.deepsleep() in the unit tests: the firmware never gets past it."""


class Reset(Exception):
    """SimBoard.reset() in the unit tests: the firmware never gets past it."""


class SimTimer:
    """One-shot timer on the virtual clock: start() re-arms, cancel() disarms."""

    def __init__(self, board, timer_id):
        self._board = board
        self.id = timer_id
        self.deadline = -1  # absolute virtual ms, -1 when disarmed
        self._callback = _nothing

    def start(self, delay_ms, callback):
        self.deadline = self._board.now_ms + max(0, delay_ms)
        self._callback = callback

    def cancel(self):
        self.deadline = -1

    def fire(self):
        self.deadline = -1
        self._callback(self)


class SimButton:
    """The button pin. The driver sets the physical level; handlers run like pin IRQs."""

    def __init__(self, board):
        self._board = board
        self._handler = None

    def pressed(self):
        level = self._board.pin_level
        return level == 0 if BUTTON_ACTIVE_LOW else level == 1

    def irq(self, handler):
        self._handler = handler

    def edge(self):
        if self._handler is not None:
            self._handler(self)


class SimMotor:
    """The vibration motor's pin: each change of level is kept as (time_ms, level), the time
    from `clock` (the virtual clock's unwrapped ms in SimBoard)."""

    def __init__(self, clock):
        self._clock = clock
        self.level = 0
        self.transitions = []

    def value(self, level):
        level = 1 if level else 0
        if level != self.level:
            self.level = level
            self._record(self._clock(), level)

    def _record(self, t_ms, level):
        self.transitions.append((t_ms, level))


class SimBoard:
    """One simulated board; the firmware sees the same names as a real board module."""

    NAME = NAME
    BUTTON_ACTIVE_LOW = BUTTON_ACTIVE_LOW
    ADC_MAX_COUNTS = ADC_MAX_COUNTS
    ADC_REF_MV = ADC_REF_MV
    DIVIDER_NUM = DIVIDER_NUM
    DIVIDER_DEN = DIVIDER_DEN
    CHEMISTRY = CHEMISTRY
    CAPACITY_MAH = CAPACITY_MAH
    BLE_BONDING = BLE_BONDING
    BLE_PRIVACY = BLE_PRIVACY
    VIBRATION_PIN = VIBRATION_PIN  # a subclass sets None for a board without a motor

    def __init__(self, start_ms=0, battery_mv=4000):
        self.now_ms = start_ms  # absolute and unwrapped; ticks_ms() wraps it
        self.pin_level = 1 if BUTTON_ACTIVE_LOW else 0
        self.battery_mv = battery_mv
        self.timers = []
        self.button = SimButton(self)
        self.resets = 0
        self.wake = 0  # what wake_cause() answers: set by a test for a wake from deep sleep
        self.wake_ms = 0  # ticks of the wake, for wake_ticks_ms()
        self.wake_armed = False
        self.slept_ms = -1  # the timer of the last deepsleep(), -1 before any
        self.rtc = b""  # the RTC memory: kept by reset(), as on a board
        self.motor = SimMotor(self._now)

    def rtc_memory(self, data=None):
        if data is not None:
            self.rtc = bytes(data)
        return self.rtc

    def reset(self):
        """Counts the reset and ends the caller, as a board's reset never returns."""
        self.resets += 1
        raise Reset()

    def _now(self):
        return self.now_ms

    # --- the board interface the firmware uses ---
    def ticks_ms(self):
        return self.now_ms & _TICKS_MASK

    def ticks_diff(self, end, start):
        return ticks_diff(end, start)

    def ticks_add(self, ticks, delta):
        return ticks_add(ticks, delta)

    def Timer(self, timer_id):
        timer = SimTimer(self, timer_id)
        self.timers.append(timer)
        return timer

    def Button(self):
        return self.button

    def Vibration(self):
        return self.motor if self.VIBRATION_PIN is not None else None

    def wake_cause(self):
        return self.wake

    def wake_ticks_ms(self):
        return self.wake_ms & _TICKS_MASK

    def wake_on_button(self):
        self.wake_armed = True

    def deepsleep(self, ms):
        """Records the sleep and ends the caller, as a board's deep sleep never returns."""
        self.slept_ms = ms
        raise Slept(ms)

    def battery_counts(self):
        pin_mv = self.battery_mv * DIVIDER_DEN // DIVIDER_NUM
        counts = pin_mv * ADC_MAX_COUNTS // ADC_REF_MV
        return min(max(counts, 0), ADC_MAX_COUNTS)

    # --- the simulator's side ---
    def set_pressed(self, pressed):
        """Moves the physical contact; an edge interrupts like a GPIO IRQ on both edges."""
        level = (0 if pressed else 1) if BUTTON_ACTIVE_LOW else (1 if pressed else 0)
        if level != self.pin_level:
            self.pin_level = level
            self.button.edge()

    def next_deadline(self):
        best = -1
        for t in self.timers:
            if t.deadline >= 0 and (best < 0 or t.deadline < best):
                best = t.deadline
        return best

    def run_until(self, t_ms):
        """Advances the clock to t_ms, firing every timer due on the way, in order."""
        while True:
            due = self.next_deadline()
            if due < 0 or due > t_ms:
                break
            self.now_ms = max(self.now_ms, due)
            for timer in self.timers:
                if timer.deadline == due:
                    timer.fire()
                    break
        self.now_ms = max(self.now_ms, t_ms)

    def advance(self, delta_ms):
        """Advances the clock by delta_ms."""
        self.run_until(self.now_ms + delta_ms)


# --- as the virtual board's board.py: the board interface in real time ---------------------
# The machinery lives in simhw (on the virtual board's path), made on first use, never at
# import time, so that the unit tests above import this module without a simulator.
_hw = None


def _hardware():
    global _hw
    if _hw is None:
        import simhw

        _hw = simhw.Hardware()
    return _hw


def ticks_ms():
    import time

    # Folded to the period of ticks_diff/ticks_add above (the unix port's own is longer).
    return time.ticks_ms() & _TICKS_MASK  # type: ignore[operator]  # plain ints on unix


def Timer(timer_id):
    return _hardware().Timer(timer_id)


def Button():
    return _hardware().button


def battery_counts():
    return _hardware().battery_counts()


class _LinkedMotor(SimMotor):
    """The virtual board's motor: each change goes to the simulator (VirtualBoard.motor)
    with the board's ticks, rather than into a list that would grow for good."""

    def _record(self, t_ms, level):
        import simlink

        simlink.get().send({"t": "motor", "ms": t_ms, "level": level})


_motor = None


def Vibration():
    global _motor
    if _motor is None:
        _motor = _LinkedMotor(ticks_ms)
    return _motor


def radio():
    import bluetooth

    return bluetooth.BLE()


def watchdog(timeout_ms):
    """machine.WDT, held by the simulator: it outlives this interpreter (simhw)."""
    import simhw

    return simhw.Watchdog(timeout_ms)


def rtc_memory(data=None):
    import simhw

    return simhw.rtc_memory(data)


def reset():
    import simhw

    simhw.reset()


def unique_id():
    return b"\x5e\x11\x00\x00\x00\x01"


def lightsleep(ms):
    import time

    time.sleep_ms(ms)


_wake_armed = False


def deepsleep(ms):
    """The interpreter ends; the simulator keeps the board asleep until its timer or, if
    armed, a press (simhw.deepsleep)."""
    import simhw

    simhw.deepsleep(ms, _wake_armed)


def wake_on_button():
    global _wake_armed
    _wake_armed = True


def wake_cause():
    import simhw

    return simhw.wake_cause()


def wake_ticks_ms():
    import simhw

    return simhw.wake_ticks_ms(ticks_ms()) & _TICKS_MASK
