"""The simulated radio medium: one Bumble LocalLink shared by every simulated device, with
emulated controllers whose connect-cancel works, and faults a test injects (delay, loss, link
loss).

Addresses are bleak-style strings, "C0:00:00:00:00:01". Every simulated controller is a
random-address device, like the button's MicroPython ports: it has no public address, and the
string given to `Air.controller` is its (static) random address. A controller with no public
address makes Bumble's SMP fall back to the random static address as identity address, so the
address that bonds are filed under is the address the link routes by, on both sides.

Build an `Air` inside a running event loop (Bumble's controllers need one).
"""
from __future__ import annotations

import asyncio
import collections
import functools
import random
from collections.abc import Callable

from bumble import hci, ll
from bumble.controller import Connection, Controller
from bumble.core import PhysicalTransport
from bumble.link import LocalLink
from bumble.transport.common import TransportSink, TransportSource

from .errors import AirError

# The virtual board's address unless a test picks another (static random: top bits 11).
BOARD_ADDRESS = "C0:00:00:00:00:01"
# HCI reason of a lost link: supervision timeout (Core Vol 1, Part F, 2.8).
CONNECTION_TIMEOUT = 0x08


def sim_address(text: str) -> hci.Address:
    """The random device address that a bleak-style string names on the air."""
    try:
        return hci.Address(text.upper(), hci.Address.RANDOM_DEVICE_ADDRESS)
    except ValueError as exc:  # bumble's InvalidArgumentError is a ValueError too
        raise AirError(f"not a Bluetooth address: {text!r}") from exc


class SimController(Controller):
    """An emulated controller whose LE Create Connection Cancel really cancels.

    The stock handler only answers "success": the pending connection stays armed, Bumble's
    `connect(timeout=...)` then waits for a Connection Complete that never comes, and the
    next advert from that peer opens a connection nobody owns (half-open on the peer).
    """

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            # The connection completed just before the cancel: the spec says "disallowed",
            # but Bumble's connect() would then raise and orphan that fresh connection.
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)
        self.pending_le_connection = None
        # The Command Complete goes out first (our caller sends it after we return), then the
        # Connection Complete with status Unknown Connection Identifier, as the spec orders.
        asyncio.get_running_loop().call_soon(
            self.send_hci_packet,
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0, role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address, connection_interval=0,
                peripheral_latency=0, supervision_timeout=0, central_clock_accuracy=0))
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class _Medium(LocalLink):
    """LocalLink whose deliveries go through one FIFO, so a delay keeps their order, and whose
    ACL data can be lost (the stock link has neither timing nor loss)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.delay_s = 0.0
        self.loss = 0.0
        self.rng = random.Random(0)
        self.lost = 0
        # (due time, delivery); one FIFO for adverts, LL control and data alike, because a
        # CONNECT_IND overtaken by the first ATT request would lose that request.
        self._queue: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def _deliver(self, delivery: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if self.delay_s <= 0 and not self._queue:
            loop.call_soon(delivery)  # the stock behaviour
            return
        self._queue.append((loop.time() + self.delay_s, delivery))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._flush)

    def _flush(self) -> None:
        # One timer for the head of the queue: equal or later deadlines never overtake it,
        # which call_later per packet would not guarantee (the timer heap is not stable).
        # Deliveries go through call_soon, in order, like the stock link's: one that raises
        # is reported by the loop and does not stall the rest.
        loop = asyncio.get_running_loop()
        self._timer = None
        while self._queue and self._queue[0][0] <= loop.time():
            loop.call_soon(self._queue.popleft()[1])
        if self._queue:
            self._timer = loop.call_at(self._queue[0][0], self._flush)

    def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                      transport: PhysicalTransport, data: bytes) -> None:
        if transport != PhysicalTransport.LE:
            raise AirError("the simulated air carries LE only")
        if self.loss > 0 and self.rng.random() < self.loss:
            self.lost += 1
            return
        destination = self.find_le_controller(destination_address)
        source = sender_controller.random_address
        if destination is not None:
            self._deliver(lambda: destination.on_link_acl_data(source, transport, data))

    def send_advertising_pdu(self, sender_controller: Controller,
                             packet: ll.AdvertisingPdu) -> None:
        for controller in list(self.controllers):
            if controller is not sender_controller:
                self._deliver(functools.partial(controller.on_ll_advertising_pdu, packet))

    def send_ll_control_pdu(self, sender_address: hci.Address, receiver_address: hci.Address,
                            packet: ll.ControlPdu) -> None:
        receiver = self.find_le_controller(receiver_address)
        if receiver is None:
            raise AirError(f"no controller at {receiver_address} for {packet}")
        self._deliver(lambda: receiver.on_ll_control_pdu(sender_address, packet))


class Air:
    """The shared medium; every simulated device's controller hangs on it."""

    def __init__(self) -> None:
        asyncio.get_running_loop()  # fails early, outside a loop, with a clear RuntimeError
        self.link = _Medium()
        # Local controllers by the address they were added under (their identity: a private
        # peer's current address changes); attached ones by whatever address they set.
        self._controllers: dict[str, SimController] = {}
        self._attached: list[SimController] = []
        # State that higher layers keep per air (the default central); the air owns it so it
        # lives and dies with the air, without this module knowing those layers.
        self.extras: dict[str, object] = {}

    @property
    def controllers(self) -> list[SimController]:
        """The controllers on the air, in the order they were added."""
        return [*self._controllers.values(), *self._attached]

    @property
    def lost(self) -> int:
        """How many ACL data packets the loss injection has dropped so far."""
        return self.link.lost

    def controller(self, name: str, address: str) -> SimController:
        """A new emulated controller on the air, its random static address set to `address`
        (a Bumble Device on it sets the same address again at power-on)."""
        if self._lookup(address) is not None:
            raise AirError(f"{address.upper()} is already on the air")
        ctrl = SimController(name, link=self.link)
        ctrl.random_address = sim_address(address)
        self._controllers[str(sim_address(address))] = ctrl
        return ctrl

    def attach(self, name: str, host_source: TransportSource, host_sink: TransportSink
               ) -> SimController:
        """A new controller driven over HCI by a host elsewhere (another process): the host
        sets its address at power-on, as with a real adapter. `detach` takes it off again."""
        ctrl = SimController(name, host_source=host_source, host_sink=host_sink, link=self.link)
        self._attached.append(ctrl)
        return ctrl

    def _lookup(self, address: str) -> SimController | None:
        want = sim_address(address)
        found = self._controllers.get(str(want))
        return found or next((c for c in self._attached if c.random_address == want), None)

    def find(self, address: str) -> SimController:
        """The controller added under `address`, or attached and using it now."""
        ctrl = self._lookup(address)
        if ctrl is None:
            raise AirError(f"no controller {address.upper()} on the air")
        return ctrl

    async def remove(self, address: str) -> None:
        """Takes a controller off the air (as its device dies), dropping its links first."""
        await self.detach(self.find(address))

    async def detach(self, ctrl: SimController) -> None:
        """Takes `ctrl` off the air, its links lost first (the peers see a link loss)."""
        if ctrl not in self.controllers:
            return
        await self._drop(ctrl, lambda _peer: True)
        self.link.remove_controller(ctrl)
        if ctrl in self._attached:
            self._attached.remove(ctrl)
        else:
            self._controllers = {k: c for k, c in self._controllers.items() if c is not ctrl}

    def set_delay(self, ms: float) -> None:
        """Every packet (advert, LL control, data) arrives `ms` later, in the order sent;
        0 restores immediate delivery (packets already in flight keep their due time)."""
        if ms < 0:
            raise AirError(f"delay must be >= 0 ms, not {ms}")
        self.link.delay_s = ms / 1000

    def set_loss(self, probability: float, seed: int) -> None:
        """Each ACL data packet (one L2CAP PDU here) is lost with `probability`; the same seed
        loses the same packets. Adverts and LL control are never lost."""
        if not 0 <= probability <= 1:
            raise AirError(f"loss probability must be within 0..1, not {probability}")
        self.link.loss = probability
        self.link.rng = random.Random(seed)

    async def drop_link(self, address_a: str, address_b: str) -> int:
        """Loses every link between the two devices, as a radio failure would: both controllers
        report Disconnection Complete with reason 0x08 (the emulator has no supervision timer,
        so a silent link would never drop). Returns how many links were dropped; when it
        returns, both hosts have processed the event."""
        ctrl_b = self.find(address_b)
        return await self._drop(self.find(address_a), lambda peer: peer is ctrl_b)

    async def drop_all(self, address: str) -> int:
        """Loses every link of the device at `address` (see `drop_link`)."""
        return await self._drop(self.find(address), lambda _peer: True)

    async def _drop(self, ctrl: SimController,
                    which: Callable[[Controller | None], bool]) -> int:
        doomed: list[tuple[Controller, Connection]] = []
        for conn in list(ctrl.le_connections.values()):
            peer = self.link.find_le_controller(conn.peer_address)
            if not which(peer):
                continue
            doomed.append((ctrl, conn))
            if peer is not None:
                doomed += [(peer, other) for other in list(peer.le_connections.values())
                           if other.peer_address == conn.self_address]
        for owner, conn in doomed:
            owner.on_le_disconnected(conn, CONNECTION_TIMEOUT)
        # Controllers hand events to their hosts with call_soon, in order: a callback queued
        # now runs after both hosts have handled their Disconnection Complete.
        done = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(done.set_result, None)
        await done
        return sum(1 for owner, _ in doomed if owner is ctrl)
