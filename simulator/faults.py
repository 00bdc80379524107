"""Faults a virtual board can be given, so that the technicians' tools meet on the bench what
real buttons do to them: a worn flash page, a block that cannot be erased, another MicroPython
release, a build without a module, line noise (simulator/vboard.py applies them to its USB
sessions)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """What can go wrong with a button on the technician's bench, for the tools' error paths.
    They apply to every interpreter the board's REPL starts (start_console), so to every USB
    session from the next one on, and garble_after to the bytes the REPL receives; the
    firmware booted by start() runs without them.

    Each is what a real device does: a worn flash page that stores a flipped bit, a block that
    cannot be erased, another MicroPython release's .mpy format, a build without a module,
    a UART bridge that changes a byte."""

    # Files (by name, e.g. "app.mpy", "config.tmp") whose every write lands with one bit
    # flipped in the first byte written through each open().
    corrupt_writes: tuple[str, ...] = ()
    # Files that cannot be removed or renamed over (os.remove, os.rename: EIO).
    stuck_files: tuple[str, ...] = ()
    # The .mpy format version the interpreter reports (sys.implementation._mpy's low byte).
    mpy_version: int | None = None
    # Modules the MicroPython build lacks (an import raises ImportError), e.g. "bluetooth":
    # the Pico's build, not the Pico W's.
    missing_modules: tuple[str, ...] = ()
    # Line noise on a UART bridge (CP2102, CH340: no parity, no checksum): the byte after the
    # first `garble_after` the host sends arrives as another hex digit, the one corruption no
    # syntax or format check on the device can see.
    garble_after: bytes = b""

    def shim(self) -> str:
        """MicroPython run before the REPL (or main.py) starts: the faults, or "" if none.
        It replaces `open`, `__import__` and the `os` and `sys` modules the later code
        imports; everything else passes through to the real ones."""
        if not (self.corrupt_writes or self.stuck_files or self.missing_modules
                or self.mpy_version is not None):
            return ""
        return _SHIM % (repr(list(self.corrupt_writes)), repr(list(self.stuck_files)),
                        repr(self.mpy_version), repr(list(self.missing_modules)))


_SHIM = """def _msa_faults(corrupt, stuck, mpy, missing):
    import builtins, sys, os as real_os
    real_open, real_sys, real_import = open, sys, __import__

    def base(path):
        return path.rsplit('/', 1)[-1]

    class Corrupted:
        def __init__(self, f):
            self._f, self._hit = f, False
        def write(self, data):
            if not self._hit and len(data):
                data = bytearray(data)
                data[0] ^= 0x10
                self._hit = True
            return self._f.write(data)
        def __getattr__(self, name):
            return getattr(self._f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self._f.close()

    def faulty_open(path, mode='r', *args):
        f = real_open(path, mode, *args)
        return Corrupted(f) if ('w' in mode or 'a' in mode) and base(path) in corrupt else f

    class Os:
        def __getattr__(self, name):
            return getattr(real_os, name)
        def remove(self, path):
            if base(path) in stuck:
                raise OSError(5)
            real_os.remove(path)
        def rename(self, old, new):
            if base(old) in stuck or base(new) in stuck:
                raise OSError(5)
            real_os.rename(old, new)

    class Implementation:
        def __init__(self, real):
            self._real = real
            self._mpy = (real._mpy & ~0xff) | mpy
        def __getattr__(self, name):
            return getattr(self._real, name)

    class Sys:
        def __init__(self):
            self.implementation = Implementation(real_sys.implementation)
        def __getattr__(self, name):
            return getattr(real_sys, name)

    def faulty_import(name, *args):
        if name in missing:
            raise ImportError("no module named '%%s'" %% name)
        return real_import(name, *args)

    if corrupt:
        builtins.open = faulty_open
    if missing:
        builtins.__import__ = faulty_import
    if stuck:
        sys.modules['os'] = Os()
    if mpy is not None:
        sys.modules['sys'] = Sys()
_msa_faults(%s, %s, %s, %s)
del _msa_faults
"""


class Garble:
    """Changes the byte that follows the first occurrence of `after` in a stream of chunks
    into another hex digit, once; the pattern may straddle chunks."""

    def __init__(self, after: bytes) -> None:
        self.after = after
        self._tail = b""
        self._next = False  # the pattern ended a chunk: the next byte is the one
        self.done = not after

    def __call__(self, data: bytes) -> bytes:
        if self.done or not data:
            return data
        if self._next:
            return self._change(data, 0)
        seen = self._tail + data
        at = seen.find(self.after)
        if at < 0:
            self._tail = seen[-(len(self.after) - 1):] if len(self.after) > 1 else b""
            return data
        index = at + len(self.after) - len(self._tail)  # in `data`
        if index >= len(data):
            self._next = True
            return data
        return self._change(data, index)

    def _change(self, data: bytes, index: int) -> bytes:
        digits = b"0123456789abcdef"
        out = bytearray(data)
        found = digits.find(out[index:index + 1])
        out[index] = digits[(found + 1) % 16] if found >= 0 else out[index] ^ 0x01
        self.done = True
        return bytes(out)
