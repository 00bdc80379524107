"""The bleak backend over the simulated air, driven only through bleak's public API against a
plain Bumble peripheral (no firmware here)."""
from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bumble import gatt
from bumble.device import Device
from bumble.keys import JsonKeyStore, MemoryKeyStore

from msa.simulator.bleak_sim import BumbleClient, BumbleScanner, Central
from msa.simulator.radio import Air

T = TypeVar("T")
BUTTON = "C0:00:00:00:00:01"
HOST = "C0:00:00:00:00:10"
SECRET = "38cbc706-a3ce-47ca-82bf-a33ed66043c9"
IND = "b182cb72-379c-44cd-b789-24f4d789ed80"
NTF = "ffd7f0a2-0462-4665-b495-7b4d607c3f32"
WR = "87104502-f92b-45f8-aa1a-923dce815d73"
MARK = b"\xaa\xbb"


def run(make: Callable[[], Awaitable[T]], timeout: float = 20) -> T:
    async def main() -> T:
        return await asyncio.wait_for(make(), timeout)
    return asyncio.run(main())


class Peripheral:
    """A Bumble peripheral: an encrypted-read characteristic, an indicating one, a writable."""

    def __init__(self, air: Air) -> None:
        self.device: Device = air.device("button", BUTTON, MemoryKeyStore())
        self.secret = gatt.Characteristic(SECRET, gatt.Characteristic.Properties.READ,
                                          gatt.Characteristic.READ_REQUIRES_ENCRYPTION, b"s3")
        self.ind = gatt.Characteristic(IND, gatt.Characteristic.Properties.INDICATE,
                                       gatt.Characteristic.READABLE, b"")
        self.ntf = gatt.Characteristic(NTF, gatt.Characteristic.Properties.NOTIFY,
                                       gatt.Characteristic.READABLE, b"")
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.wr = gatt.Characteristic(
            WR, gatt.Characteristic.Properties.WRITE, gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=lambda _c, v: self.written.put_nowait(bytes(v))))
        self.device.add_service(gatt.Service("0000aaaa-0000-1000-8000-00805f9b34fb",
                                             [self.secret, self.ind, self.ntf, self.wr]))

    async def start(self) -> None:
        await self.device.power_on()
        self.device.advertising_data = bytes([2, 1, 6, 5, 0xFF, 0xFF, 0xFF, *MARK])
        await self.device.start_advertising(advertising_interval_min=20,
                                            advertising_interval_max=20, auto_restart=True)

    def connection(self) -> Any:
        return next(iter(self.device.connections.values()))


async def world(tmp: Path | None = None) -> tuple[Air, Peripheral, Central]:
    air = Air()
    per = Peripheral(air)
    await per.start()
    store = JsonKeyStore("host", str(tmp / "bonds.json")) if tmp else MemoryKeyStore()
    central = Central(air, HOST, store)
    await central.start()
    return air, per, central


async def find(central: Central) -> Any:
    device = await BleakScanner.find_device_by_filter(
        lambda d, ad: ad.manufacturer_data.get(0xFFFF) == MARK, timeout=5,
        backend=BumbleScanner, central=central)
    assert device is not None
    return device


def test_scan_finds_the_peripheral_by_manufacturer_data() -> None:
    async def go() -> str:
        _, _, central = await world()
        return str((await find(central)).address)
    assert run(go) == BUTTON


def test_encrypted_read_fails_until_paired_then_reads() -> None:
    async def go() -> tuple[str, bytes]:
        _, _, central = await world()
        async with BleakClient(await find(central), backend=BumbleClient,
                               central=central) as client:
            with pytest.raises(BleakError) as err:
                await client.read_gatt_char(SECRET)
            await client.pair()
            return str(err.value), bytes(await client.read_gatt_char(SECRET))
    error, value = run(go)
    assert "0x0F" in error and "INSUFFICIENT_ENCRYPTION" in error and value == b"s3"


def test_write_indicate_and_mtu() -> None:
    async def go() -> tuple[bytes, bytes, int]:
        _, per, central = await world()
        got: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(await find(central), backend=BumbleClient,
                               central=central) as client:
            await client.start_notify(IND, lambda _c, data: got.put_nowait(bytes(data)))
            await client.write_gatt_char(WR, b"cmd", response=True)
            written = await per.written.get()
            await per.device.indicate_subscriber(per.connection(), per.ind, b"frame")
            return written, await got.get(), client.mtu_size
    written, value, mtu = run(go)
    assert written == b"cmd" and value == b"frame" and mtu >= 29


def test_link_drop_calls_back_and_bond_is_reused_by_a_restarted_host(tmp_path: Path) -> None:
    async def go() -> tuple[bool, bytes]:
        air, _, central = await world(tmp_path)
        dropped = asyncio.Event()
        client = BleakClient(await find(central), lambda _c: dropped.set(),
                             backend=BumbleClient, central=central)
        await client.connect()
        await client.pair()
        air.drop_links(HOST)
        await asyncio.wait_for(dropped.wait(), 5)
        # A new host process: a new Central on the same bond file, no new pairing needed.
        air.remove(HOST)
        central2 = Central(air, HOST, JsonKeyStore("host", str(tmp_path / "bonds.json")))
        await central2.start()
        bonded = await central2.bonded(BUTTON)
        async with BleakClient(await find(central2), backend=BumbleClient,
                               central=central2) as again:
            await again.pair()  # re-encrypts from the stored bond
            return bonded, bytes(await again.read_gatt_char(SECRET))
    bonded, value = run(go)
    assert bonded and value == b"s3"


def test_connect_to_an_absent_device_times_out_cleanly() -> None:
    async def go() -> bool:
        _, _, central = await world()
        client = BleakClient("C0:00:00:00:00:99", backend=BumbleClient, central=central,
                             timeout=0.5)
        with pytest.raises(BleakError):
            await client.connect()
        return bool(central.device.is_le_connecting) or bool(central.device.connections)
    assert run(go) is False


def test_delay_and_loss_injection() -> None:
    async def go() -> tuple[float, float, bool]:
        air, per, central = await world()
        got: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(await find(central), backend=BumbleClient,
                               central=central) as client:
            await client.start_notify(NTF, lambda _c, data: got.put_nowait(bytes(data)))

            async def one() -> float:
                t = time.perf_counter()
                await per.device.notify_subscriber(per.connection(), per.ntf, b"n")
                await got.get()
                return (time.perf_counter() - t) * 1000
            base = statistics.median([await one() for _ in range(20)])
            air.set_delay(30)
            delayed = await one()
            air.set_delay(0)
            air.set_loss(1.0)
            await per.device.notify_subscriber(per.connection(), per.ntf, b"lost")
            try:
                await asyncio.wait_for(got.get(), 0.3)
                lost = False
            except asyncio.TimeoutError:
                lost = True
            air.set_loss(0.0)
            return base, delayed, lost
    base, delayed, lost = run(go)
    assert base < 20 and delayed >= 30 and lost
