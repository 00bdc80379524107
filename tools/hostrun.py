"""The host's own service run for the length of one technician's command (msa test-alarm,
monitor): its real outbox, channels and location, with the events it verifies and the receipts
it gets queued for the command to wait on."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bleak.exc import BleakError

from msa.host.dispatch import Receipt
from msa.host.errors import HostError, LinkError
from msa.host.events import ButtonEvent
from msa.host.link import Backends
from msa.host.service import HostService
from msa.wire.message import Message
from msa.wire.protocol import Kind

from . import ble
from .errors import KeyRejected, LinkFailed, NotAcknowledged

T = TypeVar("T")


class HostRun:
    """The host's own service (real outbox, channels, location) for the length of a command,
    with the events it verifies and the receipts it gets, for waiting on."""

    def __init__(self, b: ble.HostButton, backends: Backends | None,
                 on_event: Callable[[ButtonEvent], None] | None = None) -> None:
        self.events: asyncio.Queue[ButtonEvent] = asyncio.Queue()
        self.receipts: asyncio.Queue[tuple[Message, Receipt]] = asyncio.Queue()
        self._on_event = on_event
        self._button = b

        async def observe(message: Message, receipt: Receipt) -> None:
            self.receipts.put_nowait((message, receipt))
        self.service = HostService(b.config, backends=backends, observer=observe,
                                   on_event=self._heard)
        self.link = next(link for link in self.service.links
                         if link.target.button_id == b.button_id)
        self.task = asyncio.create_task(self.service.run())

    def _heard(self, event: ButtonEvent) -> None:
        if event.button_id == self.link.target.button_id:
            self.events.put_nowait(event)
            if self._on_event is not None:
                self._on_event(event)

    async def within(self, work: Awaitable[T], timeout_s: float | None) -> T:
        """`work`, unless the service ends first (its error is raised) or time runs out
        (TimeoutError)."""
        waiter = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({self.task, waiter}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if self.task in done:
            self.task.result()
            raise HostError("the host service stopped")
        raise TimeoutError

    async def connected(self, address: str, timeout_s: float) -> None:
        """Returns once the link has a session; KeyRejected as soon as an attempt finds that
        the button holds another key (the link would only retry), LinkFailed at the timeout."""
        async def either() -> None:
            session = asyncio.ensure_future(self.link.connected.wait())
            rejected = asyncio.ensure_future(self.link.wrong_key.wait())
            try:
                await asyncio.wait({session, rejected}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                session.cancel()
                rejected.cancel()
        try:
            await self.within(either(), timeout_s)
        except TimeoutError:
            raise LinkFailed(address, "setting up the host's link",
                             f"no session within {timeout_s:g} s") from None
        if not self.link.connected.is_set():
            raise KeyRejected(self._button.button_id, str(self._button.key_file))

    async def next_event(self, kind: Kind | None) -> ButtonEvent:
        while True:
            event = await self.events.get()
            if kind is None or event.frame.kind is kind:
                return event

    async def receipt(self, key: str) -> Receipt:
        while True:
            message, receipt = await self.receipts.get()
            if message.key == key:
                return receipt

    async def delivery(self, key: str) -> Receipt:
        """The centre's receipt for the message; NotAcknowledged as soon as the dispatcher
        has tried every channel once and each failed (with their errors), rather than at the
        timeout: a test alarm is to show that the way to the centre works now. The dispatcher
        tells only of receipts, so its record of failed tries is looked at meanwhile."""
        started = time.monotonic()
        got = asyncio.ensure_future(self.receipt(key))
        try:
            while True:
                done, _ = await asyncio.wait({got}, timeout=ble.POLL_S)
                if got in done:
                    return got.result()
                state = self.service.outbox.status(key)
                if state is not None and state[0] is None and state[2] >= 1:
                    raise NotAcknowledged(key, time.monotonic() - started,
                                          state[3] or "no channel carries it")
        finally:
            got.cancel()

    async def close(self) -> None:
        await self.service.stop()
        await asyncio.gather(self.task, return_exceptions=True)


async def request_test(running: HostRun, address: str, timeout_s: float) -> None:
    """Sends TEST. Just after the link's TIME the button's challenge still reads as that
    command (until its loop puts the challenge back), which the link reports as a LinkError:
    try again shortly, within the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await running.link.request_test()
            return
        except LinkError as exc:
            if time.monotonic() >= deadline or "challenge" not in exc.detail:
                raise LinkFailed(address, "sending TEST", str(exc)) from exc
        except (BleakError, OSError, TimeoutError) as exc:
            raise LinkFailed(address, "sending TEST", str(exc) or type(exc).__name__) from exc
        await asyncio.sleep(ble.POLL_S)


