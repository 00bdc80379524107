"""Opens the SQLite databases the host and the centre keep: autocommit (each write is its own
transaction unless BEGIN says otherwise), write-ahead logging, the schema applied."""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

# What SQLite writes next to a database in WAL mode; each holds the database's data too.
COMPANIONS = ("", "-wal", "-shm", "-journal")


def private(path: str) -> None:
    """Makes a database and its companions readable and writable by their owner only (0600).
    The file is created 0600 if missing: SQLite gives its WAL and SHM files the database's
    mode, so they are born private as well. (They hold keys, case files, alarm records.)

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included ("How To Corrupt An SQLite Database File",
    2.2). A second connection opened beside a live one (the centre opens several) would then
    let another process take the database for unused, checkpoint it and delete its WAL while
    this process still writes to it: its commits would be invisible to every other process."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for suffix in COMPANIONS:
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def open_wal(path: str, schema: Iterable[str], synchronous: str = "FULL") -> sqlite3.Connection:
    """FULL survives a power cut; NORMAL only a process crash (for data a peer will resend).
    The files are private (0600, see private()). Raises sqlite3.Error or OSError: each caller
    wraps them in its own package's error."""
    if path != ":memory:":
        private(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    for statement in schema:
        db.execute(statement)
    return db
