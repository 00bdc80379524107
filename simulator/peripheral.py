"""The simulator's side of the virtual board's `bluetooth` module: a Bumble device on the
simulated air that carries out the firmware's BLE calls and reports the stack's events back
as MicroPython IRQs (same codes, same tuples). Bond keys live in the firmware, reached through
_IRQ_GET_SECRET/_IRQ_SET_SECRET, so bonds persist exactly where the firmware keeps them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

from bumble import gatt, hci
from bumble.att import ATT_READ_NOT_PERMITTED_ERROR, ATT_WRITE_NOT_PERMITTED_ERROR, ATT_Error
from bumble.core import BaseBumbleError
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from .air import Air, sim_address
from .bridge import Bridge

log = logging.getLogger("msa.simulator.peripheral")

IRQ_CENTRAL_CONNECT = 1
IRQ_CENTRAL_DISCONNECT = 2
IRQ_GATTS_WRITE = 3
IRQ_GATTS_INDICATE_DONE = 20
IRQ_MTU_EXCHANGED = 21
IRQ_ENCRYPTION_UPDATE = 28
IRQ_GET_SECRET = 29
IRQ_SET_SECRET = 30
# Secret types follow NimBLE's store object types, which MicroPython passes through unchanged,
# and MicroPython's own type for the button's IRK (modbluetooth_nimble.c, load_irk).
SEC_PEER = 2  # a bonded peer's keys: here Bumble's PairingKeys as JSON
SEC_OUR_IRK = 10
OUR_IRK_KEY = b"irk"
# The IRK NimBLE compiles in (ble_hs_pvcy.c) and keeps when load_irk cannot reach a handler:
# public, so an address made with it is resolvable by anyone.
NIMBLE_DEFAULT_IRK = bytes.fromhex("ef8de2164fec430dbf5bdd34c0531eb8")
ADDR_MODE_RPA = 2
RPA_ROTATION_S = 900.0  # NimBLE's default: a new private address every 15 minutes

_FLAG_READ = 0x0002
_FLAG_WRITE_NO_RESPONSE = 0x0004
_FLAG_WRITE = 0x0008
_FLAG_READ_ENCRYPTED = 0x0200
_FLAG_READ_AUTHENTICATED = 0x0400
_FLAG_WRITE_ENCRYPTED = 0x1000
_FLAG_WRITE_AUTHENTICATED = 0x2000
_PROPERTY_BITS = 0x00FF
_FLAGS_SUBSCRIBE = 0x0010 | 0x0020
_FLAGS_ENCRYPTED = _FLAG_READ_ENCRYPTED | _FLAG_READ_AUTHENTICATED | _FLAG_WRITE_ENCRYPTED  # GATT property bits are the low byte of MicroPython's flags


class FirmwareKeyStore(KeyStore):
    """Bumble's key store, kept by the firmware through the secret IRQs."""

    def __init__(self, irq: Any) -> None:
        self._irq = irq

    async def get(self, name: str) -> PairingKeys | None:
        value = await self._irq(IRQ_GET_SECRET, [SEC_PEER, 0, name.encode().hex()])
        if not value:
            return None
        return PairingKeys.from_dict(json.loads(bytes.fromhex(value))["keys"])

    async def update(self, name: str, keys: PairingKeys) -> None:
        # A refusal (the handler returns False) leaves the pairing encrypted but unbonded, as
        # NimBLE's store write failing does: the link works, nothing is kept.
        blob = json.dumps({"name": name, "keys": keys.to_dict()}).encode()
        if not await self._irq(IRQ_SET_SECRET, [SEC_PEER, name.encode().hex(), blob.hex()]):
            log.info("the firmware refused to keep the bond of %s", name)

    async def delete(self, name: str) -> None:
        await self._irq(IRQ_SET_SECRET, [SEC_PEER, name.encode().hex(), None])

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        out = []
        for index in range(64):
            value = await self._irq(IRQ_GET_SECRET, [SEC_PEER, index, None])
            if not value:
                break
            entry = json.loads(bytes.fromhex(value))
            out.append((entry["name"], PairingKeys.from_dict(entry["keys"])))
        return out

    async def delete_all(self) -> None:
        for name, _ in await self.get_all():
            await self.delete(name)


class Peripheral:
    """Executes one virtual board's BLE calls on a Bumble device at `address`."""

    def __init__(self, air: Air, bridge: Bridge, address: str) -> None:
        self._bridge = bridge
        self.address = address
        controller = air.controller(f"button-{address}", address)
        config = DeviceConfiguration()
        config.irk = secrets.token_bytes(16)  # replaced by the firmware's own at power-on
        self.device: Device = Device(name=f"button-{address}", address=sim_address(address),
                                     config=config,
                                     host=Host(controller, AsyncPipeSink(controller)))
        self.device.keystore = FirmwareKeyStore(self._irq_request)
        self._bonding = True
        self.device.pairing_config_factory = self._pairing_config
        self._chars: dict[int, gatt.Characteristic[bytes]] = {}
        self._base: tuple[int, int] | None = None  # the GATT server's own services, attributes
        self._powered = False
        self._values: dict[int, bytes] = {}
        self._conns: dict[int, Connection] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self.privacy = False
        self.port = "esp32"
        self.max_connections = 4  # NimBLE's default on the ESP32 port; BTstack (rp2): 1
        self.rpa_rotation_s = RPA_ROTATION_S
        self._rpa_at: float | None = None
        self.advertising: bytes | None = None
        self._ops = {"active": self._active, "config": self._config, "register": self._register,
                     "write": self._write, "notify": self._notify, "indicate": self._indicate,
                     "advertise": self._advertise, "disconnect": self._disconnect,
                     "pair": self._pair, "passkey": self._ignore}
        self.device.on("connection", self._on_connection)
        bridge.on("ble", self._on_message)

    # --- to the firmware ---
    def _irq(self, event: int, data: list[Any], **extra: Any) -> None:
        self._bridge.send_nowait({"t": "ble", "op": "irq", "event": event, "data": data,
                                  **extra})

    async def _irq_request(self, event: int, data: list[Any]) -> Any:
        return await self._bridge.request({"t": "ble", "op": "irq", "event": event,
                                           "data": data})

    # --- from the firmware ---
    async def _on_message(self, msg: dict[str, Any]) -> Any:
        op = self._ops.get(str(msg.get("op")))
        if op is None:
            log.warning("unknown bluetooth call %r", msg.get("op"))
            return None
        try:
            return await op(msg)
        except (BaseBumbleError, ATT_Error, asyncio.TimeoutError) as exc:
            log.info("bluetooth call %s failed: %r", msg.get("op"), exc)
            return None

    async def _ignore(self, _msg: dict[str, Any]) -> None:
        return None

    async def _active(self, msg: dict[str, Any]) -> None:
        if msg["on"]:
            self.port = str(msg.get("port") or "esp32")
            self.max_connections = 1 if self.port == "rp2" else 4
            self.device.irk = await self._own_irk() if msg.get("handler") else \
                NIMBLE_DEFAULT_IRK
            self._rpa_at = None  # a new stack start makes a new private address
            if not self._powered:
                await self.device.power_on()
                self._powered = True
            mac = self.address.replace(":", "").lower()
            await self._bridge.send({"t": "ble", "op": "mac", "mac": mac})
        else:
            # The stack stops: its links end. The emulated controller itself stays powered (a
            # Bumble device powered off and on again does not serve ATT reliably), and so do
            # its adverts, which the firmware stops itself first (gap_advertise(None)); a
            # board that sleeps or resets leaves the air with its process anyway.
            for conn in list(self._conns.values()):
                with contextlib.suppress(BaseBumbleError, asyncio.TimeoutError):
                    await conn.disconnect()

    def _pairing_config(self, _conn: Connection) -> PairingConfig:
        # Just Works with LE Secure Connections (the button has no display or keys); bonds
        # only if the firmware asked for them with config(bond=True).
        return PairingConfig(
            sc=True, mitm=False, bonding=self._bonding,
            delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
            identity_address_type=PairingConfig.AddressType.RANDOM)

    async def _own_irk(self) -> bytes:
        """The button's identity resolving key, as load_irk gets it during active(True): asked
        of the handler (type 10, key "irk"), else made and handed to it; if the handler does
        not keep it, NimBLE's default stays (a new one on every boot would also make the bonded
        hosts unable to resolve the button's private addresses)."""
        key = OUR_IRK_KEY.hex()
        value = await self._irq_request(IRQ_GET_SECRET, [SEC_OUR_IRK, 0, key])
        if value and len(bytes.fromhex(value)) == 16:
            return bytes.fromhex(value)
        irk = secrets.token_bytes(16)
        if not await self._irq_request(IRQ_SET_SECRET, [SEC_OUR_IRK, key, irk.hex()]):
            return NIMBLE_DEFAULT_IRK
        return irk

    async def _config(self, msg: dict[str, Any]) -> None:
        values = msg["values"]
        if "bond" in values:
            self._bonding = bool(values["bond"])
        if "addr_mode" in values:
            self.privacy = int(values["addr_mode"]) == ADDR_MODE_RPA

    async def _register(self, msg: dict[str, Any]) -> None:
        self._chars.clear()
        services = []
        for service_uuid, entries in msg["services"]:
            chars = []
            for entry in entries:
                uuid, flags, handle = entry[0], int(entry[1]), int(entry[2])
                if len(entry) > 3:
                    continue  # user descriptors are not used by the firmware
                chars.append(self._characteristic(uuid, flags, handle))
            services.append(gatt.Service(_bumble_uuid(service_uuid), chars))
        # As NimBLE's ble_gatts_reset: a registration replaces the last one (a stack restart
        # registers again), it never adds to it.
        server = self.device.gatt_server
        if self._base is None:
            self._base = (len(server.services), len(server.attributes))
        del server.services[self._base[0]:]
        del server.attributes[self._base[1]:]
        server.attributes_by_handle.clear()
        self.device.add_services(services)

    def _characteristic(self, uuid: str, flags: int, handle: int) -> gatt.Characteristic[bytes]:
        # As NimBLE's ble_att_svr_check_perms: no read (write) flag, no read (write), whatever
        # the encryption flags say; with it, the encryption flags add their demand.
        perms = 0
        if flags & _FLAG_READ:
            perms |= gatt.Characteristic.READABLE
            if flags & (_FLAG_READ_ENCRYPTED | _FLAG_READ_AUTHENTICATED):
                perms |= gatt.Characteristic.READ_REQUIRES_ENCRYPTION
        if flags & (_FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE):
            perms |= gatt.Characteristic.WRITEABLE
            if flags & (_FLAG_WRITE_ENCRYPTED | _FLAG_WRITE_AUTHENTICATED):
                perms |= gatt.Characteristic.WRITE_REQUIRES_ENCRYPTION
        self._values[handle] = b""

        def read(_conn: Any) -> bytes:
            if not flags & _FLAG_READ:
                raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR)  # as NimBLE answers
            return self._values.get(handle, b"")

        def write(conn: Any, value: bytes) -> None:
            if not flags & (_FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE):
                raise ATT_Error(ATT_WRITE_NOT_PERMITTED_ERROR)
            self._values[handle] = bytes(value)
            self._irq(IRQ_GATTS_WRITE, [conn.handle, handle], value=bytes(value).hex())

        char: gatt.Characteristic[bytes] = gatt.Characteristic(
            _bumble_uuid(uuid), gatt.Characteristic.Properties(flags & _PROPERTY_BITS),
            gatt.Characteristic.Permissions(perms),
            gatt.CharacteristicValue(read=read, write=write))
        if flags & _FLAGS_SUBSCRIBE and flags & _FLAGS_ENCRYPTED:
            # Bumble's own CCCD needs no encryption; a protected value needs a protected one,
            # as NimBLE gives it, so an unbonded central cannot even subscribe.
            char.descriptors = [gatt.Descriptor(
                gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE
                | gatt.Descriptor.WRITE_REQUIRES_ENCRYPTION,
                self.device.gatt_server.make_descriptor_value(char))]
        self._chars[handle] = char
        return char

    async def fail_advertising(self, calls: int) -> None:
        """Fault injection: the controller is busy for the firmware's next `calls`
        gap_advertise calls (each raises OSError(EBUSY), as NimBLE's can)."""
        await self._bridge.send({"t": "ble", "op": "fault", "busy": calls})

    async def inject_irq(self, event: int, data: list[Any]) -> None:
        """Fault injection: an IRQ the stack never raised (its handling can then fail in the
        firmware, as a MemoryError in a real handler would)."""
        self._irq(event, data)

    async def inject(self, uuid: str, data: bytes) -> int:
        """Fault injection: indicates bytes the firmware never sent on a characteristic, to
        every connected central (a tampered or replayed frame). Returns how many got it."""
        char = next(c for c in self._chars.values() if str(c.uuid).lower() == uuid.lower())
        for conn in list(self._conns.values()):
            await self.device.indicate_subscriber(conn, char, data)
        return len(self._conns)

    async def _write(self, msg: dict[str, Any]) -> None:
        self._values[int(msg["h"])] = bytes.fromhex(msg["data"])

    async def _notify(self, msg: dict[str, Any]) -> None:
        conn = self._conns.get(int(msg["conn"]))
        char = self._chars.get(int(msg["h"]))
        if conn is not None and char is not None:
            await self.device.notify_subscriber(conn, char, bytes.fromhex(msg["data"]))

    async def _indicate(self, msg: dict[str, Any]) -> None:
        # Confirmation can take up to the GATT timeout: wait for it aside, not in the queue.
        task = asyncio.create_task(self._indicate_and_report(msg))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _indicate_and_report(self, msg: dict[str, Any]) -> None:
        conn_handle, handle = int(msg["conn"]), int(msg["h"])
        conn = self._conns.get(conn_handle)
        char = self._chars.get(handle)
        status = 0
        try:
            if conn is None or char is None:
                raise ValueError("no such connection or characteristic")
            await self.device.indicate_subscriber(conn, char, bytes.fromhex(msg["data"]))
        except (BaseBumbleError, ATT_Error, asyncio.TimeoutError, ValueError):
            status = 1  # not confirmed: the firmware sees a non-zero status, as on NimBLE
        self._irq(IRQ_GATTS_INDICATE_DONE, [conn_handle, handle, status])

    async def _advertise(self, msg: dict[str, Any]) -> None:
        if self.device.is_advertising:
            await self.device.stop_advertising()
        if msg.get("interval_us") is None:
            self.advertising = None
            return
        data = bytes.fromhex(msg.get("adv") or "")
        self.advertising = data
        if self.privacy and not self._conns:
            await self._rotate_rpa()
        ms = max(20.0, int(msg["interval_us"]) / 1000)
        await self.device.start_advertising(advertising_data=data, auto_restart=False,
                                            advertising_interval_min=ms,
                                            advertising_interval_max=ms)

    async def _rotate_rpa(self) -> None:
        """A fresh resolvable private address from the IRK when the last is old enough.
        Set with HCI_LE_Set_Random_Address directly: Device.update_rpa() hands the controller
        the old address (see the simulator notes)."""
        now = asyncio.get_running_loop().time()
        if self._rpa_at is not None and now - self._rpa_at < self.rpa_rotation_s:
            return
        rpa = hci.Address.generate_private_address(self.device.irk)
        await self.device.send_sync_command(hci.HCI_LE_Set_Random_Address_Command(
            random_address=rpa))
        self.device.random_address = rpa
        self._rpa_at = now

    @property
    def advertising_address(self) -> str:
        return str(self.device.random_address.to_string(with_type_qualifier=False))

    async def _disconnect(self, msg: dict[str, Any]) -> None:
        conn = self._conns.get(int(msg["conn"]))
        if conn is not None:
            await conn.disconnect()

    async def _pair(self, msg: dict[str, Any]) -> None:
        conn = self._conns.get(int(msg["conn"]))
        if conn is not None:
            await conn.pair()

    # --- stack events ---
    def _on_connection(self, conn: Connection) -> None:
        if len(self._conns) >= self.max_connections:
            # BTstack on the Pico W keeps one connection: the controller takes no other.
            asyncio.ensure_future(conn.disconnect())
            return
        self._conns[conn.handle] = conn
        peer = conn.peer_address
        self._irq(IRQ_CENTRAL_CONNECT, [conn.handle, int(peer.address_type),
                                        bytes(reversed(bytes(peer))).hex()])
        conn.on("disconnection", lambda _reason: self._on_disconnection(conn))
        conn.on("connection_att_mtu_update",
                lambda: self._irq(IRQ_MTU_EXCHANGED, [conn.handle, conn.att_mtu]))
        conn.on("connection_encryption_change",
                lambda: asyncio.ensure_future(self._on_encryption(conn)))

    def _on_disconnection(self, conn: Connection) -> None:
        self._conns.pop(conn.handle, None)
        peer = conn.peer_address
        self._irq(IRQ_CENTRAL_DISCONNECT, [conn.handle, int(peer.address_type),
                                           bytes(reversed(bytes(peer))).hex()])

    async def _on_encryption(self, conn: Connection) -> None:
        # NimBLE reports a link bonded once a pairing with bonding is done (Just Works
        # included), whether or not the store kept the keys: "bonded" proves nothing.
        keystore = self.device.keystore
        bonded = conn.is_encrypted and self._bonding
        if keystore is not None and conn.is_encrypted and not bonded:
            bonded = await keystore.get(str(conn.peer_address)) is not None
        self._irq(IRQ_ENCRYPTION_UPDATE, [conn.handle, int(conn.is_encrypted),
                                          int(conn.authenticated), int(bonded), 16])


def _bumble_uuid(text: str) -> str:
    return text[2:].upper() if text.startswith("0x") else text
