"""Per-host credentials at the centre: each victim's host gets its own API bearer token and its
own DC-09 account with an AES key of its own, bound to the buttons of its case. A host may send
only for those buttons; the centre refuses anything else (HTTPS 403, DC-09 DUH), so a host that
is compromised, or whose token leaked, speaks for its own case and no other.

Tokens are kept as their SHA-256 only (they are 256-bit random strings, so a plain hash is as
strong as a slow one) and shown once, when issued; the DC-09 key must be kept as it is (the
receiver decrypts with it) and is shown once too, for the host's configuration. Neither is ever
logged. The table lives in the registry's database (registry.db, 0600), read on every request
so that `msa case revoke` in another process takes effect at once.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field


from .errors import RegistryError, StorageConflict
from .registry import Database, Registry

TOKEN_BYTES = 32  # 43 URL-safe characters, well above the API's MIN_TOKEN_LEN
DC09_KEY_BYTES = 32  # AES-256; the host's dc09 channel takes 16, 24 or 32
ACCOUNT_DIGITS = 12  # a DC-09 account of 12 upper-case hex digits (the standard allows 3-16)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class Host:
    """A host in service: its name, the case whose buttons it speaks for, its DC-09 account."""

    name: str
    case_ref: str
    dc09_account: str
    issued_at: float


@dataclass(frozen=True)
class Issued:
    """Credentials just issued: shown once to the technician, never again by the centre."""

    host: Host
    token: str = field(repr=False)
    dc09_key: bytes = field(repr=False)


def secret_hash(secret: str) -> bytes:
    """What the centre keeps of a host's token or a tag's secret: its SHA-256."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


class Hosts(Database):
    """The hosts' credentials, in the registry's database (a connection of its own)."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.place)
        self.registry = registry

    def issue(self, case_ref: str, name: str | None = None) -> Issued:
        """New credentials for a host of `case_ref` (named `name`, default the case reference);
        RegistryError for an unknown case, a malformed name, or one already in service."""
        name = case_ref if name is None else name
        if not _NAME.fullmatch(name):
            raise RegistryError(self.path, f"host name {name!r}: 1 to 64 letters, digits and"
                                " . _ / -, starting with a letter or digit")
        if self.registry.case(case_ref) is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        key = secrets.token_bytes(DC09_KEY_BYTES)
        now = time.time()
        for _ in range(8):  # a new account on the rare clash with one given before
            account = secrets.token_hex(ACCOUNT_DIGITS // 2).upper()
            try:
                self._db.execute("INSERT INTO hosts (name, case_ref, token_sha256, dc09_account,"
                                 " dc09_key, issued_at) VALUES (?, ?, ?, ?, ?, ?)",
                                 (name, case_ref, secret_hash(token), account, key, now))
            except StorageConflict as exc:
                if "dc09_account" in exc.detail:
                    continue
                raise RegistryError(self.path, f"a host named {name!r} is in service already:"
                                    " revoke it first, or give this one another name") from None
            return Issued(Host(name, case_ref, account, now), token, key)
        raise RegistryError(self.path, "no free DC-09 account found")

    def revoke(self, name: str) -> bool:
        """Takes a host out of service: its token and DC-09 account stop working at once
        (its key is forgotten). False if no host of that name was in service."""
        return self._revoke("name = ?", name) > 0

    def revoke_case(self, case_ref: str) -> int:
        """Revokes every host of a case; how many were in service."""
        return self._revoke("case_ref = ?", case_ref)

    def _revoke(self, where: str, value: str) -> int:
        return self._write(f"UPDATE hosts SET revoked_at = ?, dc09_key = ? WHERE {where}"
                           " AND revoked_at IS NULL", (time.time(), b"", value))

    _COLUMNS = "name, case_ref, dc09_account, issued_at"

    @staticmethod
    def _host(row: tuple[object, ...]) -> Host:
        name, case_ref, account, issued_at = row[:4]
        return Host(str(name), str(case_ref), str(account), float(str(issued_at)))

    def by_token(self, token: str) -> Host | None:
        """The host in service whose token this is, None for any other string."""
        rows = self._exec(f"SELECT {self._COLUMNS} FROM hosts WHERE token_sha256 = ?"
                          " AND revoked_at IS NULL", (secret_hash(token),))
        return self._host(rows[0]) if rows else None

    def by_account(self, account: str) -> tuple[Host, bytes] | None:
        """The host in service with this DC-09 account, and its AES key (never logged)."""
        rows = self._exec(f"SELECT {self._COLUMNS}, dc09_key FROM hosts"
                          " WHERE dc09_account = ? AND revoked_at IS NULL", (account,))
        if not rows or not isinstance(rows[0][4], bytes):
            return None
        return self._host(rows[0]), bytes(rows[0][4])

    def dc09_key(self, account: str) -> bytes | None:
        """The DC-09 receiver's key_for: the account's key, None for an account not in service
        (whose messages are then refused: no account is plain)."""
        found = self.by_account(account)
        return None if found is None else found[1]

    def may_send(self, host: Host, button_id: int) -> bool:
        """True if the button is in service for the host's case (the host's own buttons)."""
        if not 0 < button_id < 2 ** 32:
            return False
        # One primary-key lookup (every API request makes it), read afresh like the keys: a
        # retire or re-provision in another process counts at once.
        return bool(self._exec("SELECT 1 FROM buttons WHERE button_id = ? AND case_ref = ?"
                               " AND retired_at IS NULL", (button_id, host.case_ref)))

    def of_case(self, case_ref: str) -> list[Host]:
        """The case's hosts in service, oldest first (names and accounts: no secrets)."""
        return [self._host(r) for r in self._exec(
            f"SELECT {self._COLUMNS} FROM hosts WHERE case_ref = ? AND revoked_at IS NULL"
            " ORDER BY id", (case_ref,))]
