"""The centre's case registry: which button belongs to which case, the button's centre key K_c
(so the centre verifies every alarm itself, with a key no host holds), and what the operator
must know at once — the victim, the suspect, the measures imposed, whether weapons are feared.
Held by police only: never on the button, never on the air, never on the victim's host.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RegistryError
from .migrations import open_area
from .storage import Begin, Engine, Place, place

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
    """One connection to the registry's area of the centre's data (a SQLite file or a
    PostgreSQL schema: centre/storage.py); its errors come out as RegistryError. Registry,
    Hosts, Tags, ProximityStore, Accounts and Sessions each keep their tables through one.

    With `positions`, a second connection whose commits do not wait for the disk (a crash of
    the process loses nothing, a power cut the last moment's) for positions, which come again
    within seconds and at thousands a second: `_write(..., fast=True)`."""

    def __init__(self, where: Place | Path | str, positions: bool = False) -> None:
        self.place = place(where, "registry")
        self.path = str(self.place)
        self._db = open_area(self.place, "registry", RegistryError)
        try:
            self._fast = open_area(self.place, "registry", RegistryError, synced=False) \
                if positions else None
        except BaseException:
            self._db.close()
            raise

    def _write(self, sql: str, args: Sequence[object], fast: bool = False) -> int:
        """One write, committed: what its RETURNING gives first (0 if nothing), else the
        number of rows it changed."""
        db = self._fast if fast and self._fast is not None else self._db
        result = db.execute(sql, args)
        if " RETURNING " in sql:
            row = result.one()
            return 0 if row is None else int(row[0])
        return result.rowcount

    def _exec(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.rows(sql, args)

    def transaction(self, kind: Begin = Begin.WRITE) -> AbstractContextManager[None]:
        """Many writes as one commit, all or none (a fleet enrolled at once); EXCLUSIVE for
        a read-modify-write that must not interleave with another node's."""
        return self._db.transaction(kind)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._db.close()


class Registry(Database):
    """Cases and buttons. Every write commits before it returns."""

    def __init__(self, where: Place | Path | str) -> None:
        super().__init__(where)
        if self.place.kind is Engine.SQLITE:
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
        self._exec("UPDATE buttons SET retired_at = ?, key = ?, case_ref = NULL"
                   " WHERE button_id = ?", (time.time(), b"", button_id))
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
