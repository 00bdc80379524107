"""How the centre's HTTP handlers read a request body: within a deadline (a slow client holds a
slot), within a size (refused as 413 before and while it arrives), and as strict JSON (NaN and
Infinity are no numbers a message may carry; nesting deeper than the stack is malformed)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn

from aiohttp import web

BODY_TIMEOUT_S = 10.0  # a request body that takes longer is a slow client holding a slot


async def read_small(request: web.Request, max_bytes: int) -> bytes:
    """The body, at most `max_bytes` (413 otherwise), within BODY_TIMEOUT_S (408)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_bytes, request.content_length)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.content.read(max_bytes + 1)
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the body did not arrive in time") from None
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_bytes, len(raw))
    return raw


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def strict_json(raw: bytes) -> Any:
    """The body as strict JSON; 400 when it is not."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
        raise web.HTTPBadRequest(text="body is not JSON") from None
