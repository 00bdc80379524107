"""The bleak backends over the simulated air (simulator/bleak_backend.py, central.py, air.py),
driven only through bleak's public API against a plain Bumble peripheral built here."""
from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, gatt, hci
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from msa.simulator.air import Air, sim_address
from msa.simulator.bleak_backend import BumbleClient, BumbleScanner
from msa.simulator.central import Central

T = TypeVar("T")
BUTTON = "C0:00:00:00:00:01"
HOST = "C0:00:00:00:00:10"
ABSENT = "C0:00:00:00:00:99"
SERVICE = "38cbc706-a3ce-47ca-82bf-a33ed66043c9"
SECRET = "0b6e2ab8-52a1-4e3c-9e4b-6f6a4c1d2e01"   # read, encrypted link only
EVENT = "b182cb72-379c-44cd-b789-24f4d789ed80"    # read + indicate, CCCD write encrypted
STATUS = "ffd7f0a2-0462-4665-b495-7b4d607c3f32"   # notify
CONTROL = "87104502-f92b-45f8-aa1a-923dce815d73"  # write (with and without response)
USER_DESCRIPTION = "00002901-0000-1000-8000-00805f9b34fb"
BATTERY = "0000180f-0000-1000-8000-00805f9b34fb"
DEVICE_INFO = "0000180a-0000-1000-8000-00805f9b34fb"
COMPANY = 0xFFFF
MARK = b"\x4d\x53\x41"
WAIT = 5.0  # seconds any single awaited event may take before the test fails


def run(make: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    async def main() -> T:
        return await asyncio.wait_for(make(), timeout)
    return asyncio.run(main())


async def wait(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, WAIT)


class Refusing(PairingDelegate):
    """A peripheral's answer to every pairing request: no."""

    async def accept(self) -> bool:
        return False


class Peripheral:
    """A Bumble peripheral: an encrypted-read characteristic, an indicating one whose CCCD
    needs encryption, a notifying one, a writable one with a writable descriptor."""

    def __init__(self, air: Air, address: str = BUTTON, *, privacy: bool = False,
                 refuse_pairing: bool = False) -> None:
        ctrl = air.controller("peripheral", address)
        config = DeviceConfiguration()
        config.irk = bytes(range(16))
        config.le_privacy_enabled = privacy
        self.device = Device(name="peripheral", address=sim_address(address), config=config,
                             host=Host(ctrl, AsyncPipeSink(ctrl)))
        self.device.keystore = MemoryKeyStore()
        self.device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=False, bonding=True,
            delegate=Refusing() if refuse_pairing else PairingDelegate(),
            identity_address_type=PairingConfig.AddressType.RANDOM)
        self.pairings = 0
        self.paired = asyncio.Event()
        self.connections: list[Connection] = []
        self.device.on("connection", self._on_connection)
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.read_started = asyncio.Event()
        self.never: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        P, A = gatt.Characteristic.Properties, gatt.Characteristic
        self.secret = gatt.Characteristic(SECRET, P.READ, A.READ_REQUIRES_ENCRYPTION, b"s3cr3t")
        self.event: gatt.Characteristic[bytes] = gatt.Characteristic(
            EVENT, P.READ | P.INDICATE, A.READABLE, b"ev")
        server = self.device.gatt_server
        self.event.descriptors = [gatt.Descriptor(
            gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
            gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE
            | gatt.Descriptor.WRITE_REQUIRES_ENCRYPTION,
            att.AttributeValueV2(read=lambda b: server.read_cccd(b, self.event),
                                 write=lambda b, v: server.write_cccd(b, self.event, v)))]
        self.status = gatt.Characteristic(STATUS, P.NOTIFY | P.READ, A.READABLE, b"")
        self.description = bytearray(b"control")
        self.control = gatt.Characteristic(
            CONTROL, P.WRITE | P.WRITE_WITHOUT_RESPONSE | P.READ, A.READABLE | A.WRITEABLE,
            gatt.CharacteristicValue(read=self._read_control,
                                     write=lambda _c, v: self.written.put_nowait(bytes(v))),
            descriptors=[gatt.Descriptor(
                USER_DESCRIPTION, gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE,
                gatt.CharacteristicValue(read=lambda _c: bytes(self.description),
                                         write=self._describe))])
        self.device.add_service(gatt.Service(
            SERVICE, [self.secret, self.event, self.status, self.control]))

    async def _read_control(self, _connection: Any) -> bytes:
        # Never answers, so a test can lose the link while a read is in flight.
        self.read_started.set()
        return await self.never

    def _describe(self, _connection: Any, value: bytes) -> None:
        self.description[:] = value

    def _on_connection(self, connection: Connection) -> None:
        self.connections.append(connection)
        connection.on("pairing", lambda _keys: self._paired())

    def _paired(self) -> None:
        self.pairings += 1
        self.paired.set()

    async def start(self) -> Peripheral:
        await self.device.power_on()
        await self.advertise()
        return self

    async def advertise(self) -> None:
        self.device.advertising_data = bytes(
            [2, 0x01, 0x06, 4, 0x09, *b"btn", 3, 0x03, 0x0F, 0x18,
             2 + len(MARK) + 1, 0xFF, COMPANY & 0xFF, COMPANY >> 8, *MARK])
        await self.device.start_advertising(advertising_interval_min=20,
                                            advertising_interval_max=20, auto_restart=True)

    async def rotate_rpa(self) -> hci.Address:
        """A new resolvable private address, set the way the notes say works (update_rpa()
        breaks the link): by HCI, while not advertising."""
        await self.device.stop_advertising()
        rpa = hci.Address.generate_private_address(self.device.irk)
        await self.device.send_sync_command(hci.HCI_LE_Set_Random_Address_Command(
            random_address=rpa))
        self.device.random_address = rpa
        await self.advertise()
        return rpa

    async def notify(self, value: bytes) -> None:
        await self.device.notify_subscribers(self.status, value)

    async def indicate(self, value: bytes) -> None:
        """Returns once the central has confirmed the indication."""
        await self.device.indicate_subscribers(self.event, value)


async def up(air: Air, keys: Path | None = None) -> tuple[Peripheral, Central]:
    peripheral = await Peripheral(air).start()
    central = Central(air, HOST, keys)
    await central.start()
    return peripheral, central


def is_mark(_device: BLEDevice, data: AdvertisementData) -> bool:
    return data.manufacturer_data.get(COMPANY) == MARK


class Inbox:
    """Values a notification callback received, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def __call__(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.queue.put_nowait((asyncio.get_running_loop().time(), bytes(data)))

    async def next(self) -> tuple[float, bytes]:
        return await wait(self.queue.get())


def test_scanner_finds_the_peripheral_by_manufacturer_data_and_address() -> None:
    async def main() -> None:
        air = Air()
        await Peripheral(air).start()
        device = await BleakScanner.find_device_by_filter(is_mark, timeout=WAIT,
                                                          backend=BumbleScanner, air=air)
        assert device is not None and device.address == BUTTON and device.name == "btn"
        found = await BleakScanner.find_device_by_address(BUTTON.lower(), timeout=WAIT,
                                                          backend=BumbleScanner, air=air)
        assert found is not None and found.address == BUTTON
        # Service filters take 128-bit UUIDs, as with bleak's own backends.
        heard: asyncio.Queue[AdvertisementData] = asyncio.Queue()
        async with BleakScanner(lambda _d, ad: heard.put_nowait(ad), [BATTERY],
                                backend=BumbleScanner, air=air):
            data = await wait(heard.get())
        assert data.local_name == "btn" and data.rssi == -50
        assert data.service_uuids == [BATTERY]
        assert data.manufacturer_data == {COMPANY: MARK}
        assert await BleakScanner.find_device_by_filter(
            is_mark, timeout=0.2, service_uuids=[DEVICE_INFO], backend=BumbleScanner,
            air=air) is None
        # discover() listens for its whole timeout by design: ten advertising intervals.
        seen = await BleakScanner.discover(timeout=0.2, return_adv=True,
                                           backend=BumbleScanner, air=air)
        assert set(seen) == {BUTTON} and seen[BUTTON][1].manufacturer_data[COMPANY] == MARK
    run(main)


def test_connect_pair_read_write_and_subscribe() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        device = await BleakScanner.find_device_by_filter(is_mark, timeout=WAIT,
                                                          backend=BumbleScanner, central=central)
        assert device is not None
        async with BleakClient(device, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            assert client.is_connected and client.mtu_size == 247
            assert {c.uuid for c in client.services.characteristics.values()} >= {
                SECRET, EVENT, STATUS, CONTROL}
            assert client.services.get_characteristic(EVENT).properties == ["read", "indicate"]
            # Unencrypted: the protected read and the protected subscription are refused.
            with pytest.raises(BleakGATTProtocolError, match="Insufficient Encryption") as err:
                await client.read_gatt_char(SECRET)
            assert err.value.code == 0x0F
            events = Inbox()
            with pytest.raises(BleakGATTProtocolError, match="Insufficient Encryption"):
                await client.start_notify(EVENT, events)
            await client.pair()
            assert peripheral.pairings == 1
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
            await client.write_gatt_char(CONTROL, b"\x01\x02", response=True)
            assert await peripheral.written.get() == b"\x01\x02"  # written before the reply
            await client.write_gatt_char(CONTROL, b"\x03", response=False)
            assert await wait(peripheral.written.get()) == b"\x03"
            description = client.services.get_characteristic(CONTROL).get_descriptor(
                USER_DESCRIPTION)
            assert description is not None
            assert await client.read_gatt_descriptor(description.handle) == b"control"
            await client.write_gatt_descriptor(description.handle, b"ctl")
            assert await client.read_gatt_descriptor(description.handle) == b"ctl"
            statuses = Inbox()
            await client.start_notify(STATUS, statuses)
            await client.start_notify(EVENT, events)  # indicate-only: subscribes to indications
            await peripheral.notify(b"n1")
            assert (await statuses.next())[1] == b"n1"
            await wait(peripheral.indicate(b"i1"))  # returns on the central's confirmation
            assert (await events.next())[1] == b"i1"
            await client.stop_notify(STATUS)
            bearer = peripheral.connections[-1]
            assert peripheral.device.gatt_server.read_cccd(bearer, peripheral.status) == b"\0\0"
            assert peripheral.device.gatt_server.read_cccd(bearer, peripheral.event) == b"\2\0"
        assert not client.is_connected
    run(main)


def test_link_loss_reconnect_and_resubscribe() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        dropped = asyncio.Event()
        client = BleakClient(BUTTON, lambda _c: dropped.set(), backend=BumbleClient,
                             central=central, timeout=WAIT, pair=True)
        await client.connect()
        assert peripheral.pairings == 1
        statuses = Inbox()
        await client.start_notify(STATUS, statuses)
        assert await air.drop_link(BUTTON, HOST) == 1
        await wait(dropped.wait())
        assert not client.is_connected and not peripheral.device.connections
        # A GATT call on the dropped link fails as bleak would, not with a Bumble error.
        with pytest.raises(BleakError):
            await client.read_gatt_char(SECRET)
        await client.connect()  # re-encrypts with the bond: no new pairing
        assert peripheral.pairings == 1 and peripheral.connections[-1].is_encrypted
        assert await client.read_gatt_char(SECRET) == b"s3cr3t"
        await client.start_notify(STATUS, statuses)
        await peripheral.notify(b"again")
        assert (await statuses.next())[1] == b"again"
        dropped.clear()
        await client.disconnect()  # a solicited disconnect calls no callback
        assert not dropped.is_set() and not client.is_connected
    run(main)


def test_link_lost_during_a_read_fails_it_with_a_bleak_error() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            read = asyncio.ensure_future(client.read_gatt_char(CONTROL))
            await wait(peripheral.read_started.wait())
            await air.drop_all(HOST)
            with pytest.raises(BleakError, match="link was lost"):
                await wait(read)
    run(main)


def test_bonds_survive_a_host_restart(tmp_path: Path) -> None:
    async def main() -> None:
        air = Air()
        peripheral, first = await up(air, tmp_path)
        async with BleakClient(BUTTON, backend=BumbleClient, central=first, pair=True,
                               timeout=WAIT) as client:
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
        await first.close()  # the host process ends
        bonds = json.loads((tmp_path / "bonds.json").read_text())
        assert BUTTON in bonds[HOST] and "ltk" in bonds[HOST][BUTTON]
        second = Central(air, HOST, tmp_path)
        async with BleakClient(BUTTON, backend=BumbleClient, central=second,
                               timeout=WAIT) as client:
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
        assert peripheral.pairings == 1
    run(main)


def test_resolves_the_private_address_of_a_bonded_peer() -> None:
    async def main() -> None:
        air = Air()
        peripheral = await Peripheral(air, privacy=True).start()
        rpa = peripheral.device.random_address
        assert rpa.is_resolvable
        central = Central(air, HOST, None)
        device = await BleakScanner.find_device_by_filter(is_mark, timeout=WAIT,
                                                          backend=BumbleScanner, central=central)
        assert device is not None and device.address == rpa.to_string(False)  # not bonded yet
        async with BleakClient(device, backend=BumbleClient, central=central, pair=True,
                               timeout=WAIT) as client:
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
        new_rpa = await peripheral.rotate_rpa()
        assert new_rpa != rpa
        device = await BleakScanner.find_device_by_filter(is_mark, timeout=WAIT,
                                                          backend=BumbleScanner, central=central)
        assert device is not None and device.address == BUTTON  # resolved to the identity
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
            assert peripheral.connections[-1].self_address == new_rpa
        assert peripheral.pairings == 1
    run(main)


def test_delay_injection_delays_notifications_in_order() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            statuses = Inbox()
            await client.start_notify(STATUS, statuses)
            loop = asyncio.get_running_loop()
            latencies = []
            for i in range(200):
                sent = loop.time()
                await peripheral.notify(i.to_bytes(2, "big"))
                arrived, value = await statuses.next()
                assert value == i.to_bytes(2, "big")
                latencies.append(arrived - sent)
            baseline = statistics.median(latencies)
            print(f"notify -> callback median {baseline * 1000:.3f} ms")
            air.set_delay(40)
            sent = loop.time()
            for i in range(20):
                await peripheral.notify(bytes([i]))
            received = [await statuses.next() for _ in range(20)]
            assert [value for _, value in received] == [bytes([i]) for i in range(20)]
            assert received[0][0] - sent >= 0.040 > baseline
            air.set_delay(0)
    run(main)


def test_loss_injection_loses_notifications() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            statuses = Inbox()
            await client.start_notify(STATUS, statuses)
            air.set_loss(0.5, seed=7)
            for i in range(100):
                await peripheral.notify(bytes([i]))
            lost = air.lost
            air.set_loss(0, seed=0)
            await peripheral.notify(b"end")  # delivery is ordered: all else is in by then
            got = []
            while (value := (await statuses.next())[1]) != b"end":
                got.append(value)
            assert 0 < lost < 100 and len(got) == 100 - lost
            assert got == sorted(got)
    run(main)


def test_connect_to_an_absent_address_times_out_cleanly() -> None:
    async def main() -> None:
        air = Air()
        _peripheral, central = await up(air)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await BleakClient(ABSENT, backend=BumbleClient, central=central,
                              timeout=0.3).connect()
        assert 0.3 <= loop.time() - started < 2.0  # generous: CI machines are shared
        assert air.find(HOST).pending_le_connection is None
        # The absent device turns up: with the initiator still armed it would now be
        # connected (half-open, since nobody on our side owns that connection).
        late = await Peripheral(air, ABSENT).start()
        heard: asyncio.Queue[BLEDevice] = asyncio.Queue()
        async with BleakScanner(lambda d, _ad: heard.put_nowait(d), backend=BumbleScanner,
                                central=central):
            for _ in range(3):
                while (await wait(heard.get())).address != ABSENT:
                    pass
        assert not late.device.connections and not central.device.connections
        assert not air.find(ABSENT).le_connections
        # And a connection to it now works.
        async with BleakClient(ABSENT, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            assert client.is_connected
    run(main)


def test_backends_need_an_air_or_a_central() -> None:
    async def main() -> None:
        with pytest.raises(BleakError, match="air="):
            BleakClient(BUTTON, backend=BumbleClient)
        air = Air()
        await Peripheral(air).start()
        # With only air=, scanner and client share the air's default central.
        device = await BleakScanner.find_device_by_address(BUTTON, timeout=WAIT,
                                                           backend=BumbleScanner, air=air)
        assert device is not None
        async with BleakClient(device, backend=BumbleClient, air=air, timeout=WAIT) as client:
            assert client.is_connected
            assert Central.default(air).device.connections
    run(main)


def test_bond_lost_by_the_peripheral_then_unpair_and_pair_again() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        client = BleakClient(BUTTON, backend=BumbleClient, central=central, pair=True,
                             timeout=WAIT)
        await client.connect()
        await client.disconnect()
        peripheral.device.keystore = MemoryKeyStore()  # a factory reset of the button
        with pytest.raises(BleakError, match="0x06"):  # PIN or Key Missing
            await client.connect()
        assert not client.is_connected and not central.device.connections
        await client.unpair()
        await client.connect()  # pair=True: a new bond
        assert peripheral.pairings == 2
        assert await client.read_gatt_char(SECRET) == b"s3cr3t"
        await client.disconnect()
    run(main)


def test_pairing_refused_surfaces_as_bleak_error() -> None:
    async def main() -> None:
        air = Air()
        await Peripheral(air, refuse_pairing=True).start()
        central = Central(air, HOST, None)
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            with pytest.raises(BleakError, match="PAIRING_NOT_SUPPORTED.*0x05"):
                await client.pair()
            with pytest.raises(BleakGATTProtocolError, match="Insufficient Encryption"):
                await client.read_gatt_char(SECRET)
    run(main)


def test_security_request_from_the_peripheral_is_met() -> None:
    async def main() -> None:
        air = Air()
        peripheral, central = await up(air)
        async with BleakClient(BUTTON, backend=BumbleClient, central=central,
                               timeout=WAIT) as client:
            assert peripheral.pairings == 0
            peripheral.connections[-1].request_pairing()
            await wait(peripheral.paired.wait())
            assert await client.read_gatt_char(SECRET) == b"s3cr3t"
    run(main)


def test_one_central_connects_to_two_peripherals_at_once() -> None:
    async def main() -> None:
        air = Air()
        first, central = await up(air)
        second = await Peripheral(air, "C0:00:00:00:00:02").start()
        clients = [BleakClient(a, backend=BumbleClient, central=central, timeout=WAIT)
                   for a in (BUTTON, "C0:00:00:00:00:02")]
        # One initiator per controller: the central queues the second connection.
        await wait(asyncio.gather(*(c.connect() for c in clients)))
        assert all(c.is_connected for c in clients)
        assert len(first.device.connections) == len(second.device.connections) == 1
        assert await air.drop_link(HOST, "C0:00:00:00:00:02") == 1
        assert clients[0].is_connected and not clients[1].is_connected
        with pytest.raises(TypeError, match="centrall"):
            BleakClient(BUTTON, backend=BumbleClient, centrall=central)
    run(main)
