"""A bleak backend over the simulated air: host code that uses only bleak's public API runs
against simulated buttons, as bleak's own platform backends and bleak-esphome plug in.

    central = Central(air, "C0:00:00:00:00:10", keystore)
    await central.start()
    BleakScanner(cb, backend=BumbleScanner, central=central)
    BleakClient(device, backend=BumbleClient, central=central)

A Central is one host's radio (a Bumble device acting as central); its scanners and clients
share it, as apps share an adapter. Addresses are bleak-style strings ("C0:00:00:00:00:01").
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import BaseBumbleError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.keys import KeyStore

from .radio import Air

_PROPERTY_NAMES = ((0x01, "broadcast"), (0x02, "read"), (0x04, "write-without-response"),
                   (0x08, "write"), (0x10, "notify"), (0x20, "indicate"),
                   (0x40, "authenticated-signed-writes"), (0x80, "extended-properties"))
_MTU = 247


def _address(text: str) -> hci.Address:
    return hci.Address(text, hci.Address.RANDOM_DEVICE_ADDRESS)


def _text(address: hci.Address) -> str:
    return str(address.to_string(with_type_qualifier=False)).upper()


def _uuid(uuid: Any) -> str:
    return str(uuid.to_hex_str("-")).lower() if len(uuid.uuid_bytes) == 16 else \
        f"0000{str(uuid.to_hex_str()).lower()}-0000-1000-8000-00805f9b34fb"


def parse_advert(data: bytes, rssi: int) -> tuple[str | None, AdvertisementData]:
    """bleak's AdvertisementData from raw AD structures."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    services: list[str] = []
    service_data: dict[str, bytes] = {}
    tx_power: int | None = None
    i = 0
    while i + 1 < len(data):
        length, kind = data[i], data[i + 1]
        body = bytes(data[i + 2:i + 1 + length])
        i += 1 + length
        if length == 0:
            break
        if kind in (0x08, 0x09):
            name = body.decode("utf-8", "replace")
        elif kind == 0xFF and len(body) >= 2:
            manufacturer[int.from_bytes(body[:2], "little")] = body[2:]
        elif kind in (0x02, 0x03):
            services += [f"0000{int.from_bytes(body[j:j + 2], 'little'):04x}"
                         "-0000-1000-8000-00805f9b34fb" for j in range(0, len(body) - 1, 2)]
        elif kind in (0x06, 0x07):
            for j in range(0, len(body) - 15, 16):
                h = body[j:j + 16][::-1].hex()
                services.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        elif kind == 0x0A and body:
            tx_power = int.from_bytes(body[:1], "little", signed=True)
    return name, AdvertisementData(local_name=name, manufacturer_data=manufacturer,
                                   service_data=service_data, service_uuids=services,
                                   tx_power=tx_power, rssi=rssi, platform_data=(data,))


class Central:
    """One host's simulated radio: a Bumble device acting as central, with its bond store."""

    def __init__(self, air: Air, address: str, keystore: KeyStore) -> None:
        self.address = address.upper()
        self.device: Device = air.device(f"host-{address}", address, keystore)
        self._listeners: dict[object, Callable[[Advertisement], None]] = {}
        self._scanning = False
        self.device.on("advertisement", self._on_advertisement)

    async def start(self) -> None:
        await self.device.power_on()

    def _on_advertisement(self, adv: Advertisement) -> None:
        for listener in list(self._listeners.values()):
            listener(adv)

    async def listen(self, token: object, listener: Callable[[Advertisement], None]) -> None:
        self._listeners[token] = listener
        if not self._scanning:
            self._scanning = True
            await self.device.start_scanning(filter_duplicates=False)

    async def unlisten(self, token: object) -> None:
        self._listeners.pop(token, None)
        if self._scanning and not self._listeners:
            self._scanning = False
            await self.device.stop_scanning()

    async def bonded(self, address: str) -> bool:
        keystore = self.device.keystore
        return keystore is not None and await keystore.get(address.upper()) is not None


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: advertisements the Central hears."""

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None, scanning_mode: str = "active", *,
                 central: Central, **_kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central = central
        self._token = object()

    async def start(self) -> None:
        self.seen_devices = {}
        await self._central.listen(self._token, self._on_advertisement)

    async def stop(self) -> None:
        await self._central.unlisten(self._token)

    def _on_advertisement(self, adv: Advertisement) -> None:
        name, data = parse_advert(adv.data_bytes, adv.rssi)
        address = _text(adv.address)
        device = self.create_or_update_device(address, address, name, adv, data)
        if self.is_allowed_uuid(data.service_uuids):
            self.call_detection_callbacks(device, data)


def _bleak_error(exc: BaseException, what: str) -> BleakError:
    if isinstance(exc, ATT_Error):
        return BleakError(f"{what}: ATT error 0x{int(exc.error_code):02X} ({exc.error_name})")
    return BleakError(f"{what}: {exc}")


class BumbleClient(BaseBleakClient):
    """bleak client backend: a GATT client connection from the Central."""

    def __init__(self, address_or_ble_device: BLEDevice | str, *, central: Central,
                 disconnected_callback: Callable[[], None] | None = None,
                 timeout: float = 10.0, **_kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        self._central = central
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._handles: dict[int, Any] = {}  # handle -> Bumble proxy
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def mtu_size(self) -> int:
        return int(self._conn.att_mtu) if self._conn is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    def _on_disconnection(self, _reason: int) -> None:
        self._conn = None
        self._peer = None
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        device = self._central.device
        try:
            conn = await device.connect(_address(self.address), timeout=self._timeout)
        except (asyncio.TimeoutError, BaseBumbleError) as exc:
            raise BleakError(f"could not connect to {self.address}: {exc!r}") from exc
        self._closing = False
        self._conn = conn
        conn.on("disconnection", self._on_disconnection)
        self._peer = Peer(conn)
        try:
            await self._peer.request_mtu(_MTU)
            await self._discover()
            if pair:
                await self.pair()
        except (ATT_Error, BaseBumbleError, asyncio.TimeoutError) as exc:
            await self.disconnect()
            raise _bleak_error(exc, "connection set-up failed") from exc

    async def _discover(self) -> None:
        peer = self._require_peer()
        collection = BleakGATTServiceCollection()
        for svc in await peer.discover_services():
            service = BleakGATTService(svc, svc.handle, _uuid(svc.uuid))
            collection.add_service(service)
            for ch in await svc.discover_characteristics():
                props = [n for bit, n in _PROPERTY_NAMES if int(ch.properties) & bit]
                char = BleakGATTCharacteristic(ch, ch.handle, _uuid(ch.uuid), props,  # type: ignore[arg-type]
                                               lambda: self.mtu_size - 3, service)
                collection.add_characteristic(char)
                self._handles[ch.handle] = ch
                for d in await ch.discover_descriptors():
                    desc = BleakGATTDescriptor(d, d.handle, _uuid(d.type), char)
                    collection.add_descriptor(desc)
                    self._handles[d.handle] = d
        self.services = collection

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer

    async def disconnect(self) -> None:
        conn = self._conn
        self._closing = True
        if conn is not None:
            try:
                await conn.disconnect()
            except BaseBumbleError:
                pass
        self._conn = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pairs (LE Secure Connections, bonding), or re-encrypts with an existing bond."""
        conn = self._conn
        if conn is None:
            raise BleakError(f"not connected to {self.address}")
        try:
            if await self._central.bonded(self.address):
                await conn.encrypt()
            else:
                await conn.pair()
        except (BaseBumbleError, asyncio.TimeoutError) as exc:
            raise _bleak_error(exc, "pairing failed") from exc

    async def unpair(self) -> None:
        keystore = self._central.device.keystore
        if keystore is not None and await keystore.get(self.address) is not None:
            await keystore.delete(self.address)
        await self.disconnect()

    async def _read(self, handle: int) -> bytearray:
        try:
            return bytearray(await self._require_peer().read_value(handle))
        except (ATT_Error, BaseBumbleError) as exc:
            raise _bleak_error(exc, f"read of handle {handle}") from exc

    async def _write(self, handle: int, data: SizedBuffer, response: bool) -> None:
        try:
            await self._require_peer().write_value(handle, bytes(data),
                                                   with_response=response)
        except (ATT_Error, BaseBumbleError) as exc:
            raise _bleak_error(exc, f"write of handle {handle}") from exc

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        return await self._read(characteristic.handle)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        return await self._read(descriptor.handle)

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic,
                              data: SizedBuffer, response: bool) -> None:
        await self._write(characteristic.handle, data, response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor,
                                    data: SizedBuffer) -> None:
        await self._write(descriptor.handle, data, True)

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        proxy = self._handles[characteristic.handle]
        subscriber: Callable[[bytes], None] = lambda value: callback(bytearray(value))
        self._subscribers[characteristic.handle] = subscriber
        # Notifications are preferred when a characteristic offers both, as bleak does.
        prefer_notify = "notify" in characteristic.properties
        try:
            await proxy.subscribe(subscriber, prefer_notify=prefer_notify)
        except (ATT_Error, BaseBumbleError) as exc:
            raise _bleak_error(exc, f"subscribe to {characteristic.uuid}") from exc

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy = self._handles[characteristic.handle]
        subscriber = self._subscribers.pop(characteristic.handle, None)
        try:
            await proxy.unsubscribe(subscriber)
        except (ATT_Error, BaseBumbleError) as exc:
            raise _bleak_error(exc, f"unsubscribe from {characteristic.uuid}") from exc
