"""Bounded queue of events waiting for the host's acknowledgement, in sequence order.

Slots are preallocated, so pushing an event never allocates. When the queue is full the event
of lowest priority goes first: heartbeats before boot notices, those before tests and low-battery
warnings, and these before alarms. An alarm is never dropped silently: if every slot holds an
alarm, the newest queued alarm makes room for the new one (the first alarm of an incident and the
latest are the ones the dispatcher needs), the drop is counted in `dropped`, and the host sees the
gap in sequence numbers. Alarms and tests can be saved to flash and restored after a reboot;
before a deep sleep, boot notices and low-battery warnings are saved with them (power.py).
"""
import struct
from array import array

from micropython import const

from frame import KIND_ALARM, KIND_BOOT, KIND_LOW_BATTERY, KIND_TEST

DEFAULT_CAPACITY = const(16)
# Priority by event kind (index = kind): none, alarm, test, heartbeat, low battery, boot.
_PRIORITY = b"\x00\x04\x03\x00\x03\x01"
_PERSISTED = (KIND_ALARM, KIND_TEST)  # always on flash: they keep a sleeping button awake
DEFERRED = (KIND_BOOT, KIND_LOW_BATTERY)  # on flash only to wait out a deep sleep
# A saved entry: kind, gesture, boot_id, seq, battery, origin in Unix seconds (0: unknown).
_ENTRY = ">BBHIBI"
_ENTRY_LEN = const(13)
ORIGIN_UNKNOWN = const(-1)


class EventQueue:
    """Up to `capacity` events; index-based accessors avoid allocating tuples."""

    def __init__(self, capacity=DEFAULT_CAPACITY):
        if capacity < 2:
            raise ValueError("capacity")
        self.capacity = capacity
        self.kind = bytearray(capacity)  # 0 marks a free slot
        self.gesture = bytearray(capacity)
        self.battery = bytearray(capacity)
        self.boot_id = array("H", [0] * capacity)
        self.seq = array("I", [0] * capacity)
        # The button's own ms clock (button.py: it never wraps, unlike ticks_ms), or -1.
        self.origin_ms = array("q", [0] * capacity)
        self.origin_s = array("I", [0] * capacity)  # Unix seconds if the clock was set, or 0
        self.dropped = bytearray(len(_PRIORITY))  # per kind, saturating at 255
        self.count = 0

    def _victim(self, priority):
        """Slot to give up for an event of `priority`, or -1 to give up the new event."""
        worst = -1
        for i in range(self.capacity):
            k = self.kind[i]
            p = _PRIORITY[k]
            if p < priority and (worst < 0 or p < _PRIORITY[self.kind[worst]]
                                 or (p == _PRIORITY[self.kind[worst]]
                                     and self.seq[i] < self.seq[worst])):
                worst = i
        if worst < 0 and priority == _PRIORITY[KIND_ALARM]:
            for i in range(self.capacity):  # all alarms: replace the newest queued alarm
                if worst < 0 or self.seq[i] > self.seq[worst]:
                    worst = i
        return worst

    def _count_drop(self, kind):
        if self.dropped[kind] < 255:
            self.dropped[kind] += 1

    def push(self, kind, gesture, boot_id, seq, origin_ms, battery, origin_s=0):
        """Queues an event; returns the kind of the event dropped to make room, or 0."""
        slot = -1
        for i in range(self.capacity):
            if self.kind[i] == 0:
                slot = i
                break
        dropped = 0
        if slot < 0:
            slot = self._victim(_PRIORITY[kind])
            if slot < 0:
                self._count_drop(kind)
                return kind
            dropped = self.kind[slot]
            self._count_drop(dropped)
            self.count -= 1
        self.kind[slot] = kind
        self.gesture[slot] = gesture
        self.boot_id[slot] = boot_id
        self.seq[slot] = seq
        self.origin_ms[slot] = origin_ms
        self.origin_s[slot] = origin_s
        self.battery[slot] = battery
        self.count += 1
        return dropped

    def oldest(self):
        """Slot of the event with the lowest sequence number, or -1 if empty."""
        best = -1
        for i in range(self.capacity):
            if self.kind[i] and (best < 0 or self.seq[i] < self.seq[best]):
                best = i
        return best

    def find(self, seq):
        """Slot holding `seq`, or -1."""
        for i in range(self.capacity):
            if self.kind[i] and self.seq[i] == seq:
                return i
        return -1

    def remove(self, seq):
        """Drops the event with this sequence number (it was acknowledged); True if found."""
        i = self.find(seq)
        if i < 0:
            return False
        self.kind[i] = 0
        self.count -= 1
        return True

    def holds(self, kinds=_PERSISTED):
        """True if an event of one of `kinds` is queued; by default an alarm or a test (what
        keeps a sleeping button awake: power.py)."""
        for k in self.kind:
            if k and k in kinds:
                return True
        return False

    def persisted(self, deferred=False):
        """The alarms and tests (with `deferred`, boot notices and low-battery warnings too),
        as bytes for the store (allocates; not for the press path)."""
        out = bytearray()
        for i in range(self.capacity):
            k = self.kind[i]
            if k in _PERSISTED or (deferred and k in DEFERRED):
                out += struct.pack(_ENTRY, self.kind[i], self.gesture[i], self.boot_id[i],
                                   self.seq[i], self.battery[i], self.origin_s[i])
        return bytes(out)

    def restore(self, data):
        """Queues saved entries (after a reboot their origin time is unknown)."""
        if len(data) % _ENTRY_LEN:
            raise ValueError("outbox length")
        for off in range(0, len(data), _ENTRY_LEN):
            kind, gesture, boot_id, seq, battery, origin_s = struct.unpack_from(_ENTRY, data, off)
            if kind not in _PERSISTED and kind not in DEFERRED:
                raise ValueError("outbox kind")
            self.push(kind, gesture, boot_id, seq, ORIGIN_UNKNOWN, battery, origin_s)
