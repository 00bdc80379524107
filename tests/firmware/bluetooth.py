"""A stand-in for MicroPython's `bluetooth` module in the firmware's unit tests (both
interpreters; neither the unix port nor CPython has one): it records what the firmware asks of
the radio and lets a test raise the stack's IRQs, with the ports' harsh edges (docs/simulator.md):
an exception escaping the handler disables it, adverts over 31 bytes and a busy controller
raise OSError, a characteristic's buffer holds 20 bytes until gatts_set_buffer().

The end-to-end tests use the simulator's module instead (simulator/mp/bluetooth.py).
"""
import asyncio

if not hasattr(asyncio, "ThreadSafeFlag"):  # CPython: what the firmware's loop needs of it
    class ThreadSafeFlag:
        def __init__(self):
            self.is_set = False

        def set(self):
            self.is_set = True

        def clear(self):
            self.is_set = False

    asyncio.ThreadSafeFlag = ThreadSafeFlag

_EBUSY = 16
_EINVAL = 22


class UUID:
    def __init__(self, value):
        self.value = bytes(value) if isinstance(value, (bytes, bytearray)) else value

    def __eq__(self, other):
        return isinstance(other, UUID) and other.value == self.value


class BLE:
    """One radio. Tests drive it with event(), central_write() and the fields below."""

    def __init__(self):
        self.handler = None
        self.on = False
        self.handler_at_active = None  # was a handler registered when the stack started?
        self.settings = {}
        self.values = {}
        self.buffers = {}
        self.services = []  # [(service UUID, [(UUID, flags, value handle)])]
        self.adverts = []  # (interval_us, adv_data) per accepted gap_advertise
        self.busy = 0  # gap_advertise calls still to refuse
        self.notified = []  # (conn, value handle, bytes)
        self.indicated = []
        self.disconnected = []
        self.handler_failures = 0
        self.starts = 0  # active(True) calls that started the stack

    def irq(self, handler):
        self.handler = handler

    def active(self, *args):
        if args:
            if args[0] and not self.on:
                self.handler_at_active = self.handler is not None
                self.starts += 1
            self.on = bool(args[0])
        return self.on

    def config(self, **settings):
        self.settings.update(settings)

    def gatts_register_services(self, services):
        out = []
        handle = 1
        for uuid, chars in services:
            handles = []
            entries = []
            for char in chars:
                handle += 1
                self.values[handle] = b""
                handles.append(handle)
                entries.append((char[0], char[1], handle))
                handle += 1
            out.append(tuple(handles))
            self.services.append((uuid, entries))
        return tuple(out)

    def gatts_read(self, handle):
        return self.values[handle]

    def gatts_write(self, handle, data, send_update=False):
        self.values[handle] = bytes(data)
        if len(data) > self.buffers.get(handle, 20):
            self.buffers[handle] = len(data)

    def gatts_set_buffer(self, handle, size, append=False):
        self.buffers[handle] = size

    def gatts_notify(self, conn, handle, data=None):
        self.notified.append((conn, handle, self.values[handle] if data is None else bytes(data)))

    def gatts_indicate(self, conn, handle, data=None):
        self.indicated.append((conn, handle, bytes(data)))

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if adv_data is not None and len(adv_data) > 31:
            raise OSError(_EINVAL)
        if self.busy:
            self.busy -= 1
            raise OSError(_EBUSY)
        self.adverts.append((interval_us, None if adv_data is None else bytes(adv_data)))

    def gap_disconnect(self, conn):
        self.disconnected.append(conn)
        return True

    # --- the stack's side ---
    def event(self, event, data):
        """Raises an IRQ as the port does: an exception disables the handler for good."""
        if self.handler is None:
            return None
        try:
            return self.handler(event, data)
        except Exception:  # noqa: BLE001 - modbluetooth.c
            self.handler = None
            self.handler_failures += 1
            return None

    def central_write(self, conn, handle, data):
        """A central writes a characteristic: the value is cut to its buffer first."""
        self.values[handle] = bytes(data)[:self.buffers.get(handle, 20)]
        return self.event(3, (conn, handle))

    def _entry(self, handle):
        for _, entries in self.services:
            for entry in entries:
                if entry[2] == handle:
                    return entry
        return (None, None, handle)

    def uuid_of(self, handle):
        return self._entry(handle)[0]

    def flags_of(self, handle):
        return self._entry(handle)[1]
