"""Raspberry Pi Pico W (RP2040 + Infineon CYW43439) with a LiPo on VSYS through a diode.

Wiring: the alarm switch from GP15 to GND, internal pull-up. The battery is read as VSYS/3 on
ADC channel 3 (GPIO29). Caveat: on the Pico W GPIO29 is shared with the CYW43439's SPI clock,
so a reading taken while the radio driver owns the pin can be wrong; the firmware samples the
battery rarely, and a product would add its own divider on GP26-28 instead.
"""
import hwbase
from hwbase import deepsleep, lightsleep, radio, reset, ticks_add, ticks_diff, ticks_ms  # noqa: F401
from hwbase import unique_id  # noqa: F401

NAME = "pico_w"
BUTTON_PIN = 15
BUTTON_ACTIVE_LOW = True
BATTERY_ADC_CHANNEL = 3
ADC_MAX_COUNTS = 4095
ADC_REF_MV = 3300
DIVIDER_NUM = 3  # the board's own VSYS/3 divider
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 1000
# Raspberry Pi Pico W datasheet, "Power consumption" (board level, 5 V in, typical):
CURRENT_UA_ACTIVE = 45000  # estimate: RP2040 at 125 MHz plus the CYW43439 awake
CURRENT_UA_ADVERTISING = 45000  # estimate: MicroPython polls the CYW43439 with BLE on
CURRENT_UA_CONNECTED = 45000  # estimate, as above
CURRENT_UA_LIGHT_SLEEP = 1400  # estimate from the Pico datasheet's sleep mode (~1.3 mA)
CURRENT_UA_DEEP_SLEEP = 1400  # the RP2040 has no deeper sleep MicroPython can wake by GPIO
# MicroPython's rp2 port uses BTstack: pairing and bonding exist but secrets handling and
# privacy are less complete than NimBLE's; the protocol's application-layer tags carry it.
BLE_BONDING = False
BLE_PRIVACY = False


def Timer(timer_id):
    """Virtual (software) timers: the RP2040 has no numbered timers to share out."""
    if timer_id not in (0, 1):
        raise ValueError("timers 0 and 1 are the firmware's")
    return hwbase.OneShot(-1)


def Button():
    return hwbase.PinButton(BUTTON_PIN, BUTTON_ACTIVE_LOW)


def battery_counts():
    return hwbase.rp2_adc_counts(BATTERY_ADC_CHANNEL)


def watchdog(timeout_ms):
    return hwbase.Watchdog(min(timeout_ms, 8388))  # the RP2040 watchdog's longest period


def wake_on_button():
    raise OSError("the Pico W cannot wake from deep sleep on a GPIO under MicroPython")
