"""The alarm service's UUIDs derived from the key (docs/protocol.md, GATT layout): the host's
derivation, the firmware's registration and the document's formula computed here with the
standard library agree, and no two buttons share them."""
from __future__ import annotations

import hashlib
import hmac
import uuid

import bluetooth  # the firmware tests' stand-in radio (tests/firmware/bluetooth.py)
import gatt

from msa.wire.protocol import GattUuids

KEY = bytes(range(32))


def _from_the_document(key: bytes, i: int) -> str:
    raw = bytearray(hmac.new(key, b"msa1 uuid" + bytes([i]), hashlib.sha256).digest()[:16])
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def test_host_firmware_and_document_agree() -> None:
    expected = [_from_the_document(KEY, i) for i in range(5)]
    host = GattUuids.from_master(KEY)
    assert [host.service, host.event, host.status, host.control, host.info] == expected
    ble = bluetooth.BLE()
    handles = gatt.register(ble, True, KEY)
    service, entries = ble.services[0]
    assert str(service.value).lower() == expected[0]
    by_handle = {h: str(u.value).lower() for u, _flags, h in entries}
    assert [by_handle[h] for h in (handles.event, handles.status, handles.control,
                                   handles.info)] == expected[1:]
    assert all(uuid.UUID(u).version == 4 for u in expected)


def test_another_key_another_service() -> None:
    other = GattUuids.from_master(bytes(range(1, 33)))
    mine = GattUuids.from_master(KEY)
    assert not set(vars(other).values()) & set(vars(mine).values())
