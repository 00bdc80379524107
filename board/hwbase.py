"""Glue over MicroPython's machine module shared by the real boards (on a device: hwbase.py
beside board.py). Nothing here touches hardware at import time: objects are made on first use.
"""
import time

import machine

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add


class OneShot:
    """A one-shot timer with the board interface: start(delay_ms, callback), cancel()."""

    def __init__(self, timer_id):
        self._id = timer_id
        self._timer = None
        self._callback = None
        self._fire_cb = self._fire  # bound once: binding inside the timer IRQ would allocate

    def start(self, delay_ms, callback):
        self._callback = callback
        if self._timer is None:
            self._timer = machine.Timer(self._id)
        self._timer.init(mode=machine.Timer.ONE_SHOT, period=max(1, delay_ms),
                         callback=self._fire_cb)

    def cancel(self):
        if self._timer is not None:
            self._timer.deinit()

    def _fire(self, _timer):
        callback = self._callback
        if callback is not None:
            callback(self)


class PinButton:
    """The alarm button on a GPIO: pressed() applies the wiring, irq() hears both edges."""

    def __init__(self, pin_id, active_low):
        pull = machine.Pin.PULL_UP if active_low else machine.Pin.PULL_DOWN
        self.pin = machine.Pin(pin_id, machine.Pin.IN, pull)
        self._active_low = active_low

    def pressed(self):
        level = self.pin.value()
        return level == 0 if self._active_low else level == 1

    def irq(self, handler):
        if handler is None:
            self.pin.irq(handler=None)
        else:
            self.pin.irq(handler=handler,
                         trigger=machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)


def vibration(pin_id):
    """The vibration motor's driver pin, made low (motor off) at once; None without a motor."""
    if pin_id is None:
        return None
    return machine.Pin(pin_id, machine.Pin.OUT, value=0)


def esp32_adc_mv(pin_id):
    """Calibrated millivolts at an ESP32 ADC pin (11 dB attenuation: the widest range)."""
    adc = machine.ADC(machine.Pin(pin_id), atten=machine.ADC.ATTN_11DB)
    return adc.read_uv() // 1000


def rp2_adc_counts(pin_id):
    """12-bit counts (0-4095) at an RP2040 ADC pin. Made from the Pin, not the channel number:
    ADC(3) reads channel 3 without switching GPIO29 to analogue, so the reading is wrong."""
    return machine.ADC(machine.Pin(pin_id)).read_u16() >> 4


class Watchdog:
    """machine.WDT behind the board interface. It cannot be stopped once started, and it
    survives a soft reset and a Ctrl-C; making it again with a new timeout reconfigures it
    (only a hard reset, a watchdog reset or deep sleep ends it)."""

    def __init__(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()


def rtc_memory(data=None):
    """The RTC's user memory (ESP32: 2 KiB): kept across resets and deep sleep, lost with the
    power. With data, replaces it; returns what it holds."""
    rtc = machine.RTC()
    if data is not None:
        rtc.memory(data)
    return rtc.memory()


def unique_id():
    return machine.unique_id()


def reset():
    machine.reset()


def wake_cause():
    """Why this boot happened: 0 power-on or reset, 1 a deep-sleep wake by the button (the
    only other wake source the firmware arms), 2 by the timer (firmware/power.py)."""
    if machine.reset_cause() != machine.DEEPSLEEP_RESET:
        return 0
    return 2 if machine.wake_reason() == machine.TIMER_WAKE else 1


def wake_ticks_ms():
    """ticks_ms() at the wake: the ESP32 ports count ticks from the chip's start after each
    deep sleep (esp_timer), so 0 (the ROM and bootloader before it are not counted: a hold
    timed from here is never shorter than the finger's)."""
    return 0


def lightsleep(ms):
    machine.lightsleep(ms)


def deepsleep(ms):
    machine.deepsleep(ms)


def radio():
    """The BLE radio object, made only when the firmware asks for it."""
    import bluetooth

    return bluetooth.BLE()
