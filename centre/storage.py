"""The centre's storage seam: one connection type over its two databases, SQLite (the embedded
default: a state folder of files) and PostgreSQL (shared by several centre nodes).

The centre's data falls in three areas, each with its own schema and migrations
(centre/migrations.py): `registry` (cases, buttons, hosts, tags, proximity, accounts,
sessions), `records` (messages, incidents, tracks, arrivals, notes) and `audit`. On SQLite an
area is a file of the state folder (`registry.db`); on PostgreSQL it is a schema of one
database, which the connection puts first on its search path, so the stores' SQL names its
tables alone on both.

The stores write one SQL for both: `?` placeholders, `INSERT ... ON CONFLICT`, `RETURNING`,
CASE instead of SQLite's two-argument MAX. What differs is here, in tables: DDL types
(translate_ddl), transaction kinds (Begin), the sync level of a commit, and the errors (every
driver error becomes the store's own error class; a broken constraint is StorageConflict).
"""
from __future__ import annotations

import enum
import re
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors

from msa.common.sqlite import open_wal

from .errors import CentreError, StorageConflict

AREAS = ("registry", "records", "audit")
SCHEMES = ("postgresql", "postgres")
# A PostgreSQL connection gives up on an unreachable server after this long (the event loop
# waits on it), and a statement after STATEMENT_TIMEOUT_MS (a lock held by a hung node).
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000


class Engine(str, enum.Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Place:
    """Where one area of the centre's data lives: a SQLite file, or a schema of a PostgreSQL
    database (`target` is then its URL, password and all: never print it, print str())."""

    kind: Engine
    target: str
    area: str

    def sibling(self, area: str) -> Place:
        """Another area of the same centre's data."""
        if self.kind is Engine.SQLITE:
            return Place(self.kind, str(Path(self.target).with_name(f"{area}.db")), area)
        return Place(self.kind, self.target, area)

    def __str__(self) -> str:
        if self.kind is Engine.SQLITE:
            return self.target
        return f"{redact(self.target)} ({self.area})"


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def is_database_url(text: str) -> bool:
    return urlsplit(text).scheme in SCHEMES


def place(where: Place | Path | str, area: str | None = None) -> Place:
    """A Place from a Place, a SQLite file's path or a PostgreSQL URL. `area` names the area
    kept there: in the same file for SQLite (default: the file's name without `.db`), that
    schema for PostgreSQL (where it must be given, unless `where` is a Place)."""
    if isinstance(where, Place):
        return where if area is None else Place(where.kind, where.target, area)
    text = str(where)
    if is_database_url(text):
        if area is None:
            raise ValueError("a PostgreSQL URL needs an area")
        return Place(Engine.POSTGRESQL, text, area)
    return Place(Engine.SQLITE, text, area or Path(text).stem)


class Begin(enum.Enum):
    """What a transaction is for; what each means on each database (_BEGIN)."""

    WRITE = "write"  # writes whose races the constraints settle (ON CONFLICT, unique keys)
    EXCLUSIVE = "exclusive"  # read-modify-write: one writer per area at a time, every node
    SNAPSHOT = "snapshot"  # reads that must see one consistent moment


# SQLite has one writer per file: BEGIN IMMEDIATE takes its lock up front, so a transaction
# never fails half-way for want of it. PostgreSQL's rows and unique indexes settle concurrent
# writers; a read-modify-write (the audit chain's head) takes a transaction-long advisory lock
# named after the area, which every node's transactions of that kind wait for.
_BEGIN = {
    Engine.SQLITE: {Begin.WRITE: "BEGIN IMMEDIATE", Begin.EXCLUSIVE: "BEGIN IMMEDIATE",
                  Begin.SNAPSHOT: "BEGIN"},
    Engine.POSTGRESQL: {Begin.WRITE: "BEGIN", Begin.EXCLUSIVE: "BEGIN",
                      Begin.SNAPSHOT: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
}

# DDL is written once with these type names; each database gets its own. INTEGER is 64-bit
# on both (a button id reaches 2^32 - 1), REAL a double, ID an ever-growing row number that is
# never reused (an incident's reference is made from it).
_DDL_TYPES = {
    Engine.SQLITE: {"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER": "INTEGER",
                  "REAL": "REAL", "BLOB": "BLOB", "TEXT": "TEXT"},
    Engine.POSTGRESQL: {"ID": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                      "INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA",
                      "TEXT": "TEXT"},
}
_TYPE_WORD = re.compile(r"\b(ID|INTEGER|REAL|BLOB|TEXT)\b")


def translate_ddl(statement: str, kind: Engine) -> str:
    """A schema statement in the database's own types (only in CREATE/ALTER TABLE)."""
    if not re.match(r"\s*(CREATE|ALTER)\s+TABLE", statement):
        return statement
    return _TYPE_WORD.sub(lambda m: _DDL_TYPES[kind][m[1]], statement)


def area_lock(area: str) -> int:
    """The advisory-lock number of an area's EXCLUSIVE transactions (stable across nodes)."""
    return zlib.crc32(f"msa.centre.{area}".encode())


class ErrorFactory(Protocol):
    def __call__(self, path: str, detail: str) -> CentreError: ...


class Result:
    """A statement's rows (all fetched) and how many rows it changed."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def one(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class Connection:
    """One connection to one area. Statements outside begin()/commit() commit on their own.
    Every driver error is raised as `error(str(place), detail)`, a broken unique or primary
    key as StorageConflict. Not thread-safe: one thread (or the event loop) uses it."""

    def __init__(self, where: Place, error: ErrorFactory) -> None:
        self.place = where
        self.kind = where.kind
        self._error = error

    # --- what each database does its own way ---
    def _run(self, sql: str, args: tuple[object, ...]) -> Result:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def set_synced(self, synced: bool) -> None:
        """Whether this connection's commits wait for the disk (True) or may be lost in a
        power cut, never in a crash of the process (False)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- the same on both ---
    def wrap(self, exc: Exception) -> CentreError:
        """The driver's error as the store's own, in the driver's words."""
        return self._error(str(self.place), str(exc).strip() or type(exc).__name__)

    def execute(self, sql: str, args: Sequence[object] = ()) -> Result:
        return self._run(sql, tuple(args))

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, tuple(args)).rows

    def begin(self, kind: Begin = Begin.WRITE) -> None:
        self._run(_BEGIN[self.kind][kind], ())
        if kind is Begin.EXCLUSIVE and self.kind is Engine.POSTGRESQL:
            self._run("SELECT pg_advisory_xact_lock(?)", (area_lock(self.place.area),))

    def commit(self) -> None:
        self._run("COMMIT", ())

    def rollback(self) -> None:
        """Ends the open transaction, if any, writing nothing of it."""
        if self.in_transaction:
            self._run("ROLLBACK", ())

    @contextmanager
    def transaction(self, kind: Begin = Begin.WRITE) -> Iterator[None]:
        """All or none; the error (or the rollback's) is raised as it is."""
        self.begin(kind)
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def notify(self, channel: str, payload: str) -> None:
        """Tells every node listening on `channel` once the open transaction commits (at
        once outside one). Nothing on SQLite: one process owns a state folder's centre."""
        if self.kind is Engine.POSTGRESQL:
            self._run("SELECT pg_notify(?, ?)", (channel, payload))


class SqliteConnection(Connection):
    def __init__(self, where: Place, error: ErrorFactory, synced: bool = True) -> None:
        super().__init__(where, error)
        try:
            self._db = open_wal(where.target, (), "FULL" if synced else "NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise self.wrap(exc) from exc

    def _run(self, sql: str, args: tuple[object, ...]) -> Result:
        try:
            cursor = self._db.execute(sql, args)
            return Result(cursor.fetchall(), cursor.rowcount)
        except sqlite3.IntegrityError as exc:
            raise StorageConflict(str(self.place), str(exc)) from exc
        except sqlite3.Error as exc:
            raise self.wrap(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def set_synced(self, synced: bool) -> None:
        self._run(f"PRAGMA synchronous={'FULL' if synced else 'NORMAL'}", ())

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for what only SQLite has (online backup)."""
        return self._db

    def close(self) -> None:
        self._db.close()


def _pg_sql(sql: str) -> str:
    # psycopg's placeholders are %s, so a literal % is written %%; `?` never appears in our
    # statements' text otherwise.
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection(Connection):
    """Autocommit, with BEGIN/COMMIT sent as statements (the centre's group commit spans many
    calls). A connection the server dropped is opened again at the next statement outside a
    transaction: the failed one was raised, and its sender will retry."""

    def __init__(self, where: Place, error: ErrorFactory, synced: bool = True) -> None:
        super().__init__(where, error)
        self._synced = synced
        self._closed = False  # by close(): used again, it is an error as on SQLite
        self._begun = False  # a BEGIN was sent and no COMMIT or ROLLBACK yet
        self._db = self._connect()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            db = psycopg.connect(
                self.place.target, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="msa-centre",
                options=f"-c search_path={self.place.area}"
                        f" -c statement_timeout={STATEMENT_TIMEOUT_MS}"
                        f" -c synchronous_commit={'on' if self._synced else 'off'}")
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc
        return db

    def _run(self, sql: str, args: tuple[object, ...]) -> Result:
        if self._db.closed:
            if self._closed:
                raise self.wrap(psycopg.InterfaceError("the connection is closed"))
            if self._begun:
                # What the lost transaction held is gone: its statements must fail, never
                # carry on in a new connection outside any transaction (a batch committed
                # there would acknowledge messages that were never stored).
                self._begun = False
                raise self.wrap(psycopg.OperationalError("the connection was lost inside a"
                                                         " transaction"))
            self._db = self._connect()
        try:
            cursor = self._db.execute(_pg_sql(sql), args)
            rows = cursor.fetchall() if cursor.description is not None else []
            if sql.startswith("BEGIN"):
                self._begun = True
            elif sql in ("COMMIT", "ROLLBACK"):
                self._begun = False
            return Result(rows, cursor.rowcount)
        except psycopg.errors.IntegrityError as exc:
            raise StorageConflict(str(self.place), exc.diag.message_primary or str(exc)) \
                from exc
        except psycopg.Error as exc:
            raise self.wrap(exc) from exc

    def wrap(self, exc: Exception) -> CentreError:
        # The server's message alone, as SQLite's one line: its CONTEXT and DETAIL lines
        # name our statement's insides, not what went wrong.
        primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        return self._error(str(self.place), primary or str(exc).strip() or type(exc).__name__)

    @property
    def in_transaction(self) -> bool:
        return self._db.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                                    psycopg.pq.TransactionStatus.INERROR)

    def rollback(self) -> None:
        if self._db.closed:  # the server ended the transaction with the connection
            self._begun = False
            return
        super().rollback()

    def set_synced(self, synced: bool) -> None:
        self._run(f"SET synchronous_commit = {'on' if synced else 'off'}", ())
        self._synced = synced  # a connection opened again later starts with it too

    def close(self) -> None:
        self._closed = True
        self._db.close()


def connect(where: Place | Path | str, error: ErrorFactory, synced: bool = True
            ) -> Connection:
    """A connection to the area at `where`, as it is: centre/migrations.py's open_area() is
    the one the stores use (it also makes sure of the schema)."""
    at = place(where)
    if at.kind is Engine.SQLITE:
        return SqliteConnection(at, error, synced)
    return PostgresConnection(at, error, synced)
