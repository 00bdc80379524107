"""The reference centre's core: takes a message from any channel, verifies the button's own tag
with the key in the registry (end to end: a compromised host cannot forge an alarm), counts
each idempotency key once, opens incidents with the case file, records the track, flags TEST
alarms, and keeps each button's last word so that silent buttons and low batteries are warned.
Every copy of an incident's messages that arrives, counted or duplicate, is recorded with its
frame in the same batch (arrivals; an incident's review reads it: centre/timeline.py).
Records live in SQLite (WAL) or PostgreSQL (centre/storage.py); every accepted message is
committed before it is acknowledged, and every kind but a heartbeat is also synced to disk
first (a power cut must not take back an alarm the host was told is safe). Receivers on the
event loop use submit(): what arrives within one turn of the loop shares one commit (group
commit; docs/performance.md, "ingest").

Keys are the centre's own: it builds each one from the verified frame ("<button hex8>-<boot>-
<seq>", a location update adding "/<n>") and refuses a message whose key is anything else, so
nothing a sender writes in a key can open an incident or count twice (a call event's key is
"<incident>/c<n>": centre/calls.py). An update number n is
accepted only from 1 to MAX_UPDATE_NO and at most UPDATE_LEAD past the highest one the incident
has (docs/dispatch.md, "Keys and update numbers").
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from msa.wire.call import CallPayload
from msa.wire.errors import FrameError
from msa.wire.message import (INCIDENT_KINDS, MAX_UPDATE_NO, UPDATE_SUFFIX, Fix,
                              MessageKind)
from msa.wire.protocol import CentreKey, Frame, Kind, verify_centre

from .calls import check_call, lead_refusal, record_call
from .errors import RecordError, StorageConflict
from .migrations import open_area
from .ratelog import Throttle
from .records import SILENT_HEARTBEATS as SILENT_HEARTBEATS
from .records import Arrival as Arrival
from .records import IncidentRow as IncidentRow
from .records import RecordReads
from .records import incident_ref as incident_ref
from .registry import Registry
from .storage import Begin, Engine, Place, place

log = logging.getLogger("msa.centre")
_throttled = Throttle(log)

CACHE_KIB = -65536  # SQLite page cache of the centre's connections: up to 64 MiB each

# Which frame kind may stand behind each message kind (a LOCATION carries its alarm's frame).
FRAME_KINDS: dict[MessageKind, frozenset[Kind]] = {
    MessageKind.ALARM: frozenset({Kind.ALARM}),
    MessageKind.TEST: frozenset({Kind.TEST}),
    MessageKind.LOCATION: frozenset({Kind.ALARM, Kind.TEST}),
    MessageKind.LOW_BATTERY: frozenset({Kind.LOW_BATTERY}),
    MessageKind.HEARTBEAT: frozenset({Kind.HEARTBEAT}),
    MessageKind.BOOT: frozenset({Kind.BOOT}),
    MessageKind.CALL: frozenset({Kind.ALARM}),  # the silent call follows an alarm only
}

# A genuine update number is never far past the highest the centre has: the host sends them
# in order, at most a few at once. UPDATE_LEAD bounds how far a sender may jump ahead, so that
# a made-up number cannot become the "latest" position and stay there.
UPDATE_LEAD = 32
_HEX8 = re.compile(r"[0-9a-f]{8}", re.ASCII)

_ARRIVAL = ("INSERT INTO arrivals (incident, key, kind, channel, received_at, verdict, frame)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)")
# Every node's page hears of what any node committed (PostgreSQL's NOTIFY, sent in the same
# transaction: it is delivered only if the commit happens). The payload names the node that
# wrote, so that a node does not tell its own listeners twice.
CHANNEL = "msa_centre"


class Verdict(enum.Enum):
    """What the centre did with a message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # this key was counted before: acknowledged again, not counted
    REJECTED = "rejected"  # failed verification: not acknowledged (the channel says so)


@dataclass(frozen=True)
class Inbound:
    """One message as a channel received it."""

    channel: str
    key: str
    kind: MessageKind
    button_id: int
    frame: bytes
    fix: Fix | None = None
    incident: str = ""
    update_no: int = 0
    pressed_at: float | None = None
    received_at: float = 0.0
    call: CallPayload | None = None  # a CALL's event

    @classmethod
    def keyed(cls, channel: str, key: str, kind: MessageKind, frame: bytes, fix: Fix | None,
              received_at: float, update_no: int = 0,
              call: CallPayload | None = None) -> Inbound:
        """For channels that carry only the key (DC-09, SMS): the button id is its first
        eight hex digits (0, refused, when they are not); the centre derives the incident
        and the update number from the verified frame and the key itself."""
        head = key[:8]
        return cls(channel=channel, key=key, kind=kind,
                   button_id=int(head, 16) if _HEX8.fullmatch(head) else 0, frame=frame,
                   fix=fix, update_no=update_no, received_at=received_at, call=call)


class _Checked(NamedTuple):
    """What the centre itself makes of a verified message: the keys built from its frame."""

    frame: Frame
    key: str  # the message's key
    incident: str  # the incident's key ("" for a button's own notices)
    update_no: int  # a LOCATION's or a CALL's n, else 0


@dataclass(frozen=True)
class Ingested:
    verdict: Verdict
    reason: str = ""  # why it was rejected
    incident: str = ""  # the centre's incident reference ("" if none)
    status: str = ""  # "open" or "resolved" for incident messages


class Centre(RecordReads):
    """The centre's records. Not thread-safe: one event loop owns it."""

    def __init__(self, where: Place | Path | str, registry: Registry,
                 clock: Callable[[], float] = time.time) -> None:
        self.place = place(where, "records")
        self.path = str(self.place)
        self.node = secrets.token_hex(4)  # this process, among the nodes of one database
        self.registry = registry
        self._clock = clock
        self._keys: dict[int, tuple[bytes, CentreKey]] = {}
        self.listeners: list[Callable[[str, dict[str, object]], None]] = []
        # More warnings for the operator, each computed at read time for a given `now`.
        self.warning_sources: list[Callable[[float], list[dict[str, object]]]] = []
        self._waiting: list[asyncio.Future[None]] = []  # submit() callers of the open batch
        self._accepted: list[tuple[Inbound, Ingested]] = []  # to notify once committed
        # Unsynced commits survive a crash of the process, not a power cut: enough for a
        # heartbeat (the next comes a minute later). Batches holding anything else are
        # committed synced, which waits for the disk first (see _begin).
        self._db = open_area(self.place, "records", RecordError, synced=False)
        if self.place.kind is Engine.SQLITE:
            # The dedupe index and the buttons' rows outgrow SQLite's 2 MiB default cache
            # with a large fleet: every frame then reads pages back from the OS.
            self._db.execute(f"PRAGMA cache_size={CACHE_KIB}")
        self._synced = False  # whether the connection's commits wait for the disk

    def _button_keys(self, button_id: int) -> CentreKey | None:
        master = self.registry.key(button_id)  # the button's K_c
        if master is None:
            return None
        cached = self._keys.get(button_id)
        if cached is None or cached[0] != master:
            cached = (master, CentreKey.from_master(master))
            self._keys[button_id] = cached
        return cached[1]

    def _verify(self, m: Inbound) -> _Checked | str:
        if not 0 < m.button_id < 2 ** 32:
            return "button id out of range"
        keys = self._button_keys(m.button_id)
        if keys is None:
            return "unknown or retired button"
        try:
            frame = verify_centre(m.frame, keys)
        except FrameError as exc:
            return f"frame {exc.reason}"
        if frame.button_id != m.button_id or frame.kind not in FRAME_KINDS[m.kind]:
            return "frame does not match the message"
        event = f"{frame.button_id:08x}-{frame.boot_id}-{frame.seq}"
        if m.incident and m.incident != event:
            return "incident does not match the frame"
        if m.kind is MessageKind.LOCATION:
            # Exactly "<incident>/<n>": a suffix of any other form is a different string that
            # would count again, and n must be one a host can have reached.
            prefix, slash, suffix = m.key.partition("/")
            if prefix != event or not slash or not UPDATE_SUFFIX.fullmatch(suffix):
                return "key does not match the frame"
            n = int(suffix)
            if n > MAX_UPDATE_NO:
                return f"update number above {MAX_UPDATE_NO}"
            if m.update_no not in (0, n):
                return "update number does not match the key"
            if m.fix is None:
                return "a location update without a position"
            return _Checked(frame, m.key, event, n)
        if m.kind is MessageKind.CALL:  # exactly "<incident>/c<n>", and its event
            n_or_why = check_call(m.key, event, m.call, m.fix is not None)
            if isinstance(n_or_why, str):
                return n_or_why
            return "an update number on a call event" if m.update_no else \
                _Checked(frame, m.key, event, n_or_why)
        if m.call is not None:
            return "a call on a message that is no call event"
        if m.key != event:
            return "key does not match the frame"
        if m.update_no:
            return "an update number on a message that is no update"
        return _Checked(frame, event, event if m.kind in INCIDENT_KINDS else "", 0)

    def ingest(self, m: Inbound) -> Ingested:
        """Verifies, dedupes and records one message; committed before it returns."""
        result = self._stage(m)
        if result.verdict is not Verdict.REJECTED:
            self.flush()
        return result

    async def submit(self, m: Inbound) -> Ingested:
        """As ingest(), for receivers on the event loop: messages staged within one turn of
        the loop share one commit, and each caller resumes once its message is committed."""
        result = self._stage(m)
        if result.verdict is Verdict.REJECTED:
            return result
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        self._waiting.append(committed)
        if len(self._waiting) == 1:
            loop.call_soon(self._flush_quietly)
        await committed  # RecordError if the batch could not be committed
        return result

    def _stage(self, m: Inbound) -> Ingested:
        """Verifies a message and records it in the open batch (not committed yet)."""
        checked = self._verify(m)
        if isinstance(checked, str):
            _throttled.warning(checked, "rejected %s from %s for button %#010x: %s",
                               m.kind.value, m.channel, m.button_id, checked)
            return Ingested(Verdict.REJECTED, checked)
        try:
            self._begin(synced=m.kind is not MessageKind.HEARTBEAT)
            result = self._record(m, checked, m.received_at or self._clock())
        except Exception as exc:  # noqa: BLE001 - any failure: no half-written record stays
            # The database's own words when it refused; a fault of ours, named by its class.
            detail = exc.detail if isinstance(exc, (RecordError, StorageConflict)) else \
                f"{type(exc).__name__}: {exc}"
            error = RecordError(self.path, detail)
            self._abort(error)
            raise error from exc
        if result.verdict is Verdict.REJECTED:
            _throttled.warning(result.reason.split(" ")[0], "rejected %s from %s for button"
                               " %#010x: %s", m.kind.value, m.channel, m.button_id, result.reason)
        elif result.verdict is Verdict.ACCEPTED:
            self._accepted.append((m, result))
        return result

    def _begin(self, synced: bool) -> None:
        """Opens a batch, or joins the open one. A commit's sync level is fixed before BEGIN:
        a message that must be synced ends an unsynced batch (committed as it is)."""
        if self._db.in_transaction:
            if self._synced or not synced:
                return
            self._commit()
        if self._synced != synced:
            self._db.set_synced(synced)
            self._synced = synced
        self._db.begin(Begin.WRITE)

    def _commit(self) -> None:
        # The other nodes' pages hear of it in the same transaction (nothing on SQLite).
        self._db.notify(CHANNEL, json.dumps({"node": self.node}))
        self._db.commit()

    def flush(self) -> None:
        """Commits the open batch, then releases its submit() callers and tells listeners."""
        waiting, self._waiting = self._waiting, []
        accepted, self._accepted = self._accepted, []
        if self._db.in_transaction:
            try:
                self._commit()
            except RecordError as error:
                self._abort(error, waiting)
                raise
        for committed in waiting:
            if not committed.done():
                committed.set_result(None)
        for m, result in accepted:
            self._notify(m, result)

    def _flush_quietly(self) -> None:
        with contextlib.suppress(RecordError):  # already handed to every waiting caller
            self.flush()

    def _abort(self, error: RecordError, waiting: list[asyncio.Future[None]] | None = None
               ) -> None:
        """Rolls the batch back: nothing in it was acknowledged, so its senders retry."""
        with contextlib.suppress(RecordError):  # a dropped connection rolled back already
            self._db.rollback()
        for committed in self._waiting + (waiting or []):
            if not committed.done():
                committed.set_exception(error)
        self._waiting, self._accepted = [], []

    def _record(self, m: Inbound, checked: _Checked, now: float) -> Ingested:
        db = self._db
        frame, key, incident_key, update_no = checked
        row = db.execute("SELECT id, status FROM incidents WHERE key = ?",
                         (incident_key,)).one() if incident_key else None
        if m.kind is MessageKind.CALL:
            why = "no incident for this call event (yet)" if row is None else \
                lead_refusal(db, int(row[0]), update_no)
            if why:
                return Ingested(Verdict.REJECTED, why)
        if m.kind is MessageKind.LOCATION:
            if row is None:
                return Ingested(Verdict.REJECTED, "no incident for this update (yet)")
            highest = db.execute("SELECT COALESCE(MAX(update_no), 0) FROM track"
                                 " WHERE incident = ?", (row[0],)).rows[0][0]
            if update_no > int(highest) + UPDATE_LEAD:
                return Ingested(Verdict.REJECTED, f"update {update_no} is more than"
                                f" {UPDATE_LEAD} past the incident's latest ({highest})")
        # The key's primary key counts it once, whichever node's transaction commits first:
        # another node's insert of the same key waits for that commit, then does nothing.
        first = db.execute("INSERT INTO messages (key, kind, button_id, channel, received_at,"
                           " battery_pct) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (key, m.kind.value, m.button_id, m.channel, now,
                            frame.battery_pct)).rowcount == 1
        if not first:
            if row is None and incident_key:  # opened by another node meanwhile
                row = db.execute("SELECT id, status FROM incidents WHERE key = ?",
                                 (incident_key,)).one()
            if row is not None:  # a copy of an incident's message: its review shows it
                db.execute(_ARRIVAL, (row[0], key, m.kind.value, m.channel, now,
                                      Verdict.DUPLICATE.value, m.frame))
            return Ingested(Verdict.DUPLICATE, incident="" if row is None else
                            incident_ref(int(row[0])), status="" if row is None else str(row[1]))
        db.execute("INSERT INTO buttons (button_id, last_seen, battery_pct, low_battery, boots)"
                   " VALUES (?, ?, ?, ?, ?) ON CONFLICT(button_id) DO UPDATE SET"
                   " last_seen = CASE WHEN excluded.last_seen > buttons.last_seen"
                   " THEN excluded.last_seen ELSE buttons.last_seen END,"
                   " battery_pct = COALESCE(excluded.battery_pct, buttons.battery_pct),"
                   " low_battery = CASE WHEN excluded.low_battery > buttons.low_battery"
                   " THEN excluded.low_battery ELSE buttons.low_battery END,"
                   " boots = buttons.boots + excluded.boots",
                   (m.button_id, now, frame.battery_pct,
                    int(m.kind is MessageKind.LOW_BATTERY), int(m.kind is MessageKind.BOOT)))
        if m.kind in INCIDENT_KINDS and row is None:
            case = self.registry.case_of(m.button_id)
            # The next number, in this transaction: a rollback gives it back (migrations.py).
            number = db.execute("UPDATE counters SET value = value + 1 WHERE name = 'incident'"
                                " RETURNING value").rows[0][0]
            db.execute("INSERT INTO incidents (id, key, button_id, test, case_ref, opened_at,"
                       " pressed_at, channel, battery_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (number, key, m.button_id, int(m.kind is MessageKind.TEST),
                        None if case is None else case.case_ref, now, m.pressed_at, m.channel,
                        frame.battery_pct))
            row = (number, "open")
        if row is not None:
            db.execute("UPDATE messages SET incident = ? WHERE key = ?", (row[0], key))
            db.execute(_ARRIVAL, (row[0], key, m.kind.value, m.channel, now,
                                  Verdict.ACCEPTED.value, m.frame))
            if m.fix is not None:
                db.execute("INSERT INTO track (incident, update_no, lat, lon, accuracy_m,"
                           " fix_time, source, channel, received_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (row[0], update_no, m.fix.lat, m.fix.lon, m.fix.accuracy_m,
                            m.fix.time, m.fix.source, m.channel, now))
            if m.call is not None:
                record_call(db, int(row[0]), update_no, m.call, m.channel, now)
            return Ingested(Verdict.ACCEPTED, incident=incident_ref(int(row[0])),
                            status=str(row[1]))
        return Ingested(Verdict.ACCEPTED)

    def _notify(self, m: Inbound, result: Ingested) -> None:
        detail: dict[str, object] = {"key": m.key, "button_id": m.button_id,
                                     "incident": result.incident, "channel": m.channel}
        if m.call is not None:
            detail["call"] = m.call.as_json()
        for listener in self.listeners:
            listener(m.kind.value, detail)

    def resolve(self, reference: str) -> bool:
        """The operator closes an incident: the host stops tracking at its next update."""
        number = self.incident_id(reference)
        if number is None:
            return False
        self.flush()  # the update below then commits on its own, before this returns
        with self._db.transaction():
            changed = self._db.execute("UPDATE incidents SET status = 'resolved',"
                                       " resolved_at = ? WHERE id = ? AND status = 'open'",
                                       (self._clock(), number)).rowcount == 1
            if changed:
                self._db.notify(CHANNEL, json.dumps({"node": self.node}))
        if changed:
            for listener in self.listeners:
                listener("resolved", {"incident": incident_ref(number)})
        return changed

    def close(self) -> None:
        self.flush()
        self._db.close()

