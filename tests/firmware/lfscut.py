"""Power cuts on a real LittleFS (MicroPython's VfsLfs2, the filesystem of the ESP32 and rp2
ports) over a RAM block device that dies after a chosen number of programmed bytes."""
import os

import store

_BLOCK = 512
_COUNT = 48


class DyingBlockDevice:
    """A flash in RAM: after `budget` bytes (an erase costs one) every write fails."""

    def __init__(self, data=None):
        self.data = data if data is not None else bytearray(b"\xff" * (_BLOCK * _COUNT))
        self.budget = -1
        self.writes = 0

    # Byte loops, not slices: LittleFS may call in while a file is finalised with the heap
    # locked, and slicing allocates.
    def readblocks(self, block, buf, offset=0):
        start = block * _BLOCK + offset
        data = self.data
        for i in range(len(buf)):
            buf[i] = data[start + i]

    def writeblocks(self, block, buf, offset=None):
        start = block * _BLOCK + (offset or 0)
        n = len(buf)
        if self.budget >= 0:
            n = min(n, self.budget)
            self.budget -= n
        data = self.data
        for i in range(n):
            data[start + i] = buf[i]
        self.writes += n
        if n < len(buf):
            raise OSError(5)  # the power is gone mid-program: the rest never arrives

    def ioctl(self, op, arg):
        if op == 4:
            return _COUNT
        if op == 5:
            return _BLOCK
        if op == 6:  # erase
            if self.budget == 0:
                raise OSError(5)
            if self.budget > 0:
                self.budget -= 1
            start = arg * _BLOCK
            data = self.data
            for i in range(_BLOCK):
                data[start + i] = 0xFF
            return 0
        return 0


def _mount(dev, fresh):
    if fresh:
        os.VfsLfs2.mkfs(dev)
    try:
        os.umount("/flash")
    except OSError:
        pass
    os.mount(os.VfsLfs2(dev), "/flash")


def run(budget, saves):
    """Saves payloads (hex) through the real Store and open()/os.rename on LittleFS, cutting
    the power after `budget` bytes; remounts and loads. Same result shape as
    props.store_powercut."""
    dev = DyingBlockDevice()
    _mount(dev, True)
    dev.writes = 0
    dev.budget = budget
    completed = 0
    try:
        st = store.Store("/flash")
        for payload in saves:
            st.save("rec", bytes.fromhex(payload))
            completed += 1
    except OSError:
        pass
    steps = dev.writes
    dev.budget = -1
    try:
        _mount(DyingBlockDevice(bytearray(dev.data)), False)
        loaded = store.Store("/flash").load("rec")
    finally:
        os.umount("/flash")
    return {"completed": completed, "loaded": None if loaded is None else loaded.hex(),
            "steps": steps}
