"""Advertising: idle adverts that carry nothing but the flags, and encrypted alarm bursts,
and when to burst which pending event.

Nothing an idle advert holds names the device or what it is; a burst's payload is AES-CTR
ciphertext under a generic company id (docs/protocol.md, Advertising). Bursts are short and
spaced, so the button is not a beacon. A controller that refuses (busy: OSError) leaves the
mode unchanged, so the next call tries again; `refused_ms` tells the radio how long
adverts have been refused.
"""
from micropython import const

from frame import KIND_ALARM, KIND_LOW_BATTERY, KIND_TEST

_IDLE_ADV = b"\x02\x01\x06"  # Flags: LE general discoverable, no BR/EDR; nothing else
IDLE_INTERVAL_US = const(250000)
BURST_INTERVAL_US = const(20000)
BURST_MS = const(3000)
BURST_PERIOD_MS = const(30000)

_ADV_RETRY_MS = const(500)  # adverts refused (controller busy): try again this soon
_BURST_KINDS = (KIND_ALARM, KIND_TEST, KIND_LOW_BATTERY)

_OFF = const(0)
_IDLE = const(1)
_BURST = const(2)


class Advertiser:
    """Switches the radio between no adverts, idle adverts and a burst for one frame."""

    def __init__(self, ble, key, board):
        self._ble = ble
        self._key = key
        self._board = board
        self._sealer = None
        self._mode = _OFF
        self._burst_seq = 0  # the event of the last burst
        self._burst_until_ms = 0
        self._next_burst_ms = 0
        self.refused_ms = -1  # ticks of the first refusal in a row, -1 when working

    def _start(self, interval_us, adv):
        try:
            self._ble.gap_advertise(interval_us, adv_data=adv, connectable=True)
        except OSError:
            if self.refused_ms < 0:
                self.refused_ms = self._board.ticks_ms()
            return False
        self.refused_ms = -1
        return True

    def idle(self):
        if self._mode != _IDLE and self._start(IDLE_INTERVAL_US, _IDLE_ADV):
            self._mode = _IDLE

    def burst(self, seq, frame):
        """Advertises one sealed frame (connectable, so a host may also connect and fetch
        it); False if the controller refused."""
        if self._mode == _BURST and self._burst_seq == seq:
            return True
        if self._sealer is None:
            import burst  # rarely needed: only when an alarm finds no host connected
            self._burst_mod = burst
            self._sealer = burst.BurstSealer(self._key)
        adv = self._burst_mod.advert(self._sealer.seal(frame))
        if not self._start(BURST_INTERVAL_US, adv):
            return False
        self._mode = _BURST
        self._burst_seq = seq
        return True

    def connected(self):
        """A central connected: the stack stopped advertising by itself (NimBLE and BTstack
        do), so the next idle() or burst() must start it again. Safe in an IRQ."""
        self._mode = _OFF

    def stop(self):
        if self._mode != _OFF:
            try:
                self._ble.gap_advertise(None)
            except OSError:
                pass  # the stack is stopping anyway (deep sleep, reset)
            self._mode = _OFF

    @property
    def bursting(self):
        return self._mode == _BURST

    def _burstable(self, q):
        """Slot in queue `q` of the next pending event worth a burst: the one numbered after
        the last one burst, or the first again (they take turns)."""
        first = after = -1
        for i in range(q.capacity):
            if q.kind[i] in _BURST_KINDS:
                seq = q.seq[i]
                if first < 0 or seq < q.seq[first]:
                    first = i
                if seq > self._burst_seq and (after < 0 or seq < q.seq[after]):
                    after = i
        return after if after >= 0 else first

    def turn(self, now, button, admitted):
        """This pass's adverts: none while an admitted host is here; a burst of the next
        pending event when one is due; idle adverts otherwise, once a burst has run out."""
        if admitted:
            self.stop()  # the host is here: nothing to announce
            return
        diff = self._board.ticks_diff
        slot = self._burstable(button.queue)
        if slot >= 0 and diff(now, self._next_burst_ms) >= 0:
            seq, frame = button.frame_at(slot)
            if self.burst(seq, frame):  # else the controller was busy: soon again
                self._burst_until_ms = self._board.ticks_add(now, BURST_MS)
                self._next_burst_ms = self._board.ticks_add(now, BURST_PERIOD_MS)
        elif slot < 0 or diff(now, self._burst_until_ms) >= 0:
            self.idle()

    def wait_ms(self, now, button, host):
        """ms until turn() has something to do (a retry, a burst's end or the next one), or
        -1; `host`: a host can take the events without bursts."""
        diff = self._board.ticks_diff
        wait = _ADV_RETRY_MS if self.refused_ms >= 0 else -1
        if self._mode == _BURST:
            due = diff(self._burst_until_ms, now)
        elif not host and self._burstable(button.queue) >= 0:
            due = diff(self._next_burst_ms, now)
        else:
            return wait
        return due if wait < 0 else min(wait, due)
