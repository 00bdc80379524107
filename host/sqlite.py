"""Opens the SQLite databases the host and the centre keep: autocommit (each write is its own
transaction unless BEGIN says otherwise), write-ahead logging, the schema applied."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def open_wal(path: str, schema: Iterable[str], synchronous: str = "FULL") -> sqlite3.Connection:
    """FULL survives a power cut; NORMAL only a process crash (for data a peer will resend).
    Raises sqlite3.Error: each caller wraps it in its own package's error."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    for statement in schema:
        db.execute(statement)
    return db
