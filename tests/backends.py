"""The centre's two storage backends for the tests: the `state` fixture runs a test once on a
state folder's SQLite files and once on a fresh database of a real PostgreSQL (tests/pg.py),
migrated as `msa centre migrate` would. Tests ask `state` for where each area is and build
their stores and centres from it, so that the same test checks both. `sql()` reaches an area
behind its stores' back on either (a tamper, a refusing trigger, a look at what committed);
`fresh_state()` is `state` for a fixture of a wider scope.

Test modules import the fixtures: `from backends import State, state  # noqa: F401`, plus
`from pg import pg_database, pg_server  # noqa: F401` (the PostgreSQL side needs them).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from msa.centre.migrations import migrate_all
from msa.centre.retention import StatePaths
from msa.centre.server import CentreConfig
from msa.centre.storage import Engine, Place

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class State:
    """One centre's data: its state folder (TLS, keys, and on SQLite the databases) and, on
    PostgreSQL, its database's URL."""

    dir: Path
    database: str | None

    @property
    def paths(self) -> StatePaths:
        return StatePaths.of(self.dir, self.database)

    @property
    def registry(self) -> Place:
        return self.paths.registry

    @property
    def records(self) -> Place:
        return self.paths.records

    @property
    def audit(self) -> Place:
        return self.paths.audit

    @property
    def engine(self) -> Engine:
        return self.registry.kind

    def config(self, **kwargs: Any) -> CentreConfig:
        """A CentreConfig for a centre on this state."""
        return CentreConfig(state_dir=self.dir, database=self.database, **kwargs)


def make_state(folder: Path, database: str | None) -> State:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if database is not None:
        migrate_all(database)
    return State(folder, database)


@contextmanager
def fresh_state(request: pytest.FixtureRequest, folder: Path, backend: str) -> Iterator[State]:
    """As the `state` fixture, for fixtures of a wider scope (a centre started once per
    module): a fresh state on `backend`, its database dropped at the end."""
    if backend == "sqlite":
        yield make_state(folder, None)
        return
    server = request.getfixturevalue("pg_server")
    name, dsn = server.new_database()
    try:
        yield make_state(folder, dsn)
    finally:
        server.drop_database(name)


def sql(where: Place, statement: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """One raw statement on an area, behind its stores' back, committed at once (a tamper, a
    trigger, a look at what was committed): `?` placeholders on both backends. The rows it
    gives, if any."""
    if where.kind is Engine.SQLITE:
        lite = sqlite3.connect(where.target, isolation_level=None)
        try:
            return list(lite.execute(statement, tuple(args)).fetchall())
        finally:
            lite.close()
    with psycopg.connect(where.target, autocommit=True,
                         options=f"-c search_path={where.area}") as pg:
        cursor = pg.execute(statement.replace("%", "%%").replace("?", "%s"), tuple(args))
        return list(cursor.fetchall()) if cursor.description is not None else []


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> State:
    """A fresh centre state on each backend in turn."""
    database = None
    if request.param == "postgresql":
        database = str(request.getfixturevalue("pg_database"))
    return make_state(tmp_path / "state", database)
