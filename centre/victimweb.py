"""The API's endpoints for the victim's host about proximity (on the dispatch API, behind the
hosts' bearer check of centre/web.py, each host for its own case only): her position report,
the long poll for warnings, and the acknowledgement of their delivery. The bodies are the
contract's (msa.wire.proximity); docs/proximity.md gives the rules."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from msa.wire.proximity import (ACK_PATH, MAX_WAIT_S, POSITION_PATH, WARNINGS_PATH,
                                ProximityError, read_ack, read_position, warnings_body)

from .bodies import read_small, strict_json
from .watch import NoMovingZone, ProximityWatch
from .web import HOST_KEY

WATCH_KEY: web.AppKey[ProximityWatch] = web.AppKey("watch", ProximityWatch)
MAX_BODY = 4096
_ID = re.compile(r"[0-9]{1,15}", re.ASCII)


async def _body(request: web.Request) -> Any:
    return strict_json(await read_small(request, MAX_BODY))


def _number(request: web.Request, name: str, high: int) -> int:
    text = request.query.get(name, "0")
    if not _ID.fullmatch(text) or int(text) > high:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from 0 to {high}")
    return int(text)


async def position(request: web.Request) -> web.Response:
    """The victim's position (or that her host has none now)."""
    watch = request.app[WATCH_KEY]
    now = watch.clock()
    try:
        _sent, fix = read_position(await _body(request), now)
    except ProximityError as exc:
        raise web.HTTPBadRequest(text=str(exc)[:200]) from None
    try:
        every = watch.on_victim(request[HOST_KEY].case_ref, fix, now)
    except NoMovingZone:
        raise web.HTTPConflict(text="this case's zones are fixed: no position is needed"
                               ) from None
    return web.json_response({"report_every_s": every})


async def warnings(request: web.Request) -> web.Response:
    """The host's case's warnings after `after`, waiting up to `wait_s` for one."""
    watch = request.app[WATCH_KEY]
    after = _number(request, "after", 2 ** 53)
    wait_s = _number(request, "wait_s", MAX_WAIT_S)
    case_ref = request[HOST_KEY].case_ref
    found = await watch.wait_warnings(case_ref, after, wait_s)
    return web.json_response(warnings_body(found, watch.report_every(case_ref)))


async def ack(request: web.Request) -> web.Response:
    """How the host delivered a warning to the victim, into the case record."""
    watch = request.app[WATCH_KEY]
    ident = request.match_info["id"]
    if not _ID.fullmatch(ident):
        raise web.HTTPNotFound(text="no such warning")
    try:
        at, delivery = read_ack(await _body(request), watch.clock())
    except ProximityError as exc:
        raise web.HTTPBadRequest(text=str(exc)[:200]) from None
    if not watch.ack(request[HOST_KEY].case_ref, int(ident), at, delivery):
        raise web.HTTPNotFound(text="no such warning for this host")
    return web.json_response({})


def add_victim_routes(app: web.Application, watch: ProximityWatch) -> None:
    """Adds the victim host's proximity endpoints to the dispatch API's app."""
    app[WATCH_KEY] = watch
    app.router.add_post(POSITION_PATH, position)
    app.router.add_get(WARNINGS_PATH, warnings, allow_head=False)
    app.router.add_post(ACK_PATH, ack)
