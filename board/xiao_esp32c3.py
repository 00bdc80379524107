"""Seeed Studio XIAO ESP32-C3 with a 500 mAh LiPo on its battery pads (the reference button).

Wiring: the alarm switch from D1 (GPIO3) to GND, internal pull-up; battery + through two
200 kOhm resistors to GND with the midpoint on A0 (GPIO2, ADC1 channel 2), as Seeed's wiki
shows for battery monitoring. GPIO2 and GPIO3 are both deep-sleep wake capable on the C3.
"""
import esp32
import machine

import hwbase
from hwbase import deepsleep, lightsleep, radio, reset, ticks_add, ticks_diff, ticks_ms  # noqa: F401
from hwbase import unique_id  # noqa: F401

NAME = "xiao_esp32c3"
BUTTON_PIN = 3
BUTTON_ACTIVE_LOW = True
BATTERY_ADC_PIN = 2
# battery_counts() returns calibrated millivolts at the pin (read_uv), so one count is 1 mV.
ADC_MAX_COUNTS = 3300
ADC_REF_MV = 3300
DIVIDER_NUM = 2  # two equal 200 kOhm resistors halve the cell voltage
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 500
# Currents in microamps, for the battery model (msa bench). Board level, from the battery pads.
# Seeed wiki "XIAO ESP32C3 power consumption" (AT firmware, battery powered):
CURRENT_UA_ACTIVE = 26800  # modem-sleep with BLE enabled: CPU on, radio between events
CURRENT_UA_ADVERTISING = 9700  # light-sleep with BLE enabled, advertising (Seeed, AT firmware)
CURRENT_UA_CONNECTED = 9700  # estimate: Seeed measured advertising only; same sleep regime
# Espressif ESP32-C3 datasheet, "Current consumption in low-power modes" (chip only):
CURRENT_UA_LIGHT_SLEEP = 130
CURRENT_UA_DEEP_SLEEP = 44  # Seeed wiki board figure (chip alone: 5 uA; regulator adds)
# MicroPython's ESP32 port uses NimBLE: LE Secure Connections bonding with secrets handed to
# Python (_IRQ_SET_SECRET), and resolvable private addresses via config(addr_mode=2).
BLE_BONDING = True
BLE_PRIVACY = True

# The ESP32-C3 has two hardware timers, 0 and 1: one for debounce, one for gestures.
_TIMERS = {}  # type: dict


def Timer(timer_id):
    if timer_id not in (0, 1):
        raise ValueError("the ESP32-C3 has timers 0 and 1")
    if timer_id not in _TIMERS:
        _TIMERS[timer_id] = hwbase.OneShot(timer_id)
    return _TIMERS[timer_id]


def Button():
    return hwbase.PinButton(BUTTON_PIN, BUTTON_ACTIVE_LOW)


def battery_counts():
    return hwbase.esp32_adc_mv(BATTERY_ADC_PIN)


def watchdog(timeout_ms):
    return hwbase.Watchdog(timeout_ms)


def wake_on_button():
    """Deep sleep ends when the button pulls its pin low (ESP32-C3 GPIO wake)."""
    esp32.wake_on_gpio((machine.Pin(BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP),),
                       esp32.WAKEUP_ALL_LOW)
