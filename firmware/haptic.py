"""Plays a WARN command's haptic pattern on the board's vibration motor without blocking.

A pattern is a table of on/off durations (docs/protocol.md, Haptic patterns). The radio loop
calls turn() on every pass and wakes again when it says: the motor is switched from the loop,
never from an IRQ, never by sleeping, and playing allocates nothing. A board without a motor
(no VIBRATION_PIN) plays nothing: the WARN was still verified, and the host is told nothing
different. Imported at boot, not on the first WARN: making the pin drives the motor off from
the start.
"""
from micropython import const

# ms on, off, on, ... ending on; the index is the pattern number (frame.PATTERN_*). A pulse is
# short (150 ms) or long (800 ms or more), nothing in between, and patterns of one kind of
# pulse differ in their count: no two can be taken for each other, through clothing, by a
# wearer who is frightened.
PATTERNS = (
    (),
    (800, 400, 800, 400, 800, 400, 800),  # PROXIMITY: four long pulses, insistent
    (150, 350, 150),  # LOW_BATTERY: two short
    (1500,),  # LINK_LOST: one long
    (150, 350, 150, 350, 150),  # TEST: three short
)
# A WARN while a pattern plays replaces it: the motor stops this long first, longer than any
# pause within a pattern, so that the new one is felt from its start.
REPLACE_GAP_MS = const(500)


class Haptic:
    """One pattern at a time on the motor: play() starts one, turn() makes what is due."""

    def __init__(self, board):
        self._board = board
        make = getattr(board, "Vibration", None)
        self._pin = make() if make is not None else None
        self._steps = PATTERNS[0]  # type: tuple  # the pattern playing; empty when idle
        self._i = 0  # its next step
        self._due_ms = 0  # when that step starts

    @property
    def playing(self):
        return len(self._steps) > 0

    def play(self, pattern, now):
        """Starts `pattern` at `now`, replacing any playing (after REPLACE_GAP_MS still). A
        number outside the table (the verifier refuses it first) or no motor: nothing."""
        if self._pin is None or not 0 < pattern < len(PATTERNS):
            return
        if self.playing:
            self._pin.value(0)
            now = self._board.ticks_add(now, REPLACE_GAP_MS)
        self._steps = PATTERNS[pattern]
        self._i = 0
        self._due_ms = now

    def turn(self, now):
        """Switches the motor if a step is due by `now`; returns the ms until the next step,
        or -1 when idle. Every step lasts at least its duration: a late pass delays the rest
        rather than shortening a pulse."""
        steps = self._steps
        pin = self._pin
        if not steps or pin is None:
            return -1
        wait = self._board.ticks_diff(self._due_ms, now)
        if wait > 0:
            return wait
        i = self._i
        if i == len(steps):
            pin.value(0)
            self._steps = PATTERNS[0]
            return -1
        pin.value(1 - (i & 1))
        self._i = i + 1
        self._due_ms = self._board.ticks_add(now, steps[i])
        return steps[i]
