"""The simulated air: one Bumble LocalLink shared by every simulated device, with emulated
controllers fixed where the emulator falls short, and faults a test can inject (delay, loss,
link drops). Build it inside a running event loop (Bumble's controllers need one).
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.device import Device
from bumble.host import Host
from bumble.keys import KeyStore
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

# Reason code of an LE disconnection caused by a lost link (supervision timeout).
CONNECTION_TIMEOUT = 0x08


class FaultyLink(LocalLink):
    """LocalLink whose data packets can be delayed or lost (the emulator has neither)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.delay_s = 0.0
        self.loss = 0.0
        self.lost = 0
        self._rng = random.Random(0)

    def send_acl_data(self, sender: Controller, destination: hci.Address,
                      transport: PhysicalTransport, data: bytes) -> None:
        if self.loss and self._rng.random() < self.loss:
            self.lost += 1
            return
        if self.delay_s:
            # call_later keeps the order of packets sent with the same delay.
            asyncio.get_running_loop().call_later(
                self.delay_s, super().send_acl_data, sender, destination, transport, data)
            return
        super().send_acl_data(sender, destination, transport, data)


class SimController(Controller):
    """Controller whose LE Create Connection Cancel really cancels (the stock one does not,
    and a connect that timed out would complete later as a half-open connection)."""

    def on_hci_le_create_connection_cancel_command(self, command: Any) -> Any:
        pending = self.pending_le_connection
        result = super().on_hci_le_create_connection_cancel_command(command)
        if pending is not None:
            self.pending_le_connection = None
            self.send_hci_packet(hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0, role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address_type,
                peer_address=pending.peer_address, connection_interval=0,
                peripheral_latency=0, supervision_timeout=0, central_clock_accuracy=0))
        return result


class Air:
    """The shared medium. Addresses are static random addresses, "C0:00:00:00:00:01"."""

    def __init__(self) -> None:
        self.link = FaultyLink()
        self.controllers: dict[str, SimController] = {}

    def controller(self, name: str, address: str) -> SimController:
        ctrl = SimController(name, link=self.link,
                             public_address=hci.Address(address, hci.Address.PUBLIC_DEVICE_ADDRESS))
        self.controllers[address.upper()] = ctrl
        return ctrl

    def device(self, name: str, address: str, keystore: KeyStore, *,
               bonding: bool = True) -> Device:
        """A Bumble device (host stack) on its own controller, pairing with LE Secure
        Connections, no MITM (the button has no display or keys), bonding."""
        ctrl = self.controller(name, address)
        dev = Device(name=name, address=hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS),
                     host=Host(ctrl, AsyncPipeSink(ctrl)))
        dev.keystore = keystore
        # Bonds are filed under identity addresses while the link routes by random address:
        # both sides say their identity address is random, so re-encryption finds the keys.
        dev.pairing_config_factory = lambda _conn: PairingConfig(
            sc=True, mitm=False, bonding=bonding,
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
            identity_address_type=PairingConfig.AddressType.RANDOM)
        return dev

    def remove(self, address: str) -> None:
        """Takes a device off the air, as when its process dies (its links drop first)."""
        self.drop_links(address)
        ctrl = self.controllers.pop(address.upper(), None)
        if ctrl is not None:
            self.link.remove_controller(ctrl)

    def set_delay(self, ms: float) -> None:
        """Every data packet arrives `ms` later (0 restores instant delivery)."""
        self.link.delay_s = ms / 1000

    def set_loss(self, probability: float, seed: int = 0) -> None:
        """Every data packet is lost with this probability (deterministic for a seed)."""
        self.link.loss = probability
        self.link._rng = random.Random(seed)

    def drop_links(self, address: str) -> int:
        """Loses every connection of the device at `address`, on both ends, as a radio
        failure would (the emulator has no supervision timer). Returns how many."""
        ctrl = self.controllers.get(address.upper())
        if ctrl is None:
            return 0
        dropped = 0
        for conn in list(ctrl.le_connections.values()):
            peer = self.link.find_le_controller(conn.peer_address)
            if peer is not None:
                for other in list(peer.le_connections.values()):
                    if other.peer_address == conn.self_address:
                        peer.on_le_disconnected(other, CONNECTION_TIMEOUT)
            ctrl.on_le_disconnected(conn, CONNECTION_TIMEOUT)
            dropped += 1
        return dropped
