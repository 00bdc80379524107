"""The button core end to end on the sim board: press to frame (both interpreters)."""
import button
import config
import store
from cutfs import CutFs
from frame import GESTURE_HOLD, KIND_ALARM, KIND_BOOT, KIND_LOW_BATTERY
from sim import SimBoard

KEY = "11" * 32
CENTRE_KEY = "c1" * 32


def _make(fs=None, board=None, **extra):
    fs = fs if fs is not None else CutFs()
    board = board if board is not None else SimBoard(start_ms=1000)
    cfg = {"button_id": 77, "key": KEY, "centre_key": CENTRE_KEY}
    cfg.update(extra)
    notified = []
    b = button.Button(board, store.Store("/flash", fs), config.validate(cfg),
                      lambda: notified.append(board.now_ms))
    return b, board, fs, notified


def _bouncy_press(board, hold_ms):
    for level in (True, False, True, False, True):
        board.set_pressed(level)
        board.advance(1)
    board.advance(hold_ms)
    for level in (False, True, False):
        board.set_pressed(level)
        board.advance(1)
    board.advance(100)


def test_boot_event_is_queued_first():
    b, board, _, _ = _make()
    seq, frame = b.next_frame()
    assert frame[1] == KIND_BOOT and seq == b.queue.seq[b.queue.oldest()]


def test_bouncy_two_second_hold_makes_exactly_one_alarm():
    b, board, fs, notified = _make()
    boot_seq, _ = b.next_frame()
    b.ack(boot_seq)
    _bouncy_press(board, 2500)
    assert len(notified) == 1 and notified[0] == 1000 + 2000  # at the threshold
    seq = b.service()
    assert seq > boot_seq and b.service() == 0
    got_seq, frame = b.next_frame()
    assert got_seq == seq and frame[1] == KIND_ALARM and frame[12] == GESTURE_HOLD
    assert "/flash/outbox.a" in fs.files  # on flash before anything is sent


def test_short_tap_makes_no_alarm():
    b, board, _, notified = _make()
    _bouncy_press(board, 400)
    assert notified == [] and b.service() == 0


def test_alarm_survives_reboot_and_sequence_continues():
    fs = CutFs()
    b, board, _, _ = _make(fs)
    _bouncy_press(board, 2500)
    alarm_seq = b.service()
    b.close()
    b2, _, _, _ = _make(fs, SimBoard(start_ms=5))
    seqs = sorted(b2.queue.seq[i] for i in range(b2.queue.capacity) if b2.queue.kind[i])
    assert alarm_seq in seqs and max(seqs) > alarm_seq
    assert b2.counters.boot_id == b.counters.boot_id + 1
    seq, frame = b2.next_frame()
    assert seq == alarm_seq and bytes(frame[14:18]) == b"\xff\xff\xff\xff"  # age unknown now


def test_ack_removes_from_flash_too():
    fs = CutFs()
    b, board, _, _ = _make(fs)
    _bouncy_press(board, 2500)
    seq = b.service()
    assert b.ack(seq) and not b.ack(seq)
    b2, _, _, _ = _make(fs)
    assert b2.queue.find(seq) < 0


def test_low_battery_is_raised_once():
    b, board, _, _ = _make()
    board.battery_mv = 3600
    for _ in range(20):
        b.sample_battery()
    kinds = [b.queue.kind[i] for i in range(b.queue.capacity)]
    assert kinds.count(KIND_LOW_BATTERY) == 1


def test_heartbeat_is_numbered_but_not_queued():
    b, board, _, _ = _make()
    before = b.queue.count
    frame = b.heartbeat_frame()
    assert frame[1] == 3 and b.queue.count == before


def test_saved_alarm_gets_its_age_back_once_the_clock_is_set():
    fs = CutFs()
    b, board, _, _ = _make(fs)
    b.set_time(1800000000)
    _bouncy_press(board, 2500)
    seq = b.service()
    b2, board2, _, _ = _make(fs, SimBoard(start_ms=0))
    _, frame = b2.frame_at(b2.queue.find(seq))
    assert bytes(frame[14:18]) == b"\xff\xff\xff\xff"
    board2.advance(500)
    b2.set_time(1800000000 + 60)
    _, frame = b2.frame_at(b2.queue.find(seq))
    age = (frame[14] << 24) | (frame[15] << 16) | (frame[16] << 8) | frame[17]
    assert 55000 <= age <= 61000


def _age(frame):
    return (frame[14] << 24) | (frame[15] << 16) | (frame[16] << 8) | frame[17]


def test_clock_and_ages_survive_the_ticks_wrap():
    """Eight days without TIME (ticks_diff spans 2**29 ms, 6.2 days): the host's clock, an
    unacknowledged alarm's age and the heartbeat's uptime still count every ms. Only the
    hourly heartbeat (sample_battery) looks at the clock meanwhile."""
    start = (1 << 30) - 5000  # the ticks wrap 5 s in
    b, board, _, _ = _make(board=SimBoard(start_ms=start))
    b.set_time(1800000000)
    _bouncy_press(board, 2500)
    seq = b.service()
    pressed = start  # the gesture counts the hold from the first edge
    hour = 3600 * 1000
    for _ in range(8 * 24):
        board.advance(hour)
        b.sample_battery()
    board.advance(1234)
    elapsed = board.now_ms - start
    assert b.unix_s(board.ticks_ms()) == 1800000000 + elapsed // 1000
    _, frame = b.frame_at(b.queue.find(seq))
    assert _age(frame) == board.now_ms - pressed
    assert _age(b.heartbeat_frame()) == elapsed
