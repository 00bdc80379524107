"""The technicians' BLE reach to one button, through bleak's public API only: which button the
host's configuration names, finding it by its address within a time limit, a connection with
or without pairing, proving the host's key, and reading Battery and Device Information.
Every bleak or OS error is turned into a ToolError here, where it enters.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (BleakCharacteristicNotFoundError, BleakError, BleakGATTProtocolError,
                       BleakGATTProtocolErrorCode)

from msa.host import config as host_config
from msa.host.config import ButtonConfig, HostConfig
from msa.host.link import BATTERY_LEVEL_CHAR, Backends
from msa.wire.protocol import NONCE_LEN, ButtonKeys, Op, encode_command

from .errors import ButtonOutOfRange, KeyRejected, LinkFailed, NoAdapter, UnknownHostButton

# The button renews its challenge within its next loop (milliseconds); an unbonded link
# that proves nothing is dropped 3 s after connecting, so decide well before that.
KEY_PROOF_S = 1.5
POLL_S = 0.05
# An unbonded host's read of an encrypted characteristic is refused with one of these.
_NEEDS_BOND = frozenset({BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
                         BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION})
_LINK_ERRORS = (BleakError, OSError, TimeoutError)
T = TypeVar("T")


@dataclass(frozen=True)
class HostButton:
    """One button as the host's configuration names it, with where its key file lives."""

    config: HostConfig
    button: ButtonConfig
    key_file: Path

    @property
    def button_id(self) -> int:
        return self.button.button_id

    @property
    def address(self) -> str:
        return self.button.address

    @property
    def keys(self) -> ButtonKeys:
        return ButtonKeys.from_master(self.button.key)


def load_button(config_path: Path, button_id: int | None = None) -> HostButton:
    """The configured button (the first, unless `button_id` picks one); ConfigError if the
    file is wrong."""
    config = host_config.load(config_path)
    ids = [b.button_id for b in config.buttons]
    index = 0 if button_id is None else ids.index(button_id) if button_id in ids else -1
    if index < 0:
        raise UnknownHostButton(str(config_path), button_id or 0, ids)
    # HostConfig keeps the key, not the file's name; retire needs the file, so read it here
    # exactly as config.read_secret resolves it.
    raw = tomllib.loads(config_path.read_text())["button"][index]["key_file"]
    key_file = (config_path.resolve().parent / str(raw)).expanduser()
    return HostButton(config, config.buttons[index], key_file)


async def find(address: str, timeout_s: float, backends: Backends | None) -> BLEDevice:
    """The button's device once an advert from `address` is heard; ButtonOutOfRange if none
    comes within `timeout_s`, NoAdapter if the host cannot scan at all."""
    heard: asyncio.Future[BLEDevice] = asyncio.get_running_loop().create_future()

    def seen(device: BLEDevice, _adv: AdvertisementData) -> None:
        if device.address.upper() == address.upper() and not heard.done():
            heard.set_result(device)

    try:
        scanner = BleakScanner(detection_callback=seen,
                               backend=backends.scanner if backends else None,
                               **(backends.kwargs if backends else {}))
        await scanner.start()
    except (BleakError, OSError) as exc:
        raise NoAdapter(str(exc) or type(exc).__name__) from exc
    try:
        async with asyncio.timeout(timeout_s):
            return await heard
    except TimeoutError:
        raise ButtonOutOfRange(address, timeout_s) from None
    finally:
        with contextlib.suppress(BleakError, OSError):
            await scanner.stop()


class Session:
    """One connection to the button, open inside `connect()`."""

    def __init__(self, button: HostButton, client: BleakClient) -> None:
        self.button = button
        self.client = client
        self._control = button.keys.gatt.control

    async def _step(self, step: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except BleakCharacteristicNotFoundError as exc:
            # The alarm service's UUIDs come from the key: a button that holds another key
            # has none of this key's.
            if str(exc.char_specifier).lower() in astuple(self.button.keys.gatt):
                raise KeyRejected(self.button.button_id, str(self.button.key_file)) from exc
            raise LinkFailed(self.button.address, step, str(exc)) from exc
        except _LINK_ERRORS as exc:
            raise LinkFailed(self.button.address, step, str(exc) or type(exc).__name__) from exc

    async def pair(self) -> None:
        """LE Secure Connections pairing; the bond goes into the host's Bluetooth stack."""
        await self._step("pairing", self.client.pair())

    async def subscribe(self, callback: Callable[[BleakGATTCharacteristic, bytearray], None]
                        ) -> None:
        """Subscribes to the event indications and status notifications, as the host does."""
        uuids = self.button.keys.gatt
        await self._step("subscribing to events", self.client.start_notify(uuids.event, callback))
        await self._step("subscribing to status",
                         self.client.start_notify(uuids.status, callback))

    async def firmware(self) -> str:
        """The firmware version, which the button notifies on its info characteristic to a
        central that proves the key, and to no one else (nothing readable names it)."""
        got: asyncio.Queue[bytes] = asyncio.Queue()
        info = self.button.keys.gatt.info
        await self._step("subscribing to the version",
                         self.client.start_notify(info, lambda _c, d: got.put_nowait(bytes(d))))
        try:
            await self.prove_key()
            raw = await self._step("reading the firmware version",
                                   asyncio.wait_for(got.get(), KEY_PROOF_S))
        finally:
            with contextlib.suppress(*_LINK_ERRORS):
                await self.client.stop_notify(info)
        return raw.decode("utf-8", "replace")

    async def battery(self) -> int | None:
        """Battery %, or None when the button refuses it for want of an encrypted link (this
        host holds no bond with it)."""
        try:
            raw = await self.client.read_gatt_char(BATTERY_LEVEL_CHAR)
        except BleakGATTProtocolError as exc:
            if exc.code in _NEEDS_BOND:
                return None
            raise LinkFailed(self.button.address, "reading the battery", str(exc)) from exc
        except _LINK_ERRORS as exc:
            raise LinkFailed(self.button.address, "reading the battery",
                             str(exc) or type(exc).__name__) from exc
        return raw[0] if raw else None

    async def _nonce(self) -> bytes:
        nonce = bytes(await self._step("reading the challenge",
                                       self.client.read_gatt_char(self._control)))
        if len(nonce) != NONCE_LEN:
            raise LinkFailed(self.button.address, "reading the challenge",
                             f"{len(nonce)} bytes instead of {NONCE_LEN}")
        return nonce

    async def prove_key(self) -> None:
        """Sends TIME tagged with the host's key. The button renews its challenge only after
        a command it accepts and ignores the rest silently, so an unchanged challenge after
        KEY_PROOF_S means it holds another key (KeyRejected)."""
        b = self.button
        nonce = await self._nonce()
        command = encode_command(b.keys, b.button_id, Op.TIME, 0, int(time.time()), nonce)
        await self._step("sending TIME",
                         self.client.write_gatt_char(self._control, command, response=True))
        deadline = time.monotonic() + KEY_PROOF_S
        while True:
            # Until the button's loop runs, the value read back is the command just written.
            now = bytes(await self._step("reading the challenge",
                                         self.client.read_gatt_char(self._control)))
            if len(now) == NONCE_LEN and now != nonce:
                return
            if time.monotonic() >= deadline:
                raise KeyRejected(b.button_id, str(b.key_file))
            await asyncio.sleep(POLL_S)


@contextlib.asynccontextmanager
async def connect(button: HostButton, timeout_s: float, backends: Backends | None
                  ) -> AsyncIterator[Session]:
    """Finds the button within `timeout_s` and connects (a bond the host holds encrypts the
    link); disconnects on leaving."""
    device = await find(button.address, timeout_s, backends)
    client = BleakClient(device, timeout=timeout_s,
                         backend=backends.client if backends else None,
                         **(backends.kwargs if backends else {}))
    try:
        await client.connect()
    except _LINK_ERRORS as exc:
        raise LinkFailed(button.address, "connecting", str(exc) or type(exc).__name__) from exc
    try:
        yield Session(button, client)
    finally:
        with contextlib.suppress(*_LINK_ERRORS):
            await client.disconnect()


async def forget_bond(button: HostButton, backends: Backends | None) -> None:
    """Removes the host's bond with the button from its Bluetooth stack, in range or not."""
    try:
        client = BleakClient(button.address, backend=backends.client if backends else None,
                             **(backends.kwargs if backends else {}))
        await client.unpair()
    except OSError as exc:
        raise NoAdapter(str(exc) or type(exc).__name__) from exc
    except BleakError as exc:
        raise LinkFailed(button.address, "removing the bond", str(exc)) from exc
