"""Raspberry Pi Pico W (RP2040 + Infineon CYW43439) with a LiPo on VSYS through a diode.

Wiring: the alarm switch from GP15 to GND, internal pull-up. The battery is read as VSYS/3 at
GPIO29 (ADC channel 3), through ADC(Pin(29)) so that the pin is switched to analogue. Caveat: on the Pico W GPIO29 is shared with the CYW43439's SPI clock,
so a reading taken while the radio driver owns the pin can be wrong; the firmware samples the
battery rarely, and a product would add its own divider on GP26-28 instead.
"""
import hwbase
from hwbase import deepsleep, lightsleep, radio, reset, ticks_add, ticks_diff, ticks_ms  # noqa: F401
from hwbase import unique_id  # noqa: F401

NAME = "pico_w"
BUTTON_PIN = 15
BUTTON_ACTIVE_LOW = True
BATTERY_ADC_PIN = 29
# No vibration motor: a WARN is verified and ignored (docs/boards.md, Vibration motor).
VIBRATION_PIN = None
ADC_MAX_COUNTS = 4095
ADC_REF_MV = 3300
DIVIDER_NUM = 3  # the board's own VSYS/3 divider
DIVIDER_DEN = 1
CHEMISTRY = "lipo"
CAPACITY_MAH = 1000
# For the battery model (`msa bench`, bench/battery.py), in microamps, board level. All
# estimates: no datasheet gives the Pico W with Bluetooth LE on under MicroPython. A Pico
# without radio draws 18 mA running and 5 mA in deep sleep at 5 V (measured, mjoldfield.com
# "Pico power", CircuitPython); the CYW43439 kept awake and polled by MicroPython adds more.
CURRENT_UA_ACTIVE = 45000  # RP2040 at 125 MHz plus the CYW43439 awake
CURRENT_UA_IDLE = 40000  # waiting between events: MicroPython polls the radio, never sleeps
CURRENT_UA_RADIO = 20000  # the CYW43439 receiving or sending, on top of the above
CURRENT_UA_LIGHT_SLEEP = 1400  # the Pico datasheet's sleep mode (about 1.3 mA)
CURRENT_UA_DEEP_SLEEP = 1400  # dormant; unusable anyway: no wake on the button (below)
CURRENT_UA_BOARD = 0  # included in the board-level figures above
CURRENT_UA_DIVIDER = 14  # the board's own VSYS divider (200k + 100k) at 4.0 V
# MicroPython's rp2 port uses BTstack: pairing and bonding exist but secrets handling and
# privacy are less complete than NimBLE's; the protocol's application-layer tags carry it.
BLE_BONDING = False
BLE_PRIVACY = False
# BTstack keeps one connection (btstack_config.h): the firmware drops an unproven central
# sooner here, since it holds the host's only way in.
MAX_CONNECTIONS = 1
# What `msa flash` checks on the device before copying (tools/device.py reads it):
# needs: MicroPython 1.24.0 (the rp2 port's BTstack bluetooth as the firmware was checked)
_RTC_FILE = "rtc.bin"


def Timer(timer_id):
    """Virtual (software) timers: the RP2040 has no numbered timers to share out."""
    if timer_id not in (0, 1):
        raise ValueError("timers 0 and 1 are the firmware's")
    return hwbase.OneShot(-1)


def Vibration():
    return hwbase.vibration(VIBRATION_PIN)


def Button():
    return hwbase.PinButton(BUTTON_PIN, BUTTON_ACTIVE_LOW)


def battery_counts():
    return hwbase.rp2_adc_counts(BATTERY_ADC_PIN)


def watchdog(timeout_ms):
    return hwbase.Watchdog(min(timeout_ms, 8388))  # the RP2040 watchdog's longest period


def rtc_memory(data=None):
    """The RP2040's RTC keeps no user memory under MicroPython: a small file stands in, so the
    fatal backoff (fatal.py) also survives a power cut here; it is written only on a fatal
    error and once after a healthy minute."""
    if data is not None:
        with open(_RTC_FILE, "wb") as f:
            f.write(data)
        return bytes(data)
    try:
        with open(_RTC_FILE, "rb") as f:
            return f.read()
    except OSError:
        return b""


def wake_on_button():
    raise OSError("the Pico W cannot wake from deep sleep on a GPIO under MicroPython")


def wake_cause():
    """Always a boot: without a wake on the button the firmware never deep-sleeps here."""
    return 0


def wake_ticks_ms():
    return 0
