"""The throw-away PostgreSQL of tests/pg.py: it runs, each test gets a database of its own,
rows and notifications cross connections as the centre will rely on, the database's own
constraints refuse a duplicate, and the server stops cleanly leaving nothing behind."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from msa.simulator import pgserver
from pg import (PostgresServer, PostgresUnavailable, bootstrap, pg_database,  # noqa: F401
                pg_server, start_server)


def test_the_server_answers_on_loopback_with_fsync_on(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.dsn) as conn:
        settings: dict[str, str] = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('fsync', 'synchronous_commit', 'listen_addresses', 'max_connections')"
        ).fetchall())
        who = conn.execute("SELECT current_user").fetchone()
    # Tests may claim "committed before acknowledged": the server must really flush.
    assert settings == {"fsync": "on", "synchronous_commit": "on",
                        "listen_addresses": "127.0.0.1", "max_connections": "100"}
    assert who == ("msa",)


def test_the_server_does_not_run_as_root(pg_server: PostgresServer) -> None:
    status = Path(f"/proc/{pg_server.process.pid}/status").read_text()
    real, effective = (int(x) for x in
                       next(line for line in status.splitlines()
                            if line.startswith("Uid:")).split()[1:3])
    assert real != 0 and effective != 0
    assert pg_server.data_dir.stat().st_uid == effective


def test_its_unix_socket_is_in_its_own_folder(pg_server: PostgresServer) -> None:
    assert (pg_server.socket_dir / f".s.PGSQL.{pg_server.port}").is_socket()
    with psycopg.connect(host=str(pg_server.socket_dir), port=pg_server.port,
                         user="msa", dbname="postgres") as conn:
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)  # not TCP


def test_a_password_is_needed_over_tcp(pg_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://msa:wrong@127.0.0.1:{pg_server.port}/postgres").close()


def test_each_database_is_new_empty_and_its_own(pg_server: PostgresServer,
                                                pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                              ).fetchone()
        conn.execute("CREATE TABLE mine (n integer)")
    assert tables == (0,)
    other_name, other_dsn = pg_server.new_database()
    try:
        assert other_dsn != pg_database and other_name in other_dsn
        with psycopg.connect(other_dsn) as conn:
            assert conn.execute("SELECT to_regclass('public.mine')").fetchone() == (None,)
    finally:
        pg_server.drop_database(other_name)
    with psycopg.connect(pg_server.dsn) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert other_name not in names and pg_database.rsplit("/", 1)[1] in names


def test_a_row_makes_the_round_trip(pg_database: str) -> None:
    row = (2**62, "Zoë 🚨 — alarm", bytes(range(256)), 50.8503, True,
           dt.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=dt.timezone.utc), None)
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE r (i bigint, t text, b bytea, f double precision,"
                      " k boolean, at timestamptz, n text)")
        conn.execute("INSERT INTO r VALUES (%s, %s, %s, %s, %s, %s, %s)", row)
        conn.commit()
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT * FROM r").fetchall() == [row]


def test_a_row_is_seen_by_another_connection_once_committed(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as setup:
        setup.execute("CREATE TABLE alarms (id integer PRIMARY KEY)")
    with psycopg.connect(pg_database) as writer, \
            psycopg.connect(pg_database, autocommit=True) as reader:
        writer.execute("INSERT INTO alarms VALUES (1)")
        assert reader.execute("SELECT id FROM alarms").fetchall() == []
        writer.commit()
        assert reader.execute("SELECT id FROM alarms").fetchall() == [(1,)]
        reader.execute("INSERT INTO alarms VALUES (2)")  # autocommit: at once
        assert writer.execute("SELECT id FROM alarms ORDER BY id").fetchall() == [(1,), (2,)]


def test_notify_reaches_a_listener_only_when_committed(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as listener, \
            psycopg.connect(pg_database) as sender:
        listener.execute("LISTEN alarms")
        sender.execute("SELECT pg_notify('alarms', 'rolled back')")
        sender.rollback()
        sender.execute("NOTIFY alarms, 'committed'")
        sender.commit()
        # Waits for the notification itself; the deadline only ends a hang.
        got = [(n.channel, n.payload, n.pid)
               for n in listener.notifies(timeout=30.0, stop_after=1)]
        assert got == [("alarms", "committed", sender.info.backend_pid)]


def test_a_duplicate_key_raises_unique_violation_and_counts_once(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE counted (button bigint, counter bigint,"
                     " PRIMARY KEY (button, counter))")
        conn.execute("INSERT INTO counted VALUES (7, 1)")
        conn.commit()
        with pytest.raises(errors.UniqueViolation) as err:
            conn.execute("INSERT INTO counted VALUES (7, 1)")
        assert err.value.sqlstate == "23505"
        assert err.value.diag.constraint_name == "counted_pkey"
        conn.rollback()
        again = conn.execute("INSERT INTO counted VALUES (7, 1) ON CONFLICT DO NOTHING")
        assert again.rowcount == 0
        assert conn.execute("SELECT count(*) FROM counted").fetchone() == (1,)


def test_the_server_stops_cleanly_and_leaves_nothing() -> None:
    try:
        server = start_server()
    except PostgresUnavailable as err:
        pytest.skip(f"{err.what}; `python3 bootstrap.py test` installs it when run as root")
    dsn, folder = server.dsn, server.folder
    left_open = psycopg.connect(dsn)  # a fast stop must not wait for clients
    try:
        server.stop()
        assert server.process.returncode == 0
        assert not folder.exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=5).close()
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
    finally:
        left_open.close()
    server.stop()  # a second stop is a no-op


def test_bootstrap_finds_debian_postgresql_off_path(monkeypatch: pytest.MonkeyPatch) -> None:
    found = bootstrap.postgresql_bin()
    if found is None:
        pytest.skip("PostgreSQL is not installed; `python3 bootstrap.py test` installs it")
    monkeypatch.setenv("PATH", "/nonexistent")
    off_path = bootstrap.postgresql_bin()
    assert off_path is not None and off_path.parent.parent == bootstrap.POSTGRESQL_LIB
    assert "postgresql" not in bootstrap.missing_programs()
    # The server module finds the same programs bootstrap.py installs (or leaves alone).
    assert pgserver.postgresql_bin() == off_path


def test_bootstrap_counts_postgresql_missing_without_all_three_programs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setattr(bootstrap, "POSTGRESQL_LIB", tmp_path / "lib")
    assert bootstrap.postgresql_bin() is None
    assert "postgresql" in bootstrap.missing_programs()
    newest, older = tmp_path / "lib" / "16" / "bin", tmp_path / "lib" / "9.6" / "bin"
    for folder, names in ((older, ("initdb", "pg_ctl", "postgres")),
                          (newest, ("initdb", "pg_ctl"))):  # 16 lacks the server
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).touch(mode=0o755)
    assert bootstrap.postgresql_bin() == older
    (newest / "postgres").touch(mode=0o755)
    assert bootstrap.postgresql_bin() == newest
    assert "postgresql" not in bootstrap.missing_programs()
    assert bootstrap.SYSTEM_PROGRAMS["postgresql"] == ("postgresql",)
