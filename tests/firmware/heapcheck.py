"""Proves the heap-lock check can fail: allocating with the heap locked raises (MicroPython)."""
import micropython


def allocate_while_locked():
    micropython.heap_lock()
    try:
        return [bytearray(64)]
    finally:
        micropython.heap_unlock()
