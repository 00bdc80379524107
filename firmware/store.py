"""Power-cut-safe records on the button's flash.

Each record has two slot files, written alternately. A slot holds magic, generation, length,
payload and a CRC-32; it is written to a temporary file, flushed, synced and renamed over the
older slot. A cut at any byte leaves at least the previous good slot, and load() takes the valid
slot with the highest generation, so a record is always either the old or the new value.

A cut between removing the older slot and the rename leaves the newest value only in the
temporary file. load() then finishes that rename before anything else, because the next save
truncates the temporary file: a second cut there would otherwise leave only the value before,
and roll a record such as the counters back.
"""
import struct
# binascii's CRC-32 (IEEE, as the records always carried): built into the esp32 and rp2 ports.
from binascii import crc32  # noqa: F401  (store.crc32: the tools and tests check with it)

from micropython import const

_MAGIC = b"MSA1"
_HEADER = ">4sIH"
_HEADER_LEN = const(10)
_CRC_LEN = const(4)
MAX_PAYLOAD = const(2048)


def _slot(gen):
    """The slot file a generation is written to."""
    return "b" if gen % 2 == 0 else "a"


class OsFs:
    """The board's own filesystem, through open() and os."""

    def __init__(self):
        import os
        self._os = os

    def read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, path, data):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
        sync = getattr(self._os, "sync", None)
        if sync is not None:
            sync()

    def rename(self, old, new):
        try:
            self._os.remove(new)  # some ports refuse to rename over an existing file
        except OSError:
            pass
        self._os.rename(old, new)

    def remove(self, path):
        try:
            self._os.remove(path)
        except OSError:
            pass


class Store:
    """Named records under a folder of the flash ("." is the device's working folder, its
    flash root). fs defaults to the real filesystem."""

    def __init__(self, root=".", fs=None):
        self._root = root.rstrip("/") or "."
        self._fs = fs if fs is not None else OsFs()
        self._gens = {}

    def _path(self, name, slot):
        return "%s/%s.%s" % (self._root, name, slot)

    def _read_slot(self, name, slot):
        raw = self._fs.read(self._path(name, slot))
        if raw is None or len(raw) < _HEADER_LEN + _CRC_LEN:
            return -1, None
        magic, gen, length = struct.unpack_from(_HEADER, raw, 0)
        end = _HEADER_LEN + length
        if magic != _MAGIC or len(raw) != end + _CRC_LEN:
            return -1, None
        if struct.unpack_from(">I", raw, end)[0] != crc32(memoryview(raw)[4:end]):
            return -1, None
        return gen, bytes(raw[_HEADER_LEN:end])

    def load(self, name):
        """The newest intact payload of a record, or None if it was never saved."""
        best_gen, best, where = 0, None, None
        # The temporary file counts too: a cut between its sync and the rename keeps it whole.
        for slot in ("a", "b", "tmp"):
            gen, data = self._read_slot(name, slot)
            if gen > best_gen:
                best_gen, best, where = gen, data, slot
        if where == "tmp":
            # Finish the interrupted save, so that the next one cannot truncate the only copy.
            self._fs.rename(self._path(name, "tmp"), self._path(name, _slot(best_gen)))
        self._gens[name] = best_gen
        return best

    def save(self, name, payload):
        """Writes a new generation of a record into the slot that does not hold the newest."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload too large")
        if name not in self._gens:
            self.load(name)
        gen = self._gens[name] + 1
        slot = _slot(gen)
        body = struct.pack(_HEADER, _MAGIC, gen, len(payload)) + bytes(payload)
        data = body + struct.pack(">I", crc32(memoryview(body)[4:]))
        tmp = self._path(name, "tmp")
        self._fs.write(tmp, data)
        self._fs.rename(tmp, self._path(name, slot))
        self._gens[name] = gen

    def erase(self, name):
        """Removes both slots of a record (used when a button is retired)."""
        for slot in ("a", "b", "tmp"):
            self._fs.remove(self._path(name, slot))
        self._gens[name] = 0
