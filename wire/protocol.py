"""Wire format on the host: decodes and verifies button frames, builds commands and opens
alarm advert bursts, as docs/protocol.md (version 1) defines them.

The field tables mirror the document's tables; the tests compare them and run the document's
hex test vectors against this module and against the firmware's own codec.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import FrameError

VERSION = 1
KEY_LEN = 32


class Kind(enum.IntEnum):
    """Event kinds (frame byte 1)."""

    ALARM = 1
    TEST = 2
    HEARTBEAT = 3
    LOW_BATTERY = 4
    BOOT = 5


class Gesture(enum.IntEnum):
    """What the wearer did (frame byte 12)."""

    NONE = 0
    SINGLE = 1
    HOLD = 2
    MULTI = 3
    REMOTE = 4


class Op(enum.IntEnum):
    """Host commands (command byte 1)."""

    ACK = 1
    TEST = 2
    TIME = 3


FRAME_FIELDS: tuple[tuple[str, str], ...] = (
    ("version", "B"),
    ("kind", "B"),
    ("button_id", "I"),
    ("boot_id", "H"),
    ("seq", "I"),
    ("gesture", "B"),
    ("battery_pct", "B"),
    ("age_ms", "I"),
)
COMMAND_FIELDS: tuple[tuple[str, str], ...] = (
    ("version", "B"),
    ("op", "B"),
    ("seq", "I"),
    ("value", "I"),
)
FRAME_BODY = struct.Struct(">" + "".join(code for _, code in FRAME_FIELDS))
COMMAND_BODY = struct.Struct(">" + "".join(code for _, code in COMMAND_FIELDS))
TAG_LEN = 8
NONCE_LEN = 8
FRAME_LEN = FRAME_BODY.size + TAG_LEN
COMMAND_LEN = COMMAND_BODY.size + TAG_LEN
BATTERY_UNKNOWN = 255
AGE_UNKNOWN = 0xFFFFFFFF
BURST_LEN = 26
BURST_COMPANY_ID = 0xFFFF
_IV_LEN = 4
# Commands whose tag also covers the button's challenge nonce.
NONCE_OPS = frozenset({Op.TEST, Op.TIME})


def _hmac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _derived_uuid(key: bytes, label: bytes) -> str:
    """A GATT UUID only holders of the key can compute: the first 16 bytes of
    HMAC(K, label) with the version-4 and RFC 4122 variant bits set (docs/protocol.md)."""
    raw = bytearray(_hmac(key, label)[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


@dataclass(frozen=True)
class GattUuids:
    """One button's alarm service and characteristics, in bleak's spelling."""

    service: str
    event: str
    status: str
    control: str
    info: str

    @classmethod
    def from_master(cls, key: bytes) -> GattUuids:
        return cls(*(_derived_uuid(key, b"msa1 uuid" + bytes((i,))) for i in range(5)))


@dataclass(frozen=True)
class ButtonKeys:
    """The purpose keys derived from one button's 32-byte master key (never printed), and
    the GATT UUIDs derived from it."""

    frame: bytes = field(repr=False)
    command: bytes = field(repr=False)
    advert: bytes = field(repr=False)
    gatt: GattUuids = field(repr=False)

    @classmethod
    def from_master(cls, key: bytes) -> ButtonKeys:
        if len(key) != KEY_LEN:
            raise ValueError(f"a button key is {KEY_LEN} bytes, got {len(key)}")
        return cls(frame=_hmac(key, b"msa1 frame"), command=_hmac(key, b"msa1 cmd"),
                   advert=_hmac(key, b"msa1 adv")[:16], gatt=GattUuids.from_master(key))


@dataclass(frozen=True)
class Frame:
    """A decoded frame. battery_pct and age_ms are None where the button did not know them."""

    version: int
    kind: Kind
    button_id: int
    boot_id: int
    seq: int
    gesture: Gesture
    battery_pct: int | None
    age_ms: int | None
    tag: bytes
    raw: bytes = field(repr=False)

    @property
    def key(self) -> tuple[int, int, int]:
        """Idempotency key: (button id, boot id, sequence number)."""
        return (self.button_id, self.boot_id, self.seq)


def _checked_envelope(raw: bytes) -> bytes:
    raw = bytes(raw)
    if len(raw) != FRAME_LEN:
        raise FrameError("length", raw, f"{len(raw)} bytes, expected {FRAME_LEN}")
    if raw[0] != VERSION:
        # Older versions are refused as downgrades, newer ones as unknown: no fallback.
        reason = "downgrade" if raw[0] < VERSION else "version"
        raise FrameError(reason, raw, f"protocol version {raw[0]}")
    return raw


def decode(raw: bytes) -> Frame:
    """Parses a frame without checking its tag; raises FrameError for malformed bytes."""
    raw = _checked_envelope(raw)
    values = dict(zip((name for name, _ in FRAME_FIELDS), FRAME_BODY.unpack_from(raw)))
    try:
        kind = Kind(values["kind"])
        gesture = Gesture(values["gesture"])
    except ValueError as exc:
        raise FrameError("field", raw, str(exc)) from None
    battery = values["battery_pct"]
    if battery != BATTERY_UNKNOWN and battery > 100:
        raise FrameError("field", raw, f"battery {battery}%")
    return Frame(version=VERSION, kind=kind, button_id=values["button_id"],
                 boot_id=values["boot_id"], seq=values["seq"], gesture=gesture,
                 battery_pct=None if battery == BATTERY_UNKNOWN else battery,
                 age_ms=None if values["age_ms"] == AGE_UNKNOWN else values["age_ms"],
                 tag=raw[FRAME_BODY.size:], raw=raw)


def frame_tag(keys: ButtonKeys, body: bytes) -> bytes:
    """The 8-byte tag of an 18-byte frame body."""
    return _hmac(keys.frame, body)[:TAG_LEN]


def verify(raw: bytes, keys: ButtonKeys) -> Frame:
    """Checks a frame's tag with this button's keys, then decodes it: no field of an
    unauthenticated frame is interpreted."""
    raw = _checked_envelope(raw)
    if not hmac.compare_digest(frame_tag(keys, raw[:FRAME_BODY.size]), raw[FRAME_BODY.size:]):
        raise FrameError("tag", raw)
    return decode(raw)


def encode_frame(keys: ButtonKeys, *, kind: Kind, button_id: int, boot_id: int, seq: int,
                 gesture: Gesture = Gesture.NONE, battery_pct: int | None = None,
                 age_ms: int | None = None) -> bytes:
    """A tagged frame (the firmware's job; the host uses it for vectors and the centre's tests)."""
    body = FRAME_BODY.pack(VERSION, kind, button_id, boot_id, seq, gesture,
                           BATTERY_UNKNOWN if battery_pct is None else battery_pct,
                           AGE_UNKNOWN if age_ms is None else age_ms)
    return body + frame_tag(keys, body)


def encode_command(keys: ButtonKeys, button_id: int, op: Op, seq: int, value: int = 0,
                   nonce: bytes = b"") -> bytes:
    """A command for the control characteristic. TEST and TIME need the button's nonce."""
    if (op in NONCE_OPS) != bool(nonce) or (nonce and len(nonce) != NONCE_LEN):
        raise ValueError(f"{op.name} takes {'an 8-byte' if op in NONCE_OPS else 'no'} nonce")
    body = COMMAND_BODY.pack(VERSION, op, seq, value)
    tag = _hmac(keys.command, struct.pack(">I", button_id), body, nonce)[:TAG_LEN]
    return body + tag


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    counter = iv + bytes(16 - len(iv))  # iv || zeros; the block index sits in the last byte
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return enc.update(data) + enc.finalize()


def seal_burst(keys: ButtonKeys, frame: bytes) -> bytes:
    """The advert payload for a frame (the firmware's job; here for vectors and tests)."""
    iv = frame[FRAME_BODY.size:FRAME_BODY.size + _IV_LEN]
    return iv + _ctr(keys.advert, iv, frame[0:2] + frame[6:])


def open_burst(payload: bytes, buttons: Iterable[tuple[int, ButtonKeys]]) -> Frame:
    """Finds which of `buttons` (id, keys) sealed an advert payload and returns its frame."""
    payload = bytes(payload)
    if len(payload) != BURST_LEN:
        raise FrameError("length", payload, f"advert payload of {len(payload)} bytes")
    iv = payload[:_IV_LEN]
    for button_id, keys in buttons:
        plain = _ctr(keys.advert, iv, payload[_IV_LEN:])
        raw = plain[0:2] + struct.pack(">I", button_id) + plain[2:]
        try:
            frame = verify(raw, keys)
        except FrameError:
            continue
        if frame.tag[:_IV_LEN] == iv:
            return frame
    raise FrameError("tag", payload, "no known button sealed this advert")


def burst_from_advert(manufacturer_data: dict[int, bytes]) -> bytes | None:
    """The sealed payload in an advert's manufacturer data, if it carries one."""
    payload = manufacturer_data.get(BURST_COMPANY_ID)
    return payload if payload is not None and len(payload) == BURST_LEN else None
