"""Operator accounts at the centre: who may open the operator page, in which role, with which
password (the web login: centre/sessions.py and centre/authweb.py; the CLI: msa centre user).

Passwords are kept as scrypt hashes (memory-hard, standard library) with their salt and cost
parameters, so the cost can be raised later and old hashes still verify (and are re-hashed at
the next good login). A password is never logged, stored or put in a repr.

Guessing is slowed per account name: after FAILURES_BEFORE_LOCK consecutive failures each
further failure locks the name for 1 s, 2 s, 4 s ... up to LOCK_MAX_S; while locked, an attempt
is refused (AccountLocked, with the time it ends) without the password being looked at. The
counter lives in the database, so a restart does not reset it, and it is kept for names with no
account too, as is the scrypt work: neither timing nor lockout tells which names exist.
"""
from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from .errors import RegistryError, StorageConflict
from .registry import Database, Registry
from .storage import Begin


# scrypt's cost: n=2**15, r=8 takes 32 MiB and ~0.1 s a hash. Tests may lower SCRYPT_N (only
# through this constant); the parameters used are stored with each hash.
SCRYPT_N = 2 ** 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_SCRYPT_N = 2 ** 20  # a stored hash asking for more is refused (1 GiB at r=8), not computed
MAX_SCRYPT_MEM = 2 ** 31 - 1  # the largest maxmem hashlib.scrypt takes (a C int)
PASSWORD_MIN = 12
PASSWORD_MAX = 1024  # long enough for any passphrase, short enough not to be a burden
FAILURES_BEFORE_LOCK = 5
LOCK_FIRST_S = 1.0
LOCK_MAX_S = 15 * 60.0
FAILURES_FORGOTTEN_S = 24 * 3600.0  # a name's counter is dropped after a day with no failure
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)


class Role(str, enum.Enum):
    """What an account may do on the operator page."""

    OPERATOR = "operator"  # live alarms and the cases behind them
    SUPERVISOR = "supervisor"  # also the reports
    ADMINISTRATOR = "administrator"  # accounts, and nothing else


@dataclass(frozen=True)
class Account:
    """An account in service: no password, no hash."""

    name: str
    role: Role
    created_at: float


class AccountInputError(RegistryError):
    """A bad account name, role or password: refused before anything was written."""


class AccountLocked(RegistryError):
    """Too many failed logins for `name`: refused, unchecked, until `locked_until` (epoch s)."""

    def __init__(self, path: str, name: str, locked_until: float) -> None:
        self.name = name
        self.locked_until = locked_until
        super().__init__(path, f"account {name!r}: too many failed logins, locked until"
                         f" {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(locked_until))}")


def _maxmem(n: int, r: int, p: int) -> int:
    # scrypt needs 128*r*n bytes for its table plus 128*r*p for its blocks; room to spare, but
    # no more than hashlib takes (twice that at n=2**20, r=8 would be refused, not computed).
    return min(128 * r * (n + p) * 2, MAX_SCRYPT_MEM)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=_maxmem(n, r, p), dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$key` (base64) for a password, at the current cost, with a new salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters, salt and key of a stored hash; ValueError if it is not one of ours."""
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown scheme {scheme!r}")
    cost = int(n), int(r), int(p)
    if not (1 < cost[0] <= MAX_SCRYPT_N and 0 < cost[1] <= 32 and 0 < cost[2] <= 16) or \
            cost[0] & (cost[0] - 1) or \
            128 * cost[1] * (cost[0] + cost[2] + 2) > MAX_SCRYPT_MEM:  # what OpenSSL needs
        raise ValueError(f"scrypt parameters {cost} out of range")
    raw_salt, raw_key = base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)
    if not raw_salt or not raw_key:
        raise ValueError("empty salt or key")
    return cost[0], cost[1], cost[2], raw_salt, raw_key


def _matches(password: str, stored: tuple[int, int, int, bytes, bytes]) -> bool:
    """Whether `password` is the one hashed in `stored`. A password of a bad length costs the
    same work too: nothing reveals why it failed."""
    n, r, p, salt, key = stored
    match = hmac.compare_digest(_scrypt(password[:PASSWORD_MAX], salt, n, r, p, len(key)), key)
    return match and PASSWORD_MIN <= len(password) <= PASSWORD_MAX


def _check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters"
                         f" (this one has {len(password)})")


class Accounts(Database):
    """The operators' accounts, in the registry's database (a connection of its own). Every
    write commits before it returns, so another process sees it at once."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.place)
        # What an unknown name's password is checked against: the same work as a real one.
        self._dummy = hash_password(secrets.token_urlsafe(PASSWORD_MIN))

    def _name(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise AccountInputError(self.path, f"account name {name!r}: 1 to 64 letters, digits"
                                " and . _ -")
        return name

    def _role(self, role: Role | str) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise AccountInputError(self.path, f"role {role!r}: one of "
                                + ", ".join(r.value for r in Role)) from None

    def _hash(self, password: str) -> str:
        try:
            _check_password(password)
        except ValueError as exc:
            raise AccountInputError(self.path, str(exc)) from None
        return hash_password(password)

    def validate(self, name: str | None = None, role: Role | str | None = None,
                 password: str | None = None) -> None:
        """RegistryError naming the first bad one of those given (before anything is done)."""
        if name is not None:
            self._name(name)
        if role is not None:
            self._role(role)
        if password is not None:
            try:
                _check_password(password)
            except ValueError as exc:
                raise AccountInputError(self.path, str(exc)) from None

    def add(self, name: str, role: Role | str, password: str) -> Account:
        """A new account; RegistryError for a bad name, role or password, or a name in service
        already (nothing is written then)."""
        name, role = self._name(name), self._role(role)
        stored, now = self._hash(password), time.time()
        try:
            with self.transaction():
                self._db.execute("INSERT INTO accounts (name, role, password_hash, created_at)"
                                 " VALUES (?, ?, ?, ?)", (name, role.value, stored, now))
                # A new account starts without its name's failures (an administrator acted).
                self._db.execute("DELETE FROM login_failures WHERE name = ?", (name.lower(),))
        except StorageConflict:
            raise RegistryError(self.path, f"an account named {name!r} is in service already:"
                                " remove it first, or choose another name") from None
        return Account(name, role, now)

    def remove(self, name: str) -> bool:
        """Takes an account out of service (its hash is forgotten, its row kept for the
        record). False if there was none of that name."""
        return self._exec("UPDATE accounts SET removed_at = ?, password_hash = ''"
                          " WHERE lower(name) = lower(?) AND removed_at IS NULL RETURNING id",
                          (time.time(), name)) != []

    def set_password(self, name: str, password: str) -> bool:
        """A new password (RegistryError if it is not one); False if there is no such account."""
        return self._set(name, "password_hash", self._hash(password))

    def set_role(self, name: str, role: Role | str) -> bool:
        """A new role (RegistryError for an unknown one); False if there is no such account."""
        return self._set(name, "role", self._role(role).value)

    def _set(self, name: str, column: str, value: str) -> bool:
        return self._exec(f"UPDATE accounts SET {column} = ? WHERE lower(name) = lower(?)"
                          " AND removed_at IS NULL RETURNING id", (value, name)) != []

    def _account(self, row: tuple[object, ...]) -> Account:
        name, role, created_at = row[:3]
        return Account(str(name), self._role(str(role)), float(str(created_at)))

    def get(self, name: str) -> Account | None:
        rows = self._exec("SELECT name, role, created_at FROM accounts"
                          " WHERE lower(name) = lower(?) AND removed_at IS NULL", (name,))
        return self._account(rows[0]) if rows else None

    def all(self) -> list[Account]:
        """The accounts in service, by name."""
        return [self._account(r) for r in self._exec(
            "SELECT name, role, created_at FROM accounts WHERE removed_at IS NULL"
            " ORDER BY lower(name), name")]

    def locked_until(self, name: str, now: float) -> float | None:
        """When the name's lockout ends, None if it is not locked at `now`."""
        rows = self._exec("SELECT locked_until FROM login_failures WHERE name = ?",
                          (name.lower(),))
        until = float(str(rows[0][0])) if rows else 0.0
        return until if until > now else None

    def check(self, name: str, password: str, now: float) -> Account | None:
        """The account if `password` is its password, None otherwise (unknown name, wrong or
        malformed password: all alike). AccountLocked while the name is locked out; `now` is
        the epoch time (the lockout's clock)."""
        rows, stored = self._lookup(name, now)
        match = _matches(password, stored)
        rehash = self._settle(name, rows, password, match, stored, now)
        if rehash:
            self._set(name, "password_hash", hash_password(password))
        return self._account(rows[0]) if match and rows else None

    async def check_async(self, name: str, password: str, now: float) -> Account | None:
        """As check(), for the event loop: scrypt runs in a worker thread, so alarms arriving
        meanwhile are not held up by a login (the database stays on the loop's thread)."""
        rows, stored = self._lookup(name, now)
        match = await asyncio.to_thread(_matches, password, stored)
        if self._settle(name, rows, password, match, stored, now):
            self._set(name, "password_hash", await asyncio.to_thread(hash_password, password))
        return self._account(rows[0]) if match and rows else None

    def _lookup(self, name: str, now: float
                ) -> tuple[list[tuple[object, ...]], tuple[int, int, int, bytes, bytes]]:
        until = self.locked_until(name, now)
        if until is not None:
            raise AccountLocked(self.path, name, until)
        rows = self._exec("SELECT name, role, created_at, password_hash FROM accounts"
                          " WHERE lower(name) = lower(?) AND removed_at IS NULL", (name,))
        try:
            return rows, _parse(str(rows[0][3]) if rows else self._dummy)
        except ValueError as exc:
            raise RegistryError(self.path, f"account {name!r}: stored hash unreadable ({exc})"
                                ) from None

    def _settle(self, name: str, rows: list[tuple[object, ...]], password: str, match: bool,
                stored: tuple[int, int, int, bytes, bytes], now: float) -> bool:
        """Records the attempt's outcome; True if the hash should be redone at today's cost."""
        if not (match and rows):
            self._failed(name.lower(), now)
            return False
        self._exec("DELETE FROM login_failures WHERE name = ?", (name.lower(),))
        return stored[:3] != (SCRYPT_N, SCRYPT_R, SCRYPT_P)  # the cost was raised since

    def _failed(self, key: str, now: float) -> None:
        with self.transaction(Begin.EXCLUSIVE):  # two nodes count one name's failures
            rows = self._exec("SELECT failures FROM login_failures WHERE name = ?", (key,))
            failures = (int(str(rows[0][0])) if rows else 0) + 1
            over = failures - FAILURES_BEFORE_LOCK
            lock_s = 0.0 if over < 0 else min(LOCK_FIRST_S * 2.0 ** min(over, 32), LOCK_MAX_S)
            self._exec("INSERT INTO login_failures (name, failures, locked_until, last_at)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                       " failures = excluded.failures, locked_until = excluded.locked_until,"
                       " last_at = excluded.last_at", (key, failures, now + lock_s, now))
            # Names guessed once and never again do not pile up.
            self._exec("DELETE FROM login_failures WHERE last_at < ?",
                       (now - FAILURES_FORGOTTEN_S,))
