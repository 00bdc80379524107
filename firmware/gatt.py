"""The button's GATT database (docs/protocol.md): the alarm service, under UUIDs derived from
the button's key, and Battery. Registered on the radio object passed in; returns the value
handles.

Nothing a stranger can read names the device: the alarm service and its characteristics have
UUIDs that only holders of the key can compute (a fixed, published UUID would say "alarm
button" to anyone who connects), frames are only indicated or notified to a central that
proved the key, and the firmware version goes to such a central only (the info notification).
"""
from binascii import hexlify

import bluetooth

from micropython import const

from frame import Hmac

_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

_BATTERY_SERVICE = const(0x180F)
_BATTERY_LEVEL = const(0x2A19)
# The derived UUIDs, in registration order: HMAC(K, "msa1 uuid" || i) for i = 0 service,
# 1 event, 2 status, 3 control, 4 info (docs/protocol.md, GATT layout).
_UUID_LABEL = b"msa1 uuid"
_UUIDS = const(5)
_COMMAND_LEN = const(18)


class Handles:
    """Value handles of the characteristics the firmware reads, writes and indicates."""

    def __init__(self, event, status, control, info, battery):
        self.event = event
        self.status = status
        self.control = control
        self.info = info
        self.battery = battery


def register(ble, encrypted, key):
    """Registers the services; `encrypted` makes the alarm and battery values need an
    encrypted link (on ports whose bonding works). The control value's buffer is made to
    hold a whole command (the ports' default holds 20 bytes)."""
    rd = _FLAG_READ_ENCRYPTED if encrypted else 0
    wr = _FLAG_WRITE_ENCRYPTED if encrypted else 0
    mac = Hmac(key)
    uuids = []
    for i in range(_UUIDS):
        # 16 bytes of the HMAC as a random (version 4, RFC 4122 variant) UUID.
        raw = bytearray(mac.digest(_UUID_LABEL, bytes((i,)))[:16])
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        h = hexlify(bytes(raw)).decode()
        uuids.append(bluetooth.UUID("%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20],
                                                         h[20:])))
    service, event, status, control, info = uuids
    alarm = (service, (
        (event, _FLAG_INDICATE | rd),
        (status, _FLAG_NOTIFY | rd),
        (control, _FLAG_READ | _FLAG_WRITE | rd | wr),
        (info, _FLAG_NOTIFY | rd),
    ))
    battery = (bluetooth.UUID(_BATTERY_SERVICE), (
        (bluetooth.UUID(_BATTERY_LEVEL), _FLAG_READ | _FLAG_NOTIFY | rd),
    ))
    ((event_h, status_h, control_h, info_h), (level,)) = ble.gatts_register_services(
        (alarm, battery))
    ble.gatts_set_buffer(control_h, _COMMAND_LEN)
    return Handles(event_h, status_h, control_h, info_h, level)
