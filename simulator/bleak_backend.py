"""bleak backends over the simulated air, so host code that uses only bleak's public API runs
over a real Bumble stack with emulated controllers, in the same event loop:

    BleakScanner(callback, backend=BumbleScanner, air=air)       # or central=Central(...)
    BleakClient(device, backend=BumbleClient, air=air)

`air=` uses the air's default central (bonds in memory); `central=` a given one (bonds in
its key-store folder). Addresses are bleak-style strings, "C0:00:00:00:00:01". A string
given to BumbleClient names a random address, as every simulated device has; a BLEDevice from
BumbleScanner carries the exact address and type in its `details` (a `Sighting`), and names a
bonded private peer by its identity address, as desktop stacks do after resolving its RPA.
Bumble errors surface as bleak's: an ATT error response as BleakGATTProtocolError (e.g.
"Insufficient Encryption" for 0x0F), SMP and HCI failures as BleakError with the code, a link
lost during an operation as BleakError; connect() runs out of time with TimeoutError.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, core, gatt
from bumble.core import AdvertisingData
from bumble.device import Connection
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from .air import Air, sim_address
from .central import Central, Sighting
from .errors import CentralError

log = logging.getLogger("msa.simulator.bleak_backend")

MTU = 247  # asked for on every connection; the button needs at least 37
DISCONNECT_TIMEOUT_S = 5.0
_T = AdvertisingData.Type


# What bleak itself passes to every backend (per-platform options); anything else is a typo.
_PLATFORM_ARGS = frozenset({"bluez", "winrt", "cb", "adapter"})


def _central(air: Air | None, central: Central | None, extra: dict[str, Any]) -> Central:
    unexpected = sorted(set(extra) - _PLATFORM_ARGS)
    if unexpected:
        raise TypeError(f"unexpected keyword arguments: {', '.join(unexpected)}")
    if central is not None:
        return central
    if air is not None:
        return Central.default(air)
    raise BleakError("the Bumble backends need air=Air(...) or central=Central(...)")


def _uuid(value: core.UUID) -> str:
    """bleak's spelling of a UUID: 128-bit, lower case."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def _uuids(body: bytes, size: int) -> list[str]:
    return [_uuid(core.UUID.from_bytes(body[i:i + size]))
            for i in range(0, len(body) - size + 1, size)]


def advertisement_data(sighting: Sighting) -> AdvertisementData:
    """bleak's view of one advert."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    services: list[str] = []
    tx_power: int | None = None
    sizes = {_T.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
             _T.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
             _T.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
             _T.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
             _T.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
             _T.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16}
    data_sizes = {_T.SERVICE_DATA_16_BIT_UUID: 2, _T.SERVICE_DATA_32_BIT_UUID: 4,
                  _T.SERVICE_DATA_128_BIT_UUID: 16}
    for kind, body in sighting.advertisement.data.ad_structures:
        if kind == _T.COMPLETE_LOCAL_NAME or (kind == _T.SHORTENED_LOCAL_NAME and name is None):
            name = body.decode("utf-8", "replace")
        elif kind == _T.MANUFACTURER_SPECIFIC_DATA and len(body) >= 2:
            manufacturer[int.from_bytes(body[:2], "little")] = bytes(body[2:])
        elif kind in sizes:
            services += _uuids(body, sizes[kind])
        elif kind in data_sizes and len(body) >= data_sizes[kind]:
            size = data_sizes[kind]
            service_data[_uuids(body[:size], size)[0]] = bytes(body[size:])
        elif kind == _T.TX_POWER_LEVEL and body:
            tx_power = int.from_bytes(body[:1], "little", signed=True)
    return AdvertisementData(local_name=name, manufacturer_data=manufacturer,
                             service_data=service_data, service_uuids=services,
                             tx_power=tx_power, rssi=sighting.advertisement.rssi,
                             platform_data=(sighting,))


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: the adverts a simulated central hears."""

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None, scanning_mode: str = "active", *,
                 air: Air | None = None, central: Central | None = None,
                 **platform_args: Any) -> None:
        # scanning_mode and bleak's per-platform args (bluez=, cb=) change nothing here:
        # the emulator's scan response only repeats the advert.
        super().__init__(detection_callback, service_uuids)
        self._central = _central(air, central, platform_args)

    async def start(self) -> None:
        self.seen_devices = {}
        await self._central.listen(self, self._on_sighting)

    async def stop(self) -> None:
        await self._central.unlisten(self)

    def _on_sighting(self, sighting: Sighting) -> None:
        data = advertisement_data(sighting)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(sighting.name, sighting.name, data.local_name,
                                              sighting, data)
        self.call_detection_callbacks(device, data)


@contextlib.contextmanager
def _bleak_errors(what: str) -> Iterator[None]:
    """Turns what Bumble raises inside the block into bleak's exceptions."""
    try:
        yield
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # a real cancellation (or a timeout) of our caller
        # Bumble cancels the futures of requests in flight when the link drops.
        raise BleakError(f"{what}: the link was lost") from exc
    except att.ATT_Error as exc:
        error = BleakGATTProtocolError(exc.error_code)
        error.add_note(f"{what}: ATT error 0x{exc.error_code:02X} {exc.error_name}")
        raise error from exc
    except CentralError as exc:
        raise BleakError(f"{what}: {exc}") from exc
    except core.BaseBumbleError as exc:  # GATT timeouts, invalid state and the like
        raise BleakError(f"{what}: {type(exc).__name__} {exc}") from exc


class BumbleClient(BaseBleakClient):
    """bleak client backend: one GATT client connection from a simulated central."""

    def __init__(self, address_or_ble_device: BLEDevice | str,
                 services: set[str] | None = None, *,
                 disconnected_callback: Callable[[], None] | None, timeout: float,
                 air: Air | None = None, central: Central | None = None,
                 **platform_args: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        self._central = _central(air, central, platform_args)
        self._name: str | None = None
        self._target = sim_address(self.address)
        if isinstance(address_or_ble_device, BLEDevice):
            self._name = address_or_ble_device.name
            details = address_or_ble_device.details
            if isinstance(details, Sighting):
                self._target = details.identity or details.address
        self._wanted = services
        self._connection: Connection | None = None
        self._ready = False  # set once connect() returns: later drops are unsolicited
        self._closing = False
        self._attributes: dict[int, CharacteristicProxy[bytes] | DescriptorProxy] = {}
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _link(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connects, re-encrypts with a stored bond (or pairs, if `pair`), exchanges the MTU
        and discovers services, all within the timeout."""
        if self._connection is not None:
            raise BleakError(f"already connected to {self.address}")
        timeout = float(kwargs.get("timeout", self._timeout))
        async with asyncio.timeout(timeout):
            with _bleak_errors(f"connection to {self.address}"):
                connection = await self._central.connect(self._target, timeout)
            self._connection, self._ready, self._closing = connection, False, False
            connection.on(Connection.EVENT_DISCONNECTION,
                          lambda reason: self._on_disconnection(connection, reason))
            try:
                with _bleak_errors(f"connection set-up with {self.address}"):
                    # Encrypt first: a bonded host's first GATT request must not meet
                    # Insufficient Encryption.
                    await self._central.secure(connection, pair=pair)
                    await connection.gatt_client.request_mtu(MTU)
                    await self._discover(connection)
            except BaseException:
                await asyncio.shield(self.disconnect())
                raise
        self._ready = True

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self._connection is not connection:
            return  # a link we already gave up on
        solicited = self._closing or not self._ready
        self._connection, self._ready = None, False
        self._attributes.clear()
        self._subscribers.clear()  # subscriptions end with the link; the host re-subscribes
        log.debug("%s disconnected, reason 0x%02X", self.address, reason)
        if not solicited and self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:  # noqa: BLE001 - the stack's event dispatch must go on
                log.exception("disconnected_callback of %s failed", self.address)

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        with contextlib.suppress(core.BaseBumbleError, TimeoutError):
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await connection.disconnect()
        if self._connection is connection:  # no Disconnection Complete came: forget it
            self._on_disconnection(connection, 0x16)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pairs (LE Secure Connections, bonding); with a bond already held, re-encrypts."""
        connection = self._link()
        with _bleak_errors(f"pairing with {self.address}"):
            await self._central.secure(connection, pair=True)

    async def unpair(self) -> None:
        """Forgets the bond and disconnects."""
        connection = self._connection
        identity = connection.peer_address if connection is not None else self._target
        await self.disconnect()
        await self._central.forget(identity)

    async def _discover(self, connection: Connection) -> None:
        client = connection.gatt_client
        collection = BleakGATTServiceCollection()
        self._attributes.clear()
        for proxy in await client.discover_services():
            service = BleakGATTService(proxy, proxy.handle, _uuid(proxy.uuid))
            if self._wanted and service.uuid not in self._wanted:
                continue
            collection.add_service(service)
            for char in await client.discover_characteristics([], proxy):
                props: list[CharacteristicPropertyName] = [
                    name for bit, name in CHARACTERISTIC_PROPERTIES.items()
                    if int(char.properties) & bit]
                bleak_char = BleakGATTCharacteristic(
                    char, char.handle, _uuid(char.uuid), props,
                    lambda: self.mtu_size - 3, service)
                collection.add_characteristic(bleak_char)
                self._attributes[char.handle] = char
                for desc in await client.discover_descriptors(char):
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, _uuid(desc.type), bleak_char))
                    self._attributes[desc.handle] = desc
        self.services = collection

    async def _read(self, handle: int, use_cached: bool) -> bytearray:
        client = self._link().gatt_client
        if use_cached and handle in client.cached_values:
            return bytearray(client.cached_values[handle][1])
        with _bleak_errors(f"read of handle {handle} on {self.address}"):
            return bytearray(await client.read_value(handle))

    async def _write(self, handle: int, data: SizedBuffer, response: bool) -> None:
        client = self._link().gatt_client
        with _bleak_errors(f"write of handle {handle} on {self.address}"):
            await client.write_value(handle, bytes(data), with_response=response)

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        return await self._read(characteristic.handle, use_cached)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        return await self._read(descriptor.handle, use_cached)

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic,
                              data: SizedBuffer, response: bool) -> None:
        await self._write(characteristic.handle, data, response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor,
                                    data: SizedBuffer) -> None:
        await self._write(descriptor.handle, data, True)

    def _characteristic(
            self, characteristic: BleakGATTCharacteristic) -> CharacteristicProxy[bytes]:
        self._link()
        proxy = self._attributes.get(characteristic.handle)
        if not isinstance(proxy, CharacteristicProxy):
            raise BleakError(f"characteristic {characteristic.uuid} is not on this connection")
        return proxy

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        """Subscribes: notifications when the characteristic offers them (bleak's rule),
        indications otherwise."""
        proxy = self._characteristic(characteristic)
        if proxy.get_descriptor(gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR) is None:
            # Bumble would only log a warning and leave the caller waiting for nothing.
            raise BleakError(f"characteristic {characteristic.uuid} has no CCCD")
        if characteristic.handle in self._subscribers:
            raise BleakError(f"notifications of {characteristic.uuid} already started")

        def subscriber(value: bytes) -> None:
            try:
                callback(bytearray(value))
            except Exception:  # noqa: BLE001 - must not break the stack's PDU dispatch
                log.exception("notification callback for %s failed", characteristic.uuid)

        self._subscribers[characteristic.handle] = subscriber
        try:
            with _bleak_errors(f"subscription to {characteristic.uuid}"):
                await self._link().gatt_client.subscribe(proxy, subscriber, prefer_notify=True)
        except BaseException:
            self._subscribers.pop(characteristic.handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy = self._characteristic(characteristic)
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is None:
            return
        with _bleak_errors(f"unsubscription from {characteristic.uuid}"):
            await self._link().gatt_client.unsubscribe(proxy, subscriber)
