"""Login sessions on the operator page: who is logged in, in which role, until when, with
which anti-forgery token. Kept in the registry's database, next to the accounts, so that a
restart of the centre during an alarm logs nobody out, and so that `msa centre user remove` or
`passwd` (another process) ends a session at its next request.

A session is known by a random token in an HttpOnly cookie; only its SHA-256 is stored (a copy
of the database opens no session). It ends at the first of:
- its absolute expiry (SESSION_S: a shift and its handover), or IDLE_S without a request (the
  page polls every second, so an open page stays in; a closed one is out after IDLE_S);
- logout;
- the account's removal, a new password or a new role: the session holds a stamp of the
  password hash and the role it was opened with, compared at every request.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from .accounts import Account, Role
from .registry import Database, Registry

SESSION_S = 12 * 3600.0  # a 12-hour shift; a new login after it
IDLE_S = 30 * 60.0
TOUCH_S = 60.0  # last_seen is written at most this often (the page polls every second)
TOKEN_BYTES = 32



def _sha256(data: bytes | str) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


@dataclass(frozen=True)
class Session:
    """A live session: no token (only its hash is kept)."""

    name: str
    role: Role
    csrf: str  # sent back by the page's script in a header with every change
    created_at: float
    expires_at: float
    source: str  # where it logged in from

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role.value, "csrf": self.csrf,
                "expires_at": self.expires_at}


class Sessions(Database):
    """The sessions table; `open()` after a checked login, `get()` at every request."""

    def __init__(self, registry: Registry, session_s: float = SESSION_S,
                 idle_s: float = IDLE_S) -> None:
        super().__init__(registry.place)
        self.session_s = session_s
        self.idle_s = idle_s

    def _stamp(self, name: str) -> tuple[bytes, str] | None:
        """(stamp of the password hash, role) of the account in service, None if none."""
        rows = self._exec("SELECT password_hash, role FROM accounts WHERE"
                          " lower(name) = lower(?) AND removed_at IS NULL", (name,))
        return None if not rows else (_sha256(str(rows[0][0])), str(rows[0][1]))

    def open(self, account: Account, source: str, now: float | None = None
             ) -> tuple[str, Session]:
        """A new session for an account whose password was just checked: (cookie token,
        session). Expired sessions of every account are dropped on the way."""
        now = time.time() if now is None else now
        stamp = self._stamp(account.name)
        if stamp is None:
            raise ValueError(f"account {account.name!r} is not in service")
        token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(24)
        session = Session(account.name, account.role, csrf, now, now + self.session_s,
                          source[:64])
        with self.transaction():
            self._exec("DELETE FROM sessions WHERE expires_at <= ? OR last_seen <= ?",
                       (now, now - self.idle_s))
            self._exec("INSERT INTO sessions (token_sha256, name, role, stamp, csrf, created_at,"
                       " expires_at, last_seen, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (_sha256(token), account.name, account.role.value, stamp[0], csrf, now,
                        session.expires_at, now, session.source))
        return token, session

    def get(self, token: str, now: float | None = None) -> Session | None:
        """The live session of a cookie token, None if there is none (unknown, expired,
        idle too long, or its account removed, re-passworded or given another role)."""
        if not token or len(token) > 128 or not token.isascii():
            return None
        now = time.time() if now is None else now
        key = _sha256(token)
        rows = self._exec("SELECT name, role, stamp, csrf, created_at, expires_at, last_seen,"
                          " source FROM sessions WHERE token_sha256 = ?", (key,))
        if not rows:
            return None
        name, role, stamp, csrf, created, expires, seen, source = rows[0]
        current = self._stamp(str(name))
        if (current is None or current != (stamp, role) or float(str(expires)) <= now
                or float(str(seen)) <= now - self.idle_s):
            self._write("DELETE FROM sessions WHERE token_sha256 = ?", (key,))
            return None
        if now - float(str(seen)) >= TOUCH_S:
            self._write("UPDATE sessions SET last_seen = ? WHERE token_sha256 = ?", (now, key))
        return Session(str(name), Role(str(role)), str(csrf), float(str(created)),
                       float(str(expires)), str(source))

    def end(self, token: str) -> bool:
        """Logout: the session is gone (False if there was none)."""
        return self._write("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),)) > 0

    def end_all(self, name: str) -> int:
        """Ends every session of an account (how many)."""
        return self._write("DELETE FROM sessions WHERE lower(name) = lower(?)", (name,))
