"""Seeed Studio XIAO ESP32-C3 with a 500 mAh LiPo on its battery pads (the reference button).

Wiring: the alarm switch from D1 (GPIO3) to GND, internal pull-up; battery + through two
200 kOhm resistors to GND with the midpoint on A0 (GPIO2, ADC1 channel 2), as Seeed's wiki
shows for battery monitoring. GPIO2 and GPIO3 are both deep-sleep wake capable on the C3.
"""
import esp32
import machine

import hwbase
from hwbase import deepsleep, lightsleep, radio, reset, ticks_add, ticks_diff, ticks_ms  # noqa: F401
from hwbase import rtc_memory, unique_id, wake_cause, wake_ticks_ms  # noqa: F401

NAME = "xiao_esp32c3"
BUTTON_PIN = 3
BUTTON_ACTIVE_LOW = True
BATTERY_ADC_PIN = 2
# No vibration motor: a WARN is verified and ignored (docs/boards.md, Vibration motor).
VIBRATION_PIN = None
# battery_counts() returns calibrated millivolts at the pin (read_uv), so one count is 1 mV.
ADC_MAX_COUNTS = 3300
ADC_REF_MV = 3300
DIVIDER_NUM = 2  # two equal 200 kOhm resistors halve the cell voltage
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 500
# For the battery model (`msa bench`, bench/battery.py), in microamps. Chip figures: Espressif
# ESP32-C3 Series Datasheet v2.4, Table 5-8 "Current Consumption in Modem-sleep Mode" (160 MHz,
# MicroPython's clock, all peripheral clocks enabled) and Table 5-9 (low-power modes).
CURRENT_UA_ACTIVE = 28000  # CPU running, radio idle (boot, Python work)
CURRENT_UA_IDLE = 21000  # CPU idle between events: MicroPython's floor, it never light-sleeps
# Radio receiving or sending (an event's average). Estimate: the C3 datasheet gives no Bluetooth
# LE figure; its siblings' (ESP32-S3, ESP32-C6 datasheets) Bluetooth LE RX is 71-93 mA.
CURRENT_UA_RADIO = 90000
CURRENT_UA_LIGHT_SLEEP = 130
CURRENT_UA_DEEP_SLEEP = 5  # RTC timer + RTC memory
# The board around the chip (regulator, charger): Seeed wiki "XIAO ESP32C3 power consumption"
# measured 44 uA in deep sleep from a battery on the pads; minus the chip's 5 uA. (Its other
# figures, 26.8 mA modem-sleep and 9.7 mA light-sleep with BLE, are AT firmware's: a check.)
CURRENT_UA_BOARD = 39
CURRENT_UA_DIVIDER = 10  # the battery sense divider: 4.0 V over 2 x 200 kOhm, always on
# Wake to main.py under MicroPython, measured (forum.micropython.org t=9555: 690 ms awake for
# `machine.deepsleep(1000)` alone in main.py, ESP32 DevKitC, Otii Arc; 190 ms in Arduino).
BOOT_MS = 690
# MicroPython's ESP32 port uses NimBLE: LE Secure Connections bonding with secrets handed to
# Python (_IRQ_SET_SECRET), and resolvable private addresses via config(addr_mode=2).
BLE_BONDING = True
BLE_PRIVACY = True
# What `msa flash` checks on the device before copying (tools/device.py reads it):
# needs: MicroPython 1.27.0 (esp32.wake_on_gpio, the deep-sleep wake on the button)

# The ESP32-C3 has two hardware timers, 0 and 1: one for debounce, one for gestures.
_TIMERS = {}  # type: dict


def Timer(timer_id):
    if timer_id not in (0, 1):
        raise ValueError("the ESP32-C3 has timers 0 and 1")
    if timer_id not in _TIMERS:
        _TIMERS[timer_id] = hwbase.OneShot(timer_id)
    return _TIMERS[timer_id]


def Vibration():
    return hwbase.vibration(VIBRATION_PIN)


def Button():
    return hwbase.PinButton(BUTTON_PIN, BUTTON_ACTIVE_LOW)


def battery_counts():
    return hwbase.esp32_adc_mv(BATTERY_ADC_PIN)


def watchdog(timeout_ms):
    return hwbase.Watchdog(timeout_ms)


def wake_on_button():
    """Deep sleep ends when the button pulls its pin low (ESP32-C3 GPIO wake). OSError on a
    MicroPython without esp32.wake_on_gpio (before 1.27): the firmware then stays awake."""
    wake = getattr(esp32, "wake_on_gpio", None)
    if wake is None:
        raise OSError("esp32.wake_on_gpio needs MicroPython 1.27")
    wake((machine.Pin(BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP),), esp32.WAKEUP_ALL_LOW)
