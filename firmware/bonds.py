"""Bond secrets the BLE stack hands over (_IRQ_SET_SECRET), kept on flash so bonds survive a
reboot, and the bond window that decides which new bonds the button accepts.

The record is binary (a flag byte, then per secret: type, key length, value length, key,
value) and never grows past one store record: when it would, the oldest peer secrets give
way, never the button's own IRK. The stack's IRQ only updates RAM and marks the record dirty;
flush() writes it from the main loop, never from the IRQ.

The bond window: until a central has proved the button key over an encrypted, bonded link,
the button accepts bonds (provisioning, at the technician's bench: `msa bond`). From then on
the window is closed for good, on flash: no new peer is kept, and no kept peer's keys are
replaced or deleted, so a stranger's "Just Works" pairing (or a repeat pairing, which NimBLE
answers by deleting the old bond first) can never evict the host. Only erasing the record
(`msa wipe`, then provisioning again) opens the window again.
"""
import struct

from micropython import const

from store import MAX_PAYLOAD

_RECORD = "bonds"
_MAGIC = b"B2"
_HEAD = const(3)  # magic, flags
_FLAG_CLOSED = const(1)
_ENTRY = ">BBH"  # type, key length, value length
_ENTRY_LEN = const(4)
SEC_CCCD = const(3)  # NimBLE's store type for a bonded peer's subscriptions: not a secret
SEC_OUR_IRK = const(10)  # MicroPython's type for the button's own IRK (load_irk)


def _size(items):
    return _HEAD + sum(_ENTRY_LEN + len(k) + len(v) for _, k, v in items)


class Bonds:
    """(sec_type, key) -> value, oldest first."""

    def __init__(self, store):
        self._store = store
        self._items = []  # [sec_type, key bytes, value bytes]
        self.closed = False
        self.dirty = False
        raw = store.load(_RECORD)
        if raw and raw[:2] == _MAGIC:
            self.closed = bool(raw[2] & _FLAG_CLOSED)
            off = _HEAD
            while off + _ENTRY_LEN <= len(raw):
                t, klen, vlen = struct.unpack_from(_ENTRY, raw, off)
                off += _ENTRY_LEN
                self._items.append([t, raw[off:off + klen], raw[off + klen:off + klen + vlen]])
                off += klen + vlen

    def get(self, sec_type, index, key):
        """The stack asks for a secret by key, or for the index'th of a type when key is None."""
        n = 0
        for t, k, v in self._items:
            if t != sec_type:
                continue
            if key is None:
                if n == index:
                    return v
                n += 1
            elif k == bytes(key):
                return v
        return None

    def set(self, sec_type, key, value):
        """Stores, replaces or (value None) deletes a secret; False refuses it, as the stack
        understands: the pairing may go on, but nothing is kept, and nothing is lost."""
        key = bytes(key)
        old = None
        for item in self._items:
            if item[0] == sec_type and item[1] == key:
                old = item
        if len(key) > 255 or self.closed and sec_type != SEC_CCCD and \
                (old or sec_type != SEC_OUR_IRK):
            return False
        items = [i for i in self._items if i is not old]
        if value is not None:
            new = [sec_type, key, bytes(value)]
            items.append(new)
            while _size(items) > MAX_PAYLOAD:
                # The oldest secret gives way: never the button's IRK nor the new one, and
                # none once the window is closed (the host's keep their place).
                victim = None
                for item in items:
                    if not self.closed and item[0] != SEC_OUR_IRK and item is not new:
                        victim = item
                        break
                if victim is None:
                    return False
                items.remove(victim)
        self._items = items
        self.dirty = True
        return True

    def close_window(self):
        """A central proved the key over a bond: the bonds kept now are the host's."""
        if not self.closed:
            self.closed = True
            self.dirty = True

    def flush(self):
        """Writes the secrets if they changed (main loop only)."""
        if not self.dirty:
            return
        self.dirty = False
        out = bytearray(_MAGIC)
        out.append(_FLAG_CLOSED if self.closed else 0)
        for t, k, v in self._items:
            out += struct.pack(_ENTRY, t, len(k), len(v))
            out += k
            out += v
        self._store.save(_RECORD, bytes(out))

    def clear(self):
        """Forgets every bond and opens the window (retiring the button)."""
        self._items = []
        self.closed = False
        self.dirty = False
        self._store.erase(_RECORD)
