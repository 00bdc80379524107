"""The button's GATT database (docs/protocol.md): the alarm service, Battery and Device
Information. Registered on the radio object passed in; returns the value handles.
"""
import bluetooth

from micropython import const

_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

ALARM_SERVICE = "38cbc706-a3ce-47ca-82bf-a33ed66043c9"
EVENT_CHAR = "b182cb72-379c-44cd-b789-24f4d789ed80"
STATUS_CHAR = "ffd7f0a2-0462-4665-b495-7b4d607c3f32"
CONTROL_CHAR = "87104502-f92b-45f8-aa1a-923dce815d73"
_BATTERY_SERVICE = const(0x180F)
_BATTERY_LEVEL = const(0x2A19)
_DEVICE_INFO = const(0x180A)
_FIRMWARE_REVISION = const(0x2A26)


class Handles:
    """Value handles of the characteristics the firmware reads, writes and indicates."""

    def __init__(self, event, status, control, battery, firmware):
        self.event = event
        self.status = status
        self.control = control
        self.battery = battery
        self.firmware = firmware


def register(ble, encrypted):
    """Registers the services; `encrypted` makes the alarm and battery values need an
    encrypted link (on ports whose bonding works)."""
    rd = _FLAG_READ_ENCRYPTED if encrypted else 0
    wr = _FLAG_WRITE_ENCRYPTED if encrypted else 0
    alarm = (bluetooth.UUID(ALARM_SERVICE), (
        (bluetooth.UUID(EVENT_CHAR), _FLAG_READ | _FLAG_INDICATE | rd),
        (bluetooth.UUID(STATUS_CHAR), _FLAG_READ | _FLAG_NOTIFY | rd),
        (bluetooth.UUID(CONTROL_CHAR), _FLAG_READ | _FLAG_WRITE | rd | wr),
    ))
    battery = (bluetooth.UUID(_BATTERY_SERVICE), (
        (bluetooth.UUID(_BATTERY_LEVEL), _FLAG_READ | _FLAG_NOTIFY | rd),
    ))
    info = (bluetooth.UUID(_DEVICE_INFO), (
        (bluetooth.UUID(_FIRMWARE_REVISION), _FLAG_READ),
    ))
    ((event, status, control), (level,), (firmware,)) = ble.gatts_register_services(
        (alarm, battery, info))
    return Handles(event, status, control, level, firmware)
