"""Exact values the centre's registry and core promise, where mutation testing found a change
that no other test noticed (docs/testing.md lists them): every check of a message, each field
of the records, the bounds, and errors that carry their path."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from backends import State, sql, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.core import (FRAME_KINDS, SILENT_HEARTBEATS, UPDATE_LEAD, Centre, Inbound,
                             Ingested, Verdict, incident_ref)
from msa.centre.errors import RecordError, RegistryError
from msa.centre.registry import Case, Registry
from msa.centre.storage import Engine, place
from msa.wire import protocol as hp
from msa.wire.message import MAX_UPDATE_NO, Fix, FixQuality, Message, MessageKind

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0A0B0C0D
T = 1_800_000_000.0
FIX = Fix(51.0543, 3.7174, 8.0, T, FixQuality.GNSS, "gnss")

FRAME_KIND = {MessageKind.ALARM: hp.Kind.ALARM, MessageKind.TEST: hp.Kind.TEST,
              MessageKind.HEARTBEAT: hp.Kind.HEARTBEAT, MessageKind.BOOT: hp.Kind.BOOT,
              MessageKind.LOW_BATTERY: hp.Kind.LOW_BATTERY}


def raw(kind: hp.Kind, seq: int, button_id: int = BID, battery_pct: int = 80,
        boot_id: int = 1) -> bytes:
    return hp.centre_frame(hp.encode_frame(
        KEYS, CENTRE, kind=kind, button_id=button_id, boot_id=boot_id, seq=seq,
        gesture=hp.Gesture.HOLD if kind is hp.Kind.ALARM else hp.Gesture.NONE,
        battery_pct=battery_pct, age_ms=100))


def msg(kind: MessageKind, seq: int, *, button_id: int = BID, channel: str = "https",
        key: str | None = None, fix: Fix | None = None, incident: str = "",
        update_no: int = 0, at: float = T, battery_pct: int = 80,
        frame_kind: hp.Kind | None = None, pressed_at: float | None = None) -> Inbound:
    fk = frame_kind or FRAME_KIND.get(kind, hp.Kind.ALARM)
    event = Message.event_key(button_id, 1, seq)
    return Inbound(channel, event if key is None else key, kind, button_id,
                   raw(fk, seq, button_id, battery_pct), fix=fix, incident=incident,
                   update_no=update_no, pressed_at=pressed_at, received_at=at)


@pytest.fixture
def reg(state: State) -> Registry:
    r = Registry(state.registry)
    r.put_case(Case("C-1", "Victim", "+32 1", "Suspect", "notes", ("500 m",), True, "+32 9"))
    r.register(BID, CENTRE_KEY, "C-1")
    return r


@pytest.fixture
def centre(state: State, reg: Registry) -> Centre:
    now = [T]
    c = Centre(state.records, reg, clock=lambda: now[0])
    c.now = now  # type: ignore[attr-defined]  # the test moves the clock
    return c


# --- registry --------------------------------------------------------------------------------

def test_registry_button_ids_and_keys_at_their_bounds(state: State) -> None:
    r = Registry(state.registry)
    for bad in (0, 2 ** 32):
        with pytest.raises(RegistryError) as err:
            r.register(bad, CENTRE_KEY, None)
        assert err.value.detail == f"button id {bad} out of range"
        assert err.value.path == str(state.registry)
    for size in (31, 33):
        with pytest.raises(RegistryError) as err:
            r.register(5, bytes(size), None)
        assert err.value.detail == "a button key is 32 bytes"
    with pytest.raises(RegistryError) as err:
        r.register(5, CENTRE_KEY, "C-9")
    assert err.value.detail == "no case 'C-9': add the case first"
    r.register(1, CENTRE_KEY, None)
    r.register(2 ** 32 - 1, bytes(32), None)
    assert r.buttons() == [1, 2 ** 32 - 1]
    assert r.key(1) == CENTRE_KEY and r.key(2 ** 32 - 1) == bytes(32) and r.key(7) is None
    assert r.case_of(1) is None


def test_registry_cases_round_trip_every_field_and_update_in_place(reg: Registry) -> None:
    case = reg.case("C-1")
    assert case == Case("C-1", "Victim", "+32 1", "Suspect", "notes", ("500 m",), True, "+32 9")
    assert case.as_json() == {"case_ref": "C-1", "victim": "Victim", "victim_phone": "+32 1",
                              "suspect": "Suspect", "suspect_notes": "notes",
                              "measures": ["500 m"], "weapons": True}
    changed = Case("C-1", "V2", "+32 2", "S2", "n2", ("a", "b"), False, "+32 8")
    reg.put_case(changed)
    assert reg.case("C-1") == changed
    assert reg.case("C-2") is None
    assert reg.case_of(BID) == changed
    assert Case("C-3", "V") == Case("C-3", "V", "", "", "", (), False, "")


def test_registry_finds_a_case_by_its_host_phone_never_by_an_empty_one(reg: Registry) -> None:
    reg.put_case(Case("C-2", "Other"))
    assert reg.case_for_phone("+32 9").case_ref == "C-1"  # type: ignore[union-attr]
    assert reg.case_for_phone("") is None
    assert reg.case_for_phone("+32 7") is None


def test_registry_retire_forgets_the_key_and_a_new_registration_revives(reg: Registry) -> None:
    reg.register(BID + 1, bytes(32), None)
    assert reg.retire(BID) is True
    assert reg.retire(BID) is False
    assert reg.retire(12345) is False
    assert reg.key(BID) is None and reg.case_of(BID) is None
    assert reg.retired() == {BID} and reg.buttons() == [BID + 1]
    reg.register(BID, bytes(range(1, 33)), "C-1")
    assert reg.key(BID) == bytes(range(1, 33)) and reg.retired() == set()
    revived = reg.case_of(BID)
    assert reg.buttons() == [BID, BID + 1] and revived is not None and revived.case_ref == "C-1"


def test_registry_heartbeat_periods_are_positive_and_replaced(reg: Registry) -> None:
    with pytest.raises(RegistryError) as err:
        reg.expect_heartbeat(BID, 0)
    assert err.value.detail == "heartbeat period 0 s must be positive"
    assert err.value.path == reg.path
    reg.expect_heartbeat(BID, 1)
    reg.expect_heartbeat(BID + 1, 60)
    reg.expect_heartbeat(BID, 3600)
    assert reg.heartbeat_periods() == {BID: 3600, BID + 1: 60}


def test_registry_transaction_is_all_or_nothing(reg: Registry) -> None:
    with pytest.raises(RuntimeError):
        with reg.transaction():
            reg.register(BID + 1, bytes(32), None)
            raise RuntimeError("half way")
    assert reg.buttons() == [BID]
    with reg.transaction():
        reg.register(BID + 1, bytes(32), None)
        reg.register(BID + 2, bytes(32), None)
    assert reg.buttons() == [BID, BID + 1, BID + 2]


def test_registry_errors_carry_the_path(tmp_path: Path) -> None:
    # SQLite only: a file in a missing folder; a closed store on both is the test below.
    path = tmp_path / "missing" / "reg.db"
    with pytest.raises(RegistryError) as err:
        Registry(path)
    assert err.value.path == str(path) and "No such file or directory" in err.value.detail
    r = Registry(tmp_path / "r.db")
    r.close()
    with pytest.raises(RegistryError) as err:
        r.buttons()
    assert err.value.path == str(tmp_path / "r.db")
    assert err.value.detail == "Cannot operate on a closed database."


def test_a_closed_registry_is_an_error_naming_its_place(state: State) -> None:
    r = Registry(state.registry)
    r.close()
    with pytest.raises(RegistryError) as err:
        r.buttons()
    assert err.value.path == str(state.registry) and "closed" in err.value.detail


# --- core: what a message must be ------------------------------------------------------------

def test_frame_kinds_each_message_kind_may_carry() -> None:
    assert FRAME_KINDS[MessageKind.LOCATION] == {hp.Kind.ALARM, hp.Kind.TEST}
    assert all(FRAME_KINDS[k] == {FRAME_KIND[k]} for k in FRAME_KIND)


@pytest.mark.parametrize("button_id,reason", [(0, "button id out of range"),
                                              (2 ** 32, "button id out of range"),
                                              (BID + 1, "unknown or retired button")])
def test_button_ids_outside_the_range_or_unknown_are_refused(centre: Centre, button_id: int,
                                                            reason: str) -> None:
    m = msg(MessageKind.ALARM, 1)
    bad = Inbound(m.channel, m.key, m.kind, button_id, m.frame, received_at=T)
    assert centre.ingest(bad) == Ingested(Verdict.REJECTED, reason)
    assert centre.count() == 0


def test_the_highest_button_id_is_served(state: State, reg: Registry) -> None:
    top = 2 ** 32 - 1
    reg.register(top, CENTRE_KEY, None)
    c = Centre(state.records, reg)
    got = c.ingest(msg(MessageKind.HEARTBEAT, 1, button_id=top))
    assert got == Ingested(Verdict.ACCEPTED)


def test_each_mismatch_between_message_and_frame_has_its_reason(centre: Centre) -> None:
    alarm = msg(MessageKind.ALARM, 5)
    event = alarm.key
    forged = bytearray(alarm.frame)
    forged[-1] ^= 1
    cases = [
        (Inbound("https", event, MessageKind.ALARM, BID, bytes(forged)), "frame tag"),
        (msg(MessageKind.TEST, 5, frame_kind=hp.Kind.ALARM), "frame does not match the message"),
        (msg(MessageKind.ALARM, 5, incident=f"{BID:08x}-1-4"),
         "incident does not match the frame"),
        (msg(MessageKind.ALARM, 5, key=f"{BID:08x}-1-6"), "key does not match the frame"),
        (msg(MessageKind.ALARM, 5, update_no=1),
         "an update number on a message that is no update"),
        (msg(MessageKind.LOCATION, 5, key=f"{event}/1", fix=None), "a location update without"
         " a position"),
        (msg(MessageKind.LOCATION, 5, key=event, fix=FIX), "key does not match the frame"),
        (msg(MessageKind.LOCATION, 5, key=f"{BID:08x}-1-4/1", fix=FIX),
         "key does not match the frame"),
        (msg(MessageKind.LOCATION, 5, key=f"{event}/01", fix=FIX),
         "key does not match the frame"),
        (msg(MessageKind.LOCATION, 5, key=f"{event}/{MAX_UPDATE_NO + 1}", fix=FIX),
         f"update number above {MAX_UPDATE_NO}"),
        (msg(MessageKind.LOCATION, 5, key=f"{event}/3", update_no=2, fix=FIX),
         "update number does not match the key"),
    ]
    for m, reason in cases:
        assert centre.ingest(m) == Ingested(Verdict.REJECTED, reason), reason
    assert centre.count() == 0


def test_an_incident_naming_its_own_frame_is_accepted(centre: Centre) -> None:
    m = msg(MessageKind.ALARM, 5)
    ok = msg(MessageKind.ALARM, 5, incident=m.key)
    assert centre.ingest(ok) == Ingested(Verdict.ACCEPTED, incident="INC-000001", status="open")


# --- core: records ---------------------------------------------------------------------------

def test_an_alarm_opens_an_incident_with_everything_the_operator_needs(centre: Centre) -> None:
    got = centre.ingest(msg(MessageKind.ALARM, 5, fix=FIX, battery_pct=61, pressed_at=T - 2,
                            at=T + 1))
    assert got == Ingested(Verdict.ACCEPTED, incident="INC-000001", status="open")
    [incident] = centre.incidents()
    track = incident.pop("track")
    assert incident.pop("call") is None  # no call event yet
    case = incident.pop("case")
    assert incident == {"incident": "INC-000001", "key": f"{BID:08x}-1-5", "button_id": BID,
                        "test": False, "opened_at": T + 1, "pressed_at": T - 2,
                        "channel": "https", "status": "open", "resolved_at": None,
                        "battery_pct": 61}
    assert case == {"case_ref": "C-1", "victim": "Victim", "victim_phone": "+32 1",
                    "suspect": "Suspect", "suspect_notes": "notes", "measures": ["500 m"],
                    "weapons": True}
    assert track == [{"update_no": 0, "lat": FIX.lat, "lon": FIX.lon, "accuracy_m": 8.0,
                      "fix_time": T, "source": "gnss", "channel": "https",
                      "received_at": T + 1}]
    assert centre.count() == 1 and centre.count(MessageKind.ALARM) == 1
    assert centre.count(MessageKind.TEST) == 0


def test_a_test_alarm_is_flagged_and_a_button_without_a_case_has_none(
        centre: Centre, reg: Registry) -> None:
    reg.register(BID + 1, CENTRE_KEY, None)
    centre.ingest(msg(MessageKind.TEST, 3, button_id=BID + 1, channel="sms"))
    [incident] = centre.incidents()
    assert incident["test"] is True and incident["case"] is None
    assert incident["channel"] == "sms" and incident["track"] == []
    assert incident["pressed_at"] is None


def test_a_duplicate_is_acknowledged_with_its_incident_and_counted_once(centre: Centre) -> None:
    m = msg(MessageKind.ALARM, 5)
    assert centre.ingest(m).verdict is Verdict.ACCEPTED
    again = centre.ingest(msg(MessageKind.ALARM, 5, channel="dc09"))
    assert again == Ingested(Verdict.DUPLICATE, incident="INC-000001", status="open")
    centre.resolve("INC-000001")
    assert centre.ingest(m) == Ingested(Verdict.DUPLICATE, incident="INC-000001",
                                        status="resolved")
    hb = msg(MessageKind.HEARTBEAT, 6)
    assert centre.ingest(hb) == Ingested(Verdict.ACCEPTED)
    assert centre.ingest(hb) == Ingested(Verdict.DUPLICATE)
    assert centre.count() == 2 and centre.count(MessageKind.HEARTBEAT) == 1


def test_location_updates_follow_their_incident_within_the_lead(centre: Centre) -> None:
    alarm = msg(MessageKind.ALARM, 5)
    early = msg(MessageKind.LOCATION, 5, key=f"{alarm.key}/1", fix=FIX)
    assert centre.ingest(early) == Ingested(Verdict.REJECTED,
                                            "no incident for this update (yet)")
    centre.ingest(alarm)
    assert UPDATE_LEAD == 32
    too_far = msg(MessageKind.LOCATION, 5, key=f"{alarm.key}/33", fix=FIX)
    assert centre.ingest(too_far) == Ingested(
        Verdict.REJECTED, "update 33 is more than 32 past the incident's latest (0)")
    for n in (32, 64):
        m = msg(MessageKind.LOCATION, 5, key=f"{alarm.key}/{n}", fix=FIX, update_no=n,
                at=T + n)
        assert centre.ingest(m) == Ingested(Verdict.ACCEPTED, incident="INC-000001",
                                            status="open")
    test = msg(MessageKind.LOCATION, 7, key=f"{BID:08x}-1-7/1", fix=FIX,
               frame_kind=hp.Kind.TEST)
    assert centre.ingest(test).reason == "no incident for this update (yet)"
    assert [p["update_no"] for p in centre.track(1)] == [32, 64]
    assert [p["received_at"] for p in centre.track(1)] == [T + 32, T + 64]


def test_incident_references_and_keys_resolve_and_nothing_else_does(centre: Centre) -> None:
    centre.ingest(msg(MessageKind.ALARM, 5))
    key = f"{BID:08x}-1-5"
    assert incident_ref(1) == "INC-000001" and incident_ref(1234567) == "INC-1234567"
    assert centre.incident_id("INC-000001") == 1 and centre.incident_id(key) == 1
    assert centre.incident_key("INC-000001") == key and centre.incident_key(key) == key
    for other in ("INC-000002", "INC-00001", "inc-000001", f"{BID:08x}-1-6", "1", ""):
        assert centre.incident_id(other) is None and centre.incident_key(other) is None


def test_resolve_closes_once_tells_listeners_and_hides_it(centre: Centre) -> None:
    heard: list[tuple[str, dict[str, object]]] = []
    centre.listeners.append(lambda kind, data: heard.append((kind, data)))
    centre.ingest(msg(MessageKind.ALARM, 5))
    centre.now[0] = T + 60  # type: ignore[attr-defined]
    assert centre.resolve("INC-000002") is False
    assert centre.resolve("INC-000001") is True
    assert centre.resolve("INC-000001") is False
    assert heard == [("alarm", {"key": f"{BID:08x}-1-5", "button_id": BID,
                                "incident": "INC-000001", "channel": "https"}),
                     ("resolved", {"incident": "INC-000001"})]
    assert centre.incidents() == []
    [closed] = centre.incidents(include_resolved=True)
    assert closed["status"] == "resolved" and closed["resolved_at"] == T + 60


def test_listeners_hear_only_accepted_messages_after_the_commit(centre: Centre) -> None:
    heard: list[str] = []
    centre.listeners.append(lambda kind, data: heard.append(f"{kind} {data['incident']}"))
    centre.ingest(msg(MessageKind.HEARTBEAT, 1))
    centre.ingest(msg(MessageKind.HEARTBEAT, 1))
    centre.ingest(msg(MessageKind.ALARM, 2, key="nonsense"))
    assert heard == ["heartbeat "]


def test_newest_incident_first(centre: Centre) -> None:
    centre.ingest(msg(MessageKind.ALARM, 5))
    centre.ingest(msg(MessageKind.TEST, 6))
    assert [i["incident"] for i in centre.incidents()] == ["INC-000002", "INC-000001"]


# --- core: warnings --------------------------------------------------------------------------

def test_silent_after_exactly_its_threshold_and_low_battery_is_sticky(
        centre: Centre, reg: Registry) -> None:
    reg.register(BID + 1, CENTRE_KEY, "C-1")  # never heard from
    centre.ingest(msg(MessageKind.HEARTBEAT, 1, battery_pct=70))
    centre.now[0] = T + 180  # type: ignore[attr-defined]
    assert centre.warnings() == [{"button_id": BID + 1, "case_ref": "C-1",
                                  "warning": "silent", "last_seen": None}]
    centre.now[0] = T + 181  # type: ignore[attr-defined]
    assert centre.warnings()[0] == {"button_id": BID, "case_ref": "C-1", "warning": "silent",
                                    "last_seen": T}
    assert centre.warnings(silent_after_s=181) == [centre.warnings()[1]]
    centre.ingest(msg(MessageKind.LOW_BATTERY, 2, battery_pct=9, at=T + 181))
    centre.ingest(msg(MessageKind.HEARTBEAT, 3, battery_pct=40, at=T + 182))
    warnings = [w for w in centre.warnings() if w["button_id"] == BID]
    assert warnings == [{"button_id": BID, "case_ref": "C-1", "warning": "low battery",
                         "battery_pct": 40}]
    assert SILENT_HEARTBEATS == 3


def test_a_late_older_message_does_not_move_last_seen_back(centre: Centre) -> None:
    centre.ingest(msg(MessageKind.HEARTBEAT, 2, at=T + 100))
    centre.ingest(msg(MessageKind.HEARTBEAT, 1, at=T))
    centre.now[0] = T + 100 + 180  # type: ignore[attr-defined]
    assert [w for w in centre.warnings() if w["button_id"] == BID] == []


# --- core: keyed channels, batches, errors ---------------------------------------------------

def test_keyed_inbound_takes_the_button_from_the_key_head() -> None:
    got = Inbound.keyed("sms", "0a0b0c0d-1-5", MessageKind.ALARM, b"f", None, T, 0)
    assert (got.button_id, got.channel, got.key, got.frame, got.received_at) == (
        BID, "sms", "0a0b0c0d-1-5", b"f", T)
    assert got.incident == "" and got.update_no == 0 and got.pressed_at is None
    for bad in ("0A0B0C0D-1-5", "0a0b0c0-1-5", "zzzzzzzz-1-5", ""):
        assert Inbound.keyed("sms", bad, MessageKind.ALARM, b"", None, T).button_id == 0
    assert Inbound.keyed("dc09", "0a0b0c0d-1-5/3", MessageKind.LOCATION, b"", FIX, T,
                         3).update_no == 3


def test_submit_commits_a_batch_once_and_resumes_every_caller(centre: Centre) -> None:
    async def main() -> list[Ingested]:
        return list(await asyncio.gather(
            centre.submit(msg(MessageKind.HEARTBEAT, 1)),
            centre.submit(msg(MessageKind.ALARM, 2)),
            centre.submit(msg(MessageKind.ALARM, 3, key="bad"))))

    got = asyncio.run(main())
    assert got == [Ingested(Verdict.ACCEPTED),
                   Ingested(Verdict.ACCEPTED, incident="INC-000001", status="open"),
                   Ingested(Verdict.REJECTED, "key does not match the frame")]
    assert centre.count() == 2


# A write the database itself refuses, each in its own trigger language.
REFUSE = {
    Engine.SQLITE: ("CREATE TRIGGER refuse BEFORE INSERT ON incidents"
                    " BEGIN SELECT RAISE(ABORT, 'disk says no'); END",),
    Engine.POSTGRESQL: ("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
                        " AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$",
                        "CREATE TRIGGER refuse BEFORE INSERT ON incidents"
                        " FOR EACH ROW EXECUTE FUNCTION refuse()"),
}
ALLOW = {Engine.SQLITE: "DROP TRIGGER refuse",
         Engine.POSTGRESQL: "DROP TRIGGER refuse ON incidents"}


def test_a_record_that_cannot_be_written_is_a_record_error_and_rolls_back(
        state: State, centre: Centre) -> None:
    for statement in REFUSE[state.engine]:
        sql(state.records, statement)
    with pytest.raises(RecordError) as err:
        centre.ingest(msg(MessageKind.ALARM, 5))
    assert err.value.path == str(state.records)
    assert err.value.detail == "disk says no"
    assert centre.count() == 0  # the message row went with the failed incident
    sql(state.records, ALLOW[state.engine])
    assert centre.ingest(msg(MessageKind.ALARM, 5)).verdict is Verdict.ACCEPTED
    assert centre.count() == 1


def test_an_unopenable_record_file_is_a_record_error_naming_it(state: State, tmp_path: Path,
                                                               reg: Registry) -> None:
    # A file in a missing folder; on PostgreSQL, a database that does not exist.
    if state.database is None:
        where, why = place(tmp_path / "missing" / "rec.db"), "No such file or directory"
    else:
        where, why = place(state.database.rsplit("/", 1)[0] + "/missing", "records"), \
            'database "missing" does not exist'
    with pytest.raises(RecordError) as err:
        Centre(where, reg)
    assert err.value.path == str(where) and why in err.value.detail


def test_a_changed_key_in_the_registry_is_used_at_once(centre: Centre, reg: Registry) -> None:
    assert centre.ingest(msg(MessageKind.HEARTBEAT, 1)).verdict is Verdict.ACCEPTED
    reg.register(BID, bytes(range(100, 132)), "C-1")  # re-provisioned with another K_c
    got = centre.ingest(msg(MessageKind.HEARTBEAT, 2))
    assert got == Ingested(Verdict.REJECTED, "frame tag")
    reg.retire(BID)
    assert centre.ingest(msg(MessageKind.HEARTBEAT, 3)).reason == "unknown or retired button"


def test_ingest_commits_before_it_returns(state: State, centre: Centre) -> None:
    centre.ingest(msg(MessageKind.HEARTBEAT, 1))
    # Another connection sees it.
    assert sql(state.records, "SELECT key, kind, channel FROM messages") == [
        (f"{BID:08x}-1-1", "heartbeat", "https")]


# Each database's own sync level of the centre's record connection, read back: no other way
# shows one without cutting the power. SQLite: PRAGMA synchronous NORMAL (1) or FULL (2);
# PostgreSQL: synchronous_commit off or on.
UNSYNCED = {Engine.SQLITE: 1, Engine.POSTGRESQL: "off"}
SYNCED = {Engine.SQLITE: 2, Engine.POSTGRESQL: "on"}


def synchronous(centre: Centre) -> int | str:
    if centre.place.kind is Engine.SQLITE:
        return int(centre._db.rows("PRAGMA synchronous")[0][0])
    return str(centre._db.rows("SHOW synchronous_commit")[0][0])


def test_only_a_batch_of_heartbeats_is_left_unsynced(state: State, centre: Centre) -> None:
    """A power cut must not take back an alarm the host was told is safe: an alarm that comes
    after a heartbeat in the same batch commits that batch and starts a synced one."""
    unsynced, synced = UNSYNCED[state.engine], SYNCED[state.engine]

    async def batch(*messages: Inbound) -> None:
        await asyncio.gather(*(centre.submit(m) for m in messages))

    assert synchronous(centre) == unsynced  # as the centre opens its records
    asyncio.run(batch(msg(MessageKind.HEARTBEAT, 1)))
    assert synchronous(centre) == unsynced
    asyncio.run(batch(msg(MessageKind.HEARTBEAT, 2), msg(MessageKind.ALARM, 3)))
    assert synchronous(centre) == synced
    asyncio.run(batch(msg(MessageKind.ALARM, 4), msg(MessageKind.HEARTBEAT, 5)))
    assert synchronous(centre) == synced  # a heartbeat joins a synced batch as it is
    asyncio.run(batch(msg(MessageKind.LOW_BATTERY, 6)))
    assert synchronous(centre) == synced
    assert centre.count() == 6


def test_keyed_inbound_keeps_the_position() -> None:
    got = Inbound.keyed("dc09", "0a0b0c0d-1-5/3", MessageKind.LOCATION, b"", FIX, T, 3)
    assert got.fix == FIX


def test_warnings_for_a_button_without_a_case_and_a_zero_threshold(
        centre: Centre, reg: Registry) -> None:
    reg.register(BID + 1, CENTRE_KEY, None)
    centre.ingest(msg(MessageKind.HEARTBEAT, 1, button_id=BID + 1))
    centre.ingest(msg(MessageKind.HEARTBEAT, 1))
    centre.now[0] = T + 2  # type: ignore[attr-defined]
    assert centre.warnings() == []
    assert centre.warnings(silent_after_s=0) == [
        {"button_id": BID, "case_ref": "C-1", "warning": "silent", "last_seen": T},
        {"button_id": BID + 1, "case_ref": None, "warning": "silent", "last_seen": T}]


def test_a_first_alarm_is_synced(state: State, centre: Centre) -> None:
    centre.ingest(msg(MessageKind.ALARM, 1))
    assert synchronous(centre) == SYNCED[state.engine]
