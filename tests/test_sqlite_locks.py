"""Two connections to one database in one process, read from another (as the centre's own
connections and `msa case`, the tests or a backup do): every commit must stay visible to the
other process. Opening a second connection must not drop the first one's locks (closing any
descriptor of a file drops all of a process's POSIX locks on it): another process would then
take the database for unused, checkpoint it and delete the WAL still being written to."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

WRITER = """
import sys
from msa.common.sqlite import open_wal
first = open_wal(sys.argv[1], ["CREATE TABLE IF NOT EXISTS t (n INTEGER)"])
first.execute("INSERT INTO t VALUES (1)")
second = open_wal(sys.argv[1], ())  # beside the first, in the same process
print("ready", flush=True)
for line in sys.stdin:
    first.execute("INSERT INTO t VALUES (?)", (int(line),))
    print("done", flush=True)
"""


def _count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        db.close()  # the last connection of this process: SQLite may checkpoint here


def test_commits_stay_visible_to_another_process(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        assert _count(path) == 1
        for n in range(2, 5):
            writer.stdin.write(f"{n}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "done"
            assert _count(path) == n  # the writer's commit, seen from here
    finally:
        writer.stdin.close()
        writer.wait(30)
