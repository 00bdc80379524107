"""Boot id and sequence numbers that are never reused, even across power cuts.

Sequence numbers are reserved on flash in blocks: the record holds the first number not yet
reserved, and is written before any number of a new block is handed out. A reboot starts at the
stored ceiling, skipping what the last boot reserved but did not use (the host sees a gap at the
boot frame), so a number is never issued twice. One flash write per block spares the flash.
"""
import struct

from micropython import const

DEFAULT_BLOCK = const(32)
_RECORD = "counters"
_FORMAT = ">II"


class Counters:
    """Loads and advances the counters at construction (one boot = one Counters)."""

    def __init__(self, store, block=DEFAULT_BLOCK):
        if block < 1:
            raise ValueError("block")
        self._store = store
        self._block = block
        raw = store.load(_RECORD)
        boots, ceiling = struct.unpack(_FORMAT, raw) if raw else (0, 1)
        self.boots = boots + 1
        self.boot_id = self.boots & 0xFFFF
        self._next = ceiling
        self._ceiling = ceiling + block
        self._save()

    def _save(self):
        self._store.save(_RECORD, struct.pack(_FORMAT, self.boots, self._ceiling))

    def next_seq(self):
        """A fresh sequence number; writes the flash once per block."""
        if self._next >= self._ceiling:
            self._ceiling = self._next + self._block
            self._save()
        seq = self._next
        self._next += 1
        return seq

    def release(self):
        """Before a deep sleep: the unused rest of the block is handed back, so the next boot
        continues at the next number and the host sees no gap for a wake. Still safe if a
        number is issued afterwards: next_seq() reserves a new block first."""
        if self._ceiling != self._next:
            self._ceiling = self._next
            self._save()

    @property
    def last_seq(self):
        """The last number issued (0 when none has been issued yet)."""
        return self._next - 1
