"""Recognises the alarm gesture in debounced presses: a single press, a hold of at least
hold_ms, or count presses within within_ms.

The default is a 2 s hold, as in the field system, so that a bump in a pocket does not call the
police. A hold fires the moment the threshold is reached while the button is still down, not on
release; the threshold is measured from the first edge of the press. If the contact is chattering
at that moment (a glitch still inside the debounce window), the hold fires as soon as it has
settled closed, and not at all if it settles open.
"""
from micropython import const

from frame import GESTURE_HOLD, GESTURE_MULTI, GESTURE_SINGLE

DEFAULT_HOLD_MS = const(2000)
DEFAULT_COUNT = const(3)
DEFAULT_WITHIN_MS = const(1500)
_MAX_COUNT = const(10)


class Gesture:
    """Calls on_gesture(gesture, press_ms) once per recognised gesture.

    press_ms is the first edge of the gesture's first press. Runs in timer context: it copies
    and calls, never allocates.
    """

    def __init__(self, timer, clock, on_gesture, kind=GESTURE_HOLD, hold_ms=DEFAULT_HOLD_MS,
                 count=DEFAULT_COUNT, within_ms=DEFAULT_WITHIN_MS):
        if kind not in (GESTURE_SINGLE, GESTURE_HOLD, GESTURE_MULTI):
            raise ValueError("kind")
        if kind == GESTURE_HOLD and not 100 <= hold_ms <= 30000:
            raise ValueError("hold_ms")
        if kind == GESTURE_MULTI and not (2 <= count <= _MAX_COUNT and 200 <= within_ms <= 10000):
            raise ValueError("count/within_ms")
        self.kind = kind
        self.hold_ms = hold_ms
        self.count = count
        self.within_ms = within_ms
        self._timer = timer
        self._ticks_ms = clock.ticks_ms
        self._ticks_diff = clock.ticks_diff
        self._on_gesture = on_gesture
        self._down = False
        self._press_ms = 0
        self._starts = [0] * count  # ring of recent press starts, for multi-press
        self._n = 0
        self._hold_cb = self._hold_reached
        self._busy = None  # the debouncer's busy(), once attached
        self._hold_pending = False

    def attach(self, debouncer):
        """Lets the hold check whether the contact is settled at the threshold."""
        self._busy = debouncer.busy

    def on_press(self, t_ms):
        """A debounced press that began at t_ms."""
        self._down = True
        self._press_ms = t_ms
        kind = self.kind
        if kind == GESTURE_HOLD:
            remaining = self.hold_ms - self._ticks_diff(self._ticks_ms(), t_ms)
            if remaining <= 0:
                self._fire(GESTURE_HOLD, t_ms)
            else:
                self._timer.start(remaining, self._hold_cb)
        elif kind == GESTURE_SINGLE:
            self._fire(GESTURE_SINGLE, t_ms)
        else:
            self._multi(t_ms)

    def on_release(self, _t_ms):
        """A debounced release: a hold that has not reached its threshold is abandoned."""
        self._down = False
        self._hold_pending = False
        if self.kind == GESTURE_HOLD:
            self._timer.cancel()

    def _multi(self, t_ms):
        starts = self._starts
        count = self.count
        starts[self._n % count] = t_ms
        self._n += 1
        if self._n >= count:
            first = starts[self._n % count]  # the oldest of the last `count` starts
            if self._ticks_diff(t_ms, first) <= self.within_ms:
                self._n = 0
                self._fire(GESTURE_MULTI, first)

    def _hold_reached(self, _timer):
        if not self._down:
            return
        if self._busy is not None and self._busy():
            self._hold_pending = True  # decided when the chatter settles
        else:
            self._fire(GESTURE_HOLD, self._press_ms)

    def on_settled(self):
        """The debouncer saw chatter settle back to the same level."""
        if self._hold_pending and self._down:
            self._hold_pending = False
            self._fire(GESTURE_HOLD, self._press_ms)

    def _fire(self, gesture, press_ms):
        self._on_gesture(gesture, press_ms)

    def close(self):
        """Stops a pending hold timer."""
        self._timer.cancel()
