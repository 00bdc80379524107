"""The reference centre's web side: the dispatch API hosts post to over TLS (create alarm,
append location, events; each host its own bearer token, good for its own buttons only; the
contract is centre/static/openapi.yaml, served at /v1/openapi.yaml), and, apart from it, the
operator's page with live alarms, case files and tracks drawn, fed by a JSON state endpoint.
aiohttp.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.resources
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from msa.wire.api import read_body
from msa.wire.errors import ApiError
from msa.wire.message import INCIDENT_KINDS, MessageKind

from .accountweb import add_account_routes
from .authweb import (CASE_ROLES, SESSION_KEY, WORK_KEY, Workplace,
                      add_auth_routes, allow, audit, sessions_middleware)
from .bodies import BODY_TIMEOUT_S, strict_json
from .caseweb import CaseDesk, add_case_routes
from .core import Centre, Inbound, Ingested, Verdict
from .errors import CentreError
from .hosts import Host, Hosts
from .proxweb import (PROX_ACK_KEY, PROX_ACK_PATH, PROXIMITY_KEY, ProximityAck, ProximityViews,
                      acknowledge, no_ack, no_views, read_ack, views)
from .pushweb import Changes, add_push_route
from .ratelog import Throttle
from .sms import GhostCall
from .tagweb import TAG_PATHS

log = logging.getLogger("msa.centre.web")
_throttled = Throttle(log)

CENTRE_KEY: web.AppKey[Centre] = web.AppKey("centre", Centre)
HOSTS_KEY: web.AppKey[Hosts] = web.AppKey("hosts", Hosts)
HOST_KEY: web.RequestKey[Host] = web.RequestKey("host", Host)  # who sent the request
GhostCalls = Callable[[], Sequence[GhostCall]]
GHOSTS_KEY: web.AppKey[GhostCalls] = web.AppKey("ghosts")
CSP_KEY: web.AppKey[str] = web.AppKey("csp", str)

_EVENT_KINDS = frozenset({MessageKind.LOW_BATTERY, MessageKind.HEARTBEAT, MessageKind.BOOT})
MIN_TOKEN_LEN = 16  # characters: a bearer token shorter than this is guessable, not a secret
_TOKEN = re.compile(r"[!-~]{%d,512}" % MIN_TOKEN_LEN, re.ASCII)  # printable ASCII, no space
OPENAPI_PATH = "/v1/openapi.yaml"  # the API's contract (OpenAPI 3), served without a token
OPERATOR_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _bad(detail: str) -> web.HTTPException:
    return web.HTTPBadRequest(text=detail[:200])


def _inbound(request: web.Request, body: Any, allowed: frozenset[MessageKind]) -> Inbound:
    """A posted body as the centre's message; raises 400 naming what is wrong, 403 for a
    button that is not the sending host's own."""
    try:
        p = read_body(body, allowed)
    except ApiError as exc:
        raise _bad(str(exc)) from None
    if not request.app[HOSTS_KEY].may_send(request[HOST_KEY], p.button_id):
        _throttled.warning("foreign", "host %s refused: button %#010x is not its own",
                           request[HOST_KEY].name, p.button_id)
        raise web.HTTPForbidden(text="this host's token is not good for this button")
    return Inbound(channel="https", key=p.key, kind=p.kind, button_id=p.button_id,
                   frame=p.frame, fix=p.fix, incident=p.incident, update_no=p.update_no,
                   pressed_at=p.pressed_at, received_at=time.time(), call=p.call)


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
    # The Bearer scheme (RFC 6750) and nothing else: a bare token, Basic or a token in the
    # query string is refused like a wrong one, and so is one too short to be a secret. The
    # token names the host (its SHA-256 is looked up: no comparison of secrets to time).
    if request.path == OPENAPI_PATH or request.path in TAG_PATHS:
        # The contract is public; a tag presents its own secret (centre/tagweb.py).
        return await handler(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    host = None
    if scheme.lower() == "bearer" and _TOKEN.fullmatch(given):
        try:
            host = request.app[HOSTS_KEY].by_token(given)
        except CentreError as exc:
            _throttled.warning("storage", "token not checked: %s", exc)
            raise web.HTTPServiceUnavailable(text="the centre cannot check tokens now; try"
                                             " again") from None
    if host is None:
        raise web.HTTPUnauthorized(text="bad or missing bearer token",
                                   headers={"WWW-Authenticate": "Bearer"})
    request[HOST_KEY] = host
    try:
        return await handler(request)
    except CentreError as exc:  # the centre's own storage failed: the host tries again
        _throttled.warning("storage", "request not stored: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot store this now; try again"
                                         ) from None


async def _json(request: web.Request) -> Any:
    # aiohttp's client_max_size (64 KiB) bounds the size; the deadline is ours.
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the body did not arrive in time") from None
    return strict_json(raw)


async def create_alarm(request: web.Request) -> web.Response:
    m = _inbound(request, await _json(request), INCIDENT_KINDS)
    return _answer(await request.app[CENTRE_KEY].submit(m), created=True)


async def append_location(request: web.Request) -> web.Response:
    return await _append(request, MessageKind.LOCATION)


async def append_call(request: web.Request) -> web.Response:
    return await _append(request, MessageKind.CALL)


async def _append(request: web.Request, kind: MessageKind) -> web.Response:
    """An update of an open incident (a location or a call event), named by the URL."""
    body = await _json(request)
    centre = request.app[CENTRE_KEY]
    named = centre.incident_key(request.match_info["incident"])  # a reference or a key
    # Another host's incident is as unknown as one that does not exist (no probing).
    if named is None or not request.app[HOSTS_KEY].may_send(request[HOST_KEY],
                                                             int(named[:8], 16)):
        raise web.HTTPNotFound(text="no such incident")
    if isinstance(body, dict) and not body.get("incident"):
        body["incident"] = named
    m = _inbound(request, body, frozenset({kind}))
    if m.incident != named:
        raise _bad("the body names another incident than the URL")
    return _answer(await centre.submit(m), created=False)


async def post_event(request: web.Request) -> web.Response:
    m = _inbound(request, await _json(request), _EVENT_KINDS)
    return _answer(await request.app[CENTRE_KEY].submit(m), created=False)


RESOLVED_SHOWN = 50  # resolved incidents listed (as summaries: opening one is audited)


@allow(CASE_ROLES)
async def state(request: web.Request) -> web.Response:
    """Live alarms with their case files and tracks (the first time a session is shown one,
    the audit records a view), the latest resolved ones as summaries, warnings, proximity."""
    centre = request.app[CENTRE_KEY]
    live = centre.incidents()
    for ref in request.app[WORK_KEY].first_shown(request[SESSION_KEY],
                                                 [str(i["incident"]) for i in live]):
        audit(request, "case.view", ref, {"via": "live alarm"})
    done = centre.resolved(RESOLVED_SHOWN)
    ghosts = []
    for g in request.app[GHOSTS_KEY]():
        # A ghost call is known by its sender only: the number registered for a case's host,
        # or an unknown one (shown, but expiring and capped: see SmsInbox).
        ghosts.append({"button_id": None, "case_ref": g.case_ref,
                       "warning": "unverified SMS ghost call" + (
                           "" if g.case_ref else f" from an unknown number ({g.sender[:20]})"),
                       "received_at": g.received_at,
                       "location": None if g.fix is None else
                       {"lat": g.fix.lat, "lon": g.fix.lon, "accuracy_m": g.fix.accuracy_m}})
    shown, withheld = _drawn(views(request.app))
    for case_ref in request.app[WORK_KEY].first_shown(
            request[SESSION_KEY], sorted({f"proximity:{v['case_ref']}" for v in shown or ()})):
        audit(request, "case.view", case_ref.removeprefix("proximity:"), {"via": "proximity"})
    return web.json_response({"incidents": live + done,
                              "warnings": ghosts + centre.warnings(),
                              "proximity": shown, "proximity_withheld": withheld,
                              "time": time.time()})


CLEAR_SENT = 20  # clear proximity pairs sent to the page (it draws that many: MAX_CLEAR_DRAWN)


def _drawn(found: list[dict[str, object]] | None) -> tuple[list[dict[str, object]] | None,
                                                             int]:
    """The proximity views the page draws: every alert and pre-alert, and the first
    CLEAR_SENT others by case; how many others are withheld (their positions stay here)."""
    if found is None:
        return None, 0
    urgent = [v for v in found if v.get("state") in ("alert", "pre-alert")]
    rest = sorted((v for v in found if v.get("state") not in ("alert", "pre-alert")),
                  key=lambda v: str(v.get("case_ref")))
    return urgent + rest[:CLEAR_SENT], max(0, len(rest) - CLEAR_SENT)


@allow(CASE_ROLES)
async def resolve(request: web.Request) -> web.Response:
    ref = request.match_info["incident"]
    centre = request.app[CENTRE_KEY]
    if centre.incident_id(ref) is None:
        raise web.HTTPNotFound(text="no such open incident")
    audit(request, "incident.resolve", ref)
    try:
        changed = request.app[CENTRE_KEY].resolve(ref)
    except CentreError as exc:
        _throttled.warning("storage", "resolve not stored: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot store this now") from None
    if not changed:
        raise web.HTTPNotFound(text="no such open incident")
    return web.json_response({"incident": ref, "status": "resolved"})


@allow(CASE_ROLES)
async def proximity_ack(request: web.Request) -> web.Response:
    body = await _json(request)
    case_ref, tag_id, zone = read_ack(body)
    audit(request, "proximity.ack", case_ref, {"tag_id": tag_id, "zone": zone})
    return acknowledge(request.app, body)


def _static(name: str) -> str:
    return importlib.resources.files("msa.centre").joinpath(f"static/{name}").read_text()


async def page(_request: web.Request) -> web.Response:
    # Logged in (else the session layer sent the browser to the login page): the page's
    # script learns who it is, and its token, from /api/me.
    return web.Response(text=_static("operator.html"), content_type="text/html",
                        headers={"Cache-Control": "no-store"})


async def login_page(request: web.Request) -> web.Response:
    # The login token rides in the page: only a reader of this origin (the Host check stops
    # DNS rebinding) learns it, and the script sends it back in CSRF_HEADER.
    html = _static("login.html").replace(
        '<meta name="msa-csrf" content="">',
        f'<meta name="msa-csrf" content="{request.app[WORK_KEY].login_csrf}">')
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


async def openapi(_request: web.Request) -> web.Response:
    text = importlib.resources.files("msa.centre").joinpath("static/openapi.yaml").read_text()
    return web.Response(text=text, content_type="application/yaml")


def make_api_app(centre: Centre, hosts: Hosts) -> web.Application:
    """The dispatch API hosts post to (under /v1, each host its own bearer token), served over
    TLS; its contract at OPENAPI_PATH."""
    app = web.Application(middlewares=[_auth], client_max_size=64 * 1024)
    app[CENTRE_KEY] = centre
    app[HOSTS_KEY] = hosts
    app.router.add_post("/v1/alarms", create_alarm)
    app.router.add_post("/v1/alarms/{incident}/locations", append_location)
    app.router.add_post("/v1/alarms/{incident}/calls", append_call)
    app.router.add_post("/v1/events", post_event)
    app.router.add_get(OPENAPI_PATH, openapi)
    return app


def _csp(*pages: str) -> str:
    """The pages' Content-Security-Policy: their own inline scripts and styles by hash,
    requests to their own origin only, never framed (clickjacking), nothing else from
    anywhere."""
    hashes = {tag: " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for html in pages for body in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S))
        for tag in ("script", "style")}
    return (f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']};"
            " connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none';"
            " frame-ancestors 'none'")


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The operator's page answers only to its own name and origin: a Host of loopback and
    the port it listens on (another name is DNS rebinding), an Origin, if any, of the same,
    and a state change only with its Origin from the same site (its token is checked next,
    by centre/authweb.py)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise web.HTTPBadRequest(text="no socket")
    names = {f"{host}:{sockname[1]}" for host in OPERATOR_HOSTS}
    if request.headers.get("Host", "").lower() not in names:
        raise web.HTTPMisdirectedRequest(text="this page answers to 127.0.0.1 only")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{n}" for n in names}:
        raise web.HTTPForbidden(text="cross-origin request refused")
    if request.method not in ("GET", "HEAD") and (
            origin is None or request.headers.get("Sec-Fetch-Site", "same-origin")
            != "same-origin"):
        raise web.HTTPForbidden(text="a change needs the operator page's own request")
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = request.app[CSP_KEY]
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"


def make_operator_app(centre: Centre, work: Workplace, desk: CaseDesk,
                      ghost_calls: GhostCalls = tuple, *,
                      proximity: ProximityViews = no_views,
                      on_proximity_ack: ProximityAck = no_ack,
                      changes: Changes | None = None) -> web.Application:
    """The operator's page and its state endpoint, behind a login (centre/authweb.py). It
    shows case files: serve it on the centre's own console (loopback) only, never next to the
    public API. `proximity` gives the proximity views for the state (centre/proxweb.py),
    `on_proximity_ack(case_ref, tag_id, zone)` records an operator's acknowledgement and says
    whether the view exists; `changes` tells the page when to read the state again
    (centre/pushweb.py; None: moved by this centre's own records only)."""
    app = web.Application(middlewares=[_same_origin, sessions_middleware],
                          client_max_size=4 * 1024)
    app[CENTRE_KEY] = centre
    app[GHOSTS_KEY] = ghost_calls
    app[PROXIMITY_KEY] = proximity
    app[PROX_ACK_KEY] = on_proximity_ack
    app[CSP_KEY] = _csp(_static("operator.html"), _static("login.html"))
    app.on_response_prepare.append(_security_headers)
    add_auth_routes(app, work, login_page)
    add_account_routes(app)
    add_case_routes(app, desk)
    app.router.add_get("/", page)
    app.router.add_get("/api/state", state)
    app.router.add_post("/api/incidents/{incident}/resolve", resolve)
    app.router.add_post(PROX_ACK_PATH, proximity_ack)
    if changes is None:
        changes = Changes()
        centre.listeners.append(lambda _kind, _data: changes.bump())
    add_push_route(app, changes)
    return app
