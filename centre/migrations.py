"""The centre's schema, as numbered migrations per area (centre/storage.py), and the one way
the stores open an area: open_area() makes sure its schema is the one this msa was built for.

- SQLite (one process owns a state folder): an area is migrated when it is opened, so a new
  folder, and one made by an older msa, just work.
- PostgreSQL (several nodes share it): `msa centre migrate` applies the pending migrations, in
  one transaction per area under an advisory lock (two nodes migrating at once wait for each
  other, and the second finds nothing to do). A node refuses to start on a schema older or
  newer than its own (SchemaError): nodes of two versions must not write one database.

A migration is appended, never edited: version n of an area is the same everywhere. Version 1
is the schema as it was when versions began (CREATE ... IF NOT EXISTS: SQLite files made before
then adopt it as they are); ALTERs come as later versions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import DataError, SchemaError
from .storage import (AREAS, Begin, Connection, ErrorFactory, Engine, Place, connect, place,
                      translate_ddl)

# A step: one statement for both databases, one per database, or code for what SQL alone
# cannot say (a column that files of one era have and others lack).
Step = Union[str, Mapping[Engine, str], Callable[[Connection], None]]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    steps: tuple[Step, ...]


def _add_missing_column(table: str, column: str, ddl: str) -> Callable[[Connection], None]:
    def step(db: Connection) -> None:
        if db.kind is Engine.SQLITE:
            have = {str(r[1]) for r in db.rows(f"PRAGMA table_info({table})")}
        else:
            have = {str(r[0]) for r in db.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = ?", (table,))}
        if column not in have:
            db.execute(translate_ddl(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}", db.kind))
    return step


_REGISTRY_1 = (
    "CREATE TABLE IF NOT EXISTS cases ("
    " case_ref TEXT PRIMARY KEY, victim TEXT NOT NULL, victim_phone TEXT NOT NULL DEFAULT '',"
    " suspect TEXT NOT NULL DEFAULT '', suspect_notes TEXT NOT NULL DEFAULT '',"
    " measures TEXT NOT NULL DEFAULT '[]', weapons INTEGER NOT NULL DEFAULT 0,"
    " host_phone TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS buttons ("
    " button_id INTEGER PRIMARY KEY, key BLOB NOT NULL, case_ref TEXT,"
    " registered_at REAL NOT NULL, retired_at REAL)",
    # The heartbeat period each button was provisioned with (a sleep-mode button's is long).
    "CREATE TABLE IF NOT EXISTS heartbeats ("
    " button_id INTEGER PRIMARY KEY, period_s INTEGER NOT NULL)",
    # Each host's credentials (centre/hosts.py).
    "CREATE TABLE IF NOT EXISTS hosts (id ID,"
    " name TEXT NOT NULL, case_ref TEXT NOT NULL, token_sha256 BLOB UNIQUE NOT NULL,"
    " dc09_account TEXT UNIQUE NOT NULL, dc09_key BLOB NOT NULL,"
    " issued_at REAL NOT NULL, revoked_at REAL)",
    # A name names one host in service; a revoked host's name may be given again (a new phone).
    "CREATE UNIQUE INDEX IF NOT EXISTS hosts_in_service ON hosts (name)"
    " WHERE revoked_at IS NULL",
    # Perpetrator tags and their positions (centre/tags.py).
    "CREATE TABLE IF NOT EXISTS tags (tag_id TEXT PRIMARY KEY, case_ref TEXT NOT NULL,"
    " secret_sha256 BLOB UNIQUE NOT NULL, interval_s INTEGER NOT NULL,"
    " issued_at REAL NOT NULL, retired_at REAL)",
    "CREATE TABLE IF NOT EXISTS tag_positions (id ID,"
    " tag_id TEXT NOT NULL, received_at REAL NOT NULL, fix_time REAL NOT NULL,"
    " lat REAL NOT NULL, lon REAL NOT NULL, accuracy_m REAL, battery_pct REAL,"
    " tamper INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tag_positions_by_tag ON tag_positions (tag_id, id)",
    "CREATE INDEX IF NOT EXISTS tags_by_case ON tags (case_ref)",
    # Proximity: rules, zones, links, victims' positions and the case record of alerts
    # (centre/proxstore.py); `ref` ties a delivery or acknowledgement to its alert.
    "CREATE TABLE IF NOT EXISTS proximity_rules (case_ref TEXT PRIMARY KEY,"
    " alert_radius_m REAL NOT NULL, prealert_radius_m REAL NOT NULL,"
    " moving_zone INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS zones (case_ref TEXT NOT NULL, name TEXT NOT NULL,"
    " shape TEXT NOT NULL, added_at REAL NOT NULL, PRIMARY KEY (case_ref, name))",
    "CREATE TABLE IF NOT EXISTS tag_links (tag_id TEXT NOT NULL, case_ref TEXT NOT NULL,"
    " PRIMARY KEY (tag_id, case_ref))",
    "CREATE INDEX IF NOT EXISTS tag_links_by_case ON tag_links (case_ref)",
    "CREATE TABLE IF NOT EXISTS victim_positions (id ID,"
    " case_ref TEXT NOT NULL, received_at REAL NOT NULL, fix_time REAL NOT NULL,"
    " lat REAL NOT NULL, lon REAL NOT NULL, accuracy_m REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS victim_positions_by_time ON victim_positions (received_at)",
    "CREATE TABLE IF NOT EXISTS proximity_events (id ID,"
    " case_ref TEXT NOT NULL, tag_id TEXT NOT NULL, zone TEXT NOT NULL, kind TEXT NOT NULL,"
    " at REAL NOT NULL, distance_m REAL, near_m REAL, ref INTEGER, detail TEXT)",
    "CREATE INDEX IF NOT EXISTS proximity_events_by_case ON proximity_events (case_ref, id)",
    # Operator accounts (centre/accounts.py). One account in service per name, whatever its
    # case ("Admin" would pass for "admin" in an audit log); a removed one's name may return.
    "CREATE TABLE IF NOT EXISTS accounts (id ID,"
    " name TEXT NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,"
    " created_at REAL NOT NULL, removed_at REAL)",
    {Engine.SQLITE: "CREATE UNIQUE INDEX IF NOT EXISTS accounts_in_service ON accounts"
                  " (name COLLATE NOCASE) WHERE removed_at IS NULL",
     Engine.POSTGRESQL: "CREATE UNIQUE INDEX IF NOT EXISTS accounts_in_service ON accounts"
                      " (lower(name)) WHERE removed_at IS NULL"},
    # Keyed by the lower-cased name, account or not (centre/accounts.py).
    "CREATE TABLE IF NOT EXISTS login_failures (name TEXT PRIMARY KEY,"
    " failures INTEGER NOT NULL, locked_until REAL NOT NULL, last_at REAL NOT NULL)",
    # The operator page's sessions (centre/sessions.py).
    "CREATE TABLE IF NOT EXISTS sessions (token_sha256 BLOB PRIMARY KEY, name TEXT NOT NULL,"
    " role TEXT NOT NULL, stamp BLOB NOT NULL, csrf TEXT NOT NULL, created_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, last_seen REAL NOT NULL, source TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at)",
)

_RECORDS_1 = (
    "CREATE TABLE IF NOT EXISTS messages (key TEXT PRIMARY KEY, kind TEXT NOT NULL,"
    " button_id INTEGER NOT NULL, channel TEXT NOT NULL, received_at REAL NOT NULL,"
    " incident INTEGER, battery_pct INTEGER)",
    # Files made before the daily report lack the column (it reads each message's battery).
    _add_missing_column("messages", "battery_pct", "INTEGER"),
    "CREATE INDEX IF NOT EXISTS messages_by_button ON messages (button_id, received_at)",
    "CREATE TABLE IF NOT EXISTS incidents (id ID,"
    " key TEXT UNIQUE NOT NULL, button_id INTEGER NOT NULL, test INTEGER NOT NULL,"
    " case_ref TEXT, opened_at REAL NOT NULL, pressed_at REAL, channel TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'open', resolved_at REAL, battery_pct INTEGER)",
    "CREATE TABLE IF NOT EXISTS track (incident INTEGER NOT NULL, update_no INTEGER NOT NULL,"
    " lat REAL NOT NULL, lon REAL NOT NULL, accuracy_m REAL NOT NULL, fix_time REAL NOT NULL,"
    " source TEXT NOT NULL, channel TEXT NOT NULL, received_at REAL NOT NULL,"
    " PRIMARY KEY (incident, update_no))",
    "CREATE TABLE IF NOT EXISTS buttons (button_id INTEGER PRIMARY KEY,"
    " last_seen REAL NOT NULL, battery_pct INTEGER, low_battery INTEGER NOT NULL DEFAULT 0,"
    " boots INTEGER NOT NULL DEFAULT 0)",
    # Every copy of an incident's messages that arrived, counted or not, with its frame as
    # received: an incident's review must see each channel's part (centre/timeline.py).
    "CREATE TABLE IF NOT EXISTS arrivals (id ID, incident INTEGER NOT NULL,"
    " key TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL, received_at REAL NOT NULL,"
    " verdict TEXT NOT NULL, frame BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS arrivals_by_incident ON arrivals (incident, received_at)",
    # Operators' notes on incidents (centre/notes.py).
    "CREATE TABLE IF NOT EXISTS notes (id ID,"
    " incident INTEGER NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS notes_by_incident ON notes (incident, at, id)",
)

# An incident's number is taken from this row in the transaction that opens the incident, so
# a batch that is rolled back gives its numbers back: references run 1, 2, 3 with no gap that
# could be read as a deleted incident (PostgreSQL's identity numbers are not given back). The
# row's lock also orders the nodes' incident openings, a few a minute.
_RECORDS_2 = (
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO counters (name, value) SELECT 'incident', COALESCE(MAX(id), 0) FROM incidents",
)

# The silent call's events (issue 16, centre/calls.py): one row per CALL message counted,
# numbered per incident by the host.
_RECORDS_3 = (
    "CREATE TABLE IF NOT EXISTS calls (incident INTEGER NOT NULL, n INTEGER NOT NULL,"
    " event TEXT NOT NULL, at REAL NOT NULL, attempt INTEGER NOT NULL, cause TEXT NOT NULL,"
    " channel TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (incident, n))",
)

_AUDIT_1 = (
    "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, at REAL NOT NULL,"
    " actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, source TEXT NOT NULL,"
    " detail TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " count INTEGER NOT NULL, hash BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_by_subject ON entries (subject, seq)",
    # Where the chain starts once entries were pruned: the last deleted entry's seq and hash.
    "CREATE TABLE IF NOT EXISTS anchor (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " seq INTEGER NOT NULL, hash BLOB NOT NULL)",
)

MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "registry": (Migration(1, "cases, buttons, hosts, tags, proximity, accounts, sessions",
                           _REGISTRY_1),),
    "records": (Migration(1, "messages, incidents, tracks, arrivals, notes", _RECORDS_1),
                Migration(2, "gap-free incident numbers", _RECORDS_2),
                Migration(3, "the silent call's events", _RECORDS_3)),
    "audit": (Migration(1, "the hash-chained audit log", _AUDIT_1),),
}
assert set(MIGRATIONS) == set(AREAS)

_VERSIONS = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
             " name TEXT NOT NULL, applied_at REAL NOT NULL)")


def latest(area: str) -> int:
    return MIGRATIONS[area][-1].version


def version(db: Connection) -> int:
    """The area's schema version: 0 for an area never migrated."""
    if db.kind is Engine.SQLITE:
        found = db.rows("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'")
    else:
        found = db.rows("SELECT 1 FROM pg_tables WHERE schemaname = ?"
                        " AND tablename = 'schema_migrations'", (db.place.area,))
    if not found:
        return 0
    row = db.rows("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(row[0][0])


def _apply(db: Connection, step: Step) -> None:
    if callable(step):
        step(db)
        return
    statement = step if isinstance(step, str) else step[db.kind]
    db.execute(translate_ddl(statement, db.kind))


def migrate(db: Connection) -> list[Migration]:
    """Applies the area's pending migrations in one transaction (all or none), under the
    area's write lock; returns those applied. SchemaError for a schema newer than this msa's."""
    area = db.place.area
    if db.kind is Engine.POSTGRESQL:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {area}")
    with db.transaction(Begin.EXCLUSIVE):
        db.execute(translate_ddl(_VERSIONS, db.kind))
        found = version(db)
        if found > latest(area):
            raise SchemaError(str(db.place), found, latest(area))
        pending = [m for m in MIGRATIONS[area] if m.version > found]
        for m in pending:
            for step in m.steps:
                _apply(db, step)
            db.execute("INSERT INTO schema_migrations (version, name, applied_at)"
                       " VALUES (?, ?, ?)", (m.version, m.name, time.time()))
    return pending


def open_area(where: Place | Path | str, area: str, error: ErrorFactory, synced: bool = True
              ) -> Connection:
    """A connection to `area` at `where` (a Place of any area of the centre, a SQLite file
    holding this area whatever its name, or the database URL) whose schema is this msa's:
    SQLite's is migrated here, PostgreSQL's must have been (SchemaError otherwise)."""
    db = connect(place(where, area), error, synced)
    try:
        found = version(db)
        if found != latest(db.place.area):
            if db.kind is Engine.POSTGRESQL or found > latest(db.place.area):
                raise SchemaError(str(db.place), found, latest(db.place.area))
            migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def migrate_all(where: Place | Path | str, error: ErrorFactory = DataError
                ) -> dict[str, list[Migration]]:
    """`msa centre migrate`: every area of the centre at `where` (a state folder's registry
    file or the database URL), brought to this msa's schema. Returns what each area got."""
    base = place(where, "registry")
    out: dict[str, list[Migration]] = {}
    for area in AREAS:
        db = connect(base.sibling(area), error)
        try:
            out[area] = migrate(db)
        finally:
            db.close()
    return out
