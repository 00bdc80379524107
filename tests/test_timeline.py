"""An incident's timeline from a real Centre and Registry on disk, with frames the button's keys
signed: every copy that arrived (accepted and duplicate, on each channel, with its frame), the
press and the host's receipt back-computed from the frame's age, the track, the case's
proximity record within its window, audit entries and notes; and the notes' input checks."""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from backends import State, sql, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.audit import AuditLog
from msa.centre.core import Centre, Inbound, Verdict
from msa.centre.errors import RecordError
from msa.centre.notes import NOTE_MAX, Notes
from msa.centre.proximity import Change
from msa.centre.proxstore import ProximityStore
from msa.centre.registry import Case, Registry
from msa.centre.storage import Engine, Place
from msa.centre.timeline import incident_timeline
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

KEY = bytes(range(32))
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0C0FFEE5
T0 = 1_790_000_000.0  # the press, by the host's clock
AGE_MS = 1500  # the button held the event this long before the host had it


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    centre: Centre
    registry: Registry
    notes: Notes
    audit: AuditLog
    proximity: ProximityStore
    clock: Clock
    records: Place


@pytest.fixture
def world(state: State) -> Iterator[World]:
    registry = Registry(state.registry)
    registry.put_case(Case("CASE-17", "Jane Doe", "+32470000017", "John Roe"))
    registry.register(BID, CENTRE_KEY, "CASE-17")
    clock = Clock(T0)
    records = state.records
    centre = Centre(records, registry, clock=clock)
    w = World(centre, registry, Notes(records), AuditLog(state.audit),
              ProximityStore(registry), clock, records)
    yield w
    w.centre.close()
    w.notes.close()
    w.audit.close()
    w.proximity.close()
    w.registry.close()


def _frame(kind: hp.Kind, seq: int, age_ms: int | None = AGE_MS) -> bytes:
    return hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID, boot_id=2,
                                           seq=seq, gesture=hp.Gesture.HOLD, battery_pct=64,
                                           age_ms=age_ms))


def _fix(n: int) -> Fix:
    return Fix(51.0543 + n * 0.0002, 3.7174 + n * 0.0003, 6.0 + n, T0 + 10 * n,
               FixQuality.GNSS, "nmea")


def _timeline(w: World, ref: str, now: float | None = None) -> dict[str, object] | None:
    return incident_timeline(w.centre, ref, notes=w.notes, audit=w.audit,
                             proximity=w.proximity, now=now)


def test_an_alarm_with_a_duplicate_updates_a_note_and_its_resolution(world: World) -> None:
    w = world
    raw = _frame(hp.Kind.ALARM, 4)
    key = Message.event_key(BID, 2, 4)
    alarm = Inbound("https", key, MessageKind.ALARM, BID, raw, _fix(0), incident=key,
                    pressed_at=T0, received_at=T0 + 2)

    def update(channel: str, n: int, at: float) -> Inbound:
        return Inbound(channel, f"{key}/{n}", MessageKind.LOCATION, BID, raw, _fix(n),
                       incident=key, update_no=n, received_at=at)

    sent = [(alarm, Verdict.ACCEPTED),
            (Inbound.keyed("sms", key, MessageKind.ALARM, raw, None, T0 + 5),
             Verdict.DUPLICATE),  # the SMS ghost call of the same press
            (update("https", 1, T0 + 10), Verdict.ACCEPTED),
            (update("https", 2, T0 + 20), Verdict.ACCEPTED),
            (update("dc09", 2, T0 + 25), Verdict.DUPLICATE),
            (update("https", 3, T0 + 30), Verdict.ACCEPTED)]
    for m, verdict in sent:
        assert w.centre.ingest(m).verdict is verdict
    ref = "INC-000001"
    for kind, at in (("alert", T0 - 3700), ("pre-alert", T0 + 35), ("alert", T0 + 100)):
        w.proximity.record(Change(kind, "CASE-17", "TAG-9", "home", at, distance_m=180.0))
    w.audit.append("op.jansen", "case.view", ref, "10.0.0.5", at=T0 + 3)
    w.audit.append("op.jansen", "case.view", "INC-000002", "10.0.0.5", at=T0 + 4)
    note_id = w.notes.add(1, "op.jansen", "  Called her:\n\tshe is safe, he left.  ", T0 + 40)
    w.audit.append("op.jansen", "incident.note", ref, "10.0.0.5", {"note": note_id}, T0 + 40)
    w.clock.now = T0 + 50
    assert w.centre.resolve(ref)
    w.audit.append("op.jansen", "incident.resolve", ref, "10.0.0.5", at=T0 + 50)

    t = _timeline(w, ref, now=T0 + 10_000)
    assert t is not None
    assert json.loads(json.dumps(t, allow_nan=False)) == t  # JSON as it is, finite numbers
    assert _timeline(w, key) == t  # named by its alarm key as well
    events = t["events"]
    assert isinstance(events, list)
    assert [e["what"] for e in events] == [
        "press", "host receipt", "centre receipt", "location",
        "operator",  # the case file viewed
        "arrival",  # the SMS copy
        "arrival", "location", "arrival", "location",
        "arrival",  # update 2 again, over DC-09
        "arrival", "location", "proximity", "operator", "note", "operator", "resolved"]
    assert {k: t[k] for k in ("format", "incident", "key", "button_id", "test", "case_ref",
                              "status", "opened_at", "resolved_at")} == {
        "format": "msa-timeline-1", "incident": ref, "key": key, "button_id": BID,
        "test": False, "case_ref": "CASE-17", "status": "resolved", "opened_at": T0 + 2,
        "resolved_at": T0 + 50}
    press, host, receipt = events[0], events[1], events[2]
    assert press == {"at": T0, "what": "press", "by": "button", "age_ms": AGE_MS}
    assert host == {"at": T0 + AGE_MS / 1000, "what": "host receipt", "by": "host",
                    "age_ms": AGE_MS}
    assert receipt == {"at": T0 + 2, "what": "centre receipt", "by": "centre",
                       "channel": "https", "key": key, "verdict": "accepted"}
    copies = [(e["channel"], e["key"], e["verdict"], e["at"]) for e in events
              if e["what"] in ("arrival", "centre receipt")]
    assert copies == [("https", key, "accepted", T0 + 2), ("sms", key, "duplicate", T0 + 5),
                      ("https", f"{key}/1", "accepted", T0 + 10),
                      ("https", f"{key}/2", "accepted", T0 + 20),
                      ("dc09", f"{key}/2", "duplicate", T0 + 25),
                      ("https", f"{key}/3", "accepted", T0 + 30)]
    track = t["track"]
    assert isinstance(track, list) and len(track) == 4  # the alarm's own fix and 3 updates
    locations = [e for e in events if e["what"] == "location"]
    assert [(e["update_no"], e["lat"], e["accuracy_m"], e["fix_time"], e["channel"])
            for e in locations] == [(n, _fix(n).lat, _fix(n).accuracy_m, _fix(n).time,
                                     "https") for n in range(4)]
    assert [e for e in events if e["what"] == "proximity"] == [
        {"at": T0 + 35, "what": "proximity", "by": "proximity", "kind": "pre-alert",
         "tag_id": "TAG-9", "zone": "home", "distance_m": 180.0}]
    assert [e for e in events if e["what"] == "note"] == [
        {"at": T0 + 40, "what": "note", "by": "operator", "author": "op.jansen",
         "text": "Called her:\n\tshe is safe, he left.", "note": note_id}]
    logged = {e.seq: e.hash.hex() for e in w.audit.entries()}
    assert [(e["action"], e["actor"], e["source"], e["hash"] == logged[e["seq"]])
            for e in events if e["what"] == "operator"] == [
        ("case.view", "op.jansen", "10.0.0.5", True),
        ("incident.note", "op.jansen", "10.0.0.5", True),
        ("incident.resolve", "op.jansen", "10.0.0.5", True)]
    assert events[-1] == {"at": T0 + 50, "what": "resolved", "by": "operator"}
    frames = t["frames"]
    assert isinstance(frames, list)
    assert [(f["channel"], f["verdict"], f["kind"]) for f in frames] == [
        ("https", "accepted", "alarm"), ("sms", "duplicate", "alarm"),
        ("https", "accepted", "location"), ("https", "accepted", "location"),
        ("dc09", "duplicate", "location"), ("https", "accepted", "location")]
    assert all(f["frame_hex"] == raw.hex() and f["boot_id"] == 2 and f["seq"] == 4
               and f["age_ms"] == AGE_MS and f["battery_pct"] == 64 for f in frames)


def test_an_unknown_incident_has_no_timeline(world: World) -> None:
    world.centre.ingest(Inbound("https", Message.event_key(BID, 2, 9), MessageKind.ALARM, BID,
                                _frame(hp.Kind.ALARM, 9), None, pressed_at=T0))
    for ref in ("INC-000002", "INC-999999", "0c0ffee5-2-10", "", "1; DROP TABLE incidents"):
        assert _timeline(world, ref) is None
    assert _timeline(world, "INC-000001") is not None


def test_a_test_alarm_without_a_known_press_time(world: World) -> None:
    key = Message.event_key(BID, 2, 3)
    raw = _frame(hp.Kind.TEST, 3, age_ms=None)
    assert world.centre.ingest(Inbound("dc09", key, MessageKind.TEST, BID, raw, None,
                                       received_at=T0 + 1)).verdict is Verdict.ACCEPTED
    t = _timeline(world, "INC-000001", now=T0 + 60)
    assert t is not None and t["test"] is True and t["status"] == "open"
    assert t["resolved_at"] is None and t["track"] == []
    # No press time from the host and no age in the frame: neither is made up.
    assert t["events"] == [{"at": T0 + 1, "what": "centre receipt", "by": "centre",
                            "channel": "dc09", "key": key, "verdict": "accepted"}]
    assert t["frames"] == [{"key": key, "kind": "test", "channel": "dc09",
                            "received_at": T0 + 1, "verdict": "accepted",
                            "frame_hex": raw.hex(), "boot_id": 2, "seq": 3, "age_ms": None,
                            "battery_pct": 64}]


def test_only_incident_copies_are_recorded_and_they_commit_with_their_batch(
        world: World) -> None:
    w = world
    key = Message.event_key(BID, 2, 5)
    raw = _frame(hp.Kind.ALARM, 5)
    beat = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.HEARTBEAT, button_id=BID,
                                           boot_id=2, seq=6))
    forged = raw[:-1] + bytes((raw[-1] ^ 1,))

    async def send() -> list[Verdict]:
        ms = [Inbound("https", key, MessageKind.ALARM, BID, raw, None, received_at=T0),
              Inbound("https", key, MessageKind.ALARM, BID, forged, None, received_at=T0),
              Inbound("https", Message.event_key(BID, 2, 6), MessageKind.HEARTBEAT, BID,
                      beat, None, received_at=T0),
              Inbound.keyed("sms", key, MessageKind.ALARM, raw, None, T0 + 1)]
        return [r.verdict for r in await asyncio.gather(*(w.centre.submit(m) for m in ms))]

    assert asyncio.run(send()) == [Verdict.ACCEPTED, Verdict.REJECTED, Verdict.ACCEPTED,
                                   Verdict.DUPLICATE]
    # Read through another connection: what submit() acknowledged is committed.
    rows = sql(w.records, "SELECT incident, key, kind, channel, received_at, verdict, frame"
               " FROM arrivals ORDER BY id")
    assert rows == [(1, key, "alarm", "https", T0, "accepted", raw),
                    (1, key, "alarm", "sms", T0 + 1, "duplicate", raw)]


def test_a_batch_that_fails_leaves_no_arrival(world: World, state: State) -> None:
    # The next incident after the failed batch is INC-000001 on both: a rollback gives its
    # numbers back (centre/migrations.py, gap-free incident numbers).
    w = world
    good = Inbound("https", Message.event_key(BID, 2, 11), MessageKind.ALARM, BID,
                   _frame(hp.Kind.ALARM, 11), None)
    # A position no decoder lets through, as a decoder bug would hand it on: a value the
    # database cannot store, after the message's arrival is already written in the batch.
    # SQLite cannot store the integer; PostgreSQL takes it (as a double) but no text with NUL.
    lat, source = (2 ** 70, "x") if w.records.kind is Engine.SQLITE else (0.0, "x\x00")
    bad_fix = object.__new__(Fix)
    for name, value in dict(lat=lat, lon=0.0, accuracy_m=1.0, time=1.0,
                            quality=FixQuality.GNSS, source=source, altitude_m=None).items():
        object.__setattr__(bad_fix, name, value)
    bad = Inbound("https", Message.event_key(BID, 2, 12), MessageKind.ALARM, BID,
                  _frame(hp.Kind.ALARM, 12), bad_fix)

    async def both() -> list[object]:
        return list(await asyncio.gather(w.centre.submit(good), w.centre.submit(bad),
                                         return_exceptions=True))

    assert all(isinstance(r, RecordError) for r in asyncio.run(both()))
    assert sql(w.records, "SELECT COUNT(*) FROM arrivals") == [(0,)]
    assert w.centre.ingest(good).verdict is Verdict.ACCEPTED
    assert [a.verdict for a in w.centre.arrivals(1)] == ["accepted"]


BAD_NOTES = [
    pytest.param("", "empty", id="empty"),
    pytest.param(" \n\t ", "empty", id="blank"),
    pytest.param("x" * (NOTE_MAX + 1), f"{NOTE_MAX + 1} characters", id="too-long"),
    pytest.param("he came\x00back", "U+0000", id="nul"),
    pytest.param("he came\x1b[2Jback", "U+001B", id="escape"),
    pytest.param("line\rover", "U+000D", id="carriage-return"),
    pytest.param("he came\udc00back", "U+DC00", id="lone-surrogate"),
]


@pytest.mark.parametrize(("text", "says"), BAD_NOTES)
def test_a_bad_note_is_refused_and_nothing_is_stored(world: World, text: str,
                                                     says: str) -> None:
    world.centre.ingest(Inbound("https", Message.event_key(BID, 2, 7), MessageKind.ALARM, BID,
                                _frame(hp.Kind.ALARM, 7), None))
    with pytest.raises(RecordError, match="note refused") as err:
        world.notes.add(1, "op.jansen", text, T0)
    assert says in err.value.detail
    with pytest.raises(RecordError, match=re.escape(says)):
        world.notes.check(text)  # what the web handler asks before it audits the note
    assert world.notes.for_incident(1) == []


@pytest.mark.parametrize(("incident", "author", "at", "says"), [
    pytest.param(2, "op.jansen", T0, "no incident number 2", id="no-such-incident"),
    pytest.param(0, "op.jansen", T0, "positive integer", id="incident-zero"),
    pytest.param(True, "op.jansen", T0, "positive integer", id="incident-bool"),
    pytest.param(1, "", T0, "author", id="no-author"),
    pytest.param(1, "op\njansen", T0, "unprintable", id="author-newline"),
    pytest.param(1, "op.jansen", float("nan"), "the time", id="time-nan"),
    pytest.param(1, "op.jansen", 10 ** 400, "the time", id="time-huge"),
])
def test_a_note_with_a_bad_incident_author_or_time_is_refused(
        world: World, incident: int, author: str, at: float, says: str) -> None:
    world.centre.ingest(Inbound("https", Message.event_key(BID, 2, 7), MessageKind.ALARM, BID,
                                _frame(hp.Kind.ALARM, 7), None))
    with pytest.raises(RecordError, match=says):
        world.notes.add(incident, author, "she called back", at)
    assert world.notes.for_incident(1) == [] and world.notes.for_incident(2) == []


def test_notes_come_back_oldest_first_and_survive_a_reopen(world: World) -> None:
    world.centre.ingest(Inbound("https", Message.event_key(BID, 2, 8), MessageKind.ALARM, BID,
                                _frame(hp.Kind.ALARM, 8), None))
    late = world.notes.add(1, "op.b", "second", T0 + 20)
    early = world.notes.add(1, "op.a", "x" * NOTE_MAX, T0 + 10)
    world.notes.close()
    world.notes = Notes(world.records)
    assert world.notes.for_incident(1) == [
        {"id": early, "incident": 1, "author": "op.a", "text": "x" * NOTE_MAX, "at": T0 + 10},
        {"id": late, "incident": 1, "author": "op.b", "text": "second", "at": T0 + 20}]


def test_check_gives_the_text_as_stored_and_digest_is_its_sha256() -> None:
    notes = Notes(":memory:")
    assert notes.check(" \tshe is safe\n ") == "she is safe"
    assert notes.check("a\tb\nc") == "a\tb\nc"
    # FIPS 180-2's vector for "abc"
    assert Notes.digest("abc") == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    notes.close()
