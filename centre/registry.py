"""The centre's case registry (SQLite): which button belongs to which case, the button's centre
key K_c (so the centre verifies every alarm itself, with a key no host holds), and what the operator must know at once — the
victim, the suspect, the measures imposed, whether weapons are feared. Held by police only:
never on the button, never on the air, never on the victim's host.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from msa.common.sqlite import open_wal

from .errors import RegistryError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cases ("
    " case_ref TEXT PRIMARY KEY, victim TEXT NOT NULL, victim_phone TEXT NOT NULL DEFAULT '',"
    " suspect TEXT NOT NULL DEFAULT '', suspect_notes TEXT NOT NULL DEFAULT '',"
    " measures TEXT NOT NULL DEFAULT '[]', weapons INTEGER NOT NULL DEFAULT 0,"
    " host_phone TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS buttons ("
    " button_id INTEGER PRIMARY KEY, key BLOB NOT NULL, case_ref TEXT,"
    " registered_at REAL NOT NULL, retired_at REAL)",
    # The heartbeat period each button was provisioned with (a sleep-mode button's is long);
    # a table of its own, so that registries made before it need no migration.
    "CREATE TABLE IF NOT EXISTS heartbeats ("
    " button_id INTEGER PRIMARY KEY, period_s INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class Case:
    """What the operator sees with an alarm."""

    case_ref: str
    victim: str
    victim_phone: str = ""
    suspect: str = ""
    suspect_notes: str = ""
    measures: tuple[str, ...] = field(default=())  # e.g. "restraining order, 500 m"
    weapons: bool = False
    host_phone: str = ""  # the victim's host's SMS number, to recognise ghost calls

    def as_json(self) -> dict[str, object]:
        return {"case_ref": self.case_ref, "victim": self.victim,
                "victim_phone": self.victim_phone, "suspect": self.suspect,
                "suspect_notes": self.suspect_notes, "measures": list(self.measures),
                "weapons": self.weapons}


class Database:
    """One connection to the registry's database, its tables' schema applied; SQLite's errors
    come out as RegistryError. Registry, Hosts and Tags each keep their tables through one.

    With `positions`, a second connection without an fsync per write (synchronous=NORMAL: a
    crash of the process loses nothing, a power cut the last moment's) for positions, which
    come again within seconds and at thousands a second: `_write(..., fast=True)`."""

    def __init__(self, path: Path | str, schema: Sequence[str], positions: bool = False
                 ) -> None:
        self.path = str(path)
        try:
            self._db = open_wal(self.path, schema)
            self._fast = open_wal(self.path, (), synchronous="NORMAL") if positions else None
        except (sqlite3.Error, OSError) as exc:
            raise RegistryError(self.path, str(exc)) from exc

    def _write(self, sql: str, args: Sequence[object], fast: bool = False) -> int:
        """One write, committed: the new row's id for an INSERT, else the rows it changed."""
        db = self._fast if fast and self._fast is not None else self._db
        try:
            cursor = db.execute(sql, tuple(args))
        except sqlite3.Error as exc:
            raise RegistryError(self.path, str(exc)) from exc
        return int(cursor.lastrowid or 0) if sql.startswith("INSERT") else cursor.rowcount

    def _exec(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, tuple(args)).fetchall())
        except sqlite3.Error as exc:
            raise RegistryError(self.path, str(exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Many writes as one commit, all or none (a fleet enrolled at once)."""
        self._exec("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._exec("ROLLBACK")
            raise
        self._exec("COMMIT")

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._db.close()


class Registry(Database):
    """Cases and buttons. Every write commits before it returns."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)
        self._exec("PRAGMA cache_size=-65536")  # up to 64 MiB: a large fleet's keys

    def put_case(self, case: Case) -> None:
        self._exec("INSERT INTO cases (case_ref, victim, victim_phone, suspect, suspect_notes,"
                   " measures, weapons, host_phone) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT(case_ref) DO UPDATE SET victim = excluded.victim,"
                   " victim_phone = excluded.victim_phone, suspect = excluded.suspect,"
                   " suspect_notes = excluded.suspect_notes, measures = excluded.measures,"
                   " weapons = excluded.weapons, host_phone = excluded.host_phone",
                   (case.case_ref, case.victim, case.victim_phone, case.suspect,
                    case.suspect_notes, json.dumps(list(case.measures)), int(case.weapons),
                    case.host_phone))

    def case(self, case_ref: str) -> Case | None:
        rows = self._exec("SELECT case_ref, victim, victim_phone, suspect, suspect_notes,"
                          " measures, weapons, host_phone FROM cases WHERE case_ref = ?",
                          (case_ref,))
        if not rows:
            return None
        ref, victim, phone, suspect, notes, measures, weapons, host_phone = rows[0]
        return Case(str(ref), str(victim), str(phone), str(suspect), str(notes),
                    tuple(json.loads(str(measures))), bool(weapons), str(host_phone))

    def case_for_phone(self, phone: str) -> Case | None:
        rows = self._exec("SELECT case_ref FROM cases WHERE host_phone = ? AND host_phone != ''",
                          (phone,))
        return self.case(str(rows[0][0])) if rows else None

    def register(self, button_id: int, key: bytes, case_ref: str | None) -> None:
        """Registers (or re-registers, for a reused button) a button with its centre key K_c
        (protocol version 2; a key registered for version 1 was K, and no version 2 frame
        verifies with it: such a button is provisioned again)."""
        if not 0 < button_id < 2 ** 32:
            raise RegistryError(self.path, f"button id {button_id} out of range")
        if len(key) != 32:
            raise RegistryError(self.path, "a button key is 32 bytes")
        if case_ref is not None and self.case(case_ref) is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        self._exec("INSERT INTO buttons (button_id, key, case_ref, registered_at) VALUES"
                   " (?, ?, ?, ?) ON CONFLICT(button_id) DO UPDATE SET key = excluded.key,"
                   " case_ref = excluded.case_ref, registered_at = excluded.registered_at,"
                   " retired_at = NULL", (button_id, key, case_ref, time.time()))

    def retire(self, button_id: int) -> bool:
        """Unlinks a button from its case and forgets its key; False if it was not active."""
        rows = self._exec("SELECT 1 FROM buttons WHERE button_id = ? AND retired_at IS NULL",
                          (button_id,))
        self._exec("UPDATE buttons SET retired_at = ?, key = X'', case_ref = NULL"
                   " WHERE button_id = ?", (time.time(), button_id))
        return bool(rows)

    def key(self, button_id: int) -> bytes | None:
        """The active button's centre key K_c (never printed or logged)."""
        # Read every time (a primary-key lookup): another process, `msa provision` or
        # `msa retire`, may have changed it while this centre runs.
        rows = self._exec("SELECT key FROM buttons WHERE button_id = ? AND retired_at IS NULL",
                          (button_id,))
        return bytes(rows[0][0]) if rows and isinstance(rows[0][0], bytes) else None

    def case_of(self, button_id: int) -> Case | None:
        rows = self._exec("SELECT case_ref FROM buttons WHERE button_id = ?"
                          " AND retired_at IS NULL", (button_id,))
        if not rows or rows[0][0] is None:
            return None
        return self.case(str(rows[0][0]))

    def retired(self) -> set[int]:
        """Ids of retired buttons: never given out again (message keys are made from ids)."""
        return {int(str(b)) for (b,) in self._exec(
            "SELECT button_id FROM buttons WHERE retired_at IS NOT NULL")}

    def expect_heartbeat(self, button_id: int, period_s: int) -> None:
        """Records how often the button sends a heartbeat (set at provisioning)."""
        if period_s <= 0:
            raise RegistryError(self.path, f"heartbeat period {period_s} s must be positive")
        self._exec("INSERT INTO heartbeats (button_id, period_s) VALUES (?, ?)"
                   " ON CONFLICT(button_id) DO UPDATE SET period_s = excluded.period_s",
                   (button_id, period_s))

    def heartbeat_periods(self) -> dict[int, int]:
        """Button id -> heartbeat period in seconds, for the buttons provisioned with one."""
        return {int(str(b)): int(str(p)) for b, p in self._exec(
            "SELECT button_id, period_s FROM heartbeats")}

    def buttons(self) -> list[int]:
        return [int(str(b)) for (b,) in self._exec(
            "SELECT button_id FROM buttons WHERE retired_at IS NULL ORDER BY button_id")]
