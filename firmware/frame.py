"""Wire format on the button: encodes authenticated event frames and checks host commands.

This is the device side of docs/protocol.md (version 2). The field tables below mirror the tables
in that document; tests compare them, and both sides run the document's hex test vectors.
"""
import hashlib
import struct

from micropython import const

VERSION = const(2)

# Event kinds (frame byte 1).
KIND_ALARM = const(1)
KIND_TEST = const(2)
KIND_HEARTBEAT = const(3)
KIND_LOW_BATTERY = const(4)
KIND_BOOT = const(5)

# Gestures (frame byte 12): what the wearer did, or why there was no gesture.
GESTURE_NONE = const(0)
GESTURE_SINGLE = const(1)
GESTURE_HOLD = const(2)
GESTURE_MULTI = const(3)
GESTURE_REMOTE = const(4)

# Host commands (command byte 1).
OP_ACK = const(1)
OP_TEST = const(2)
OP_TIME = const(3)
OP_WARN = const(4)

# Haptic patterns (a WARN command's value): each its own vibration (haptic.py plays them).
PATTERN_PROXIMITY = const(1)
PATTERN_LOW_BATTERY = const(2)
PATTERN_LINK_LOST = const(3)
PATTERN_TEST = const(4)

BATTERY_UNKNOWN = const(255)
AGE_UNKNOWN = const(0xFFFFFFFF)

# The field tables of docs/protocol.md as struct formats, big-endian (names cost flash; the
# tests check these formats against the document's tables, field by field):
# frame: version B, kind B, button_id I, boot_id H, seq I, gesture B, battery_pct B, age_ms I,
# then the host tag and the centre tag; command: version B, op B, seq I, value I, then the tag.
FRAME_FORMAT = ">BBIHIBBI"
COMMAND_FORMAT = ">BBII"

BODY_LEN = const(18)
TAG_LEN = const(8)
FRAME_LEN = const(34)
COMMAND_BODY_LEN = const(10)
COMMAND_LEN = const(18)
NONCE_LEN = const(8)

# Commands whose tag also covers the button's current challenge nonce (replay protection).
_NONCE_OPS = (OP_TEST, OP_TIME, OP_WARN)

_BLOCK = const(64)


class Hmac:
    """HMAC-SHA256 with the padded key blocks computed once, so each tag costs two hashes."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            k = key[i] if i < len(key) else 0
            ipad[i] = k ^ 0x36
            opad[i] = k ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def digest(self, first, second=None):
        """Full 32-byte HMAC of `first` followed by `second` (when given)."""
        inner = hashlib.sha256(self._ipad)
        inner.update(first)
        if second is not None:
            inner.update(second)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def derive(key, label):
    """A purpose key from the button's 32-byte master key: HMAC-SHA256(key, label)."""
    return Hmac(key).digest(label)


def tags_equal(a, b, n):
    """Compares the first n bytes of a and b in time independent of where they differ."""
    diff = 0
    for i in range(n):
        diff |= a[i] ^ b[i]
    return diff == 0


class FrameEncoder:
    """Builds frames into one preallocated buffer: encoding a frame allocates only the hashes.
    The host tag is made with the master key K, the centre tag with the second master key K_c,
    which the host never holds."""

    def __init__(self, key, centre_key, button_id):
        self.button_id = button_id
        self._mac = Hmac(derive(key, b"msa1 frame"))
        self._centre = Hmac(derive(centre_key, b"msa2 centre"))
        self.buf = bytearray(FRAME_LEN)
        mv = memoryview(self.buf)
        self._body = mv[:BODY_LEN]

    def encode(self, kind, boot_id, seq, gesture, battery_pct, age_ms):
        """Fills self.buf with a tagged frame and returns it (the same buffer every call)."""
        if age_ms < 0 or age_ms > AGE_UNKNOWN:
            age_ms = AGE_UNKNOWN
        struct.pack_into(FRAME_FORMAT, self.buf, 0, VERSION, kind, self.button_id,
                         boot_id & 0xFFFF, seq, gesture, battery_pct, age_ms)
        tag = self._mac.digest(self._body)
        centre = self._centre.digest(self._body)
        buf = self.buf
        for i in range(TAG_LEN):
            buf[BODY_LEN + i] = tag[i]
            buf[BODY_LEN + TAG_LEN + i] = centre[i]
        return buf


class CommandVerifier:
    """Checks commands the host writes to the control characteristic.

    ACK is bound to the sequence number it acknowledges, so replaying it is harmless. TEST, TIME
    and WARN also cover the challenge nonce the button exposes, renewed on every connection and
    after every accepted one of them, so a recorded command cannot be played again. A WARN for a
    pattern the button does not know fails like any other check.
    """

    def __init__(self, key, button_id):
        self._mac = Hmac(derive(key, b"msa1 cmd"))
        self._prefix = struct.pack(">I", button_id)
        self._msg = bytearray(4 + COMMAND_BODY_LEN + NONCE_LEN)

    def verify(self, cmd, nonce):
        """Returns (op, seq, value) for a genuine command; raises ValueError naming the fault."""
        if len(cmd) != COMMAND_LEN:
            raise ValueError("length")
        if cmd[0] != VERSION:
            raise ValueError("version")
        op, seq, value = struct.unpack_from(COMMAND_FORMAT, cmd, 0)[1:]
        if op not in (OP_ACK, OP_TEST, OP_TIME, OP_WARN):
            raise ValueError("op")
        if op == OP_WARN and not PATTERN_PROXIMITY <= value <= PATTERN_TEST:
            raise ValueError("pattern")
        msg = self._msg
        msg[0:4] = self._prefix
        msg[4:4 + COMMAND_BODY_LEN] = cmd[:COMMAND_BODY_LEN]
        n = 4 + COMMAND_BODY_LEN
        if op in _NONCE_OPS:
            msg[n:n + NONCE_LEN] = nonce
            n += NONCE_LEN
        tag = self._mac.digest(memoryview(msg)[:n])
        if not tags_equal(tag, memoryview(cmd)[COMMAND_BODY_LEN:], TAG_LEN):
            raise ValueError("tag")
        return op, seq, value
