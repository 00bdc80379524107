"""The stranger of the threat model on the simulated air: a phone nearby that connects to the
button wherever it advertises, pairs "Just Works" (the real stacks let anyone, and then call
the link bonded), holds the link until the button drops it, and does it all again. Used by the
scenarios and by `msa sim latency --stranger`."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

from bumble import hci

from .central import Central
from .vboard import VirtualBoard

STRANGER_ADDRESS = "C0:00:00:00:00:66"


def air_address(board: VirtualBoard) -> hci.Address:
    """Where the button advertises now: its private address once it uses one."""
    p = board.peripheral
    if p is not None and p.privacy:
        return p.device.random_address
    return hci.Address(board.address)


class Stranger:
    """Until stopped: connect, pair, hold, again. Counts what he got; `holding` is set while
    he holds a link."""

    def __init__(self, central: Central, target: Callable[[], hci.Address],
                 attempt_s: float = 3.0) -> None:
        self.central = central
        self._target = target
        self._attempt_s = attempt_s  # each connection attempt; short: he is quick to try again
        self.connections = 0
        self.paired = 0
        self.dropped = 0
        self.holding = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.central.start()
        self._task = asyncio.create_task(self._loop())

    async def __aenter__(self) -> Stranger:
        await self.start()
        return self

    async def __aexit__(self, _type: type[BaseException] | None, _exc: BaseException | None,
                        _tb: TracebackType | None) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            try:
                conn = await self.central.connect(self._target(), timeout=self._attempt_s)
            except Exception:  # noqa: BLE001 - he simply tries again
                await asyncio.sleep(0.05)
                continue
            self.connections += 1
            gone = asyncio.Event()
            conn.on("disconnection", lambda _reason: gone.set())
            self.holding.set()
            with contextlib.suppress(Exception):
                await self.central.pair(conn)
                self.paired += 1
            await gone.wait()
            self.holding.clear()
            self.dropped += 1

    async def stop(self) -> None:
        """Leaves: his radio goes off the air, his links with it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.central.close()
