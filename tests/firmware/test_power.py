"""Sleep mode on the sim board's virtual clock: the provisioned mode, when a button may sleep,
a wake by press that is no boot, the sequence block handed back (both interpreters)."""
import button
import config
import counters
import power
import store
from cutfs import CutFs
from frame import KIND_ALARM, KIND_BOOT, KIND_LOW_BATTERY, KIND_TEST
from haptic import Haptic
from sim import SimBoard

KEY = "33" * 32
CENTRE_KEY = "c3" * 32


class _Radio:
    """What Power asks of the radio: accepted commands, the heartbeat and the motor."""

    def __init__(self):
        self.commands_accepted = 0
        self.haptic = Haptic(SimBoard())  # idle unless a test plays a pattern
        self.host = False  # an admitted central that takes notifications
        self.beats = 0

    def heartbeat(self, _now):
        self.beats += 1
        return self.host


def _make(board=None, boot=True, fs=None, **extra):
    board = board if board is not None else SimBoard(start_ms=1000)
    cfg = {"button_id": 12, "key": KEY, "centre_key": CENTRE_KEY, "power": "sleep"}
    cfg.update(extra)
    cfg = config.validate(cfg)
    st = store.Store("/flash", fs if fs is not None else CutFs())
    b = button.Button(board, st, cfg, None, boot=boot)
    return b, board, power.Power(board, cfg, board.wake_cause())


def _hold(board, ms):
    board.set_pressed(True)
    board.advance(ms)
    board.set_pressed(False)
    board.advance(100)


def test_the_mode_is_connected_unless_provisioned_otherwise():
    cfg = config.validate({"button_id": 1, "key": KEY, "centre_key": CENTRE_KEY})
    # The default is not written down: the record reads the same to older firmware.
    assert "power" not in cfg and cfg["heartbeat_s"] == 60
    assert not power.Power(SimBoard(), cfg).enabled
    sleepy = config.validate({"button_id": 1, "key": KEY, "centre_key": CENTRE_KEY, "power": "sleep"})
    assert sleepy["power"] == "sleep" and sleepy["heartbeat_s"] == power.SLEEP_HEARTBEAT_S
    assert power.Power(SimBoard(), sleepy).enabled
    chosen = config.validate({"button_id": 1, "key": KEY, "centre_key": CENTRE_KEY, "power": "sleep", "heartbeat_s": 900})
    assert chosen["heartbeat_s"] == 900
    try:
        config.validate({"button_id": 1, "key": KEY, "centre_key": CENTRE_KEY, "power": "nap"})
        assert False, "accepted an unknown mode"
    except ValueError as exc:
        assert exc.args[0].startswith("power")


def test_connected_mode_never_sleeps():
    b, board, p = _make(power="connected")
    assert p.due_ms(_Radio(), b, board.ticks_ms()) == -1


def test_no_sleep_while_an_alarm_waits_for_its_acknowledgement():
    b, board, p = _make()
    radio = _Radio()
    b.ack(b.next_frame()[0])  # the boot notice
    seq = b.raise_event(KIND_ALARM, 1, board.ticks_ms())
    for _ in range(10):
        board.advance(5000)
        assert p.due_ms(radio, b, board.ticks_ms()) > 0
    b.ack(seq)
    radio.commands_accepted, radio.host = 2, True  # TIME, then the ACK
    now = board.ticks_ms()
    assert p.due_ms(radio, b, now) > 0 and radio.beats == 1 and not p.owed
    board.advance(3000)
    assert p.due_ms(radio, b, board.ticks_ms()) == 0  # idle for the linger time: sleep


def test_a_wake_without_a_host_gives_the_heartbeat_up_and_sleeps():
    board = SimBoard(start_ms=50)
    board.wake = power.WAKE_TIMER
    b, board, p = _make(board, boot=False)
    radio = _Radio()
    assert b.queue.count == 0  # a wake is no boot: nothing to deliver
    waits = []
    while True:
        due = p.due_ms(radio, b, board.ticks_ms())
        if due == 0:
            break
        waits.append(due)
        board.advance(due)
    assert radio.beats == 0 and not p.owed
    assert 15000 <= board.now_ms - 50 <= 15000 + 3000  # the wake window, then the sleep


def test_a_press_keeps_it_awake_and_its_alarm_too():
    b, board, p = _make(gesture="hold", hold_ms=2000)
    radio = _Radio()
    b.ack(b.next_frame()[0])
    p.owed = False
    board.advance(4000)
    assert p.due_ms(radio, b, board.ticks_ms()) == 0
    board.set_pressed(True)
    board.advance(1000)
    assert b.busy(board.ticks_ms()) and p.due_ms(radio, b, board.ticks_ms()) > 0
    board.advance(1500)  # the hold fired at 2 s: service() has not run yet
    assert b.busy(board.ticks_ms())
    seq = b.service()
    board.set_pressed(False)
    board.advance(100)
    assert seq and p.due_ms(radio, b, board.ticks_ms()) > 0  # the alarm is queued
    b.ack(seq)
    board.advance(3000)
    assert p.due_ms(radio, b, board.ticks_ms()) == 0


def test_a_multi_press_series_keeps_it_awake_between_presses():
    b, board, p = _make(gesture="multi", count=3, within_ms=1500)
    b.ack(b.next_frame()[0])
    p.owed = False
    board.advance(4000)
    _hold(board, 80)
    board.advance(500)  # released, but another press may follow
    assert b.busy(board.ticks_ms())
    board.advance(1500)
    assert not b.busy(board.ticks_ms())


def test_a_press_wake_is_no_boot_and_the_hold_counts_from_the_wake():
    fs = CutFs()
    first, _, _ = _make(fs=fs)
    first_seq = first.counters.last_seq
    first.counters.release()
    board = SimBoard(start_ms=400)  # booted 400 ms after the press woke it
    board.wake, board.wake_ms = power.WAKE_BUTTON, 0
    board.pin_level = 0  # the finger is still on the button
    b, board, _ = _make(board, boot=False, fs=fs)
    fired = []
    b._notify = lambda: fired.append(board.now_ms)
    b.press_at_wake(board.wake_ticks_ms())
    assert b.queue.count == 0  # no BOOT event
    board.advance(1599)
    assert fired == []
    board.advance(1)
    assert fired == [2000]  # 2 s after the wake, not after the boot
    seq = b.service()
    assert seq == first_seq + 1  # the block was handed back: no gap for the host
    assert b.queue.kind[b.queue.find(seq)] == KIND_ALARM
    assert b.counters.boot_id == first.counters.boot_id + 1


def test_a_tap_that_woke_the_board_and_ended_before_boot_raises_nothing():
    board = SimBoard(start_ms=300)
    board.wake, board.wake_ms = power.WAKE_BUTTON, 0
    b, board, _ = _make(board, boot=False)  # the contact is open again at boot
    fired = []
    b._notify = lambda: fired.append(board.now_ms)
    b.press_at_wake(0)
    board.advance(5000)
    assert fired == [] and b.service() == 0 and not b.busy(board.ticks_ms())


def test_a_cold_boot_in_sleep_mode_still_tells_the_host():
    b, _, p = _make()
    assert p.wake == power.WAKE_NONE and p.owed
    assert b.queue.kind[b.queue.oldest()] == KIND_BOOT


def test_release_hands_the_unused_block_back_and_stays_safe():
    fs = CutFs()
    st = store.Store("/flash", fs)
    c = counters.Counters(st)
    issued = [c.next_seq() for _ in range(3)]
    c.release()
    after = c.next_seq()  # issued after the release anyway: a new block is reserved first
    nxt = counters.Counters(store.Store("/flash", fs))
    assert issued == [1, 2, 3] and after == 4 and nxt.next_seq() > after


class _Per:
    """What Power.sleep() asks of the radio: stop, the centrals, off."""

    def __init__(self):
        self.connected = False
        self.calls = []

    def stop(self):
        self.calls.append("stop")

    def off(self):
        self.calls.append("off")


def _sleep(p, b):
    """Runs Power.sleep(); True if the board went to deep sleep (the sim board raises)."""
    from sim import Slept

    step = p.sleep(_Per(), b)  # no central to wait for: it never suspends
    try:
        step.send(None)
    except StopIteration:
        return False
    except Slept:
        return True
    raise AssertionError("sleep() waited with no central connected")


def test_boot_and_low_battery_wait_for_the_next_wake_on_flash():
    fs = CutFs()
    b, board, p = _make(fs=fs)
    board.battery_mv = 3600
    for _ in range(20):
        b.sample_battery()  # the low-battery warning joins the boot notice
    kinds = sorted(b.queue.kind[i] for i in range(b.queue.capacity) if b.queue.kind[i])
    assert kinds == sorted([KIND_LOW_BATTERY, KIND_BOOT]) and not b.queue.holds()
    radio = _Radio()
    while True:  # no host comes: the wake window, then sleep
        due = p.due_ms(radio, b, board.ticks_ms())
        if due == 0:
            break
        board.advance(due)
    assert board.now_ms - 1000 <= 15000 + 3000
    assert _sleep(p, b) and board.slept_ms == p.sleep_ms
    woken = SimBoard(start_ms=10)
    woken.wake = power.WAKE_TIMER
    b2, board2, _ = _make(woken, boot=False, fs=fs)
    seqs = sorted(b2.queue.seq[i] for i in range(b2.queue.capacity) if b2.queue.kind[i])
    assert seqs == sorted(b.queue.seq[i] for i in range(b.queue.capacity) if b.queue.kind[i])
    for seq in seqs:
        assert b2.ack(seq)
    b3, _, _ = _make(SimBoard(start_ms=10), boot=False, fs=fs)
    assert b3.queue.count == 0  # acknowledged at that wake: gone from flash too


def test_a_test_keeps_it_awake_like_an_alarm():
    b, board, p = _make()
    b.ack(b.next_frame()[0])
    p.owed = False
    seq = b.raise_event(KIND_TEST, 4, board.ticks_ms())
    board.advance(60000)
    assert p.due_ms(_Radio(), b, board.ticks_ms()) > 0
    b.ack(seq)
    board.advance(2000)
    assert p.due_ms(_Radio(), b, board.ticks_ms()) == 0


class _NoWakeBoard(SimBoard):
    """An ESP32-C3 under MicroPython 1.26: esp32.wake_on_gpio does not exist."""

    def wake_on_button(self):
        raise AttributeError("'module' object has no attribute 'wake_on_gpio'")


def test_a_failure_at_sleep_entry_stays_awake_instead_of_crashing():
    b, board, p = _make(_NoWakeBoard(start_ms=1000))
    b.ack(b.next_frame()[0])
    assert not _sleep(p, b)
    assert not p.enabled and p.due_ms(_Radio(), b, board.ticks_ms()) == -1
