"""Bond secrets the BLE stack hands over (_IRQ_SET_SECRET), kept on flash so bonds survive a
reboot. The stack's IRQ only updates RAM and marks the record dirty; flush() writes it from the
main loop, never from the IRQ.
"""
import json

from micropython import const

_RECORD = "bonds"
_MAX_SECRETS = const(24)  # a few bonded hosts, each a handful of secrets


class Bonds:
    """(sec_type, key) -> value, newest last, as MicroPython's bonding examples keep them."""

    def __init__(self, store):
        self._store = store
        self._items = []  # [sec_type, key bytes, value bytes]
        self.dirty = False
        raw = store.load(_RECORD)
        if raw:
            for sec_type, key, value in json.loads(raw):
                self._items.append([sec_type, bytes.fromhex(key), bytes.fromhex(value)])

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
        """Stores (or with value None deletes) a secret; True as the stack expects."""
        key = bytes(key)
        self._items = [i for i in self._items if not (i[0] == sec_type and i[1] == key)]
        if value is not None:
            self._items.append([sec_type, key, bytes(value)])
            if len(self._items) > _MAX_SECRETS:
                # The oldest of the same type gives way, so a flood of peers never pushes
                # out the button's own keys (its IRK: bonded hosts resolve its address by it).
                for i, item in enumerate(self._items):
                    if item[0] == sec_type:
                        self._items.pop(i)
                        break
        self.dirty = True
        return True

    def count(self, sec_type=None):
        """How many secrets are kept (of one type, if given)."""
        return sum(1 for t, _, _ in self._items if sec_type is None or t == sec_type)

    def flush(self):
        """Writes the secrets if they changed (main loop only)."""
        if not self.dirty:
            return
        self.dirty = False
        self._store.save(_RECORD, json.dumps(
            [[t, k.hex(), v.hex()] for t, k, v in self._items]).encode())

    def clear(self):
        """Forgets every bond (retiring the button)."""
        self._items = []
        self.dirty = False
        self._store.erase(_RECORD)
