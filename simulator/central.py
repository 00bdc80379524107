"""A simulated host radio: a Bumble Device acting as central (scanner and GATT client) on an
`Air`, pairing with LE Secure Connections and bonding into a JSON key store in a folder the
caller gives, so bonds survive a host restart.

Addresses: the central has a random static address and no public one (see air.py), and
files bonds under the peer's identity address. A peer advertising resolvable private
addresses (RPAs) is resolved here, in the host, with the IRKs of the bonds: Bumble's emulated
resolving list does nothing. A sighting of a bonded private peer therefore names its identity
address, and connecting to that identity waits for a fresh RPA of it and connects to that.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bumble import core, hci
from bumble.device import Advertisement, Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import JsonKeyStore, KeyStore, MemoryKeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink, Transport

from .air import Air, sim_address
from .errors import CentralError

log = logging.getLogger("msa.simulator.central")

BONDS_FILE = "bonds.json"
DEFAULT_ADDRESS = "C0:00:00:00:FF:FE"
_DEFAULT_KEY = "msa.simulator.central.default"
ABANDON_S = 3.0  # how long a given-up connection attempt is waited on

SightingCallback = Callable[["Sighting"], None]


def address_text(address: hci.Address) -> str:
    """bleak's spelling of an address: upper case, no type suffix."""
    return address.to_string(with_type_qualifier=False)


@dataclass(frozen=True)
class Sighting:
    """One advert heard: the address on the air, the identity it resolves to (bonded private
    peers only) and Bumble's parsed advertisement."""

    address: hci.Address
    identity: hci.Address | None
    advertisement: Advertisement

    @property
    def name(self) -> str:
        """The address a host knows the peer by: its identity when resolved."""
        return address_text(self.identity or self.address)


class Central:
    """One host's radio on the air. Scanners and clients share it, as apps share an adapter."""

    def __init__(self, air: Air | None, address: str,
                 keys_dir: str | os.PathLike[str] | None, *, name: str = "central",
                 transport: Transport | None = None, irk: bytes | None = None) -> None:
        """On `air` (an emulated controller in this process) or, with `air` None, over
        `transport` to a controller elsewhere (see `over`). `keys_dir` holds the bond store
        (bonds.json); None keeps bonds in memory only."""
        self.air = air
        self.transport = transport
        self.address = address_text(sim_address(address))
        keystore: KeyStore = MemoryKeyStore()
        if keys_dir is not None:
            Path(keys_dir).mkdir(parents=True, exist_ok=True)
            # Namespaced by our address, as Bumble does: a folder may hold several hosts.
            keystore = JsonKeyStore(self.address, str(Path(keys_dir) / BONDS_FILE))
        if air is not None:
            controller = air.controller(name, self.address)
            host = Host(controller, AsyncPipeSink(controller))
        elif transport is not None:
            host = Host(transport.source, transport.sink)
        else:
            raise CentralError("a central needs an air or a transport to a controller")
        config = DeviceConfiguration()
        # Bumble's default IRK is 16 zero bytes, shared by every device that keeps it.
        config.irk = irk if irk is not None else secrets.token_bytes(16)
        self.device = Device(name=name, address=sim_address(self.address), config=config,
                             host=host)
        self.device.keystore = keystore
        self.device.pairing_config_factory = self._pairing_config
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._listeners: dict[object, SightingCallback] = {}
        self._scan_lock = asyncio.Lock()
        self._power_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()  # one initiator per controller, as in hardware
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def over(cls, transport: Transport, address: str,
             keys_dir: str | os.PathLike[str] | None, *, irk: bytes | None = None,
             name: str = "central") -> Central:
        """A central whose controller is reached over an HCI transport (the radio server of
        another process, radio.py); closing the central closes the transport."""
        return cls(None, address, keys_dir, name=name, transport=transport, irk=irk)

    @classmethod
    def default(cls, air: Air) -> Central:
        """The air's default host radio (bonds in memory), for backends given only `air=`."""
        found = air.extras.get(_DEFAULT_KEY)
        if isinstance(found, Central):
            return found
        central = cls(air, DEFAULT_ADDRESS, None, name="default")
        air.extras[_DEFAULT_KEY] = central
        return central

    @staticmethod
    def _pairing_config(_connection: Connection) -> PairingConfig:
        # The button has no display and no keys: Just Works, LE Secure Connections, bonding.
        # The identity address type is stated so both sides file bonds under the random
        # address that the link routes by.
        return PairingConfig(
            sc=True, mitm=False, bonding=True,
            delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
            identity_address_type=PairingConfig.AddressType.RANDOM)

    async def start(self) -> None:
        """Powers the radio on (idempotent); loads the bonds' IRKs for address resolution."""
        async with self._power_lock:  # a scanner and a client may start it at once
            if not self._started:
                await self.device.power_on()
                self._started = True

    async def close(self) -> None:
        """Takes the radio off the air, as when the host process ends: its links drop."""
        for task in list(self._tasks):
            task.cancel()
        if self.air is not None:
            await self.air.remove(self.address)
        if self._started and self.air is not None:
            await self.device.power_off()
        self._started = False
        if self.transport is not None:
            # The radio server takes our controller off the air when the connection ends.
            await self.transport.close()
        elif self.air is not None and self.air.extras.get(_DEFAULT_KEY) is self:
            del self.air.extras[_DEFAULT_KEY]

    # -- scanning ---------------------------------------------------------------------------

    async def listen(self, token: object, callback: SightingCallback) -> None:
        """Calls `callback` for every advert heard until `unlisten(token)`; scans meanwhile."""
        await self.start()
        async with self._scan_lock:
            self._listeners[token] = callback
            if not self.device.is_scanning:
                # Passive: the emulator's scan response only repeats the advert data.
                await self.device.start_scanning(active=False, filter_duplicates=False)

    async def unlisten(self, token: object) -> None:
        """Stops calling the callback of `token`; scanning stops with the last listener."""
        async with self._scan_lock:
            self._listeners.pop(token, None)
            if not self._listeners and self.device.is_scanning and self._started:
                await self.device.stop_scanning()

    def resolve(self, address: hci.Address) -> hci.Address | None:
        """The identity address of a bonded peer that `address` (an RPA) belongs to."""
        resolver = self.device.address_resolver
        if resolver is None or not address.is_resolvable:
            return None
        return resolver.resolve(address)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # The emulator reports each advert again as a "scan response" with the data doubled.
        if advertisement.is_scan_response:
            return
        sighting = Sighting(advertisement.address, self.resolve(advertisement.address),
                            advertisement)
        for callback in list(self._listeners.values()):
            try:
                callback(sighting)
            except Exception:  # noqa: BLE001 - one listener must not starve the others
                log.exception("scan listener failed")

    # -- connections ------------------------------------------------------------------------

    async def connect(self, address: str | hci.Address, timeout: float) -> Connection:
        """A connection to the peer, within `timeout` seconds, or TimeoutError with nothing
        left pending (no half-open link can follow). A bonded private peer named by its
        identity is found by a fresh RPA first."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        target = address if isinstance(address, hci.Address) else sim_address(address)
        async with asyncio.timeout(timeout):
            await self._connect_lock.acquire()
        try:
            keys = await self.bond(target)
            if keys is not None and keys.irk is not None:
                target = await self._fresh_address(target, deadline - loop.time())
            return await self._initiate(target, deadline - loop.time())
        finally:
            self._connect_lock.release()

    async def _fresh_address(self, identity: hci.Address, timeout: float) -> hci.Address:
        heard: asyncio.Future[hci.Address] = asyncio.get_running_loop().create_future()

        def on_sighting(sighting: Sighting) -> None:
            if not heard.done() and identity in (sighting.identity, sighting.address):
                heard.set_result(sighting.address)

        token = object()
        await self.listen(token, on_sighting)
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await heard
        except TimeoutError as exc:
            raise TimeoutError(f"no advert from {address_text(identity)} "
                               f"within {timeout:.3g} s") from exc
        finally:
            await self.unlisten(token)

    async def _initiate(self, target: hci.Address, timeout: float) -> Connection:
        attempt = asyncio.ensure_future(self.device.connect(
            target, own_address_type=hci.OwnAddressType.RANDOM, timeout=max(timeout, 0.001)))
        try:
            connection = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # Our caller gave up while the controller still initiates: cancel it there, or
            # the next advert of the peer completes a connection that nobody owns.
            await asyncio.shield(self._abandon(attempt))
            raise
        except core.TimeoutError as exc:
            raise TimeoutError(f"no connection to {address_text(target)} "
                               f"within {timeout:.3g} s") from exc
        except core.ConnectionError as exc:
            raise CentralError(f"connection to {address_text(target)} failed: "
                               f"{exc.error_name}", exc.error_code) from exc
        connection.on(Connection.EVENT_SECURITY_REQUEST,
                      lambda _auth: self._spawn(self._on_security_request(connection)))
        return connection

    async def _abandon(self, attempt: asyncio.Future[Connection]) -> None:
        # Bounded: a controller already taken off the air answers nothing, and a task left
        # waiting for it would hold up the end of the event loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ABANDON_S):
                if not attempt.done():
                    with contextlib.suppress(hci.HCI_Error, core.BaseBumbleError):
                        await self.device.send_sync_command(
                            hci.HCI_LE_Create_Connection_Cancel_Command())
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    connection = await attempt
                    await connection.disconnect()  # it completed before the cancel did

    async def _on_security_request(self, connection: Connection) -> None:
        # A peer asking for security gets it, as a desktop stack would: re-encryption with the
        # bond we hold, or a new pairing.
        try:
            await self.secure(connection, pair=True)
        except (CentralError, core.BaseBumbleError, asyncio.CancelledError) as exc:
            log.warning("security request from %s not met: %s", connection.peer_address, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- security ---------------------------------------------------------------------------

    async def bond(self, address: hci.Address) -> PairingKeys | None:
        """The keys we hold for the peer with this identity address, if bonded."""
        keystore = self.device.keystore
        return None if keystore is None else await keystore.get(address_text(address))

    async def secure(self, connection: Connection, *, pair: bool) -> bool:
        """Encrypts the link with the bond we hold; without one, pairs if `pair`. Returns
        whether the link is encrypted. Raises CentralError with the HCI or SMP code."""
        if connection.is_encrypted:
            return True
        if await self.bond(connection.peer_address) is not None:
            await self.encrypt(connection)
            return True
        if pair:
            await self.pair(connection)
            return True
        return False

    async def pair(self, connection: Connection) -> None:
        """Pairs (LE Secure Connections, Just Works, bonding); the bond is stored on success."""
        try:
            await connection.pair()
        except core.ProtocolError as exc:
            raise CentralError(f"pairing with {address_text(connection.peer_address)} "
                               f"failed: {exc.error_name}", exc.error_code) from exc

    async def encrypt(self, connection: Connection) -> None:
        """Encrypts with the stored bond, without pairing again."""
        try:
            await connection.encrypt()
        except core.ProtocolError as exc:
            raise CentralError(f"encryption with {address_text(connection.peer_address)} "
                               f"failed: {exc.error_name}", exc.error_code) from exc
        except core.BaseBumbleError as exc:  # no key store entry: "keys not found"
            raise CentralError(f"encryption with {address_text(connection.peer_address)} "
                               f"failed: {exc}") from exc

    async def forget(self, address: hci.Address) -> bool:
        """Deletes the bond with this peer; True if there was one."""
        keystore = self.device.keystore
        if keystore is None or await self.bond(address) is None:
            return False
        await keystore.delete(address_text(address))
        await self.device.refresh_resolving_list()
        return True
