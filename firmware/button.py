"""The button without its radio: press, gesture, numbered and persisted event, frame.

The radio layer (peripheral.py) asks this object for frames to send and hands it the host's
acknowledgements. Everything that touches hardware goes through the board passed in.
"""
from micropython import const

import config
from battery import Battery
from counters import Counters
from debounce import Debouncer
from evqueue import DEFERRED, ORIGIN_UNKNOWN, EventQueue
from frame import (AGE_UNKNOWN, GESTURE_MULTI, GESTURE_NONE, KIND_ALARM, KIND_BOOT,
                   KIND_HEARTBEAT, KIND_LOW_BATTERY, KIND_TEST, FrameEncoder)
from gesture import Gesture

OUTBOX = "outbox"
# Where the button's own clock (_ms) starts: a press just before the boot (a wake) still has
# a positive time on it, apart from evqueue.ORIGIN_UNKNOWN.
_EPOCH_MS = const(1 << 20)
_TIMER_DEBOUNCE = const(0)
_TIMER_GESTURE = const(1)


class Button:
    """One boot of a provisioned button. notify() is called (in timer context) on a gesture.
    boot=False for a wake from deep sleep: that is no boot for the host (no BOOT event)."""

    def __init__(self, board, store, cfg, notify=None, boot=True):
        self.board = board
        self.store = store
        self.cfg = cfg
        self.button_id = cfg["button_id"]
        self.counters = Counters(store)
        self.queue = EventQueue()
        saved = store.load(OUTBOX)
        if saved:
            self.queue.restore(saved)
        # The outbox on flash also holds boot notices or low-battery warnings (saved for a deep
        # sleep): every save keeps them until they are acknowledged.
        self._deferred_saved = self.queue.holds(DEFERRED)
        self.encoder = FrameEncoder(config.key_bytes(cfg), config.key_bytes(cfg, "centre_key"),
                                    self.button_id)
        self.battery = Battery(board.CHEMISTRY, board.ADC_MAX_COUNTS, board.ADC_REF_MV,
                               board.DIVIDER_NUM, board.DIVIDER_DEN,
                               cfg["battery_hysteresis_pct"], cfg["low_battery_pct"])
        self.battery.update(board.battery_counts())
        self._low_reported = False
        self._notify = notify
        self._gesture = 0  # handed over from timer context; read by service()
        self._gesture_ms = 0
        self.gestures_missed = 0
        self.pressed_ms = board.ticks_ms()  # first edge of the latest press (power.py)
        self._pressed_cb = self._pressed  # bound once: binding in timer context allocates
        self.gesture = Gesture(board.Timer(_TIMER_GESTURE), board, self._on_gesture,
                               config.GESTURES[cfg["gesture"]], cfg["hold_ms"], cfg["count"],
                               cfg["within_ms"])
        self.debouncer = Debouncer(board.Button(), board.Timer(_TIMER_DEBOUNCE), board,
                                   self._pressed_cb, self.gesture.on_release,
                                   cfg["debounce_ms"], self.gesture.on_settled)
        self.gesture.attach(self.debouncer)
        self._time_s = 0  # Unix seconds at _time_ms, once the host has sent TIME
        self._time_ms = 0
        self.boot_ms = board.ticks_ms()
        self._ext_ticks = self.boot_ms  # the ticks at which _ext_ms was last carried forward
        self._ext_ms = _EPOCH_MS
        if boot:
            self.raise_event(KIND_BOOT, GESTURE_NONE, self.boot_ms)

    def _pressed(self, t_ms):
        self.pressed_ms = t_ms
        self.gesture.on_press(t_ms)

    def press_at_wake(self, wake_ms):
        """The press that woke the board from deep sleep began before this boot: the gesture
        counts it from the wake (wake_ms, the board's ticks of its start), so a hold needs no
        longer than on an awake button; if the contact is open again already, it was a tap."""
        self.pressed_ms = wake_ms
        self.gesture.on_press(wake_ms)
        if not self.debouncer.pressed:
            self.gesture.on_release(self.board.ticks_ms())

    def busy(self, now):
        """True while a press may still become an alarm: the contact is closed or settling,
        a recognised gesture awaits service(), or a multi-press series is still open."""
        if self._gesture or self.debouncer.pressed or self.debouncer.busy():
            return True
        g = self.gesture
        return g.kind == GESTURE_MULTI and \
            self.board.ticks_diff(now, self.pressed_ms) <= g.within_ms

    def _ms(self, ticks):
        """`ticks` (ticks_ms() of this boot, recent) on the button's own clock, which never
        wraps: ticks_ms() wraps after 2**30 ms and ticks_diff() spans only half of that
        (6.2 days), so the clock is carried forward at every look; sample_battery() looks at
        least once a heartbeat. Past 2**30 ms (12 days) its values are long ints."""
        board = self.board
        now = board.ticks_ms()
        self._ext_ms += board.ticks_diff(now, self._ext_ticks)
        self._ext_ticks = now
        return self._ext_ms + board.ticks_diff(ticks, now)

    def set_time(self, unix_s):
        """The host's clock (TIME command): lets events saved across a reboot get an age."""
        self._time_s = unix_s
        self._time_ms = self._ms(self.board.ticks_ms())

    def unix_s(self, ticks):
        """Unix seconds at `ticks` of this boot, or 0 while the clock is unknown."""
        return self._unix_at(self._ms(ticks))

    def _unix_at(self, ms):
        if not self._time_s:
            return 0
        return self._time_s + (ms - self._time_ms) // 1000

    def _on_gesture(self, gesture, press_ms):
        if self._gesture:
            self.gestures_missed += 1  # service() has not run since the last one
            return
        self._gesture_ms = press_ms
        self._gesture = gesture
        if self._notify is not None:
            self._notify()

    def service(self):
        """Main-loop work after notify(): turns a recognised gesture into a persisted alarm.

        Returns the alarm's sequence number, or 0 if there was nothing to do.
        """
        gesture = self._gesture
        if not gesture:
            return 0
        seq = self.raise_event(KIND_ALARM, gesture, self._gesture_ms)
        self._gesture = 0
        return seq

    def raise_event(self, kind, gesture, origin_ms):
        """Numbers and queues an event; alarms and tests reach flash before this returns."""
        seq = self.counters.next_seq()
        origin = self._ms(origin_ms)
        dropped = self.queue.push(kind, gesture, self.counters.boot_id, seq, origin,
                                  self.battery.pct, self._unix_at(origin))
        if kind in (KIND_ALARM, KIND_TEST) or dropped in (KIND_ALARM, KIND_TEST):
            self._save()
        return seq

    def _save(self):
        self.store.save(OUTBOX, self.queue.persisted(self._deferred_saved))

    def keep_for_sleep(self):
        """Before a deep sleep: queued boot notices and low-battery warnings go to flash, to
        be delivered at the next wake (one write, only if there are any)."""
        if not self._deferred_saved and self.queue.holds(DEFERRED):
            self._deferred_saved = True
            self._save()

    def sample_battery(self):
        """Reads the cell; queues a low-battery event once each time the level falls low."""
        self._ms(self.board.ticks_ms())  # carries the clock forward (once a heartbeat)
        pct = self.battery.update(self.board.battery_counts())
        if self.battery.low and not self._low_reported:
            self._low_reported = True
            self.raise_event(KIND_LOW_BATTERY, GESTURE_NONE, self.board.ticks_ms())
        elif not self.battery.low:
            self._low_reported = False
        return pct

    def next_frame(self):
        """(seq, frame) for the oldest unacknowledged event, or (0, None) when none waits."""
        i = self.queue.oldest()
        if i < 0:
            return 0, None
        return self.frame_at(i)

    def frame_at(self, i):
        """(seq, frame) for queue slot i, re-encoded so that its age is current (the buffer
        is reused). Events from an earlier boot get an age once the host has set the clock."""
        q = self.queue
        now = self._ms(self.board.ticks_ms())
        origin = q.origin_ms[i]
        if origin != ORIGIN_UNKNOWN:
            age = now - origin
        elif q.origin_s[i] and self._time_s:
            age = (self._unix_at(now) - q.origin_s[i]) * 1000
        else:
            age = AGE_UNKNOWN
        frame = self.encoder.encode(q.kind[i], q.boot_id[i], q.seq[i], q.gesture[i],
                                    q.battery[i], age)
        return q.seq[i], frame

    def heartbeat_frame(self):
        """A fresh heartbeat (numbered, never queued: a late heartbeat is worth nothing)."""
        return self.encoder.encode(KIND_HEARTBEAT, self.counters.boot_id,
                                   self.counters.next_seq(), GESTURE_NONE, self.battery.pct,
                                   self._ms(self.board.ticks_ms()) - _EPOCH_MS)

    def ack(self, seq):
        """The host has stored event `seq`: forget it (and on flash if it was saved there)."""
        i = self.queue.find(seq)
        if i < 0:
            return False
        kind = self.queue.kind[i]
        self.queue.remove(seq)
        if kind in (KIND_ALARM, KIND_TEST) or self._deferred_saved:
            self._deferred_saved = self._deferred_saved and self.queue.holds(DEFERRED)
            self._save()
        return True

    def close(self):
        """Releases the pin and timers."""
        self.debouncer.close()
        self.gesture.close()
