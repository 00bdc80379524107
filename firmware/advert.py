"""Advertising: idle adverts that carry nothing but the flags, and encrypted alarm bursts.

Nothing an idle advert holds names the device or what it is; a burst's payload is AES-CTR
ciphertext under a generic company id (docs/protocol.md, Advertising). Bursts are short and
spaced, so the button is not a beacon. A controller that refuses (busy: OSError) leaves the
mode unchanged, so the next call tries again; `refused_ms` tells the radio how long
adverts have been refused.
"""
from micropython import const

_IDLE_ADV = b"\x02\x01\x06"  # Flags: LE general discoverable, no BR/EDR; nothing else
IDLE_INTERVAL_US = const(250000)
BURST_INTERVAL_US = const(20000)
BURST_MS = const(3000)
BURST_PERIOD_MS = const(30000)

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
        self._burst_seq = 0
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
