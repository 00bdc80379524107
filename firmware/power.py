"""Power modes. "connected" (the default) keeps the radio up for good: a press reaches a
connected host within one connection interval. "sleep" puts the button in deep sleep whenever
nothing is pending, to wake on a press or on the heartbeat timer; a press then costs a boot.

In sleep mode every boot (power-on, press or timer wake) runs the same course:

1. It advertises and waits for its host, at most `_WAKE_WINDOW_MS` unless something is queued.
   A host that connects proves itself with a command (it sends TIME once it has subscribed), and
   the button notifies one heartbeat, so each wake tells the host the button is alive.
2. Events are delivered exactly as in connected mode (alarms as bursts too while no host is
   connected) and acknowledged by the host. An alarm or a test is never slept on: it keeps the
   button awake until its host has stored it, whatever that costs the battery. A boot notice or
   a low-battery warning does not: it goes to flash and waits for the next wake's host.
3. After `_LINGER_MS` without activity (a press, a gesture, an accepted command) it hands its
   sequence block back (no gap for the host at the next wake), disconnects, arms the wake on
   the button and sleeps until the next heartbeat is due.

If the board cannot enter deep sleep (no wake on its button: the Pico W, or an ESP32-C3 under
a MicroPython without esp32.wake_on_gpio, before 1.27), the boot stays connected instead:
an error at sleep entry is never allowed to reset the board into the same error again.

A deep-sleep wake is not a boot in the protocol's sense: no BOOT event (that one means a power
cut, a reset or tampering), and the press that woke the board counts from the wake, so a hold
needs no longer than when the board was awake.
"""
from micropython import const

CONNECTED = "connected"
SLEEP = "sleep"
MODES = (CONNECTED, SLEEP)

# board.wake_cause(): why this boot happened.
WAKE_NONE = const(0)  # power-on, reset, watchdog: a boot in the protocol's sense
WAKE_BUTTON = const(1)  # deep sleep ended by the button
WAKE_TIMER = const(2)  # deep sleep ended by the heartbeat timer

# The timer wake's period when a sleep-mode button is provisioned without heartbeat_s. One hour:
# each wake costs a boot, a connection and a heartbeat (about 90 mC on the XIAO ESP32-C3, see
# `msa bench`): hourly, that is about as much again as the deep-sleep floor, and the life
# clears six months (the model's shortest period that does is just under an hour); the centre
# calls a button silent after three missed periods: a dead or removed one is known within 3 h.
SLEEP_HEARTBEAT_S = const(3600)
# Awake this long after the last activity (a press, a gesture, an accepted command; a queued
# event keeps it up anyway): a host's session is never cut between two of its commands (an ACK
# or a TIME takes a few connection events, ~0.1 s), nor a technician's check right after it.
# Short, because awake the board draws ~24 mA under MicroPython: at 1.5 s the linger is a
# third of a wake's charge, and the sleep mode's life clears six months (`msa bench`).
_LINGER_MS = const(1500)
# How long a wake advertises for its host before it gives the heartbeat up and sleeps again:
# a host scanning continuously finds a 250 ms advert within a second; this leaves room for a
# host that backs off between tries (at most 5 s) or scans with a duty cycle.
_WAKE_WINDOW_MS = const(15000)
# Before the radio goes dark: time for the disconnections to reach the hosts, so they resume
# scanning at once instead of waiting out a supervision timeout.
_DISCONNECT_WAIT_MS = const(300)
_DISCONNECT_POLL_MS = const(20)


class Power:
    """One boot's power policy: when the button may deep-sleep, and putting it to sleep.

    The radio loop awaits turn() on every pass. In sleep mode, once due_ms() says the button
    may sleep, turn() puts it to sleep, which does not return on a board (on the virtual board
    the interpreter ends and the simulator keeps the board asleep).
    """

    def __init__(self, board, cfg, wake=WAKE_NONE):
        self._board = board
        self.wake = wake
        self.enabled = cfg.get("power", CONNECTED) == SLEEP
        self.sleep_ms = cfg["heartbeat_s"] * 1000  # the timer wake: the next heartbeat
        now = board.ticks_ms()
        self._boot_ms = now
        self._active_ms = now
        self._accepted = 0  # the radio's count of accepted commands, as last seen
        self.owed = self.enabled  # this wake's heartbeat, not yet sent to a host

    async def turn(self, per, button, now, wait_ms):
        """The radio loop's wait (ms until it looks again), shortened to when the button may
        sleep; sleeps if that is now."""
        due = self.due_ms(per, button, now)
        if due < 0:
            return wait_ms
        if due == 0:
            await self.sleep(per, button)
            return 1  # still awake: look again at once (adverts were stopped)
        return min(wait_ms, due)

    def due_ms(self, per, button, now):
        """ms until the button may sleep (0: now), or -1 in connected mode.

        per: the radio (commands_accepted, heartbeat(now), haptic); button: the button core
        (queue, busy(now)). Activity pushes the sleep back by the linger time."""
        if not self.enabled:
            return -1
        diff = self._board.ticks_diff
        if per.commands_accepted != self._accepted:
            self._accepted = per.commands_accepted
            self._active_ms = now
        if button.queue.holds() or button.busy(now) or per.haptic.playing:
            # Never asleep on an alarm, a test, a press, a gesture or a warning's vibration.
            self._active_ms = now
            return _LINGER_MS
        if self.owed:
            if per.commands_accepted and per.heartbeat(now):
                self.owed = False  # a host has subscribed (it sent a command) and heard us
                self._active_ms = now
            else:
                left = _WAKE_WINDOW_MS - diff(now, self._boot_ms)
                if left > 0:
                    return left
                self.owed = False  # no host came: the heartbeat is missed, not the sleep
        return max(0, _LINGER_MS - diff(now, self._active_ms))

    async def sleep(self, per, button):
        """Hands back the sequence block, disconnects every central, arms the wake on the
        button and deep-sleeps until the next heartbeat. Returns only if the board cannot
        wake on its button (it then stays in connected mode for this boot), or if a press came
        while the centrals were leaving (it stays awake, as for any activity)."""
        board = self._board
        try:
            board.wake_on_button()
        except Exception:  # OSError, or AttributeError from a port without the call
            self.enabled = False  # connected for this boot: never a reset into the same error
            return
        per.stop()
        start = board.ticks_ms()
        while per.connected and board.ticks_diff(board.ticks_ms(), start) < _DISCONNECT_WAIT_MS:
            import asyncio  # here: config.py imports this module's names, without asyncio

            await asyncio.sleep_ms(_DISCONNECT_POLL_MS)
        now = board.ticks_ms()
        if button.queue.holds() or button.busy(now):
            self._active_ms = now  # pressed meanwhile: stay up (the radio loop advertises again)
            return
        button.keep_for_sleep()
        per.off()  # the controller must be disabled before deep sleep (ESP-IDF sleep modes)
        button.counters.release()
        board.deepsleep(self.sleep_ms)
