"""Logins on the operator page (issue 15, part 1), through a real started centre over HTTP:
every path refuses a client without a session; a session ends at logout, expiry, idleness and
when its account is removed, re-passworded or re-roled; failed logins are slowed down and
audited without recording a mistyped password; each role reaches what a control room gives it
and nothing else; the administrator's account changes are audited and keep an administrator."""
from __future__ import annotations

import asyncio
import re
import time

import aiohttp

from msa.centre import accounts as accounts_mod
from msa.centre.authweb import COOKIE, CSRF_HEADER, PUBLIC, UNKNOWN_NAME
from msa.centre.server import RunningCentre

from backends import State, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401
from staff import add_account, login
from staff import operator_centre as centre


def operator_routes(running: RunningCentre) -> list[tuple[str, str]]:
    """(method, path) of every route of the operator app, placeholders filled in."""
    apps = [runner.app for runner, _server in running._runners
            if any(r.resource is not None and r.resource.canonical == "/api/state"
                   for r in runner.app.router.routes())]
    assert len(apps) == 1
    out = []
    for route in apps[0].router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = re.sub(r"\{incident\}", "INC-000001", route.resource.canonical)
        path = re.sub(r"\{name\}", "olga", path)
        path = re.sub(r"\{change[^}]*\}", "remove", path)
        out.append((route.method, path))
    return out


def test_without_a_session_everything_is_refused(state: State) -> None:
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            routes = operator_routes(running)
            assert len(routes) >= 8 and ("GET", "/api/state") in routes
            for method, path in routes:
                if path in PUBLIC:
                    continue
                for cookie in ("", f"{COOKIE}=not-a-session"):
                    async with s.request(method, base + path, allow_redirects=False, headers={
                            "Origin": base, CSRF_HEADER: "x", "Cookie": cookie}) as r:
                        body = await r.text()
                        if path == "/":
                            assert (r.status, r.headers["Location"]) == (303, "/login")
                        else:
                            assert r.status == 401, (method, path, r.status)
                        assert "INC-" not in body and "victim" not in body
            async with s.get(base + "/login") as r:
                assert r.status == 200 and 'id="password"' in await r.text()
    asyncio.run(body())


ROLE_MATRIX = [  # (method, path, body, statuses by role: operator, supervisor, administrator)
    ("GET", "/api/state", None, (200, 200, 403)),
    ("GET", "/api/accounts", None, (403, 403, 200)),
    ("POST", "/api/incidents/INC-000099/resolve", {}, (404, 404, 403)),
    ("POST", "/proximity/ack", {"case_ref": "C", "tag_id": "T", "zone": "z"}, (404, 404, 403)),
    ("GET", "/api/me", None, (200, 200, 200)),
    ("GET", "/api/incidents/INC-000099", None, (404, 404, 403)),
    ("POST", "/api/incidents/INC-000099/notes", {"text": "a note"}, (404, 404, 403)),
    ("GET", "/api/report?day=2026-01-02", None, (403, 200, 403)),
    ("POST", "/api/accounts", {"name": "x"}, (403, 403, 400)),
]


def test_each_role_reaches_its_own_part_only(state: State) -> None:
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            sessions = {}
            for role in ("operator", "supervisor", "administrator"):
                password = add_account(running.work, role[:4], role)
                sessions[role] = (await login(s, base, role[:4], password)).headers
            for method, path, payload, statuses in ROLE_MATRIX:
                for role, expected in zip(("operator", "supervisor", "administrator"),
                                          statuses):
                    async with s.request(method, base + path, json=payload,
                                         headers=sessions[role]) as r:
                        assert r.status == expected, (method, path, role, await r.text())
            async with s.get(base + "/api/me", headers=sessions["supervisor"]) as r:
                me = await r.json()
            assert (me["name"], me["role"]) == ("supe", "supervisor")
    asyncio.run(body())


def test_a_session_ends_at_logout_and_with_its_account(state: State) -> None:
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            work = running.work
            state_url = base + "/api/state"
            for change in ("logout", "remove", "password", "role", "expiry", "idle"):
                name = f"op-{change}"
                password = add_account(work, name, "operator")
                own = (await login(s, base, name, password)).headers
                async with s.get(state_url, headers=own) as r:
                    assert r.status == 200
                if change == "logout":
                    async with s.post(base + "/api/logout", headers=own) as r:
                        assert r.status == 200
                        assert r.cookies[COOKIE].value == ""  # the browser forgets it
                elif change == "remove":
                    work.accounts.remove(name)
                elif change == "password":
                    work.accounts.set_password(name, "another-password-1")
                elif change == "role":
                    work.accounts.set_role(name, "supervisor")
                else:
                    later = work.sessions.session_s if change == "expiry" else \
                        work.sessions.idle_s
                    now = work.clock()
                    work.clock = lambda: now + later + 1
                async with s.get(state_url, headers=own) as r:
                    assert r.status == 401, change
                work.clock = time.time
    asyncio.run(body())


def test_failed_logins_are_slowed_and_audited(state: State) -> None:
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            password = add_account(running.work, "olga", "operator")
            async with s.get(base + "/login") as r:
                token = re.search(r'name="msa-csrf" content="([^"]+)">', await r.text())
            assert token is not None
            head = {"Origin": base, CSRF_HEADER: token.group(1)}
            statuses = []
            for attempt in range(accounts_mod.FAILURES_BEFORE_LOCK + 1):
                async with s.post(base + "/api/login", headers=head, json={
                        "name": "olga", "password": f"wrong-password-{attempt}"}) as r:
                    statuses.append(r.status)
                    retry = r.headers.get("Retry-After")
            # Locked now: even the right password is refused, unchecked, until it ends.
            async with s.post(base + "/api/login", headers=head,
                              json={"name": "olga", "password": password}) as r:
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
            assert statuses == [401] * accounts_mod.FAILURES_BEFORE_LOCK + [429]
            assert retry is not None and int(retry) >= 1
            # A login without the login page's token, or from another origin, is refused.
            async with s.post(base + "/api/login", headers={"Origin": base},
                              json={"name": "olga", "password": password}) as r:
                assert r.status == 403
            async with s.post(base + "/api/login", headers={**head, "Origin": "http://e.x"},
                              json={"name": "olga", "password": password}) as r:
                assert r.status == 403
            # An unknown name: audited without the name (it may be a mistyped password).
            async with s.post(base + "/api/login", headers=head,
                              json={"name": "hunter2-secret", "password": "x" * 12}) as r:
                assert r.status == 401
            entries = running.audit.entries()
            assert [(e.actor, e.action) for e in entries] == \
                [("olga", "login.failed")] * (accounts_mod.FAILURES_BEFORE_LOCK + 2) + \
                [(UNKNOWN_NAME, "login.failed")]
            assert all("wrong-password" not in e.detail_json + e.actor for e in entries)
            assert "hunter2" not in repr(entries)
            assert running.audit.verify().ok
    asyncio.run(body())


def test_the_administrator_manages_accounts_and_keeps_one(state: State) -> None:
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            password = add_account(running.work, "ada", "administrator")
            own = (await login(s, base, "ada", password)).headers
            url = base + "/api/accounts"
            for bad, status in (({"name": "bad name", "role": "operator",
                                  "password": "long-enough-pw"}, 400),
                                ({"name": "olga", "role": "chief", "password": "x" * 12}, 400),
                                ({"name": "olga", "role": "operator", "password": "short"}, 400),
                                ({"name": "olga", "role": "operator"}, 400)):
                async with s.post(url, headers=own, json=bad) as r:
                    assert r.status == status, bad
            async with s.post(url, headers=own, json={"name": "olga", "role": "operator",
                                                      "password": "olga-password-1"}) as r:
                assert r.status == 201
            async with s.post(url, headers=own, json={"name": "OLGA", "role": "operator",
                                                      "password": "olga-password-1"}) as r:
                assert r.status == 409  # names are one whatever their case
            async with s.post(url + "/ada/remove", headers=own) as r:
                assert r.status == 409  # the last administrator stays
            async with s.post(url + "/ada/role", headers=own, json={"role": "operator"}) as r:
                assert r.status == 409
            async with s.post(url + "/olga/password", headers=own,
                              json={"password": "olga-password-2"}) as r:
                assert r.status == 200
            async with s.post(url + "/olga/role", headers=own, json={"role": "supervisor"}
                              ) as r:
                assert r.status == 200
            async with s.post(url + "/olga/remove", headers=own) as r:
                assert r.status == 200
            async with s.post(url + "/olga/remove", headers=own) as r:
                assert r.status == 404
            async with s.get(url, headers=own) as r:
                listed = (await r.json())["accounts"]
            assert [(a["name"], a["role"]) for a in listed] == [("ada", "administrator")]
            assert "password" not in str(listed)
            actions = [(e.actor, e.action, e.subject) for e in running.audit.entries()]
            assert actions == [("ada", "login", "ada"), ("ada", "account.add", "olga"),
                               ("ada", "account.passwd", "olga"),
                               ("ada", "account.role", "olga"),
                               ("ada", "account.remove", "olga")]
    asyncio.run(body())


def test_a_login_does_not_hold_up_the_loop(state: State) -> None:
    """scrypt runs in a worker thread: the loop that takes alarms keeps turning meanwhile."""
    async def body() -> None:
        async with centre(state) as (running, base), aiohttp.ClientSession() as s:
            password = add_account(running.work, "olga", "operator")
            turns = 0
            stop = asyncio.Event()

            async def spin() -> None:
                nonlocal turns
                while not stop.is_set():
                    turns += 1
                    await asyncio.sleep(0)
            spinner = asyncio.ensure_future(spin())
            await login(s, base, "olga", password)
            stop.set()
            await spinner
            assert turns > 50  # one scrypt on the loop's thread would allow a handful
    asyncio.run(body())
