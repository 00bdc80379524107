"""The host's durable outbox (SQLite, WAL): every message to the centre is committed here
before any channel sees it, and stays until a channel's receipt is committed too, so a host
killed at any point delivers on restart. Also keeps the open incidents that tracking follows.

Delivery is at-least-once; the centre counts each message once by its idempotency key.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from msa.wire.call import MAX_CALL_NO, CallPayload
from msa.wire.message import Fix, Message, MessageKind
from .dispatch import Receipt
from .errors import OutboxError
from msa.common.sqlite import open_wal

# Lower goes first: an alarm never waits behind a heartbeat.
PRIORITY: dict[MessageKind, int] = {
    MessageKind.ALARM: 0,
    MessageKind.TEST: 1,
    MessageKind.LOCATION: 2,
    MessageKind.CALL: 2,
    MessageKind.LOW_BATTERY: 3,
    MessageKind.BOOT: 4,
    MessageKind.HEARTBEAT: 5,
}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages ("
    " key TEXT PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,"
    " button_id INTEGER NOT NULL, frame BLOB NOT NULL, created_at REAL NOT NULL,"
    " fix TEXT, pressed_at REAL, battery_pct INTEGER, update_no INTEGER NOT NULL,"
    " incident TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_try REAL NOT NULL DEFAULT 0, last_error TEXT,"
    " delivered_at REAL, channel TEXT, reference TEXT)",
    "CREATE INDEX IF NOT EXISTS pending ON messages (priority, created_at)"
    " WHERE delivered_at IS NULL",
    "CREATE TABLE IF NOT EXISTS incidents ("
    " key TEXT PRIMARY KEY, button_id INTEGER NOT NULL, kind TEXT NOT NULL,"
    " frame BLOB NOT NULL, opened_at REAL NOT NULL, track_until REAL NOT NULL,"
    " next_update_no INTEGER NOT NULL DEFAULT 1, closed_at REAL, close_reason TEXT,"
    " reference TEXT)",
    # A CALL message's event, by its key (a table of its own: outboxes made before calls
    # open as they are), numbered per incident.
    "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, incident TEXT NOT NULL,"
    " n INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE (incident, n))",
)


@dataclass(frozen=True)
class Incident:
    """An open alarm that tracking follows until the centre closes it or the window ends."""

    key: str
    button_id: int
    kind: MessageKind
    frame: bytes
    opened_at: float
    track_until: float
    next_update_no: int
    reference: str = ""


def _fix_json(fix: Fix | None) -> str | None:
    return None if fix is None else json.dumps(fix.as_dict())


def _fix_from(text: str | None) -> Fix | None:
    return Fix.from_dict(json.loads(text)) if text else None


_MESSAGE_COLUMNS = ("key, kind, button_id, frame, created_at, fix, pressed_at, battery_pct,"
                    " update_no, incident")
_READ_COLUMNS = (_MESSAGE_COLUMNS
                 + ", (SELECT payload FROM calls WHERE calls.key = messages.key)")


def _message(row: tuple[object, ...]) -> Message:
    (key, kind, button_id, frame, created_at, fix, pressed_at, battery, update_no, incident,
     call) = row
    return Message(key=str(key), kind=MessageKind(kind), button_id=int(str(button_id)),
                   frame=bytes(frame) if isinstance(frame, (bytes, bytearray)) else b"",
                   created_at=float(str(created_at)), fix=_fix_from(fix if isinstance(fix, str)
                                                                     else None),
                   pressed_at=None if pressed_at is None else float(str(pressed_at)),
                   battery_pct=None if battery is None else int(str(battery)),
                   update_no=int(str(update_no)), incident=str(incident),
                   call=CallPayload.from_json(json.loads(call)) if isinstance(call, str)
                   else None)


class Outbox:
    """One host's outbox. Every method commits before it returns."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            self._db = open_wal(self.path, _SCHEMA)  # FULL: an alarm survives a power cut
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(self.path, str(exc)) from exc

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            return self._db.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise OutboxError(self.path, str(exc)) from exc

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise OutboxError(self.path, str(exc)) from exc

    def put(self, message: Message) -> bool:
        """Stores a message; False if one with its key is already here (a second arrival
        of the same event, e.g. after a crash before the sequence number was spent)."""
        return self._write(
            f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}, priority)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message.key, message.kind.value, message.button_id, message.frame,
             message.created_at, _fix_json(message.fix), message.pressed_at,
             message.battery_pct, message.update_no, message.incident,
             PRIORITY[message.kind])) == 1

    def due(self, now: float, limit: int = 16) -> list[Message]:
        """Undelivered messages whose next try is due, most urgent first."""
        rows = self._read(f"SELECT {_READ_COLUMNS} FROM messages WHERE delivered_at IS NULL"
                          " AND next_try <= ? ORDER BY priority, created_at LIMIT ?",
                          (now, limit))
        return [_message(r) for r in rows]

    def next_try(self, skip: Collection[str] = ()) -> float | None:
        """When the earliest undelivered message is due (None: nothing undelivered), leaving
        out the keys in `skip` (those being delivered right now)."""
        marks = ", ".join("?" * len(skip))
        rows = self._read("SELECT MIN(next_try) FROM messages WHERE delivered_at IS NULL"
                          f" AND key NOT IN ({marks})", tuple(skip))
        value = rows[0][0] if rows else None
        return None if value is None else float(str(value))

    def delivered(self, receipt: Receipt) -> None:
        self._write("UPDATE messages SET delivered_at = ?, channel = ?, reference = ?,"
                    " last_error = NULL WHERE key = ? AND delivered_at IS NULL",
                    (receipt.acked_at, receipt.channel, receipt.reference, receipt.key))

    def failed(self, key: str, error: str, retry_at: float) -> None:
        self._write("UPDATE messages SET attempts = attempts + 1, last_error = ?, next_try = ?"
                    " WHERE key = ?", (error, retry_at, key))

    def drop(self, key: str, why: str) -> None:
        """Gives up a message that can no longer matter (a stale heartbeat); kept, marked."""
        self._write("UPDATE messages SET delivered_at = ?, channel = '', last_error = ?"
                    " WHERE key = ? AND delivered_at IS NULL", (time.time(), why, key))

    def status(self, key: str) -> tuple[float | None, str | None, int, str | None] | None:
        """(delivered_at, channel, attempts, last_error) of one message, None if unknown."""
        rows = self._read("SELECT delivered_at, channel, attempts, last_error FROM messages"
                          " WHERE key = ?", (key,))
        if not rows:
            return None
        at, channel, attempts, error = rows[0]
        return (None if at is None else float(str(at)), None if channel is None else str(channel),
                int(str(attempts)), None if error is None else str(error))

    def last_created(self, button_id: int, kind: MessageKind) -> float | None:
        """When the latest message of a kind from a button was stored (None: never)."""
        rows = self._read("SELECT MAX(created_at) FROM messages WHERE button_id = ? AND kind = ?",
                          (button_id, kind.value))
        value = rows[0][0] if rows else None
        return None if value is None else float(str(value))

    def attempts(self, key: str) -> int:
        """How many tries of a message have failed (0 for an unknown key)."""
        rows = self._read("SELECT attempts FROM messages WHERE key = ?", (key,))
        return int(str(rows[0][0])) if rows else 0

    def undelivered(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM messages WHERE delivered_at IS NULL")
        return int(str(rows[0][0]))

    # --- incidents that tracking follows ---
    def open_incident(self, message: Message, track_until: float) -> None:
        """Opens (or, on a new press in the same incident, extends) tracking for an alarm."""
        self._write("INSERT INTO incidents (key, button_id, kind, frame, opened_at, track_until)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                    " track_until = MAX(track_until, excluded.track_until)",
                    (message.key, message.button_id, message.kind.value, message.frame,
                     message.created_at, track_until))

    def extend_incident(self, key: str, until: float) -> bool:
        """Tracks an open incident until at least `until` (never shortens it: a call that
        ends keeps the press's own window if that is later). False if it is closed or
        unknown."""
        return self._write("UPDATE incidents SET track_until = MAX(track_until, ?)"
                           " WHERE key = ? AND closed_at IS NULL", (until, key)) == 1

    def incidents(self, now: float) -> list[Incident]:
        """Incidents still tracked at `now`."""
        rows = self._read("SELECT key, button_id, kind, frame, opened_at, track_until,"
                          " next_update_no, COALESCE(reference, '') FROM incidents"
                          " WHERE closed_at IS NULL AND track_until > ? ORDER BY opened_at",
                          (now,))
        return [Incident(str(k), int(str(b)), MessageKind(kind),
                         bytes(f) if isinstance(f, (bytes, bytearray)) else b"",
                         float(str(o)), float(str(t)), int(str(n)), str(r))
                for k, b, kind, f, o, t, n, r in rows]

    def add_update(self, incident: Incident, message: Message) -> None:
        """Stores a tracking update and advances the incident's counter in one commit."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self.put(message)
            self._db.execute("UPDATE incidents SET next_update_no = ? WHERE key = ?",
                             (message.update_no + 1, incident.key))
            self._db.execute("COMMIT")
        except (sqlite3.Error, OutboxError) as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise OutboxError(self.path, str(exc)) from exc

    def add_call(self, incident: str, call: CallPayload, now: float) -> Message | None:
        """Stores a call event of an incident as a CALL message numbered after the
        incident's last ("<incident>/c<n>"), in one commit. None once the incident has
        MAX_CALL_NO of them (the centre would refuse more); OutboxError for an unknown one."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._read("SELECT button_id, frame FROM incidents WHERE key = ?",
                              (incident,))
            if not rows:
                raise OutboxError(self.path, f"no incident {incident} for a call event")
            n = int(str(self._read("SELECT COALESCE(MAX(n), 0) + 1 FROM calls"
                                   " WHERE incident = ?", (incident,))[0][0]))
            if n > MAX_CALL_NO:
                self._db.execute("ROLLBACK")
                return None
            button_id, frame = rows[0]
            message = Message(key=f"{incident}/c{n}", kind=MessageKind.CALL,
                              button_id=int(str(button_id)),
                              frame=bytes(frame) if isinstance(frame, bytes) else b"",
                              created_at=now, incident=incident, call=call)
            self.put(message)
            self._db.execute("INSERT INTO calls (key, incident, n, payload) VALUES (?, ?, ?, ?)",
                             (message.key, incident, n, json.dumps(call.as_json())))
            self._db.execute("COMMIT")
            return message
        except (sqlite3.Error, OutboxError) as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise OutboxError(self.path, str(exc)) from exc

    def close_incident(self, key: str, reason: str, at: float | None = None) -> None:
        self._write("UPDATE incidents SET closed_at = ?, close_reason = ?"
                    " WHERE key = ? AND closed_at IS NULL",
                    (time.time() if at is None else at, reason, key))

    def set_reference(self, key: str, reference: str) -> None:
        if reference:
            self._write("UPDATE incidents SET reference = ? WHERE key = ?", (reference, key))

    def close(self) -> None:
        self._db.close()
