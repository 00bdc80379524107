"""Exact values at the edges of the firmware core that mutation testing found unchecked:
debounce timing, gesture thresholds and limits, counters, store and frame details (both
interpreters; docs/testing.md lists the mutants these kill)."""
from debounce import DEFAULT_WINDOW_MS, Debouncer
from frame import GESTURE_HOLD, GESTURE_MULTI, GESTURE_SINGLE
from gesture import DEFAULT_COUNT, DEFAULT_HOLD_MS, DEFAULT_WITHIN_MS, Gesture
from sim import SimBoard


def _raises(fn, *args, **kwargs):
    """The ValueError's message, or None when fn did not raise."""
    try:
        fn(*args, **kwargs)
    except ValueError as e:
        return str(e)
    return None


# --- debounce --------------------------------------------------------------------------------

def _debouncer(start_ms=1000, window_ms=25, settled=True):
    board = SimBoard(start_ms)
    log = []
    d = Debouncer(board.Button(), board.Timer(0), board,
                  lambda t: log.append(("press", t, board.ticks_ms())),
                  lambda t: log.append(("release", t, board.ticks_ms())), window_ms,
                  (lambda: log.append(("settled", board.ticks_ms()))) if settled else None)
    return board, d, log


def test_debounce_window_must_be_at_least_one_ms():
    board = SimBoard()
    assert DEFAULT_WINDOW_MS == 25
    assert _raises(Debouncer, board.Button(), board.Timer(0), board, None, None, 0) == "window_ms"
    d = Debouncer(board.Button(), board.Timer(0), board, None, None, 1)
    assert d.window_ms == 1
    assert Debouncer(board.Button(), board.Timer(0), board, None, None).window_ms == 25


def test_debounce_starts_from_the_pin_level():
    board = SimBoard(1000)
    board.set_pressed(True)
    d = Debouncer(board.Button(), board.Timer(0), board, None, None, 25)
    assert d.pressed is True and d.busy() is False


def test_debounce_press_carries_the_first_edge_and_comes_one_quiet_window_later():
    board, d, log = _debouncer()
    board.set_pressed(True)
    assert d.busy() is True
    board.run_until(1003)
    board.set_pressed(False)
    board.run_until(1010)
    board.set_pressed(True)
    board.run_until(1034)
    assert log == [] and d.busy() is True
    board.run_until(1035)
    assert log == [("press", 1000, 1035)]
    assert d.pressed is True and d.busy() is False
    board.run_until(2000)
    board.set_pressed(False)
    board.run_until(3000)
    assert log[1:] == [("release", 2000, 2025)]
    assert d.pressed is False


def test_debounce_glitch_settles_back_without_a_press():
    board, d, log = _debouncer()
    board.set_pressed(True)
    board.run_until(1010)
    board.set_pressed(False)
    board.run_until(2000)
    assert log == [("settled", 1035)]
    assert d.pressed is False and d.busy() is False
    # without an on_settled listener a glitch is simply nothing
    board, d, log = _debouncer(settled=False)
    board.set_pressed(True)
    board.run_until(1010)
    board.set_pressed(False)
    board.run_until(2000)
    assert log == []


def test_debounce_second_burst_is_stamped_with_its_own_first_edge():
    board, d, log = _debouncer()
    board.set_pressed(True)
    board.run_until(1500)
    board.set_pressed(False)
    board.run_until(1510)
    board.set_pressed(True)
    board.run_until(1520)
    board.set_pressed(False)
    board.run_until(3000)
    assert log == [("press", 1000, 1025), ("release", 1500, 1545)]


def test_debounce_close_detaches_the_pin_and_stops_the_timer():
    board, d, log = _debouncer()
    board.set_pressed(True)
    d.close()
    board.run_until(2000)
    board.set_pressed(False)
    board.set_pressed(True)
    board.run_until(3000)
    assert log == [] and d.pressed is False


# --- gesture ---------------------------------------------------------------------------------

def _rig(start_ms=1000, window_ms=25, **kwargs):
    board = SimBoard(start_ms)
    out = []
    g = Gesture(board.Timer(1), board,
                lambda gesture, press_ms: out.append((gesture, press_ms, board.ticks_ms())),
                **kwargs)
    d = Debouncer(board.Button(), board.Timer(0), board, g.on_press, g.on_release, window_ms,
                  g.on_settled)
    g.attach(d)
    return board, g, out


def _press(board, at_ms, length_ms):
    board.run_until(at_ms)
    board.set_pressed(True)
    board.run_until(at_ms + length_ms)
    board.set_pressed(False)


def test_gesture_defaults_are_a_two_second_hold():
    board = SimBoard()
    g = Gesture(board.Timer(1), board, None)
    assert (DEFAULT_HOLD_MS, DEFAULT_COUNT, DEFAULT_WITHIN_MS) == (2000, 3, 1500)
    assert (g.kind, g.hold_ms, g.count, g.within_ms) == (GESTURE_HOLD, 2000, 3, 1500)


def test_gesture_limits_are_inclusive_and_checked_only_for_their_kind():
    board = SimBoard()

    def make(**kwargs):
        return Gesture(board.Timer(1), board, None, **kwargs)

    assert _raises(make, kind=0) == "kind"
    assert _raises(make, kind=4) == "kind"
    assert _raises(make, kind=GESTURE_HOLD, hold_ms=99) == "hold_ms"
    assert _raises(make, kind=GESTURE_HOLD, hold_ms=30001) == "hold_ms"
    assert make(kind=GESTURE_HOLD, hold_ms=100).hold_ms == 100
    assert make(kind=GESTURE_HOLD, hold_ms=30000).hold_ms == 30000
    for count, within in ((1, 1500), (11, 1500), (3, 199), (3, 10001)):
        assert _raises(make, kind=GESTURE_MULTI, count=count, within_ms=within) == \
            "count/within_ms"
    for count, within in ((2, 200), (10, 10000)):
        g = make(kind=GESTURE_MULTI, count=count, within_ms=within)
        assert (g.count, g.within_ms) == (count, within)
    # a hold ignores the multi-press limits and the other kinds ignore hold_ms
    assert make(kind=GESTURE_HOLD, count=1, within_ms=10).kind == GESTURE_HOLD
    assert make(kind=GESTURE_MULTI, hold_ms=5).kind == GESTURE_MULTI
    assert make(kind=GESTURE_SINGLE, hold_ms=5, count=1, within_ms=10).kind == GESTURE_SINGLE


def test_hold_fires_exactly_at_the_threshold_from_the_first_edge():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(2999)
    assert out == []
    board.run_until(3000)
    assert out == [(GESTURE_HOLD, 1000, 3000)]
    board.run_until(9000)
    assert len(out) == 1


def test_hold_released_before_the_threshold_is_abandoned():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    _press(board, 1000, 1900)
    board.run_until(9000)
    assert out == []


def test_hold_fires_at_once_when_the_window_already_covers_it():
    board, g, out = _rig(window_ms=150, kind=GESTURE_HOLD, hold_ms=100)
    board.set_pressed(True)
    board.run_until(1150)
    assert out == [(GESTURE_HOLD, 1000, 1150)]
    board, g, out = _rig(window_ms=100, kind=GESTURE_HOLD, hold_ms=100)
    board.set_pressed(True)
    board.run_until(1100)
    assert out == [(GESTURE_HOLD, 1000, 1100)]


def test_hold_waits_for_chatter_at_the_threshold_and_fires_when_it_settles_closed():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(2990)
    board.set_pressed(False)
    board.run_until(2995)
    board.set_pressed(True)
    board.run_until(3019)
    assert out == []
    board.run_until(3020)
    assert out == [(GESTURE_HOLD, 1000, 3020)]
    board.run_until(4000)
    board.set_pressed(False)  # a later glitch, settled closed, in the same hold
    board.run_until(4005)
    board.set_pressed(True)
    board.run_until(9000)
    assert len(out) == 1


def test_hold_chatter_that_settles_open_fires_nothing():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(2990)
    board.set_pressed(False)
    board.run_until(9000)
    assert out == []
    # a later glitch while released does not fire a stale pending hold
    board.set_pressed(True)
    board.run_until(9005)
    board.set_pressed(False)
    board.run_until(12000)
    assert out == []


def test_hold_without_a_debouncer_attached_fires_on_the_timer():
    board = SimBoard(1000)
    out = []
    g = Gesture(board.Timer(1), board, lambda k, t: out.append((k, t, board.ticks_ms())),
                GESTURE_HOLD, 500)
    g.on_press(1000)
    board.run_until(1499)
    assert out == []
    board.run_until(1500)
    assert out == [(GESTURE_HOLD, 1000, 1500)]


def test_settled_chatter_outside_a_pending_hold_fires_nothing():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(1500)
    board.set_pressed(False)
    board.run_until(1505)
    board.set_pressed(True)  # a glitch, settled closed, long before the threshold
    board.run_until(2999)
    assert out == []
    board.run_until(3000)
    assert out == [(GESTURE_HOLD, 1000, 3000)]


def test_a_re_press_restarts_the_hold_from_its_own_first_edge():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    _press(board, 1000, 1000)
    board.run_until(2500)
    board.set_pressed(True)
    board.run_until(4499)
    assert out == []
    board.run_until(4500)
    assert out == [(GESTURE_HOLD, 2500, 4500)]


def test_an_abandoned_hold_leaves_nothing_pending_for_the_next_press():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(2990)
    board.set_pressed(False)  # chatter at the threshold that settles open: a release
    board.run_until(4000)
    board.set_pressed(True)
    board.run_until(4500)
    board.set_pressed(False)
    board.run_until(4505)
    board.set_pressed(True)  # a glitch that settles closed, long before this hold's threshold
    board.run_until(5999)
    assert out == []
    board.run_until(6000)
    assert out == [(GESTURE_HOLD, 4000, 6000)]


def test_hold_one_ms_short_of_the_threshold_waits_that_ms():
    board, g, out = _rig(window_ms=99, kind=GESTURE_HOLD, hold_ms=100)
    board.set_pressed(True)
    board.run_until(1099)
    assert out == []
    board.run_until(1100)
    assert out == [(GESTURE_HOLD, 1000, 1100)]


def test_hold_close_stops_the_pending_timer():
    board, g, out = _rig(kind=GESTURE_HOLD, hold_ms=2000)
    board.set_pressed(True)
    board.run_until(1500)
    g.close()
    board.run_until(9000)
    assert out == []


def test_single_fires_once_on_the_settled_press():
    board, g, out = _rig(kind=GESTURE_SINGLE)
    _press(board, 1000, 3000)
    board.run_until(9000)
    assert out == [(GESTURE_SINGLE, 1000, 1025)]


def test_multi_fires_when_the_last_press_starts_within_the_time_inclusive():
    board, g, out = _rig(kind=GESTURE_MULTI, count=3, within_ms=1500)
    _press(board, 1000, 100)
    _press(board, 1700, 100)
    board.run_until(2400)
    assert out == []
    _press(board, 2500, 100)
    board.run_until(2600)
    assert out == [(GESTURE_MULTI, 1000, 2525)]
    # it starts counting afresh: two more quick presses are not a gesture
    _press(board, 2800, 100)
    _press(board, 3100, 100)
    board.run_until(9000)
    assert len(out) == 1


def test_multi_one_ms_too_slow_fires_nothing_but_the_last_presses_still_count():
    board, g, out = _rig(kind=GESTURE_MULTI, count=3, within_ms=1500)
    _press(board, 1000, 100)
    _press(board, 1700, 100)
    _press(board, 2501, 100)
    board.run_until(2700)
    assert out == []
    _press(board, 3000, 100)  # 1700, 2501, 3000: within 1500 ms
    board.run_until(4000)
    assert out == [(GESTURE_MULTI, 1700, 3025)]


def test_multi_needs_count_presses():
    board, g, out = _rig(kind=GESTURE_MULTI, count=4, within_ms=2000)
    for at in (1000, 1300, 1600):
        _press(board, at, 100)
    board.run_until(5000)
    assert out == []
    _press(board, 5000, 100)
    board.run_until(6000)
    assert out == []  # 1300 .. 5000 is too slow
    for at in (6000, 6200, 6400):
        _press(board, at, 100)
    board.run_until(7000)
    assert out == [(GESTURE_MULTI, 5000, 6425)]


# --- counters --------------------------------------------------------------------------------

def test_counters_block_of_one_is_the_smallest_and_first_boot_starts_at_one():
    import counters
    import store
    from cutfs import CutFs

    fs = CutFs()
    assert _raises(counters.Counters, store.Store("/flash", fs), 0) == "block"
    c = counters.Counters(store.Store("/flash", fs), 1)
    assert (c.boots, c.boot_id, c.last_seq) == (1, 1, 0)
    assert [c.next_seq() for _ in range(3)] == [1, 2, 3]
    # block 1 reserves one number per write: the next boot resumes right after the last
    again = counters.Counters(store.Store("/flash", fs), 1)
    assert (again.boots, again.next_seq()) == (2, 4)


def test_counters_default_block_is_32_and_wraps_the_boot_id_at_16_bits():
    import struct

    import counters
    import store
    from cutfs import CutFs

    assert counters.DEFAULT_BLOCK == 32
    fs = CutFs()
    c = counters.Counters(store.Store("/flash", fs))
    assert c.next_seq() == 1
    assert counters.Counters(store.Store("/flash", fs)).next_seq() == 33
    st = store.Store("/flash", fs)
    st.save("counters", struct.pack(">II", 0xFFFF, 100))
    c = counters.Counters(store.Store("/flash", fs))
    assert (c.boots, c.boot_id, c.next_seq()) == (0x10000, 0, 100)


# --- store -----------------------------------------------------------------------------------

def test_store_paths_under_the_root_default_and_trailing_slash():
    import store
    from cutfs import CutFs

    for root, path in (("/flash/", "/flash/rec.a"), ("/", "./rec.a"), ("/flash", "/flash/rec.a")):
        fs = CutFs()
        store.Store(root, fs).save("rec", b"x")
        assert sorted(fs.files) == [path], root
    fs = CutFs()
    store.Store(fs=fs).save("rec", b"x")
    assert sorted(fs.files) == ["./rec.a"]


def test_store_empty_and_largest_payloads_round_trip_and_one_more_byte_is_refused():
    import store
    from cutfs import CutFs

    fs = CutFs()
    st = store.Store("/flash", fs)
    st.save("empty", b"")
    assert len(fs.files["/flash/empty.a"]) == 14
    assert store.Store("/flash", fs).load("empty") == b""
    big = bytes(range(256)) * 8
    assert len(big) == store.MAX_PAYLOAD == 2048
    st.save("big", big)
    assert store.Store("/flash", fs).load("big") == big
    assert _raises(st.save, "big", big + b"!") == "payload too large"
    assert store.Store("/flash", fs).load("big") == big


def test_store_a_corrupt_slot_counts_as_no_generation():
    import store
    from cutfs import CutFs

    good = CutFs()
    store.Store("/flash", good).save("rec", b"payload")
    valid = good.files["/flash/rec.a"]
    bad_crc = valid[:-1] + bytes([valid[-1] ^ 1])
    bad_magic = b"MSA2" + valid[4:]
    for junk in (bad_crc, bad_magic, valid + b"\x00"):
        fs = CutFs({"/flash/rec.a": junk})
        st = store.Store("/flash", fs)
        assert st.load("rec") is None
        st.save("rec", b"new")  # generation 1 again, so into slot a, over the junk
        assert sorted(fs.files) == ["/flash/rec.a"]
        assert fs.files["/flash/rec.a"][4:8] == b"\x00\x00\x00\x01"


def test_store_erase_removes_every_slot_and_starts_the_generations_over():
    import store
    from cutfs import CutFs

    fs = CutFs()
    st = store.Store("/flash", fs)
    st.save("rec", b"one")
    st.save("rec", b"two")
    fs.files["/flash/rec.tmp"] = b"left over"
    fs.files["/flash/other.a"] = b"kept"
    st.erase("rec")
    assert sorted(fs.files) == ["/flash/other.a"]
    assert st.load("rec") is None
    st.erase("rec")
    st.save("rec", b"three")
    assert fs.files["/flash/rec.a"][4:8] == b"\x00\x00\x00\x01"
    assert store.Store("/flash", fs).load("rec") == b"three"


class _SyncingOs:
    """The os module as a port with os.sync() has it: counts the syncs."""

    def __init__(self, real):
        self.real = real
        self.syncs = 0

    def sync(self):
        self.syncs += 1

    def remove(self, path):
        self.real.remove(path)

    def rename(self, old, new):
        self.real.rename(old, new)


def test_store_on_the_real_filesystem_syncs_each_write_and_erase_deletes_the_files():
    import os

    import store

    root = "/tmp/msa-store-mut-%d" % (os.urandom(1)[0] * 256 + os.urandom(1)[0])
    os.mkdir(root)
    try:
        fs = store.OsFs()
        fs._os = _SyncingOs(os)
        st = store.Store(root, fs)
        st.save("rec", b"one")
        st.save("rec", b"two")
        assert fs._os.syncs == 2
        assert store.Store(root).load("rec") == b"two"
        st.erase("rec")
        assert os.listdir(root) == []
        assert store.Store(root).load("rec") is None
    finally:
        for name in os.listdir(root):
            os.remove(root + "/" + name)
        os.rmdir(root)


# --- event queue -----------------------------------------------------------------------------

def _queue_seqs(q):
    return sorted(q.seq[i] for i in range(q.capacity) if q.kind[i])


def test_queue_capacity_two_is_the_smallest_and_sixteen_the_default():
    import evqueue

    assert _raises(evqueue.EventQueue, 1) == "capacity"
    assert evqueue.EventQueue(2).capacity == 2
    assert evqueue.EventQueue().capacity == evqueue.DEFAULT_CAPACITY == 16


def test_queue_keeps_full_width_fields_through_flash():
    import evqueue
    from frame import KIND_ALARM

    q = evqueue.EventQueue(2)
    assert q.push(KIND_ALARM, 2, 0xFFFF, 0xFFFFFFFF, 0, 100, 0xFFFFFFFF) == 0
    assert (q.boot_id[0], q.seq[0], q.origin_s[0]) == (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    again = evqueue.EventQueue(2)
    again.restore(q.persisted())
    assert (again.boot_id[0], again.seq[0], again.origin_s[0]) == (0xFFFF, 0xFFFFFFFF,
                                                                     0xFFFFFFFF)
    assert again.origin_ms[0] == evqueue.ORIGIN_UNKNOWN == -1


def test_queue_drop_counter_saturates_at_255():
    import evqueue
    from frame import KIND_ALARM, KIND_HEARTBEAT

    q = evqueue.EventQueue(2)
    q.push(KIND_ALARM, 2, 1, 1, 0, 50)
    q.push(KIND_ALARM, 2, 1, 2, 0, 50)
    for seq in range(3, 303):
        assert q.push(KIND_HEARTBEAT, 0, 1, seq, 0, 50) == KIND_HEARTBEAT
    assert q.dropped[KIND_HEARTBEAT] == 255 and q.count == 2


def test_queue_victim_is_the_oldest_of_the_lowest_priority():
    import evqueue
    from frame import KIND_ALARM, KIND_BOOT, KIND_HEARTBEAT, KIND_LOW_BATTERY

    q = evqueue.EventQueue(3)
    for seq in (3, 5, 4):
        q.push(KIND_HEARTBEAT, 0, 1, seq, 0, 50)
    assert q.push(KIND_ALARM, 2, 1, 9, 0, 50) == KIND_HEARTBEAT
    assert _queue_seqs(q) == [4, 5, 9] and q.count == 3
    q = evqueue.EventQueue(3)
    q.push(KIND_BOOT, 0, 1, 1, 0, 50)
    q.push(KIND_HEARTBEAT, 0, 1, 5, 0, 50)
    q.push(KIND_LOW_BATTERY, 0, 1, 2, 0, 50)
    assert q.push(KIND_ALARM, 2, 1, 9, 0, 50) == KIND_HEARTBEAT
    assert _queue_seqs(q) == [1, 2, 9]
    assert q.push(KIND_ALARM, 2, 1, 10, 0, 50) == KIND_BOOT
    assert _queue_seqs(q) == [2, 9, 10] and q.count == 3
    assert q.dropped[KIND_HEARTBEAT] == 1 and q.dropped[KIND_BOOT] == 1


def test_queue_full_of_alarms_replaces_the_newest_wherever_it_sits():
    import evqueue
    from frame import KIND_ALARM

    q = evqueue.EventQueue(3)
    for seq in (30, 10, 20):
        q.push(KIND_ALARM, 2, 1, seq, 0, 50)
    assert q.push(KIND_ALARM, 2, 1, 40, 0, 50) == KIND_ALARM
    assert _queue_seqs(q) == [10, 20, 40] and q.count == 3
    assert q.dropped[KIND_ALARM] == 1


def test_queue_oldest_and_find_wherever_the_slots_are():
    import evqueue
    from frame import KIND_ALARM

    q = evqueue.EventQueue(4)
    assert q.oldest() == -1 and q.find(1) == -1
    for seq in (1, 5, 3):
        q.push(KIND_ALARM, 2, 1, seq, 0, 50)
    assert q.oldest() == 0
    assert (q.find(1), q.find(5), q.find(3), q.find(4)) == (0, 1, 2, -1)
    assert q.remove(1) and q.oldest() == 2
    assert not q.remove(1) and q.count == 2


def test_queue_holds_alarms_and_tests_by_default_or_the_kinds_asked_for():
    import evqueue
    from frame import KIND_ALARM, KIND_BOOT, KIND_HEARTBEAT, KIND_TEST

    q = evqueue.EventQueue(4)
    assert q.holds() is False
    q.push(KIND_HEARTBEAT, 0, 1, 1, 0, 50)
    assert q.holds() is False and q.holds((KIND_HEARTBEAT,)) is True
    assert q.holds((KIND_BOOT,)) is False
    q.push(KIND_TEST, 4, 1, 2, 0, 50)
    assert q.holds() is True
    q.remove(2)
    q.push(KIND_ALARM, 2, 1, 3, 0, 50)
    assert q.holds() is True


def test_queue_persists_deferred_kinds_only_when_asked_and_never_heartbeats():
    import evqueue
    from frame import KIND_ALARM, KIND_BOOT, KIND_HEARTBEAT, KIND_LOW_BATTERY, KIND_TEST

    q = evqueue.EventQueue(8)
    for seq, kind in enumerate((KIND_ALARM, KIND_BOOT, KIND_HEARTBEAT, KIND_LOW_BATTERY,
                                KIND_TEST), 1):
        q.push(kind, 0, 7, seq, 0, 50)
    plain = q.persisted()
    assert len(plain) == 2 * 13
    r = evqueue.EventQueue(8)
    r.restore(plain)
    assert _queue_seqs(r) == [1, 5]
    r = evqueue.EventQueue(8)
    r.restore(q.persisted(True))
    assert _queue_seqs(r) == [1, 2, 4, 5]
    assert sorted(r.kind[i] for i in range(8) if r.kind[i]) == sorted(
        [KIND_ALARM, KIND_BOOT, KIND_LOW_BATTERY, KIND_TEST])
    assert _raises(r.restore, plain[:-1]) == "outbox length"


def test_multi_counts_afresh_after_firing():
    board, g, out = _rig(kind=GESTURE_MULTI, count=3, within_ms=1500)
    for at in (1000, 1300, 1600):
        _press(board, at, 100)
    board.run_until(1800)
    assert out == [(GESTURE_MULTI, 1000, 1625)]
    for at in (1900, 2200):
        _press(board, at, 100)
    board.run_until(3000)
    assert len(out) == 1
    _press(board, 3000, 100)
    board.run_until(4000)
    assert out[1:] == [(GESTURE_MULTI, 1900, 3025)]


def test_queue_origin_defaults_to_unknown_and_restore_names_a_foreign_kind():
    import struct

    import evqueue
    from frame import KIND_ALARM, KIND_HEARTBEAT

    q = evqueue.EventQueue(2)
    q.push(KIND_ALARM, 2, 1, 7, 0, 50)
    assert q.origin_s[0] == 0
    assert q.persisted()[-4:] == b"\x00\x00\x00\x00"
    heartbeat = struct.pack(">BBHIBI", KIND_HEARTBEAT, 0, 1, 8, 50, 0)
    assert _raises(evqueue.EventQueue(2).restore, heartbeat) == "outbox kind"


class _PlainOs:
    """The os module of a port without os.sync()."""

    def __init__(self, real):
        self.real = real

    def remove(self, path):
        self.real.remove(path)

    def rename(self, old, new):
        self.real.rename(old, new)


def test_store_on_a_port_without_sync_still_saves_and_a_root_may_end_in_x():
    import os

    import store
    from cutfs import CutFs

    root = "/tmp/msa-store-nosync-%d" % (os.urandom(1)[0] * 256 + os.urandom(1)[0])
    os.mkdir(root)
    try:
        fs = store.OsFs()
        fs._os = _PlainOs(os)
        store.Store(root, fs).save("rec", b"kept")
        assert store.Store(root).load("rec") == b"kept"
    finally:
        for name in os.listdir(root):
            os.remove(root + "/" + name)
        os.rmdir(root)
    fs = CutFs()
    store.Store("/data/X/", fs).save("rec", b"x")
    assert sorted(fs.files) == ["/data/X/rec.a"]


# --- frame -----------------------------------------------------------------------------------
# Expected values computed with CPython's hmac from docs/protocol.md's definitions.

def test_hmac_of_a_key_of_exactly_one_block_and_of_one_more_byte():
    import frame

    k64 = bytes(range(64))
    assert frame.Hmac(k64).digest(b"msa") == bytes.fromhex(
        "7c10d05be1580b15a78ed51c319aad327e136bd7883ad0d0b5a523d0bda3df2a")
    assert frame.Hmac(bytes(range(65))).digest(b"msa") == bytes.fromhex(
        "62d74e947bea500d5e1618a742fdf61efd167a369abb5dccfe8c6f3fe14ddfd3")
    assert frame.Hmac(k64).digest(b"m", b"sa") == frame.Hmac(k64).digest(b"msa")


def test_commands_verify_for_a_button_id_above_two_to_the_31():
    import frame

    v = frame.CommandVerifier(bytes(range(32)), 0xFFFFFFFF)
    ack = bytes.fromhex("020100000005000000002d3f47191d1611ea")
    test = bytes.fromhex("02020000000600000000e5c249b2f04035da")
    for _ in range(3):  # the verifier reuses its buffer: the same answer every time
        assert v.verify(ack, b"") == (frame.OP_ACK, 5, 0)
        assert v.verify(test, bytes(range(8))) == (frame.OP_TEST, 6, 0)
    assert _raises(v.verify, test, bytes(8)) == "tag"
