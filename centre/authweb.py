"""Who is at the operator page: login and logout, the session behind every request, what each
role may reach, and the audit entry every action leaves. (The Host and Origin checks that come
first are centre/web.py's; this adds the session and its anti-forgery token.)

- Logged out, the page is refused everywhere: `/` sends the browser to the login page, every
  other path answers 401. Only the login page and its POST are open.
- A state change (POST) carries the session's own token in CSRF_HEADER, read by the page's
  script from /api/me; the login POST carries the login page's token. A form another site
  posts can set neither (and its Origin is refused before this).
- A login costs one scrypt in a worker thread (two at most at once, one per name at a time:
  parallel guesses on a name queue up behind its lockout; centre/accounts.py).
- The cookie is HttpOnly, SameSite=Strict, Secure (browsers keep a Secure cookie from
  http://127.0.0.1: a loopback origin is potentially trustworthy) and Path=/, for the
  session's lifetime at most.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .accounts import AccountLocked, Accounts, Role
from .audit import AuditLog
from .bodies import read_small, strict_json
from .errors import CentreError
from .ratelog import Throttle
from .sessions import Session, Sessions

log = logging.getLogger("msa.centre.auth")
_throttled = Throttle(log)

COOKIE = "msa_session"
CSRF_HEADER = "X-MSA-CSRF"
LOGIN_PAGE = "/login"
LOGIN_PATH = "/api/login"
LOGOUT_PATH = "/api/logout"
ME_PATH = "/api/me"
PUBLIC = frozenset({LOGIN_PAGE, LOGIN_PATH})
CASE_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR})  # live alarms and their cases
REPORT_ROLES = frozenset({Role.SUPERVISOR})
ADMIN_ROLES = frozenset({Role.ADMINISTRATOR})  # accounts, and nothing else
LOGINS_AT_ONCE = 2  # scrypt takes 32 MiB and ~0.1 s of a core each
SHOWN_KEPT = 1024  # sessions whose shown case files are remembered (see shown())
UNKNOWN_NAME = "(no such account)"  # the audit's actor for a failed login of an unknown name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Workplace:
    """What the operator page needs to know who is there and to record what they do."""

    accounts: Accounts
    sessions: Sessions
    audit: AuditLog
    login_csrf: str  # the login page's token (for the login POST only)
    clock: Callable[[], float] = time.time
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LOGINS_AT_ONCE))
    _names: dict[str, asyncio.Lock] = field(default_factory=dict)
    _shown: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)

    def name_lock(self, name: str) -> asyncio.Lock:
        key = name.lower()[:64]
        lock = self._names.get(key)
        if lock is None:
            if len(self._names) > 4096:  # forget idle locks of names guessed long ago
                for stale in [k for k, v in self._names.items() if not v.locked()]:
                    del self._names[stale]
            lock = self._names[key] = asyncio.Lock()
        return lock

    def first_shown(self, session: Session, refs: list[str]) -> list[str]:
        """Which of `refs` this session has not been shown yet (each is then remembered): a
        live alarm's case file is audited once per session, not at every poll."""
        seen = self._shown.get(session.csrf)
        if seen is None:
            seen = self._shown[session.csrf] = set()
            while len(self._shown) > SHOWN_KEPT:
                self._shown.popitem(last=False)
        new = [r for r in refs if r not in seen]
        seen.update(new)
        return new


WORK_KEY: web.AppKey[Workplace] = web.AppKey("workplace", Workplace)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("session", Session)
_TOKEN_KEY: web.RequestKey[str] = web.RequestKey("session-token", str)


def source(request: web.Request) -> str:
    """Where a request came from, for the audit."""
    return (request.remote or "unknown")[:64]


def audit(request: web.Request, action: str, subject: str = "",
          detail: dict[str, Any] | None = None, actor: str | None = None) -> None:
    """Appends the entry for what the request's session (or `actor`) does, BEFORE it is done:
    an action that cannot be recorded is not done (503)."""
    work = request.app[WORK_KEY]
    try:
        work.audit.append(request[SESSION_KEY].name if actor is None else actor, action,
                          subject, source(request), detail, at=work.clock())
    except CentreError as exc:
        _throttled.warning("audit", "%s refused, not audited: %s", action, exc)
        raise web.HTTPServiceUnavailable(text="the audit log cannot record this now; try"
                                         " again") from None


@web.middleware
async def sessions_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Puts the request's live session under SESSION_KEY, refuses a request without one
    (but for PUBLIC paths), and a change without its token."""
    work = request.app[WORK_KEY]
    token = request.cookies.get(COOKIE, "")
    try:
        session = work.sessions.get(token, work.clock()) if token else None
    except CentreError as exc:
        _throttled.warning("storage", "session not read: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot check sessions now") from None
    if request.method not in ("GET", "HEAD"):
        expected = session.csrf if session is not None else (
            work.login_csrf if request.path == LOGIN_PATH else None)
        given = request.headers.get(CSRF_HEADER, "")
        if expected is None:
            raise web.HTTPUnauthorized(text="log in first")
        if not given.isascii() or not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPForbidden(text="a change needs the operator page's own request")
    if session is not None:
        request[SESSION_KEY] = session
        request[_TOKEN_KEY] = token
    elif request.path not in PUBLIC:
        if request.path == "/":
            raise web.HTTPSeeOther(LOGIN_PAGE)
        raise web.HTTPUnauthorized(text="log in first")
    return await handler(request)


def allow(roles: frozenset[Role]) -> Callable[[Handler], Handler]:
    """A handler only the given roles reach (403 for the others)."""
    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = request.get(SESSION_KEY)
            if session is None:
                raise web.HTTPUnauthorized(text="log in first")
            if session.role not in roles:
                raise web.HTTPForbidden(text=f"not for the {session.role.value} role")
            return await handler(request)
        return guarded
    return wrap


async def json_body(request: web.Request, max_bytes: int = 4096) -> dict[str, Any]:
    """The body as a strict JSON object (400 otherwise)."""
    body = strict_json(await read_small(request, max_bytes))
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, max_len: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise web.HTTPBadRequest(text=f"{name} must be 1 to {max_len} characters")
    return value


async def login(request: web.Request) -> web.Response:
    body = await json_body(request)
    name, password = text_field(body, "name", 64), text_field(body, "password", 1024)
    work = request.app[WORK_KEY]
    try:
        async with work.gate, work.name_lock(name):
            account = await work.accounts.check_async(name, password, work.clock())
        known = account or work.accounts.get(name)
    except AccountLocked as exc:
        audit(request, "login.failed", "", {"locked_until": exc.locked_until},
              actor=_actor(work, name))
        wait_s = max(1, int(exc.locked_until - work.clock()) + 1)
        raise web.HTTPTooManyRequests(text=f"too many failed logins: try again in {wait_s} s",
                                      headers={"Retry-After": str(wait_s)}) from None
    except CentreError as exc:
        _throttled.warning("storage", "login not checked: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot check logins now") from None
    if account is None:
        audit(request, "login.failed", actor=known.name if known else UNKNOWN_NAME)
        raise web.HTTPUnauthorized(text="wrong name or password")
    token, session = work.sessions.open(account, source(request), work.clock())
    request[SESSION_KEY] = session
    audit(request, "login", account.name, {"role": account.role.value})
    response = web.json_response(session.as_json())
    response.set_cookie(COOKIE, token, path="/", httponly=True, secure=True, samesite="Strict",
                        max_age=max(1, int(session.expires_at - work.clock())))
    return response


def _actor(work: Workplace, name: str) -> str:
    # Only an account's own name is recorded: a password typed into the name field is not.
    try:
        known = work.accounts.get(name)
    except CentreError:
        return UNKNOWN_NAME
    return known.name if known else UNKNOWN_NAME


async def logout(request: web.Request) -> web.Response:
    audit(request, "logout", request[SESSION_KEY].name)
    request.app[WORK_KEY].sessions.end(request[_TOKEN_KEY])
    response = web.json_response({"logged_out": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response(request[SESSION_KEY].as_json())


def add_auth_routes(app: web.Application, work: Workplace,
                    login_page: Callable[[web.Request], Awaitable[web.Response]]) -> None:
    """The login page and the session's own endpoints; `sessions_middleware` must be in the
    app's middlewares (after the same-origin check)."""
    app[WORK_KEY] = work
    app.router.add_get(LOGIN_PAGE, login_page)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(LOGOUT_PATH, logout)
    app.router.add_get(ME_PATH, me)
