"""Espressif ESP32-DevKitC (ESP32-WROOM-32): a development board for bench work, not for a
worn button (its LDO and power LED draw milliamps even in deep sleep).

Wiring: the alarm switch from GPIO27 (an RTC GPIO, so it can wake deep sleep) to GND, internal
pull-up; a LiPo through a 100k/100k divider to GPIO34 (ADC1 channel 6; ADC2 pins cannot be
read while the radio is on). GPIO0 (BOOT) is avoided: pressing it at reset enters download mode.
"""
import esp32
import machine

import hwbase
from hwbase import deepsleep, lightsleep, radio, reset, ticks_add, ticks_diff, ticks_ms  # noqa: F401
from hwbase import rtc_memory, unique_id, wake_cause, wake_ticks_ms  # noqa: F401

NAME = "esp32_devkitc"
BUTTON_PIN = 27
BUTTON_ACTIVE_LOW = True
BATTERY_ADC_PIN = 34
# No vibration motor: a WARN is verified and ignored (docs/boards.md, Vibration motor).
VIBRATION_PIN = None
ADC_MAX_COUNTS = 3300  # calibrated millivolts at the pin (read_uv), as on the XIAO
ADC_REF_MV = 3300
DIVIDER_NUM = 2
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 1000
# For the battery model (`msa bench`, bench/battery.py), in microamps. Chip figures: Espressif
# ESP32 Series Datasheet, "Power Consumption by Power Modes" (modem-sleep at 160 MHz, the
# MicroPython clock: 27-44 mA) and "RF Power-Consumption Specifications".
CURRENT_UA_ACTIVE = 44000  # CPU running, radio idle: the top of the 160 MHz range
CURRENT_UA_IDLE = 27000  # CPU idle: the bottom of it, MicroPython's floor with BLE on
CURRENT_UA_RADIO = 100000  # Bluetooth LE receive 95-100 mA (transmit at 0 dBm: 130 mA)
CURRENT_UA_LIGHT_SLEEP = 800
CURRENT_UA_DEEP_SLEEP = 10  # RTC timer + RTC memory
# The board (AMS1117 regulator, power LED, USB bridge): 2.8 mA measured in deep sleep on a
# DevKitC V4 (forum.micropython.org t=9555, Otii Arc), minus the chip's 10 uA.
CURRENT_UA_BOARD = 2790
CURRENT_UA_DIVIDER = 20  # the battery sense divider: 4.0 V over 100k + 100k, always on
# Wake to main.py under MicroPython, measured on this board (same forum thread): 690 ms.
BOOT_MS = 690
BLE_BONDING = True  # NimBLE, as on the C3
BLE_PRIVACY = True
# What `msa flash` checks on the device before copying (tools/device.py reads it):
# needs: MicroPython 1.24.0 (the esp32 port's NimBLE bluetooth as the firmware was checked)

_TIMERS = {}  # type: dict


def Timer(timer_id):
    if timer_id not in (0, 1):
        raise ValueError("timers 0 and 1 are the firmware's")
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
    """Deep sleep ends when the button pulls GPIO27 low (EXT0 wake, an RTC GPIO)."""
    esp32.wake_on_ext0(machine.Pin(BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP),
                       esp32.WAKEUP_ALL_LOW)
