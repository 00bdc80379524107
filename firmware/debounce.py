"""Debounces the button: a pin interrupt restarts a one-shot timer, and a level is believed
only once the pin has been quiet for the whole window.

Default window, 25 ms: ordinary switch bounce lasts about 1.5 ms and at worst 6 ms, so 25 ms is a
four-fold margin over the worst case, yet well under the shortest deliberate tap (about 50 ms) and
the spacing of repeated presses. The press is time-stamped at its first edge, so the window adds
no latency to a hold threshold. Rare outliers that bounce open for more than 150 ms cannot be
filtered by any window that still lets taps through: they read as a release and a new press. A
hold then restarts at the new press (the alarm is late, never invented); only multi-press
gestures could count such an outlier, which is one reason the default gesture is a hold.
"""
from micropython import const

DEFAULT_WINDOW_MS = const(25)


class Debouncer:
    """Turns a bouncy pin into clean press and release calls.

    button: the board's button (pressed() and irq(handler)); timer: a one-shot board timer;
    clock: object with ticks_ms(); on_press/on_release(t_ms) get the time of the first edge;
    on_settled(), if given, hears of bursts that settled back without a change (glitches).
    The pin handler and the timer callback only copy and flag: they never allocate.
    """

    def __init__(self, button, timer, clock, on_press, on_release, window_ms=DEFAULT_WINDOW_MS,
                 on_settled=None):
        if window_ms < 1:
            raise ValueError("window_ms")
        self._button = button
        self._timer = timer
        self._ticks_ms = clock.ticks_ms
        self._on_press = on_press
        self._on_release = on_release
        self._on_settled = on_settled
        self.window_ms = window_ms
        self.pressed = button.pressed()
        self._burst = False
        self._first_edge_ms = 0
        # Bound once here: taking a bound method inside an interrupt would allocate.
        self._edge_cb = self._edge
        self._quiet_cb = self._quiet
        button.irq(self._edge_cb)

    def _edge(self, _pin):
        if not self._burst:
            self._burst = True
            self._first_edge_ms = self._ticks_ms()
        self._timer.start(self.window_ms, self._quiet_cb)

    def _quiet(self, _timer):
        self._burst = False
        level = self._button.pressed()
        if level == self.pressed:
            # A glitch shorter than the window, or a bounce that settled back.
            if self._on_settled is not None:
                self._on_settled()
            return
        self.pressed = level
        if level:
            self._on_press(self._first_edge_ms)
        else:
            self._on_release(self._first_edge_ms)

    def busy(self):
        """True while edges are still settling: the level is not yet known."""
        return self._burst

    def close(self):
        """Detaches from the pin and stops the timer."""
        self._button.irq(None)
        self._timer.cancel()
