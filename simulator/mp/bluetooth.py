"""MicroPython's `bluetooth` module for the virtual board: the peripheral part of the BLE API,
same names, IRQ codes and tuples, forwarded over the bridge (topic "ble") to a Bumble device
in the simulator (simulator/peripheral.py). Where the real module raises, this one raises, and
where the real ports are harsh, this one is too (docs/simulator.md, "Real port behaviour"):

- active(True) tells the stack whether an IRQ handler is registered: without one, NimBLE's
  load_irk cannot ask for the button's IRK and keeps its compiled-in default one;
- an exception escaping the IRQ handler disables the handler for good (modbluetooth.c);
- gap_advertise refuses more than 31 bytes of data, and fails while the controller is busy
  (fault injection: the simulator's "fault" message);
- a characteristic's buffer holds 20 bytes until gatts_set_buffer(); a central's longer write
  is truncated; the firmware's own gatts_write grows it;
- IRQs arrive between bytecodes on the ports (NimBLE's task, BTstack's poll): here at every
  await and inside every call into this module (simlink.pump()), so a loop over connections
  that calls the radio sees a connection come or go under it;
- MSA_PORT=rp2 (the Pico W's BTstack): no resolvable private addresses (config(addr_mode=2)
  raises EINVAL); the simulator side allows one connection at a time.
"""
import os

import simlink

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_IRQ_GATTS_WRITE = 3
_IRQ_GET_SECRET = 29
_EPERM = 1
_EBUSY = 16
_EINVAL = 22
_ADV_MAX = 31  # legacy advertising data and scan response, each
_DEFAULT_ATTR_LEN = 20  # MP_BLUETOOTH_DEFAULT_ATTR_LEN
_ADDR_MODE_RPA = 2
_CONFIG_KEYS = ("addr_mode", "gap_name", "mtu", "bond", "mitm", "io", "le_secure", "rxbuf")


class UUID:
    """A 16-bit or 128-bit UUID, from an int, a string or 2/16 little-endian bytes."""

    def __init__(self, value):
        if isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._text = "%04x" % value
        elif isinstance(value, str):
            text = value.replace("-", "").lower()
            if len(text) not in (4, 32):
                raise ValueError("invalid UUID")
            int(text, 16)
            self._text = text
        else:
            raw = bytes(value)
            if len(raw) not in (2, 16):
                raise ValueError("invalid UUID")
            self._text = bytes(reversed(raw)).hex()

    def __eq__(self, other):
        return isinstance(other, UUID) and other._text == self._text

    def __hash__(self):
        return hash(self._text)

    def __str__(self):
        t = self._text
        if len(t) == 4:
            return "0x" + t
        return "%s-%s-%s-%s-%s" % (t[:8], t[8:12], t[12:16], t[16:20], t[20:])

    def __bytes__(self):
        return bytes(reversed(bytes.fromhex(self._text)))


_radio = None


def BLE():
    """The singleton radio, as bluetooth.BLE() returns it on a real port."""
    global _radio
    if _radio is None:
        _radio = _Radio()
    return _radio


class _Radio:
    """What bluetooth.BLE() returns."""

    def __init__(self):
        self._active = False
        self._irq = None
        self._values = {}  # type: dict
        self._buffers = {}  # type: dict  # value handle -> bytes a central's write may fill
        self._busy = 0  # gap_advertise calls still to fail with EBUSY (fault injection)
        self.irq_failures = 0  # handlers disabled by an exception (as the port prints them)
        self._port = os.getenv("MSA_PORT") or "esp32"
        self._config = {"mtu": 23, "addr_mode": 0, "gap_name": b"", "bond": False,
                        "mitm": False, "io": 3, "le_secure": False,
                        "rxbuf": 64}  # type: dict
        self._next_handle = 1
        self._link = simlink.get()
        self._link.on("ble", self._on_message)

    def _send(self, op, **fields):
        fields["t"] = "ble"
        fields["op"] = op
        self._link.send(fields)

    def _need_active(self):
        if not self._active:
            raise OSError(_EPERM)

    def active(self, *args):
        if args:
            want = bool(args[0])
            if want != self._active:
                self._active = want
                # load_irk runs inside active(True): only a handler registered by then can
                # hand the stack the button's own IRK.
                self._send("active", on=want, handler=self._irq is not None, port=self._port)
        return self._active

    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("config takes one name to read, or keywords to set")
            name = args[0]
            if name == "mac":
                self._need_active()
                return (1, bytes.fromhex(self._config.get("mac", "000000000000")))
            if name not in self._config:
                raise ValueError("unknown config param")
            return self._config[name]
        for name, value in kwargs.items():
            if name not in _CONFIG_KEYS:
                raise ValueError("unknown config param")
            if name == "addr_mode":
                self._need_active()
                if self._port == "rp2" and value == _ADDR_MODE_RPA:
                    raise OSError(_EINVAL)  # BTstack: the public address only
            self._config[name] = value
        self._send("config", values={k: (v.hex() if isinstance(v, (bytes, bytearray)) else v)
                                     for k, v in kwargs.items() if k != "gap_name"})
        return None

    def irq(self, handler):
        self._irq = handler

    def _handle(self):
        h = self._next_handle
        self._next_handle += 1
        return h

    def gatts_register_services(self, services):
        self._need_active()
        # A registration replaces the last (NimBLE's ble_gatts_reset): the same handles again.
        self._next_handle = 1
        self._values = {}
        self._buffers = {}
        out = []
        table = []
        for service_uuid, chars in services:
            self._handle()  # the service declaration
            handles = []
            entries = []
            for char in chars:
                uuid, flags = char[0], char[1]
                self._handle()  # the characteristic declaration
                value = self._handle()
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    self._handle()  # the CCCD the stack adds
                self._values[value] = b""
                handles.append(value)
                entries.append([str(uuid), flags, value])
                for desc in (char[2] if len(char) > 2 else ()):
                    d = self._handle()
                    self._values[d] = b""
                    handles.append(d)
                    entries.append([str(desc[0]), desc[1], d, "descriptor"])
            out.append(tuple(handles))
            table.append([str(service_uuid), entries])
        self._send("register", services=table)
        return tuple(out)

    def gatts_read(self, handle):
        self._need_active()
        if handle not in self._values:
            raise OSError(_EINVAL)
        return self._values[handle]

    def gatts_write(self, handle, data, send_update=False):
        self._link.pump()
        self._need_active()
        if handle not in self._values:
            raise OSError(_EINVAL)
        self._values[handle] = bytes(data)
        if len(data) > self._buffers.get(handle, _DEFAULT_ATTR_LEN):
            self._buffers[handle] = len(data)  # the port's db write grows the buffer
        self._send("write", h=handle, data=bytes(data).hex(), update=bool(send_update))

    def gatts_set_buffer(self, handle, size, append=False):
        self._need_active()
        if handle not in self._values:
            raise OSError(_EINVAL)
        self._buffers[handle] = size

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._link.pump()
        self._need_active()
        payload = self._values.get(value_handle, b"") if data is None else bytes(data)
        self._send("notify", conn=conn_handle, h=value_handle, data=payload.hex())

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._link.pump()
        self._need_active()
        payload = self._values.get(value_handle, b"") if data is None else bytes(data)
        self._send("indicate", conn=conn_handle, h=value_handle, data=payload.hex())

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self._link.pump()
        self._need_active()
        if interval_us is None:
            self._send("advertise", interval_us=None)
            return
        for data in (adv_data, resp_data):
            if data is not None and len(data) > _ADV_MAX:
                raise OSError(_EINVAL)  # ble_gap_adv_set_data: BLE_HS_EMSGSIZE
        if self._busy:
            self._busy -= 1
            raise OSError(_EBUSY)
        self._send("advertise", interval_us=interval_us,
                   adv=None if adv_data is None else bytes(adv_data).hex(),
                   connectable=bool(connectable))

    def gap_disconnect(self, conn_handle):
        self._link.pump()
        self._need_active()
        self._send("disconnect", conn=conn_handle)
        return True

    def gap_pair(self, conn_handle):
        self._need_active()
        self._send("pair", conn=conn_handle)

    def gap_passkey(self, conn_handle, action, passkey):
        self._send("passkey", conn=conn_handle, action=action, passkey=passkey)

    def _on_message(self, msg):
        """IRQs from the simulator: ("irq", event, data) with bytes sent as hex."""
        if msg.get("op") == "mac":
            self._config["mac"] = msg["mac"]
            return None
        if msg.get("op") == "fault":
            self._busy = int(msg.get("busy") or 0)
            return None
        event = msg["event"]
        data = msg["data"]
        args = []
        for item in data:
            if isinstance(item, str):
                item = memoryview(bytes.fromhex(item))
            args.append(item)
        if event == _IRQ_GATTS_WRITE:
            # The central's data lands in the local value first, as in the real stack, cut
            # to the characteristic's buffer.
            value = bytes.fromhex(msg.get("value") or "")
            self._values[args[1]] = value[:self._buffers.get(args[1], _DEFAULT_ATTR_LEN)]
        handler = self._irq
        if handler is None:
            return None
        try:
            result = handler(event, tuple(args))
        except Exception as exc:  # noqa: BLE001 - modbluetooth.c: the handler is gone for good
            self._irq = None
            self.irq_failures += 1
            print("Unhandled exception in IRQ callback handler")
            import sys
            sys.print_exception(exc)
            return None
        if event == _IRQ_GET_SECRET:
            return None if result is None else bytes(result).hex()
        return result
