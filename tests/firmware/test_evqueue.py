"""Bounded event queue: priorities, order, persistence (both interpreters)."""
import evqueue
from frame import KIND_ALARM, KIND_BOOT, KIND_HEARTBEAT, KIND_LOW_BATTERY, KIND_TEST


def _fill(q, kind, first_seq, n):
    for i in range(n):
        q.push(kind, 0, 1, first_seq + i, 0, 50)


def _seqs(q):
    return sorted(q.seq[i] for i in range(q.capacity) if q.kind[i])


def test_delivers_oldest_sequence_first_and_acks_remove():
    q = evqueue.EventQueue(4)
    q.push(KIND_ALARM, 2, 1, 7, 0, 50)
    q.push(KIND_BOOT, 0, 1, 5, 0, 50)
    assert q.seq[q.oldest()] == 5
    assert q.remove(5) and not q.remove(5)
    assert q.seq[q.oldest()] == 7 and q.count == 1


def test_heartbeats_are_dropped_before_anything_else():
    q = evqueue.EventQueue(3)
    q.push(KIND_HEARTBEAT, 0, 1, 1, 0, 50)
    q.push(KIND_BOOT, 0, 1, 2, 0, 50)
    q.push(KIND_LOW_BATTERY, 0, 1, 3, 0, 50)
    assert q.push(KIND_ALARM, 2, 1, 4, 0, 50) == KIND_HEARTBEAT
    assert q.push(KIND_ALARM, 2, 1, 5, 0, 50) == KIND_BOOT
    assert q.push(KIND_HEARTBEAT, 0, 1, 6, 0, 50) == KIND_HEARTBEAT  # no room for it
    assert _seqs(q) == [3, 4, 5]
    assert q.dropped[KIND_HEARTBEAT] == 2 and q.dropped[KIND_BOOT] == 1


def test_alarm_is_never_refused_first_and_newest_alarms_kept():
    q = evqueue.EventQueue(4)
    _fill(q, KIND_ALARM, 10, 4)
    assert q.push(KIND_ALARM, 2, 1, 20, 0, 50) == KIND_ALARM
    assert _seqs(q) == [10, 11, 12, 20]
    assert q.dropped[KIND_ALARM] == 1


def test_test_event_does_not_displace_alarms():
    q = evqueue.EventQueue(2)
    _fill(q, KIND_ALARM, 1, 2)
    assert q.push(KIND_TEST, 4, 1, 3, 0, 50) == KIND_TEST
    assert _seqs(q) == [1, 2]


def test_persisted_round_trip_keeps_only_alarms_and_tests():
    q = evqueue.EventQueue(6)
    q.push(KIND_ALARM, 2, 3, 40, 100, 77)
    q.push(KIND_HEARTBEAT, 0, 3, 41, 100, 77)
    q.push(KIND_TEST, 4, 3, 42, 100, 76)
    r = evqueue.EventQueue(6)
    r.restore(q.persisted())
    assert _seqs(r) == [40, 42]
    i = r.find(40)
    assert r.gesture[i] == 2 and r.boot_id[i] == 3 and r.battery[i] == 77
    assert r.origin_ms[i] == evqueue.ORIGIN_UNKNOWN


def test_restore_rejects_damaged_data():
    for bad in (b"\x01\x02", bytes([KIND_HEARTBEAT]) + bytes(8)):
        try:
            evqueue.EventQueue(4).restore(bad)
        except ValueError:
            continue
        raise AssertionError("restored damaged outbox %r" % bad)
