"""An asyncio event loop on virtual time, for tests of timing policy: whenever nothing is ready
to run, the loop's clock jumps to the next timer instead of waiting for it. Timeouts
(asyncio.wait_for, asyncio.timeout), sleeps and a Clock built on loop.time() all move together,
so a test sees the exact second a policy acted, in milliseconds of wall time."""
from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
T0 = 1_800_000_000.0  # the Unix time a virtual run starts at


class Deadlock(RuntimeError):
    """Nothing ready, no timer set, nothing to read: a real loop would wait forever."""


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real file descriptors without blocking; jumps the clock instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise Deadlock("virtual-time loop: nothing scheduled and nothing to read")
        self.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """A selector loop whose time() is virtual (starts at 0 and only jumps)."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


class LoopClock:
    """The dispatcher's Clock on the running loop's (virtual) time, from T0."""

    def time(self) -> float:
        return T0 + asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def run(body: Callable[[], Awaitable[T]], limit_s: float = 86_400.0) -> T:
    """Runs `body` on a virtual-time loop; `limit_s` of virtual time is the test's deadline."""
    async def main() -> T:
        return await asyncio.wait_for(body(), limit_s)
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        return runner.run(main())
