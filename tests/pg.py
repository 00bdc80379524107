"""pytest fixtures of the real, throw-away PostgreSQL of msa.simulator.pgserver: one server per
test process, a fresh empty database per test.

Test modules import the fixtures: `from pg import pg_database, pg_server  # noqa: F401`.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from msa.simulator.pgserver import (PostgresError, PostgresServer,  # noqa: F401
                                    PostgresUnavailable, postgresql_bin, start_server)

ROOT = Path(__file__).resolve().parent.parent


def _load_bootstrap() -> ModuleType:
    # bootstrap.py decides whether PostgreSQL is installed (and installs it); the tests check
    # that it finds the programs where the server module does (test_pg_fixture.py).
    spec = importlib.util.spec_from_file_location("msa_bootstrap", ROOT / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bootstrap = _load_bootstrap()


# --- fixtures ----------------------------------------------------------------------------------

# One server per test process (each pytest-xdist worker has its own): initdb and start cost
# 1.6-3.3 s, and tests never share state anyway, each having its own database. Module
# scope would pay that per module; the singleton is here, not in the fixture, because every
# module that imports the fixture gets its own copy of it.
_SHARED: PostgresServer | None = None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The test process's running server; skips (a failure under CI) where PostgreSQL cannot
    run."""
    global _SHARED
    if _SHARED is None:
        try:
            _SHARED = start_server()
        except PostgresUnavailable as err:
            pytest.skip(f"{err.what}; `python3 bootstrap.py test` installs it when run as root")
    server = _SHARED
    yield server
    # Session fixtures end with the session: the first copy's teardown stops the server.
    server, _SHARED = _SHARED, None
    if server is not None:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty database of its own, dropped after the test."""
    name, dsn = pg_server.new_database()
    yield dsn
    pg_server.drop_database(name)
