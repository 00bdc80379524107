"""Wire format of the button's frames and the host's commands, as docs/protocol.md (version 2)
defines them: the host verifies a frame's host tag, opens advert bursts and builds commands;
the centre verifies the centre tag of the 26-byte centre frame the host passes on.

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

VERSION = 2
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
    WARN = 4


class Pattern(enum.IntEnum):
    """What a WARN command's value asks the button to vibrate: each its own signal, so the same
    vibration never means two things (docs/protocol.md, Haptic patterns)."""

    PROXIMITY = 1
    LOW_BATTERY = 2
    LINK_LOST = 3
    TEST = 4


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
BODY_LEN = FRAME_BODY.size
# The button's frame: body || host tag || centre tag. The host passes on the centre frame,
# body || centre tag, which is all the centre needs and all a host could not have made.
FRAME_LEN = BODY_LEN + 2 * TAG_LEN
CENTRE_FRAME_LEN = BODY_LEN + TAG_LEN
COMMAND_LEN = COMMAND_BODY.size + TAG_LEN
BATTERY_UNKNOWN = 255
AGE_UNKNOWN = 0xFFFFFFFF
BURST_LEN = 27
BURST_COMPANY_ID = 0xFFFF
_IV_LEN = 4
BURST_HOST_TAG_LEN = 6  # a burst has room for 48 bits of the host tag (docs/protocol.md)
# Commands whose tag also covers the button's challenge nonce.
NONCE_OPS = frozenset({Op.TEST, Op.TIME, Op.WARN})


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
class CentreKey:
    """The key of a button's centre tags, derived from its second master key K_c, which only
    the button and the centre's registry hold (never a host: a host cannot forge an alarm)."""

    tag: bytes = field(repr=False)

    @classmethod
    def from_master(cls, key: bytes) -> CentreKey:
        if len(key) != KEY_LEN:
            raise ValueError(f"a centre key is {KEY_LEN} bytes, got {len(key)}")
        return cls(tag=_hmac(key, b"msa2 centre"))


@dataclass(frozen=True)
class Frame:
    """A decoded frame. battery_pct and age_ms are None where the button did not know them.
    `tag` is the host tag as received (all 8 bytes over GATT, 6 in a burst); `raw` is the
    26-byte centre frame the host passes on (body || centre tag)."""

    version: int
    kind: Kind
    button_id: int
    boot_id: int
    seq: int
    gesture: Gesture
    battery_pct: int | None
    age_ms: int | None
    tag: bytes
    centre_tag: bytes
    raw: bytes = field(repr=False)

    @property
    def key(self) -> tuple[int, int, int]:
        """Idempotency key: (button id, boot id, sequence number)."""
        return (self.button_id, self.boot_id, self.seq)


def _checked_envelope(raw: bytes, length: int) -> bytes:
    raw = bytes(raw)
    if len(raw) != length:
        raise FrameError("length", raw, f"{len(raw)} bytes, expected {length}")
    if raw[0] != VERSION:
        # Older versions are refused as downgrades, newer ones as unknown: no fallback.
        reason = "downgrade" if raw[0] < VERSION else "version"
        raise FrameError(reason, raw, f"protocol version {raw[0]}")
    return raw


def _decode(raw: bytes, host_tag: bytes, centre_tag: bytes) -> Frame:
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
                 tag=host_tag, centre_tag=centre_tag, raw=raw[:BODY_LEN] + centre_tag)


def decode(raw: bytes) -> Frame:
    """Parses a button's frame without checking its tags; FrameError for malformed bytes."""
    raw = _checked_envelope(raw, FRAME_LEN)
    return _decode(raw, raw[BODY_LEN:BODY_LEN + TAG_LEN], raw[BODY_LEN + TAG_LEN:])


def frame_tag(keys: ButtonKeys, body: bytes) -> bytes:
    """The 8-byte host tag of an 18-byte frame body."""
    return _hmac(keys.frame, body)[:TAG_LEN]


def centre_tag(key: CentreKey, body: bytes) -> bytes:
    """The 8-byte centre tag of an 18-byte frame body."""
    return _hmac(key.tag, body)[:TAG_LEN]


def verify(raw: bytes, keys: ButtonKeys) -> Frame:
    """The host's check: the host tag, in constant time, then the fields. No field of an
    unauthenticated frame is interpreted. The centre tag rides along unchecked (the host
    cannot check it: it never holds K_c)."""
    raw = _checked_envelope(raw, FRAME_LEN)
    if not hmac.compare_digest(frame_tag(keys, raw[:BODY_LEN]), raw[BODY_LEN:BODY_LEN + TAG_LEN]):
        raise FrameError("tag", raw)
    return _decode(raw, raw[BODY_LEN:BODY_LEN + TAG_LEN], raw[BODY_LEN + TAG_LEN:])


def verify_centre(raw: bytes, key: CentreKey) -> Frame:
    """The centre's check of a 26-byte centre frame: the centre tag, then the fields."""
    raw = _checked_envelope(raw, CENTRE_FRAME_LEN)
    if not hmac.compare_digest(centre_tag(key, raw[:BODY_LEN]), raw[BODY_LEN:]):
        raise FrameError("tag", raw)
    return _decode(raw, b"", raw[BODY_LEN:])


def encode_frame(keys: ButtonKeys, centre: CentreKey, *, kind: Kind, button_id: int,
                 boot_id: int, seq: int, gesture: Gesture = Gesture.NONE,
                 battery_pct: int | None = None, age_ms: int | None = None) -> bytes:
    """A button's frame with both tags (the firmware's job; here for vectors and tests)."""
    body = FRAME_BODY.pack(VERSION, kind, button_id, boot_id, seq, gesture,
                           BATTERY_UNKNOWN if battery_pct is None else battery_pct,
                           AGE_UNKNOWN if age_ms is None else age_ms)
    return body + frame_tag(keys, body) + centre_tag(centre, body)


def centre_frame(frame: bytes) -> bytes:
    """The 26-byte centre frame within a button's 34-byte frame."""
    return bytes(frame[:BODY_LEN]) + bytes(frame[BODY_LEN + TAG_LEN:FRAME_LEN])


def encode_command(keys: ButtonKeys, button_id: int, op: Op, seq: int, value: int = 0,
                   nonce: bytes = b"") -> bytes:
    """A command for the control characteristic. TEST, TIME and WARN need the button's
    nonce."""
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
    """The advert payload for a frame (the firmware's job; here for vectors and tests):
    iv = the host tag's first 4 bytes, then the frame encrypted without its version, button
    id and the host tag's last 2 bytes."""
    iv = frame[BODY_LEN:BODY_LEN + _IV_LEN]
    plain = (frame[1:2] + frame[6:BODY_LEN] + frame[BODY_LEN + _IV_LEN:
                                                    BODY_LEN + BURST_HOST_TAG_LEN]
             + frame[BODY_LEN + TAG_LEN:FRAME_LEN])
    return iv + _ctr(keys.advert, iv, plain)


def open_burst(payload: bytes, buttons: Iterable[tuple[int, ButtonKeys]]) -> Frame:
    """Finds which of `buttons` (id, keys) sealed an advert payload and returns its frame,
    checked against the first 6 bytes of its host tag."""
    payload = bytes(payload)
    if len(payload) != BURST_LEN:
        raise FrameError("length", payload, f"advert payload of {len(payload)} bytes")
    iv = payload[:_IV_LEN]
    for button_id, keys in buttons:
        plain = _ctr(keys.advert, iv, payload[_IV_LEN:])
        body = bytes((VERSION,)) + plain[0:1] + struct.pack(">I", button_id) + plain[1:13]
        host_tag = iv + plain[13:15]
        if hmac.compare_digest(frame_tag(keys, body)[:BURST_HOST_TAG_LEN], host_tag):
            return _decode(body, host_tag, plain[15:23])
    raise FrameError("tag", payload, "no known button sealed this advert")


def burst_from_advert(manufacturer_data: dict[int, bytes]) -> bytes | None:
    """The sealed payload in an advert's manufacturer data, if it carries one."""
    payload = manufacturer_data.get(BURST_COMPANY_ID)
    return payload if payload is not None and len(payload) == BURST_LEN else None
