"""Exact values the host's receiver, sequence guard, dispatcher and outbox promise, where
mutation testing found a change that no other test noticed (docs/testing.md lists them)."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from msa.host.dispatch import Receipt
from msa.host.errors import OutboxError, StateError
from msa.host.events import LowBatteryEvent, TestEvent, Via
from msa.host.outbox import PRIORITY, Incident, Outbox
from msa.host.receiver import ACKED_KINDS, Receiver
from msa.host.sequence import MAX_GAPS, Outcome, SequenceGuard, Verdict, decide
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE = hp.CentreKey.from_master(bytes(range(64, 96)))
BID = 0x0A0B0C0D
OTHER = hp.ButtonKeys.from_master(bytes(range(1, 33)))


def frame(kind: hp.Kind, seq: int, keys: hp.ButtonKeys = KEYS, button_id: int = BID) -> bytes:
    return hp.encode_frame(keys, CENTRE, kind=kind, button_id=button_id, boot_id=1, seq=seq,
                           gesture=hp.Gesture.HOLD if kind is hp.Kind.ALARM else hp.Gesture.NONE,
                           battery_pct=80, age_ms=100)


@pytest.fixture
def rx(tmp_path: Path) -> Receiver:
    return Receiver({BID: KEYS}, SequenceGuard(tmp_path / "state.db"))


# --- receiver --------------------------------------------------------------------------------

def test_rejections_are_counted_per_reason(rx: Receiver) -> None:
    forged = frame(hp.Kind.ALARM, 3, keys=OTHER)
    assert rx.frame(forged).rejected == "tag"
    assert rx.frame(forged).rejected == "tag"
    assert rx.frame(b"\x02\x01\x00").rejected == "length"
    assert rx.frame(frame(hp.Kind.ALARM, 3, button_id=7)).rejected == "button"
    good = frame(hp.Kind.ALARM, 5)
    assert rx.frame(good).event is not None
    assert rx.frame(good).rejected == "duplicate"
    assert rx.frame(good).rejected == "duplicate"
    assert rx.frame(frame(hp.Kind.ALARM, 4)).rejected == "replay"  # below 5, in no gap
    assert rx.rejections == {"tag": 2, "length": 1, "button": 1, "duplicate": 2, "replay": 1}


def test_an_advert_no_button_sealed_is_rejected_and_counted(rx: Receiver) -> None:
    sealed = hp.seal_burst(OTHER, frame(hp.Kind.ALARM, 3, keys=OTHER))
    out = rx.advert(sealed)
    assert (out.event, out.ack, out.rejected) == (None, None, "tag")
    assert rx.advert(sealed[:-1]).rejected == "length"
    assert rx.rejections == {"tag": 1, "length": 1}


@pytest.mark.parametrize("kind,acked", [(hp.Kind.ALARM, True), (hp.Kind.TEST, True),
                                        (hp.Kind.LOW_BATTERY, True), (hp.Kind.BOOT, True),
                                        (hp.Kind.HEARTBEAT, False)])
def test_kinds_the_button_keeps_are_acked_over_gatt_only(rx: Receiver, kind: hp.Kind,
                                                         acked: bool) -> None:
    assert (kind in ACKED_KINDS) is acked
    out = rx.frame(frame(kind, 8))
    assert out.event is not None and out.ack == (8 if acked else None)
    burst = rx.advert(hp.seal_burst(KEYS, frame(kind, 9)))
    assert burst.event is not None and burst.event.via is Via.ADVERT and burst.ack is None


def test_event_types_for_test_and_low_battery(rx: Receiver) -> None:
    assert isinstance(rx.frame(frame(hp.Kind.TEST, 1)).event, TestEvent)
    assert isinstance(rx.frame(frame(hp.Kind.LOW_BATTERY, 2)).event, LowBatteryEvent)


def test_a_peeked_frame_is_not_spent_until_committed(rx: Receiver, tmp_path: Path) -> None:
    raw = frame(hp.Kind.ALARM, 6)
    first = rx.frame(raw, commit=False)
    assert first.event is not None and first.ack == 6
    assert rx.guard.state(BID) == (0, [])
    second = rx.frame(raw, commit=False)
    assert second.event is not None
    rx.commit(second.event)
    assert rx.guard.state(BID) == (6, [])
    again = rx.frame(raw)
    assert again.event is None and again.rejected == "duplicate" and again.ack == 6
    burst = rx.advert(hp.seal_burst(KEYS, frame(hp.Kind.ALARM, 7)), commit=False)
    assert burst.event is not None and rx.guard.state(BID) == (6, [])


def test_the_gap_and_received_time_are_on_the_event(rx: Receiver) -> None:
    rx.frame(frame(hp.Kind.BOOT, 1))
    out = rx.frame(frame(hp.Kind.ALARM, 3))
    assert out.event is not None and out.event.gap == (2, 2) and out.event.via is Via.GATT
    assert rx.frame(frame(hp.Kind.ALARM, 4)).event.gap is None  # type: ignore[union-attr]


# --- sequence guard --------------------------------------------------------------------------

def test_decide_first_frame_opens_no_gap_whatever_its_number() -> None:
    verdict, high, gaps = decide(0, [], 1000)
    assert verdict == Verdict(Outcome.NEW) and (high, gaps) == (1000, [])


def test_decide_next_number_opens_no_gap_one_more_opens_a_gap_of_one() -> None:
    assert decide(5, [], 6) == (Verdict(Outcome.NEW), 6, [])
    assert decide(5, [], 7) == (Verdict(Outcome.NEW, (6, 6)), 7, [(6, 6)])


def test_decide_late_frames_split_their_gap_at_the_edges() -> None:
    gaps = [(2, 4), (8, 9)]
    assert decide(10, gaps, 2) == (Verdict(Outcome.LATE), 10, [(3, 4), (8, 9)])
    assert decide(10, gaps, 4) == (Verdict(Outcome.LATE), 10, [(2, 3), (8, 9)])
    assert decide(10, gaps, 3) == (Verdict(Outcome.LATE), 10, [(2, 2), (4, 4), (8, 9)])
    assert decide(10, [(2, 2), (8, 9)], 2) == (Verdict(Outcome.LATE), 10, [(8, 9)])
    assert decide(10, gaps, 9) == (Verdict(Outcome.LATE), 10, [(2, 4), (8, 8)])
    assert decide(10, gaps, 5) == (Verdict(Outcome.REPLAY), 10, gaps)
    assert decide(10, gaps, 10) == (Verdict(Outcome.DUPLICATE), 10, gaps)
    assert decide(10, gaps, 1) == (Verdict(Outcome.REPLAY), 10, gaps)


def test_decide_keeps_exactly_max_gaps_and_reports_the_rest_lost() -> None:
    assert MAX_GAPS == 32
    gaps = [(2 * i, 2 * i) for i in range(1, MAX_GAPS + 1)]  # 32 gaps, highest 65
    verdict, high, kept = decide(65, gaps[:-1] + [(64, 64)], 67)
    assert verdict.gap == (66, 66) and verdict.lost == ((2, 2),)
    assert len(kept) == MAX_GAPS and kept[0] == (4, 4) and kept[-1] == (66, 66) and high == 67
    verdict, _, kept = decide(63, gaps[:-1], 65)
    assert verdict.lost == () and len(kept) == MAX_GAPS


def test_verdict_defaults_and_acceptance() -> None:
    v = Verdict(Outcome.NEW)
    assert v.gap is None and v.lost == ()
    assert [Verdict(o).accepted for o in Outcome] == [True, True, False, False]
    assert [o.value for o in Outcome] == ["new", "late", "duplicate", "replay"]


def test_guard_peek_never_commits_and_check_commits_only_acceptances(tmp_path: Path) -> None:
    guard = SequenceGuard(tmp_path / "g.db")
    assert guard.path == str(tmp_path / "g.db")
    assert guard.peek(BID, 5) == Verdict(Outcome.NEW)
    assert guard.state(BID) == (0, [])
    assert guard.check(BID, 5) == Verdict(Outcome.NEW)
    assert guard.check(BID, 8) == Verdict(Outcome.NEW, (6, 7))
    assert guard.state(BID) == (8, [(6, 7)])
    assert guard.peek(BID, 6) == Verdict(Outcome.LATE) and guard.state(BID) == (8, [(6, 7)])
    assert guard.check(BID, 8) == Verdict(Outcome.DUPLICATE)
    assert guard.check(BID, 6) == Verdict(Outcome.LATE)
    assert guard.state(BID) == (8, [(7, 7)])
    assert guard.state(BID + 1) == (0, [])
    guard.close()
    again = SequenceGuard(tmp_path / "g.db")
    assert again.state(BID) == (8, [(7, 7)])
    again.check(BID + 1, 3)
    again.forget(BID)
    assert again.state(BID) == (0, []) and again.state(BID + 1) == (3, [])
    again.close()


def _refuse_writes(path: Path, table: str) -> None:
    """Another connection makes every write to `table` fail, as a full disk would."""

    with sqlite3.connect(path) as db:
        for op in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER refuse_{op.lower()} BEFORE {op} ON {table}"
                       " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")


def _allow_writes(path: Path) -> None:

    with sqlite3.connect(path) as db:
        for op in ("insert", "update", "delete"):
            db.execute(f"DROP TRIGGER refuse_{op}")


def test_a_failed_commit_is_a_state_error_with_its_path_and_nothing_half_done(
        tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    guard = SequenceGuard(path)
    assert guard.check(BID, 5).accepted
    _refuse_writes(path, "seq_state")
    with pytest.raises(StateError) as err:
        guard.check(BID, 6)
    assert err.value.path == str(path) and err.value.detail == "disk says no"
    with pytest.raises(StateError) as err:
        guard.forget(BID)
    assert err.value.path == str(path) and err.value.detail == "disk says no"
    _allow_writes(path)
    # rolled back: the refused number is still new, and the guard is usable at once
    assert guard.state(BID) == (5, [])
    assert guard.check(BID, 6) == Verdict(Outcome.NEW)
    guard.forget(BID)
    assert guard.state(BID) == (0, [])


def test_an_unopenable_state_file_is_a_state_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "g.db"
    with pytest.raises(StateError) as err:
        SequenceGuard(path)
    assert err.value.path == str(path) and "No such file or directory" in err.value.detail


def test_reading_a_closed_state_is_a_state_error_with_path_and_detail(tmp_path: Path) -> None:
    guard = SequenceGuard(tmp_path / "g.db")
    guard.close()
    with pytest.raises(StateError) as err:
        guard.state(BID)
    assert err.value.path == str(tmp_path / "g.db")
    assert err.value.detail == "Cannot operate on a closed database."


# --- outbox ----------------------------------------------------------------------------------

T = 1_800_000_000.0
FIX = Fix(51.0543, 3.7174, 8.0, T - 3, FixQuality.GNSS, "gnss", 12.5)


def message(seq: int, kind: MessageKind = MessageKind.ALARM, at: float = T,
            **extra: object) -> Message:
    key = Message.event_key(BID, 1, seq)
    fields: dict[str, object] = {"key": key, "kind": kind, "button_id": BID,
                                 "frame": bytes([seq]) * 34, "created_at": at}
    fields.update(extra)
    return Message(**fields)  # type: ignore[arg-type]


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.db")


def test_outbox_keeps_every_field_of_a_message(box: Outbox) -> None:
    full = message(1, fix=FIX, pressed_at=T - 2.5, battery_pct=0, update_no=7,
                   incident="inc")
    bare = message(2, kind=MessageKind.HEARTBEAT)
    assert box.put(full) is True and box.put(bare) is True
    assert box.put(full) is False and box.put(message(1, kind=MessageKind.TEST)) is False
    assert box.due(T) == [full, bare]
    assert box.due(T)[1].fix is None and box.due(T)[1].battery_pct is None
    assert box.due(T)[1].pressed_at is None and box.due(T)[1].incident == ""


def test_outbox_priorities_order_what_is_due_then_by_age(box: Outbox) -> None:
    assert [PRIORITY[k] for k in (MessageKind.ALARM, MessageKind.TEST, MessageKind.LOCATION,
                                  MessageKind.LOW_BATTERY, MessageKind.BOOT,
                                  MessageKind.HEARTBEAT)] == [0, 1, 2, 3, 4, 5]
    kinds = [MessageKind.HEARTBEAT, MessageKind.BOOT, MessageKind.LOW_BATTERY,
             MessageKind.LOCATION, MessageKind.TEST, MessageKind.ALARM]
    for seq, kind in enumerate(kinds, 1):
        box.put(message(seq, kind, at=T + seq))
    box.put(message(10, MessageKind.ALARM, at=T + 0.5))
    assert [m.key.rsplit("-", 1)[1] for m in box.due(T + 10)] == ["10", "6", "5", "4", "3",
                                                                   "2", "1"]
    assert [m.kind for m in box.due(T + 10, limit=2)] == [MessageKind.ALARM] * 2
    assert len(box.due(T + 10)) == 7 and len(box.due(T + 10, limit=16)) == 7


def test_outbox_retry_times_are_inclusive_and_skip_what_is_in_flight(box: Outbox) -> None:
    assert box.next_try() is None
    a, b = message(1, at=T), message(2, at=T + 1)
    box.put(a)
    box.put(b)
    assert box.next_try() == 0.0
    box.failed(a.key, "timeout", T + 30)
    box.failed(b.key, "refused", T + 10)
    assert box.due(T + 9.99) == [] and box.due(T + 10) == [b]
    assert box.next_try() == T + 10
    assert box.next_try(skip=[b.key]) == T + 30
    assert box.next_try(skip={a.key, b.key}) is None
    assert box.attempts(a.key) == 1 and box.attempts("nope") == 0
    box.failed(a.key, "again", T + 60)
    assert box.status(a.key) == (None, None, 2, "again")
    assert box.status("nope") is None
    assert box.undelivered() == 2


def test_outbox_delivery_is_recorded_once_and_clears_the_error(box: Outbox) -> None:
    a = message(1)
    box.put(a)
    box.failed(a.key, "timeout", T)
    box.delivered(Receipt("https", a.key, T + 5, "INC-000001"))
    assert box.status(a.key) == (T + 5, "https", 1, None)
    box.delivered(Receipt("sms", a.key, T + 9, "INC-000002"))
    assert box.status(a.key) == (T + 5, "https", 1, None)
    assert box.due(T + 100) == [] and box.next_try() is None and box.undelivered() == 0


def test_outbox_drop_marks_a_message_given_up_not_deleted(box: Outbox) -> None:

    hb = message(1, MessageKind.HEARTBEAT)
    box.put(hb)
    before = time.time()
    box.drop(hb.key, "stale heartbeat")
    at, channel, attempts, error = box.status(hb.key)  # type: ignore[misc]
    assert at is not None and before <= at <= time.time()
    assert (channel, attempts, error) == ("", 0, "stale heartbeat")
    assert box.undelivered() == 0 and box.put(hb) is False


def test_outbox_last_created_per_button_and_kind(box: Outbox) -> None:
    assert box.last_created(BID, MessageKind.HEARTBEAT) is None
    box.put(message(1, MessageKind.HEARTBEAT, at=T))
    box.put(message(2, MessageKind.HEARTBEAT, at=T + 60))
    box.put(message(3, MessageKind.ALARM, at=T + 90))
    assert box.last_created(BID, MessageKind.HEARTBEAT) == T + 60
    assert box.last_created(BID, MessageKind.ALARM) == T + 90
    assert box.last_created(BID + 1, MessageKind.ALARM) is None


def test_outbox_incidents_track_until_their_end_extend_and_close(box: Outbox) -> None:
    alarm = message(1, at=T)
    later = message(2, at=T + 5)
    box.open_incident(alarm, T + 100)
    box.open_incident(later, T + 50)
    assert box.incidents(T) == [
        Incident(alarm.key, BID, MessageKind.ALARM, alarm.frame, T, T + 100, 1, ""),
        Incident(later.key, BID, MessageKind.ALARM, later.frame, T + 5, T + 50, 1, "")]
    assert [i.key for i in box.incidents(T + 50)] == [alarm.key]  # the end is exclusive
    box.open_incident(alarm, T + 80)  # never shortened
    box.open_incident(alarm, T + 200)  # a second press extends
    assert box.incidents(T + 150)[0].track_until == T + 200
    box.set_reference(alarm.key, "INC-000007")
    box.set_reference(alarm.key, "")
    assert box.incidents(T)[0].reference == "INC-000007"
    box.close_incident(alarm.key, "resolved by the centre", at=T + 10)
    box.close_incident(alarm.key, "again", at=T + 20)
    assert [i.key for i in box.incidents(T)] == [later.key]

    row = sqlite3.connect(box.path).execute(
        "SELECT closed_at, close_reason FROM incidents WHERE key = ?", (alarm.key,)).fetchone()
    assert row == (T + 10, "resolved by the centre")


def test_outbox_close_incident_defaults_to_now(box: Outbox) -> None:
    import time

    alarm = message(1)
    box.open_incident(alarm, T + 100)
    before = time.time()
    box.close_incident(alarm.key, "window over")
    (closed,) = sqlite3.connect(box.path).execute(
        "SELECT closed_at FROM incidents WHERE key = ?", (alarm.key,)).fetchone()
    assert before <= closed <= time.time()


def test_outbox_an_update_and_the_incidents_counter_move_together(box: Outbox) -> None:
    alarm = message(1)
    box.put(alarm)
    box.open_incident(alarm, T + 100)
    [incident] = box.incidents(T)
    update = Message(key=f"{alarm.key}/1", kind=MessageKind.LOCATION, button_id=BID,
                     frame=alarm.frame, created_at=T + 10, fix=FIX, update_no=1,
                     incident=alarm.key)
    box.add_update(incident, update)
    assert box.incidents(T)[0].next_update_no == 2
    assert box.due(T + 10)[1] == update
    _refuse_writes(Path(box.path), "messages")
    second = Message(key=f"{alarm.key}/2", kind=MessageKind.LOCATION, button_id=BID,
                     frame=alarm.frame, created_at=T + 20, fix=FIX, update_no=2,
                     incident=alarm.key)
    with pytest.raises(OutboxError) as err:
        box.add_update(box.incidents(T)[0], second)
    assert err.value.path == box.path and "disk says no" in err.value.detail
    _allow_writes(Path(box.path))
    assert box.incidents(T)[0].next_update_no == 2  # rolled back with the failed update
    box.add_update(box.incidents(T)[0], second)
    assert box.incidents(T)[0].next_update_no == 3


def test_outbox_errors_carry_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "outbox.db"
    with pytest.raises(OutboxError) as err:
        Outbox(path)
    assert err.value.path == str(path) and "No such file or directory" in err.value.detail
    box = Outbox(tmp_path / "o.db")
    box.close()
    for call in (lambda: box.undelivered(), lambda: box.put(message(1))):
        with pytest.raises(OutboxError) as err:
            call()
        assert err.value.path == str(tmp_path / "o.db")
        assert err.value.detail == "Cannot operate on a closed database."


def test_outbox_hands_out_sixteen_due_messages_unless_asked_otherwise(box: Outbox) -> None:
    for seq in range(1, 18):
        box.put(message(seq, MessageKind.HEARTBEAT, at=T + seq))
    assert len(box.due(T + 100)) == 16
    assert len(box.due(T + 100, limit=17)) == 17 and box.undelivered() == 17
