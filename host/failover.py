"""Failover between the several addresses of one channel (two centre nodes, or two DC-09
receivers): staggered attempts in the style of RFC 8305 ("happy eyeballs") inside the channel's
one deadline, the first good answer wins, and the address that answered is tried first next
time. Sending one message to two nodes is safe: the centre counts each message key once."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .dispatch import SEND_BUDGET_S
from .errors import ChannelError

T = TypeVar("T")
MAX_ENDPOINTS = 4  # more addresses than this is a configuration mistake, not redundancy


class Failover:
    """The addresses of one channel in the order to try them. The one that answered last goes
    first (sticky), so a dead node costs one stagger once, not on every message; one that
    failed goes to the end: tried again later, never dropped (it may come back)."""

    def __init__(self, name: str, endpoints: Sequence[str], deadline_s: float) -> None:
        if not 1 <= len(endpoints) <= MAX_ENDPOINTS:
            raise ChannelError(name, f"1 to {MAX_ENDPOINTS} addresses, got {len(endpoints)}",
                               retryable=False)
        if len(set(endpoints)) != len(endpoints):
            raise ChannelError(name, "an address is listed twice", retryable=False)
        if not deadline_s > 0:
            raise ChannelError(name, "the deadline must be positive", retryable=False)
        self.name = name
        self.deadline_s = deadline_s
        self._order = list(endpoints)

    @property
    def order(self) -> tuple[str, ...]:
        """The addresses, the one to try first first."""
        return tuple(self._order)

    def budget_s(self) -> float:
        """The time this send has: the channel's deadline, or less when the dispatcher gives
        less (SEND_BUDGET_S: the SMS fallback is due sooner)."""
        given = SEND_BUDGET_S.get()
        return self.deadline_s if given is None else max(0.0, min(self.deadline_s, given))

    @property
    def stagger_s(self) -> float:
        """How long an attempt has alone before the next address is tried beside it."""
        return self.budget_s() / len(self._order)

    async def first(self, attempt: Callable[[str], Awaitable[T]],
                    final: Callable[[ChannelError], bool]) -> tuple[str, T]:
        """The first address to answer and its answer, all within `deadline_s`. An attempt
        that raises ChannelError starts the next one at once; `final(error)` true for an
        answer that is the same on every node (a refusal) ends it all with that error."""
        waiting = list(self._order)
        started: list[str] = []
        running: dict[asyncio.Task[T], str] = {}
        failed: dict[str, ChannelError] = {}
        budget_s, stagger_s = self.budget_s(), self.stagger_s

        def start() -> None:
            endpoint = waiting.pop(0)
            started.append(endpoint)
            running[asyncio.ensure_future(attempt(endpoint))] = endpoint
        try:
            async with asyncio.timeout(budget_s):
                start()
                while running:
                    done, _ = await asyncio.wait(
                        running, timeout=stagger_s if waiting else None,
                        return_when=asyncio.FIRST_COMPLETED)
                    # An answer beats a failure that completed in the same instant.
                    for task in sorted(done, key=lambda t: t.exception() is not None):
                        endpoint = running.pop(task)
                        exc = task.exception()
                        if exc is None:
                            self._answered(endpoint, failed)
                            return endpoint, task.result()
                        if not isinstance(exc, ChannelError):
                            raise exc  # a bug, not a node's failure: not ours to hide
                        if final(exc):  # an answer all the same: the node is alive
                            self._answered(endpoint, failed)
                            raise exc
                        failed[endpoint] = exc
                    if waiting:  # the stagger ran out, or an attempt failed: the next one
                        start()
        except TimeoutError:
            self._answered(None, failed)
            silent = [e for e in started if e not in failed]
            raise ChannelError(self.name, f"no answer within {budget_s:g} s from "
                               f"{', '.join(silent)}{self._listed(failed, '; ')}") from None
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        self._answered(None, failed)
        if len(failed) == 1:
            raise next(iter(failed.values()))  # one address: its own error, as it was
        raise ChannelError(self.name, f"every address failed{self._listed(failed, ': ')}",
                           retryable=any(e.retryable for e in failed.values()))

    @staticmethod
    def _listed(failed: dict[str, ChannelError], lead: str) -> str:
        return lead + "; ".join(f"{e}: {x.detail}" for e, x in failed.items()) if failed else ""

    def _answered(self, winner: str | None, failed: dict[str, ChannelError]) -> None:
        # Computed on the order as it is now: other messages may have moved it meanwhile.
        rest = [e for e in self._order if e != winner]
        self._order = ([winner] if winner else []) + [e for e in rest if e not in failed] + [
            e for e in rest if e in failed]
