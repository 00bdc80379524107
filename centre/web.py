"""The reference centre's web side: the dispatch API hosts post to over TLS (create alarm,
append location, events; bearer tokens), and, apart from it, the operator's page with live
alarms, case files and tracks drawn, fed by a JSON state endpoint. aiohttp.
"""
from __future__ import annotations

import hmac
import importlib.resources
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from msa.host.dispatch import INCIDENT_KINDS, MessageKind

from .core import Centre, Inbound, Ingested, Verdict, fix_from_json
from .sms import GhostCall

log = logging.getLogger("msa.centre.web")

CENTRE_KEY: web.AppKey[Centre] = web.AppKey("centre", Centre)
TOKENS_KEY: web.AppKey[tuple[str, ...]] = web.AppKey("tokens", tuple)
GhostCalls = Callable[[], Sequence[GhostCall]]
GHOSTS_KEY: web.AppKey[GhostCalls] = web.AppKey("ghosts")

_EVENT_KINDS = frozenset({MessageKind.LOW_BATTERY, MessageKind.HEARTBEAT, MessageKind.BOOT})


def _bad(detail: str) -> web.HTTPException:
    return web.HTTPBadRequest(text=detail)


def _inbound(body: Any, allowed: frozenset[MessageKind]) -> Inbound:
    """A posted body as the centre's message; raises 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    try:
        kind = MessageKind(body["kind"])
        if kind not in allowed:
            raise _bad(f"kind {kind.value!r} does not belong on this endpoint")
        pressed = body.get("pressed_at")
        return Inbound(channel="https", key=str(body["key"]), kind=kind,
                       button_id=int(body["button_id"]), frame=bytes.fromhex(body["frame"]),
                       fix=fix_from_json(body.get("location")),
                       incident=str(body.get("incident") or ""),
                       update_no=int(body.get("update_no") or 0),
                       pressed_at=None if pressed is None else float(pressed),
                       received_at=time.time())
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(f"malformed message: {exc!r}") from None


def _answer(result: Ingested, created: bool) -> web.Response:
    if result.verdict is Verdict.REJECTED:
        # Final: the same bytes will never verify. The host logs it and does not retry.
        raise web.HTTPUnprocessableEntity(text=f"rejected: {result.reason}")
    status = 201 if created and result.verdict is Verdict.ACCEPTED else 200
    return web.json_response({"incident": result.incident, "status": result.status,
                              "verdict": result.verdict.value}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        tokens = request.app[TOKENS_KEY]
        if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
            raise web.HTTPUnauthorized(text="bad or missing bearer token")
    return await handler(request)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _bad("body is not JSON") from None


async def create_alarm(request: web.Request) -> web.Response:
    m = _inbound(await _json(request), INCIDENT_KINDS)
    return _answer(await request.app[CENTRE_KEY].submit(m), created=True)


async def append_location(request: web.Request) -> web.Response:
    body = await _json(request)
    centre = request.app[CENTRE_KEY]
    if isinstance(body, dict) and not body.get("incident"):
        body["incident"] = request.match_info["incident"]
    m = _inbound(body, frozenset({MessageKind.LOCATION}))
    if centre.incident_id(m.incident) is None:
        raise web.HTTPNotFound(text=f"no incident {m.incident!r}")
    return _answer(await centre.submit(m), created=False)


async def post_event(request: web.Request) -> web.Response:
    m = _inbound(await _json(request), _EVENT_KINDS)
    return _answer(await request.app[CENTRE_KEY].submit(m), created=False)


async def state(request: web.Request) -> web.Response:
    centre = request.app[CENTRE_KEY]
    ghosts = []
    for g in request.app[GHOSTS_KEY]():
        case = centre.registry.case_for_phone(g.sender)  # a ghost call is known by its sender only
        ghosts.append({"button_id": None, "case_ref": None if case is None else case.case_ref,
                       "warning": "unverified SMS ghost call", "received_at": g.received_at,
                       "location": None if g.fix is None else
                       {"lat": g.fix.lat, "lon": g.fix.lon, "accuracy_m": g.fix.accuracy_m}})
    return web.json_response({"incidents": centre.incidents(include_resolved=True),
                              "warnings": ghosts + centre.warnings(), "time": time.time()})


async def resolve(request: web.Request) -> web.Response:
    ref = request.match_info["incident"]
    if not request.app[CENTRE_KEY].resolve(ref):
        raise web.HTTPNotFound(text=f"no open incident {ref!r}")
    return web.json_response({"incident": ref, "status": "resolved"})


async def page(_request: web.Request) -> web.Response:
    html = importlib.resources.files("msa.centre").joinpath("static/operator.html").read_text()
    return web.Response(text=html, content_type="text/html")


def make_api_app(centre: Centre, tokens: Sequence[str]) -> web.Application:
    """The dispatch API hosts post to (under /v1, bearer tokens), served over TLS."""
    if not tokens:
        raise ValueError("the dispatch API needs at least one bearer token")
    app = web.Application(middlewares=[_auth], client_max_size=64 * 1024)
    app[CENTRE_KEY] = centre
    app[TOKENS_KEY] = tuple(tokens)
    app.router.add_post("/v1/alarms", create_alarm)
    app.router.add_post("/v1/alarms/{incident}/locations", append_location)
    app.router.add_post("/v1/events", post_event)
    return app


def make_operator_app(centre: Centre, ghost_calls: GhostCalls = tuple) -> web.Application:
    """The operator's page and its state endpoint. It shows case files: serve it on the
    centre's own console (loopback) only, never next to the public API."""
    app = web.Application(client_max_size=4 * 1024)
    app[CENTRE_KEY] = centre
    app[GHOSTS_KEY] = ghost_calls
    app.router.add_get("/", page)
    app.router.add_get("/api/state", state)
    app.router.add_post("/api/incidents/{incident}/resolve", resolve)
    return app
