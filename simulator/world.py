"""A simulated world for tests and demos: the air, one virtual button with the unmodified
firmware in MicroPython, and a host that keeps it through bleak (the simulator's backends)."""
from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

from msa.host.events import ButtonEvent
from msa.host.link import Backends, ButtonLink, ButtonTarget
from msa.wire.protocol import ButtonKeys
from msa.host.receiver import Receiver
from msa.host.sequence import SequenceGuard

from .air import BOARD_ADDRESS, Air
from .bleak_backend import BumbleClient, BumbleScanner
from .central import Central
from .vboard import VirtualBoard

log = logging.getLogger("msa.simulator.world")

BUTTON_ADDRESS = BOARD_ADDRESS
HOST_ADDRESS = "C0:00:00:00:00:10"


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("host link died", exc_info=task.exception())


class Host:
    """One host process: its radio, its bond store and receiver state, its button link."""

    def __init__(self, world: World, address: str = HOST_ADDRESS) -> None:
        self.world = world
        self.address = address
        self.events: asyncio.Queue[ButtonEvent] = asyncio.Queue()
        self.central = Central(world.air, address,
                               world.root / f"host-{address.replace(':', '')}")
        self.receiver = Receiver({world.button_id: world.keys},
                                 SequenceGuard(world.root / f"host-{address}.db"))
        self.link = ButtonLink(ButtonTarget(world.button_id, world.board.address, world.keys),
                               self.receiver, self._sink,
                               backends=Backends(BumbleScanner, BumbleClient,
                                                 {"central": self.central}))
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    async def _sink(self, event: ButtonEvent) -> None:
        self.events.put_nowait(event)

    async def start(self) -> None:
        await self.central.start()
        self._task = asyncio.create_task(self.link.run())
        self._task.add_done_callback(_report)

    async def next_event(self, timeout: float = 10.0, kind: Any = None) -> ButtonEvent:
        """The next event (of a kind, if given), skipping heartbeats unless asked for."""
        async def wait() -> ButtonEvent:
            while True:
                event = await self.events.get()
                if kind is None or event.frame.kind == kind:
                    return event
        return await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        """The host process goes away (its radio leaves the air). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.link.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.central.close()


class World:
    """Build inside a running loop; `await start()`, then `await close()`."""

    def __init__(self, root: Path, key: bytes | None = None, button_id: int | None = None,
                 address: str = BUTTON_ADDRESS, centre_key: bytes | None = None,
                 **config: Any) -> None:
        self.root = root
        self.air = Air()
        self.key = key or secrets.token_bytes(32)
        self.keys = ButtonKeys.from_master(self.key)
        self.centre_key = centre_key or secrets.token_bytes(32)  # K_c: never the host's
        self.button_id = button_id or secrets.randbelow(0xFFFFFFFE) + 1
        self.config = {"button_id": self.button_id, "key": self.key.hex(),
                       "centre_key": self.centre_key.hex(), **config}
        self.board = VirtualBoard(self.air, root / "flash", address)
        self.hosts: list[Host] = []

    async def start(self, with_host: bool = True) -> Host | None:
        self.board.install()
        await self.board.provision(self.config)
        await self.board.start()
        if not with_host:
            return None
        return await self.add_host()

    async def add_host(self, address: str = HOST_ADDRESS) -> Host:
        host = Host(self, address)
        self.hosts.append(host)
        await host.start()
        return host

    async def close(self) -> None:
        for host in self.hosts:
            await host.stop()
        await self.board.close()


HOLD = [[0, True], [1, False], [1, True], [1, False], [1, True]]  # contact chatter, then held


def hold_edges(hold_ms: int) -> list[list[Any]]:
    """A realistic press: chatter on contact, held for hold_ms, chatter on release."""
    return [*HOLD, [hold_ms, False], [1, True], [2, False]]
