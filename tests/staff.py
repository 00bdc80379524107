"""Accounts and logins for tests of the operator page: an account made through the centre's
own Accounts, and a login through the page's own endpoints (the cookie and token a browser
would hold), or a session opened through the library for tests about something else."""
from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from msa.centre import accounts as accounts_module
from msa.centre.accounts import Role
from msa.centre.authweb import COOKIE, CSRF_HEADER, Workplace
from msa.centre.server import CentreConfig, RunningCentre, start_centre

from backends import State


@pytest.fixture
def cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower scrypt cost, through the module's constant only, to keep the tests quick."""
    monkeypatch.setattr(accounts_module, "SCRYPT_N", 2 ** 10)


@asynccontextmanager
async def operator_centre(where: Path | State) -> AsyncIterator[tuple[RunningCentre, str]]:
    """A started centre, and its operator page's base URL: on a State's backend (the
    `state` fixture of tests/backends.py), or on SQLite files in a folder `where`."""
    config = where.config() if isinstance(where, State) else \
        CentreConfig(state_dir=where / "centre")
    running = await start_centre(config)
    try:
        yield running, f"http://127.0.0.1:{running.operator_port}"
    finally:
        await running.stop()


def add_account(work: Workplace, name: str, role: Role | str) -> str:
    """A new account; its password."""
    password = "pw-" + secrets.token_urlsafe(12)
    work.accounts.add(name, role, password)
    return password


def session_headers(work: Workplace, name: str, role: Role | str = Role.OPERATOR,
                    base: str = "") -> dict[str, str]:
    """Cookie (and, for changes, token and Origin) of a session opened for a new account
    through the library: for tests that are about what the page shows, not about logging in."""
    add_account(work, name, role)
    account = work.accounts.get(name)
    assert account is not None
    token, session = work.sessions.open(account, "test")
    headers = {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: session.csrf}
    return headers | ({"Origin": base} if base else {})


@dataclass(frozen=True)
class Login:
    headers: dict[str, str]  # Cookie, the session's token and Origin: enough for a change
    me: dict[str, object]


async def login(s: aiohttp.ClientSession, base: str, name: str, password: str) -> Login:
    """Logs in as the page's script does: the login page's token, then POST /api/login."""
    async with s.get(base + "/login") as r:
        assert r.status == 200
        found = re.search(r'<meta name="msa-csrf" content="([^"]+)">', await r.text())
    assert found is not None
    async with s.post(base + "/api/login", json={"name": name, "password": password},
                      headers={"Origin": base, CSRF_HEADER: found.group(1)}) as r:
        assert r.status == 200, await r.text()
        me = await r.json()
        cookie = r.cookies[COOKIE]
    return Login({"Cookie": f"{COOKIE}={cookie.value}", CSRF_HEADER: str(me["csrf"]),
                  "Origin": base}, me)
