"""Logins, sessions, roles, CSRF and lockout (issue 15) at their edges, for the mutation runs of
centre/sessions.py, centre/authweb.py and centre/accounts.py (docs/testing.md): the real classes
on a registry in tmp_path, and a real started centre over HTTP. Each test asserts exact values:
what a session allows and until when, the statuses, the cookie's attributes, what the audit log
and the database hold."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import time
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from msa.centre import accounts as acc
from msa.centre.accounts import AccountInputError, AccountLocked, Accounts, Role
from msa.centre.authweb import (COOKIE, CSRF_HEADER, LOGIN_PAGE, LOGIN_PATH, LOGOUT_PATH, ME_PATH,
                                SESSION_KEY, SHOWN_KEPT, UNKNOWN_NAME, Handler, Workplace, allow)
from msa.centre.errors import RegistryError
from msa.centre.registry import Registry
from msa.centre.server import RunningCentre
from msa.centre.sessions import IDLE_S, SESSION_S, TOUCH_S, Session, Sessions

from staff import add_account, cheap, login  # noqa: F401  (cheap: a fixture)
from staff import operator_centre as centre

PASSWORD = "correct horse battery"
OTHER = "another long passphrase"
T0 = 1_800_000_000.0


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry.db")


@pytest.fixture
def accounts(registry: Registry, cheap: None) -> Accounts:
    return Accounts(registry)


def session_rows(path: str) -> list[tuple[object, ...]]:
    """The sessions table as SQLite holds it, read past the module."""
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT name, role, csrf, created_at, expires_at, last_seen,"
                               " source FROM sessions ORDER BY created_at"))


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


# --- centre/sessions.py: the real Sessions on a registry in tmp_path ---------------------------


def test_a_session_holds_what_it_was_opened_with(registry: Registry,
                                                 accounts: Accounts) -> None:
    account = accounts.add("olga", Role.SUPERVISOR, PASSWORD)
    sessions = Sessions(registry)
    assert (sessions.session_s, sessions.idle_s) == (SESSION_S, IDLE_S) == (43200.0, 1800.0)
    token, session = sessions.open(account, "203.0.113.9", T0)
    assert session == Session("olga", Role.SUPERVISOR, session.csrf, T0, T0 + SESSION_S,
                              "203.0.113.9")
    # 256 bits of cookie token, 192 of anti-forgery token, each new for every session.
    assert len(unb64(token)) == 32 and len(unb64(session.csrf)) == 24
    token2, session2 = sessions.open(account, "203.0.113.9", T0)
    assert token2 != token and session2.csrf != session.csrf
    assert sessions.get(token, T0 + 1) == session  # read back field for field
    assert session.as_json() == {"name": "olga", "role": "supervisor", "csrf": session.csrf,
                                 "expires_at": T0 + SESSION_S}
    assert session_rows(registry.path)[0] == ("olga", "supervisor", session.csrf, T0,
                                              T0 + SESSION_S, T0, "203.0.113.9")
    # Only the token's hash is stored: the database opens no session.
    with sqlite3.connect(registry.path) as db:
        (stored,), _ = db.execute("SELECT token_sha256 FROM sessions ORDER BY created_at")
    assert token.encode() not in stored and len(stored) == 32


def test_open_without_a_time_uses_the_clock_and_cuts_the_source(registry: Registry,
                                                                accounts: Accounts) -> None:
    account = accounts.add("olga", "operator", PASSWORD)
    sessions = Sessions(registry, session_s=100.0, idle_s=10.0)
    token, session = sessions.open(account, "s" * 100)
    assert session.source == "s" * 64
    assert session.expires_at == session.created_at + 100.0
    assert abs(session.created_at - time.time()) < 60
    assert sessions.get(token) == session  # without a time: the clock too
    assert session_rows(registry.path)[0][6] == "s" * 64


def test_no_session_for_an_account_out_of_service(registry: Registry,
                                                  accounts: Accounts) -> None:
    account = accounts.add("olga", "operator", PASSWORD)
    accounts.remove("olga")
    with pytest.raises(ValueError, match="'olga' is not in service"):
        Sessions(registry).open(account, "x", T0)
    assert session_rows(registry.path) == []


def test_expiry_and_idleness_at_their_edges(registry: Registry, accounts: Accounts) -> None:
    account = accounts.add("olga", "operator", PASSWORD)
    sessions = Sessions(registry, session_s=1000.0, idle_s=100.0)
    # Idle: alive until last_seen + idle_s, out at it exactly, and gone for good then.
    token, _ = sessions.open(account, "x", T0)
    assert sessions.get(token, T0 + 99.999) is not None  # touched: last_seen = T0 + 99.999
    token, _ = sessions.open(account, "x", T0)
    assert sessions.get(token, T0 + 100.0) is None
    assert sessions.get(token, T0 + 1) is None  # deleted, not merely out of time
    # Expiry: kept alive by a request every 70 s, out at created + session_s exactly.
    token, _ = sessions.open(account, "x", T0)
    for t in range(70, 1000, 70):
        assert sessions.get(token, T0 + t) is not None, t
    assert sessions.get(token, T0 + 999.999) is not None
    assert sessions.get(token, T0 + 1000.0) is None
    assert sessions.get(token, T0 + 999.0) is None


def test_last_seen_is_written_once_a_minute(registry: Registry, accounts: Accounts) -> None:
    account = accounts.add("olga", "operator", PASSWORD)
    assert TOUCH_S == 60.0
    sessions = Sessions(registry, session_s=10_000.0, idle_s=100.0)
    token, _ = sessions.open(account, "x", T0)
    assert sessions.get(token, T0 + 59.9) is not None  # too soon to write: last_seen stays T0
    assert session_rows(registry.path)[0][5] == T0
    assert sessions.get(token, T0 + 100.0) is None  # so idle from T0
    token, _ = sessions.open(account, "x", T0)
    assert sessions.get(token, T0 + 60.0) is not None  # a minute: written
    assert [r[5] for r in session_rows(registry.path)] == [T0 + 60.0]
    assert sessions.get(token, T0 + 159.9) is not None  # idle from T0 + 60, so still in


def test_opening_drops_every_dead_session_and_keeps_live_ones(registry: Registry,
                                                              accounts: Accounts) -> None:
    olga = accounts.add("olga", "operator", PASSWORD)
    ida = accounts.add("ida", "operator", PASSWORD)
    sessions = Sessions(registry, session_s=1000.0, idle_s=600.0)
    expired, _ = sessions.open(olga, "x", T0 - 1000.0)  # out at T0 exactly...
    assert sessions.get(expired, T0 - 500.0) is not None  # ...but not idle then
    idle, _ = sessions.open(ida, "x", T0 - 600.0)  # idle from T0 exactly, not yet expired
    live, _ = sessions.open(olga, "x", T0 - 599.0)
    assert len(session_rows(registry.path)) == 3
    fresh, _ = sessions.open(ida, "x", T0)
    assert [(r[0], r[3]) for r in session_rows(registry.path)] == [("olga", T0 - 599.0),
                                                                    ("ida", T0)]
    assert sessions.get(live, T0) is not None and sessions.get(fresh, T0) is not None
    assert sessions.get(expired, T0 - 400) is None and sessions.get(idle, T0 - 300) is None


@pytest.mark.parametrize("change", ["password", "role", "remove"])
def test_an_account_change_ends_its_sessions_only(registry: Registry, accounts: Accounts,
                                                  change: str) -> None:
    olga = accounts.add("olga", "operator", PASSWORD)
    ida = accounts.add("ida", "operator", PASSWORD)
    sessions = Sessions(registry)
    mine, _ = sessions.open(olga, "x", T0)
    other, kept = sessions.open(ida, "x", T0)
    {"password": lambda: accounts.set_password("olga", OTHER),
     "role": lambda: accounts.set_role("olga", "supervisor"),
     "remove": lambda: accounts.remove("olga")}[change]()
    assert sessions.get(mine, T0 + 1) is None
    assert [r[0] for r in session_rows(registry.path)] == ["ida"]  # the dead one deleted
    assert sessions.get(other, T0 + 1) == kept


def test_tokens_that_are_no_session(registry: Registry, accounts: Accounts) -> None:
    account = accounts.add("olga", "operator", PASSWORD)
    sessions = Sessions(registry)
    token, session = sessions.open(account, "x", T0)
    for bad in ("", "x", token[:-1], token + "x", token.upper(), "é" + token[1:], "a" * 129):
        assert sessions.get(bad, T0) is None, bad
    assert sessions.get(token, T0) == session


def test_logout_and_end_all(registry: Registry, accounts: Accounts) -> None:
    olga = accounts.add("olga", "operator", PASSWORD)
    ida = accounts.add("ida", "operator", PASSWORD)
    sessions = Sessions(registry)
    first, _ = sessions.open(olga, "x", T0)
    assert sessions.end(first) is True
    assert sessions.end(first) is False and sessions.end("never-a-token") is False
    assert sessions.get(first, T0) is None
    a, _ = sessions.open(olga, "x", T0)
    b, _ = sessions.open(olga, "y", T0)
    c, kept = sessions.open(ida, "x", T0)
    assert sessions.end_all("OLGA") == 2  # the name whatever its case
    assert sessions.end_all("olga") == 0
    assert sessions.get(a, T0) is None and sessions.get(b, T0) is None
    assert sessions.get(c, T0) == kept


# --- centre/authweb.py: a real started centre over HTTP -----------------------------------------


def fixed_clock(work: Workplace) -> float:
    """Stops the workplace's clock (sessions, lockouts, audit times) at a whole second."""
    now = float(int(time.time()))
    work.clock = lambda: now
    return now


async def post_login(s: aiohttp.ClientSession, base: str, work: Workplace, body: object,
                     headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """POST /api/login with the login page's token, as the page's script sends it."""
    async with s.post(base + LOGIN_PATH, json=body, headers=headers or {
            "Origin": base, CSRF_HEADER: work.login_csrf}) as r:
        await r.read()
        return r


def set_cookie(r: aiohttp.ClientResponse) -> SimpleCookie:
    (raw,) = r.headers.getall("Set-Cookie")
    jar: SimpleCookie = SimpleCookie()
    jar.load(raw)
    return jar


def audited(running: RunningCentre) -> list[tuple[object, ...]]:
    return [(e.actor, e.action, e.subject, e.source, e.detail, e.at)
            for e in running.audit.entries()]


def test_a_login_answers_with_its_session_and_a_strict_cookie(tmp_path: Path,
                                                             cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            now = fixed_clock(work)
            password = add_account(work, "olga", "supervisor")
            r = await post_login(s, base, work, {"name": "OLGA", "password": password})
            assert r.status == 200
            me = await r.json()
            assert me == {"name": "olga", "role": "supervisor", "csrf": me["csrf"],
                          "expires_at": now + SESSION_S}
            cookie = set_cookie(r)[COOKIE]
            assert (cookie["path"], cookie["httponly"], cookie["secure"],
                    cookie["samesite"].lower(), cookie["max-age"]) == (
                        "/", True, True, "strict", str(int(SESSION_S)))
            assert audited(running) == [("olga", "login", "olga", "127.0.0.1",
                                         {"role": "supervisor"}, now)]
            own = {"Cookie": f"{COOKIE}={cookie.value}", CSRF_HEADER: str(me["csrf"]),
                   "Origin": base}
            async with s.get(base + ME_PATH, headers=own) as r:
                assert (r.status, await r.json()) == (200, me)
            # A session shorter than a second still gets a cookie for one second, not none.
            work.sessions.session_s = 0.5
            r = await post_login(s, base, work, {"name": "olga", "password": password})
            assert r.status == 200 and set_cookie(r)[COOKIE]["max-age"] == "1"
    asyncio.run(body())


def test_logout_ends_the_session_audited_and_forgets_the_cookie(tmp_path: Path,
                                                               cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            now = fixed_clock(work)
            own = (await login(s, base, "olga", add_account(work, "olga", "operator"))).headers
            other = (await login(s, base, "ida", add_account(work, "ida", "operator"))).headers
            async with s.post(base + LOGOUT_PATH, headers=own) as r:
                assert (r.status, await r.json()) == (200, {"logged_out": True})
                cookie = set_cookie(r)[COOKIE]
            assert (cookie.value, cookie["path"], cookie["max-age"]) == ("", "/", "0")
            assert audited(running)[-1] == ("olga", "logout", "olga", "127.0.0.1", {}, now)
            for headers, status in ((own, 401), (other, 200)):  # only her own session ended
                async with s.get(base + ME_PATH, headers=headers) as r:
                    assert r.status == status
    asyncio.run(body())


def test_which_token_a_change_needs(tmp_path: Path, cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            password = add_account(work, "olga", "operator")
            own = (await login(s, base, "olga", password)).headers
            cookie_only = {"Cookie": own["Cookie"]}
            # Reading needs no token: GET and HEAD with the cookie alone.
            async with s.get(base + "/api/state", headers=cookie_only) as r:
                assert r.status == 200
            async with s.head(base + ME_PATH, headers=cookie_only) as r:
                assert r.status == 200
            # A change needs the session's own token: not none, not another, not the login
            # page's (a logged-in browser logs in again with its session's token).
            for token, status in ((None, 403), ("", 403), ("x" * 32, 403),
                                  (work.login_csrf, 403), (own[CSRF_HEADER], 200)):
                headers = {"Cookie": own["Cookie"], "Origin": base} | (
                    {CSRF_HEADER: token} if token is not None else {})
                r = await post_login(s, base, work, {"name": "olga", "password": password},
                                     headers)
                assert r.status == status, token
            # Without a session, only the login POST is open to a change, with the page's
            # token; elsewhere it is refused as logged out, the public login page included.
            for path in (LOGOUT_PATH, "/", LOGIN_PAGE, "/api/accounts"):
                async with s.post(base + path, json={}, allow_redirects=False, headers={
                        "Origin": base, CSRF_HEADER: work.login_csrf}) as r:
                    assert r.status == 401, path
            async with s.get(base + LOGIN_PAGE) as r:
                assert r.status == 200
            # A role's refusal says which role it is refused to (the page shows it).
            async with s.get(base + "/api/accounts", headers=own) as r:
                assert (r.status, await r.text()) == (403, "not for the operator role")
            async with s.get(base + "/", allow_redirects=False) as r:
                assert (r.status, r.headers["Location"]) == (303, LOGIN_PAGE)
    asyncio.run(body())


def test_a_locked_name_is_told_when_to_come_back_and_audited(tmp_path: Path,
                                                            cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            now = fixed_clock(work)
            password = add_account(work, "olga", "operator")
            statuses = []
            for n in range(acc.FAILURES_BEFORE_LOCK):  # typed in capitals: still her account
                r = await post_login(s, base, work, {"name": "OLGA", "password": f"wrong-{n}-xyz"})
                statuses.append(r.status)
            assert statuses == [401] * acc.FAILURES_BEFORE_LOCK
            # Locked for 1 s from `now`: come back in 2 s (whole seconds, rounded up past it).
            r = await post_login(s, base, work, {"name": "Olga", "password": password})
            assert (r.status, r.headers["Retry-After"]) == (429, "2")
            # What the login page shows her:
            assert await r.text() == "too many failed logins: try again in 2 s"
            work.clock = lambda: now + 0.5
            r = await post_login(s, base, work, {"name": "olga", "password": password})
            assert (r.status, r.headers["Retry-After"]) == (429, "1")
            failed: list[tuple[object, ...]] = [("olga", "login.failed", "", "127.0.0.1", {}, now)]
            locked = [("olga", "login.failed", "", "127.0.0.1", {"locked_until": now + 1.0},
                       at) for at in (now, now + 0.5)]
            assert audited(running) == failed * acc.FAILURES_BEFORE_LOCK + locked
            # An unknown name locks out alike, and its audit entry does not hold the name.
            work.clock = lambda: now
            for _ in range(acc.FAILURES_BEFORE_LOCK + 1):
                r = await post_login(s, base, work, {"name": "hunter2x", "password": "x" * 12})
            assert r.status == 429
            assert [e[0] for e in audited(running)[-6:]] == [UNKNOWN_NAME] * 6
            # A name whose account cannot be read while it is locked: recorded as unknown.
            with sqlite3.connect(running.centre.registry.path) as db:
                db.execute("ALTER TABLE accounts RENAME TO accounts_away")
            r = await post_login(s, base, work, {"name": "olga", "password": password})
            assert r.status == 429 and audited(running)[-1][:2] == (UNKNOWN_NAME, "login.failed")
            assert running.audit.verify().ok
    asyncio.run(body())


def test_storage_failures_refuse_with_503(tmp_path: Path, cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            password = add_account(work, "olga", "operator")
            own = (await login(s, base, "olga", password)).headers
            registry = running.centre.registry.path
            # The sessions table unreadable: every request with a cookie is refused, 503.
            with sqlite3.connect(registry) as db:
                db.execute("ALTER TABLE sessions RENAME TO sessions_away")
            async with s.get(base + "/api/state", headers=own) as r:
                assert (r.status, await r.text()) == (503, "the centre cannot check sessions"
                                                           " now")
            async with s.get(base + "/api/state") as r:
                assert r.status == 401  # no cookie: nothing to read, logged out
            with sqlite3.connect(registry) as db:
                db.execute("ALTER TABLE sessions_away RENAME TO sessions")
            # A stored hash that cannot be read: the login cannot be checked, 503, no session.
            with sqlite3.connect(registry) as db:
                db.execute("UPDATE accounts SET password_hash = 'md5$x' WHERE name = 'olga'")
            r = await post_login(s, base, work, {"name": "olga", "password": password})
            assert r.status == 503 and "Set-Cookie" not in r.headers
            assert await r.text() == "the centre cannot check logins now"
            assert [e[1] for e in audited(running)] == ["login"]  # the first login only
    asyncio.run(body())


def test_what_cannot_be_audited_is_not_done(tmp_path: Path, cheap: None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            password = add_account(work, "olga", "operator")
            own = (await login(s, base, "olga", password)).headers
            with sqlite3.connect(running.audit.path) as db:
                db.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries"
                           " BEGIN SELECT RAISE(ABORT, 'disk full'); END")
            refused = (503, "the audit log cannot record this now; try again")
            async with s.post(base + LOGOUT_PATH, headers=own) as r:
                assert (r.status, await r.text()) == refused
            async with s.get(base + ME_PATH, headers=own) as r:
                assert r.status == 200  # not logged out: the logout was not recorded
            r = await post_login(s, base, work, {"name": "olga", "password": password})
            assert (r.status, await r.text()) == refused and "Set-Cookie" not in r.headers
            r = await post_login(s, base, work, {"name": "olga", "password": "wrong-password"})
            assert (r.status, await r.text()) == refused
            with sqlite3.connect(running.audit.path) as db:
                db.execute("DROP TRIGGER refuse")
            assert [e[1] for e in audited(running)] == ["login"]
    asyncio.run(body())


WRONG = "wrong name or password"
NAME_LEN = "name must be 1 to 64 characters"
PASSWORD_LEN = "password must be 1 to 1024 characters"


@pytest.mark.parametrize("payload, status, text", [
    ({"name": "n" * 64, "password": "p" * 1024}, 401, WRONG),  # the longest of each: checked
    ({"name": "n", "password": "p"}, 401, WRONG),  # and the shortest
    ({"name": "n" * 65, "password": "p" * 12}, 400, NAME_LEN),
    ({"name": "", "password": "p" * 12}, 400, NAME_LEN),
    ({"name": "olga", "password": ""}, 400, PASSWORD_LEN),
    ({"name": "olga", "password": "p" * 1025}, 400, PASSWORD_LEN),
    ({"name": 7, "password": "p" * 12}, 400, NAME_LEN),
    ({"password": "p" * 12}, 400, NAME_LEN),
    (["olga", "p" * 12], 400, "the body must be a JSON object"),
    ({"name": "olga", "password": "p" * 12, "pad": "x" * (4096 - 55)}, 401, WRONG),  # 4096 B
    ({"name": "olga", "password": "p" * 12, "pad": "x" * (4097 - 55)}, 413, None),
])
def test_login_body_bounds(tmp_path: Path, cheap: None, payload: object, status: int,
                           text: str | None) -> None:
    async def body() -> None:
        async with centre(tmp_path) as (running, base), aiohttp.ClientSession() as s:
            if isinstance(payload, dict) and "pad" in payload:
                assert len(json.dumps(payload).encode()) == (4096 if status == 401 else 4097)
            r = await post_login(s, base, running.work, payload)
            assert r.status == status
            if text is not None:
                assert await r.text() == text
    asyncio.run(body())


def test_name_locks_are_one_per_name_and_forgotten_when_idle() -> None:
    async def body() -> None:
        work = Workplace(None, None, None, "t")  # type: ignore[arg-type]
        first = work.name_lock("Olga")
        assert work.name_lock("OLGA") is first and work.name_lock("olga2") is not first
        await first.acquire()  # a login of hers is under way
        for n in range(4096 - 2):
            work.name_lock(f"guess{n}")
        assert len(work._names) == 4096
        kept = work.name_lock("guess0")
        assert kept is work.name_lock("guess0") and len(work._names) == 4096
        work.name_lock("one-more")  # 4097 locks: not yet over the limit when it was made
        assert len(work._names) == 4097
        work.name_lock("and-another")  # over it: the idle ones are forgotten, hers is kept
        assert len(work._names) == 2 and work.name_lock("olga") is first
        assert work.name_lock("guess0") is not kept
    asyncio.run(body())


def test_shown_case_files_are_remembered_for_the_latest_sessions() -> None:
    work = Workplace(None, None, None, "t")  # type: ignore[arg-type]
    sessions = [Session("olga", Role.OPERATOR, f"csrf{n}", T0, T0 + 1, "x")
                for n in range(SHOWN_KEPT + 1)]
    assert work.first_shown(sessions[0], ["INC-1", "INC-2"]) == ["INC-1", "INC-2"]
    assert work.first_shown(sessions[0], ["INC-2", "INC-3"]) == ["INC-3"]
    assert work.first_shown(sessions[1], ["INC-1"]) == ["INC-1"]  # each session its own
    for session in sessions[2:SHOWN_KEPT]:
        work.first_shown(session, ["INC-1"])
    assert work.first_shown(sessions[0], ["INC-1"]) == []  # 1024 sessions: all kept
    work.first_shown(sessions[SHOWN_KEPT], ["INC-1"])  # 1025: the first one is forgotten
    assert work.first_shown(sessions[SHOWN_KEPT], ["INC-1"]) == []
    assert work.first_shown(sessions[2], ["INC-1"]) == []
    assert work.first_shown(sessions[0], ["INC-1"]) == ["INC-1"]  # shown again, once
    assert work.first_shown(sessions[0], ["INC-1"]) == []


# --- centre/accounts.py: the real Accounts on a registry in tmp_path ----------------------------


def failure_rows(path: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT name, failures, locked_until, last_at FROM login_failures"
                               " ORDER BY name"))


def test_passwords_at_the_length_bounds_and_any_unicode(accounts: Accounts) -> None:
    accounts.add("twelve", "operator", "p" * 12)
    assert accounts.check("twelve", "p" * 12, T0) is not None
    assert accounts.check("twelve", "p" * 11, T0) is None
    # A lone surrogate (JSON may carry "\ud800") is a password like any other.
    odd = "pass\ud800word-éß"
    accounts.add("odd", "operator", odd)
    assert accounts.check("odd", odd, T0) is not None
    assert accounts.check("odd", odd.replace("\ud800", "\ud801"), T0) is None
    # A hash of a password shorter than today's minimum (written before the rule) does not
    # let that password in, though it matches.
    with sqlite3.connect(accounts.path) as db:
        db.execute("UPDATE accounts SET password_hash = ? WHERE name = 'twelve'",
                   (acc.hash_password("p" * 11),))
    assert accounts.check("twelve", "p" * 11, T0) is None


def test_a_stored_hash_has_its_salt_and_key_lengths(accounts: Accounts) -> None:
    accounts.add("olga", "operator", PASSWORD)
    with sqlite3.connect(accounts.path) as db:
        (stored,), = db.execute("SELECT password_hash FROM accounts")
    _n, _r, _p, salt, key = acc._parse(stored)
    assert (len(salt), len(key)) == (acc.SALT_BYTES, acc.KEY_BYTES) == (16, 32)


@pytest.mark.parametrize("stored, ok", [
    ("scrypt$2$1$1$AAAA$AAAA", True),
    ("scrypt$1048576$15$1$AAAA$AAAA", True),  # the most memory it computes (not here)
    ("scrypt$2$32$16$AAAA$AAAA", True),
    ("scrypt$1048576$16$1$AAAA$AAAA", False),  # 2 GiB and a little: more than scrypt takes
    ("scrypt$1048576$32$16$AAAA$AAAA", False),
    ("scrypt$1048576$16$16$AAAA$AAAA", False),
    ("scrypt$1$8$1$AAAA$AAAA", False),
    ("scrypt$1000$8$1$AAAA$AAAA", False),  # scrypt takes only a power of two
    ("scrypt$1048575$8$1$AAAA$AAAA", False),
    ("scrypt$3$8$1$AAAA$AAAA", False),
    ("scrypt$4$8$1$AAAA$AAAA", True),
    ("scrypt$1048577$8$1$AAAA$AAAA", False),
    ("scrypt$1024$0$1$AAAA$AAAA", False),
    ("scrypt$1024$33$1$AAAA$AAAA", False),
    ("scrypt$1024$8$0$AAAA$AAAA", False),
    ("scrypt$1024$8$17$AAAA$AAAA", False),
    ("scrypt$1024$8$1$$AAAA", False),
    ("scrypt$1024$8$1$AAAA$", False),
    ("scrypt$1024$8$1$AA!AA$AAAA", False),  # base64 with a stray character: not ours
    ("scrypt$1024$8$1$AAAA$AA!AA", False),
    ("bcrypt$1024$8$1$AAAA$AAAA", False),
    ("scrypt$1024$8$1$AAAA", False),
    ("", False),
])
def test_stored_hash_parameters_at_their_bounds(stored: str, ok: bool) -> None:
    if ok:
        n, r, p, salt, key = acc._parse(stored)
        assert (str(n), str(r), str(p), salt, key) == (*stored.split("$")[1:4], b"\0\0\0",
                                                       b"\0\0\0")
    else:
        with pytest.raises(ValueError):
            acc._parse(stored)


@pytest.mark.parametrize("n, r, p", [(2, 1, 1), (2 ** 15, 8, 1), (2 ** 20, 8, 1),
                                     (2 ** 20, 15, 1), (2 ** 16, 32, 16)])
def test_the_memory_allowed_covers_every_cost_accepted(n: int, r: int, p: int) -> None:
    """What OpenSSL's scrypt needs (128·r·(n + p + 2) bytes) fits in the maxmem given, and
    hashlib takes that maxmem (at n=2**20, r=8 twice the need was more than it takes: a hash
    at the documented largest cost could not be checked)."""
    maxmem = acc._maxmem(n, r, p)
    assert 128 * r * (n + p + 2) <= maxmem <= acc.MAX_SCRYPT_MEM == 2 ** 31 - 1
    assert acc._parse(f"scrypt${n}${r}${p}$AAAA$AAAA")[:3] == (n, r, p)
    assert len(hashlib.scrypt(b"x", salt=b"s", n=2, r=1, p=1, maxmem=maxmem, dklen=8)) == 8


def test_a_stored_hash_out_of_range_is_an_error_not_a_computation(accounts: Accounts) -> None:
    accounts.add("gina", "operator", PASSWORD)
    for stored, why in (("scrypt$1$8$1$AAAA$AAAA", "scrypt parameters (1, 8, 1) out of range"),
                        ("scrypt$1048576$32$16$AAAA$AAAA",
                         "scrypt parameters (1048576, 32, 16) out of range"),
                        ("scrypt$1000$8$1$AAAA$AAAA",
                         "scrypt parameters (1000, 8, 1) out of range"),
                        ("scrypt$1024$8$1$$AAAA", "empty salt or key"),
                        ("bcrypt$1024$8$1$AAAA$AAAA", "unknown scheme 'bcrypt'")):
        with sqlite3.connect(accounts.path) as db:
            db.execute("UPDATE accounts SET password_hash = ?", (stored,))
        with pytest.raises(RegistryError) as refused:
            accounts.check("gina", PASSWORD, T0)
        assert refused.value.path == accounts.path
        assert str(refused.value) == (f"case registry {accounts.path}: account 'gina': stored"
                                      f" hash unreadable ({why})")


def test_validate_names_the_first_bad_one(accounts: Accounts) -> None:
    accounts.validate()
    accounts.validate("olga", "operator", PASSWORD)
    for args, message in (((("bad name",), "account name 'bad name': 1 to 64 letters, digits"
                                           " and . _ -")),
                          ((None, "root"), "role 'root': one of operator, supervisor,"
                                           " administrator"),
                          ((None, None, "short"), "a password is 12 to 1024 characters"
                                                  " \\(this one has 5\\)"),
                          (("bad name", "root", "short"), "account name")):
        with pytest.raises(AccountInputError, match=message) as refused:
            accounts.validate(*args)
        assert refused.value.path == accounts.path  # errors carry their database
    # The same refusals from add(), set_role() and set_password(), and a name in service.
    for call in (lambda: accounts.add("bad name", "operator", PASSWORD),
                 lambda: accounts.add("olga", "root", PASSWORD),
                 lambda: accounts.add("olga", "operator", "short"),
                 lambda: accounts.set_role("olga", "root"),
                 lambda: accounts.set_password("olga", "short")):
        with pytest.raises(AccountInputError) as refused:
            call()
        assert refused.value.path == accounts.path
    assert accounts.all() == []
    accounts.add("olga", "operator", PASSWORD)
    with pytest.raises(RegistryError) as taken:
        accounts.add("OLGA", "operator", PASSWORD)
    assert taken.value.path == accounts.path
    assert str(taken.value) == (f"case registry {accounts.path}: an account named 'OLGA' is in"
                                " service already: remove it first, or choose another name")


def test_a_new_account_starts_without_its_names_failures(accounts: Accounts) -> None:
    for _ in range(acc.FAILURES_BEFORE_LOCK):
        assert accounts.check("Nova", PASSWORD, T0) is None
    assert accounts.locked_until("nova", T0) == T0 + 1.0
    accounts.add("Nova", "operator", PASSWORD)
    assert accounts.locked_until("nova", T0) is None and failure_rows(accounts.path) == []
    assert accounts.check("nova", PASSWORD, T0) is not None


def test_a_failed_write_adds_nothing(accounts: Accounts) -> None:
    with sqlite3.connect(accounts.path) as db:
        db.execute("ALTER TABLE login_failures RENAME TO away")
    with pytest.raises(RegistryError, match="no such table: login_failures") as failed:
        accounts.add("olga", "operator", PASSWORD)
    assert failed.value.path == accounts.path
    with sqlite3.connect(accounts.path) as db:
        db.execute("ALTER TABLE away RENAME TO login_failures")
    assert accounts.all() == []  # the account's row was rolled back with it
    assert accounts.add("olga", "operator", PASSWORD).name == "olga"


def test_a_removed_account_is_stamped_and_its_hash_forgotten(accounts: Accounts) -> None:
    accounts.add("olga", "operator", PASSWORD)
    before = time.time()
    assert accounts.remove("OLGA") is True
    with sqlite3.connect(accounts.path) as db:
        (removed_at, stored), = db.execute("SELECT removed_at, password_hash FROM accounts")
    assert before <= removed_at <= time.time() and stored == ""
    assert accounts.remove("olga") is False


def test_the_lock_and_its_message(accounts: Accounts) -> None:
    for _ in range(acc.FAILURES_BEFORE_LOCK):
        accounts.check("carol", PASSWORD, T0)
    assert failure_rows(accounts.path) == [("carol", 5, T0 + 1.0, T0)]
    assert accounts.locked_until("carol", T0 + 0.999) == T0 + 1.0
    assert accounts.locked_until("carol", T0 + 1.0) is None  # over at its end exactly
    with pytest.raises(AccountLocked) as locked:
        accounts.check("carol", PASSWORD, T0 + 0.5)
    assert str(locked.value) == (f"case registry {accounts.path}: account 'carol': too many"
                                 " failed logins, locked until 2027-01-15 08:00:01 UTC")
    accounts.check("carol", PASSWORD, T0 + 1.0)  # the 6th failure: 2 s from then
    assert failure_rows(accounts.path) == [("carol", 6, T0 + 3.0, T0 + 1.0)]


def test_failures_are_forgotten_after_a_day_without_one(accounts: Accounts) -> None:
    day = acc.FAILURES_FORGOTTEN_S
    assert day == 86400.0
    accounts.check("anna", PASSWORD, T0)
    accounts.check("bert", PASSWORD, T0 + day)  # anna's is a day old exactly: kept
    assert [r[0] for r in failure_rows(accounts.path)] == ["anna", "bert"]
    accounts.check("bert", PASSWORD, T0 + day + 1)
    assert failure_rows(accounts.path) == [("bert", 2, T0 + day + 1, T0 + day + 1)]


def test_the_lock_is_capped_whatever_the_count(accounts: Accounts) -> None:
    with sqlite3.connect(accounts.path) as db:
        db.execute("INSERT INTO login_failures VALUES ('dave', 5000, 0, ?)", (T0,))
    accounts.check("dave", PASSWORD, T0)  # 2**4996 s would overflow a float
    assert accounts.locked_until("dave", T0) == T0 + acc.LOCK_MAX_S


def test_a_login_through_the_loop_rehashes_at_todays_cost(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "SCRYPT_N", 2 ** 11)
    accounts = Accounts(registry)
    added = accounts.add("olga", "operator", PASSWORD)
    monkeypatch.setattr(acc, "SCRYPT_N", 2 ** 10)

    def stored() -> str:
        with sqlite3.connect(accounts.path) as db:
            return str(db.execute("SELECT password_hash FROM accounts").fetchone()[0])
    assert stored().startswith("scrypt$2048$8$1$")
    assert asyncio.run(accounts.check_async("olga", OTHER, T0)) is None
    assert stored().startswith("scrypt$2048$8$1$")  # a failure changes nothing
    assert asyncio.run(accounts.check_async("OLGA", PASSWORD, T0)) == added
    assert stored().startswith("scrypt$1024$8$1$")
    again = stored()
    assert asyncio.run(accounts.check_async("olga", PASSWORD, T0)) == added
    assert stored() == again  # at today's cost already: left as it is
    assert failure_rows(accounts.path) == []  # the good login cleared the failure


@pytest.mark.parametrize("n, r, p", [(2, 1, 1), (16, 32, 16), (1024, 8, 1)])
def test_a_hash_at_any_allowed_cost_is_computed_with_enough_memory(
        accounts: Accounts, n: int, r: int, p: int) -> None:
    accounts.add("olga", "operator", PASSWORD)
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 ** 30, dklen=32)
    b64 = [base64.b64encode(raw).decode() for raw in (salt, key)]
    stored = f"scrypt${n}${r}${p}${b64[0]}${b64[1]}"
    with sqlite3.connect(accounts.path) as db:
        db.execute("UPDATE accounts SET password_hash = ?", (stored,))
    assert accounts.check("olga", OTHER, T0) is None
    assert accounts.check("olga", PASSWORD, T0) is not None


def test_a_guarded_handler_refuses_on_its_own() -> None:
    """allow() does not lean on the sessions middleware: on an app without it (a route made
    public by mistake), no session is 401, another role 403, and only its roles reach it."""
    async def report(request: web.Request) -> web.Response:
        return web.Response(text=f"reached {request.path} as {request[SESSION_KEY].name}")

    @web.middleware
    async def given(request: web.Request, handler: Handler) -> web.StreamResponse:
        role = request.headers.get("X-Test-Role")  # this test's own stand-in for a login
        if role:
            request[SESSION_KEY] = Session("olga", Role(role), "c", T0, T0 + 1, "x")
        return await handler(request)

    async def body() -> None:
        app = web.Application(middlewares=[given])
        app.router.add_get("/report", allow(frozenset({Role.SUPERVISOR}))(report))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as s:
                for role, expected in (("", (401, "log in first")),
                                       ("operator", (403, "not for the operator role")),
                                       ("administrator", (403, "not for the administrator"
                                                               " role")),
                                       ("supervisor", (200, "reached /report as olga"))):
                    async with s.get(f"http://127.0.0.1:{port}/report",
                                     headers={"X-Test-Role": role}) as r:
                        assert (r.status, await r.text()) == expected, role
        finally:
            await runner.cleanup()
    asyncio.run(body())
