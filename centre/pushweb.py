"""Tells the operator's page when to read the state again, instead of its polling every second:
`GET /api/events` is a Server-Sent Events stream that sends the change count whenever
something the page shows may have changed: an alarm or update committed by this node or, on a
shared PostgreSQL, by another one (centre/listen.py), a resolve, a proximity change, an SMS
ghost call. Changes closer together than MIN_GAP_S share one message (a fleet of tags moving
must not make every page read the state thousands of times a second).

A stream ends after STREAM_S: the browser opens it again at once, through the login check, so
a session that expired or was ended does not keep a stream.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from .authweb import CASE_ROLES, allow

EVENTS_PATH = "/api/events"
MIN_GAP_S = 0.25  # at most four reads of the state a second per page
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and the browser from timing out
STREAM_S = 60.0  # a stream's longest life (then the browser reconnects, logged in or not)
RETRY_MS = 1000  # how soon the browser reconnects after a stream ends


class Changes:
    """A count that moves whenever the page's state may have changed, and a way to wait for
    the next move. On the event loop only."""

    def __init__(self) -> None:
        self.count = 0
        self._moved = asyncio.Event()
        self.closed = False

    def bump(self) -> None:
        self.count += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, seen: int, timeout_s: float) -> int:
        """The count once it differs from `seen`, or as it is after `timeout_s`."""
        if self.count == seen and not self.closed:
            try:
                await asyncio.wait_for(self._moved.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return self.count

    def close(self) -> None:
        """The centre is stopping: every stream ends now."""
        self.closed = True
        self.bump()


CHANGES_KEY = web.AppKey("changes", Changes)


@allow(CASE_ROLES)
async def events(request: web.Request) -> web.StreamResponse:
    changes = request.app[CHANGES_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_S
    seen = changes.count
    await response.write(f"retry: {RETRY_MS}\ndata: {seen}\n\n".encode())
    while not changes.closed and loop.time() < ends:
        now = changes.count if changes.count != seen else await changes.wait(
            seen, min(KEEPALIVE_S, max(0.0, ends - loop.time())))
        if changes.closed:
            break
        if now == seen:
            await response.write(b": keepalive\n\n")
            continue
        seen = now
        await response.write(f"data: {seen}\n\n".encode())
        await asyncio.sleep(MIN_GAP_S)  # what moves meanwhile goes in the next message
    return response


def add_push_route(app: web.Application, changes: Changes) -> None:
    app[CHANGES_KEY] = changes
    app.router.add_get(EVENTS_PATH, events)
