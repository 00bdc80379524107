"""Generates the hex test vectors that docs/protocol.md publishes for both sides' tests.

The vectors are deterministic (fixed keys, no randomness); `msa protocol vectors` prints them
and a test fails if the document's copy drifts from what this produces.
"""
from __future__ import annotations

import json
from typing import Any

from msa.wire.protocol import (BODY_LEN, ButtonKeys, CentreKey, Gesture, Kind, Op, Pattern,
                               centre_frame, centre_tag, encode_command, encode_frame, frame_tag,
                               seal_burst)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
CENTRE_KEY = bytes(range(64, 96))  # K_c
BUTTON_ID = 0x12345678
NONCE = bytes.fromhex("0102030405060708")

_FRAMES: tuple[dict[str, Any], ...] = (
    {"name": "alarm-hold", "kind": Kind.ALARM, "boot_id": 3, "seq": 42,
     "gesture": Gesture.HOLD, "battery_pct": 87, "age_ms": 1234},
    {"name": "heartbeat", "kind": Kind.HEARTBEAT, "boot_id": 3, "seq": 43,
     "gesture": Gesture.NONE, "battery_pct": 86, "age_ms": 60000},
    {"name": "boot", "kind": Kind.BOOT, "boot_id": 4, "seq": 65,
     "gesture": Gesture.NONE, "battery_pct": None, "age_ms": 0},
    {"name": "low-battery", "kind": Kind.LOW_BATTERY, "boot_id": 4, "seq": 66,
     "gesture": Gesture.NONE, "battery_pct": 14, "age_ms": 5},
    {"name": "test-remote", "kind": Kind.TEST, "boot_id": 4, "seq": 67,
     "gesture": Gesture.REMOTE, "battery_pct": 14, "age_ms": 12},
    {"name": "alarm-restored", "kind": Kind.ALARM, "boot_id": 3, "seq": 44,
     "gesture": Gesture.MULTI, "battery_pct": 80, "age_ms": None},
)


def _flip(data: bytes, index: int) -> str:
    out = bytearray(data)
    out[index] ^= 0x01
    return out.hex()


def _tagged(keys: ButtonKeys, centre: CentreKey, body: bytes) -> bytes:
    return body + frame_tag(keys, body) + centre_tag(centre, body)


def _retagged(keys: ButtonKeys, centre: CentreKey, frame: bytes, index: int, value: int) -> str:
    """`frame` with one body byte set to `value` and valid tags over the result: what only
    a key holder (or a broken button) could send, so the receiver's own field rules catch it."""
    body = bytearray(frame[:BODY_LEN])
    body[index] = value
    return _tagged(keys, centre, bytes(body)).hex()


def generate() -> dict[str, Any]:
    """The vectors object, as published."""
    keys = ButtonKeys.from_master(KEY)
    centre = CentreKey.from_master(CENTRE_KEY)
    frames = []
    for spec in _FRAMES:
        fields = {k: v for k, v in spec.items() if k != "name"}
        raw = encode_frame(keys, centre, button_id=BUTTON_ID, **fields)
        frames.append({"name": spec["name"], "hex": raw.hex(),
                       **{k: (int(v) if v is not None else None) for k, v in fields.items()}})
    alarm = bytes.fromhex(frames[0]["hex"])
    other = ButtonKeys.from_master(OTHER_KEY)
    v1_body = bytes([1]) + alarm[1:BODY_LEN]
    rejected = [
        {"name": "tag-bit-flipped", "hex": _flip(alarm, 25), "reason": "tag"},
        {"name": "tags-swapped", "hex": (alarm[:BODY_LEN] + alarm[26:] + alarm[18:26]).hex(),
         "reason": "tag"},
        {"name": "seq-changed", "hex": _flip(alarm, 11), "reason": "tag"},
        {"name": "button-id-changed", "hex": _flip(alarm, 5), "reason": "tag"},
        {"name": "kind-changed", "hex": _flip(alarm, 1), "reason": "tag"},
        {"name": "truncated", "hex": alarm[:-1].hex(), "reason": "length"},
        {"name": "extended", "hex": (alarm + b"\x00").hex(), "reason": "length"},
        {"name": "downgrade-v1", "hex": _tagged(keys, centre, v1_body).hex(),
         "reason": "downgrade"},
        {"name": "v1-frame", "hex": (v1_body + frame_tag(keys, v1_body)).hex(),
         "reason": "length"},
        {"name": "wrong-key", "hex": encode_frame(
            other, centre, kind=Kind.ALARM, button_id=BUTTON_ID, boot_id=3, seq=42,
            gesture=Gesture.HOLD, battery_pct=87, age_ms=1234).hex(), "reason": "tag"},
        # Tagged validly, wrong inside (receiver rules 2 and 4).
        {"name": "version-3", "hex": _retagged(keys, centre, alarm, 0, 3), "reason": "version"},
        {"name": "unknown-kind", "hex": _retagged(keys, centre, alarm, 1, 9), "reason": "field"},
        {"name": "unknown-gesture", "hex": _retagged(keys, centre, alarm, 12, 5),
         "reason": "field"},
        {"name": "battery-150", "hex": _retagged(keys, centre, alarm, 13, 150),
         "reason": "field"},
    ]
    # What the centre gets (body || centre tag), and what it refuses: a host holds K, so it
    # can make a valid host tag, but without K_c no valid centre tag.
    host_made = bytearray(alarm[:BODY_LEN])
    host_made[13] = 50
    centre_frames = [
        {"name": "centre-alarm-hold", "hex": centre_frame(alarm).hex(), "reason": ""},
        {"name": "centre-tag-flipped", "hex": _flip(centre_frame(alarm), 25), "reason": "tag"},
        {"name": "centre-host-tag-instead", "hex": alarm[:26].hex(), "reason": "tag"},
        {"name": "centre-forged-by-host", "hex": (bytes(host_made)
         + frame_tag(keys, bytes(host_made))).hex(), "reason": "tag"},
        {"name": "centre-full-frame", "hex": alarm.hex(), "reason": "length"},
        {"name": "centre-downgrade-v1", "hex": (v1_body + centre_tag(centre, v1_body)).hex(),
         "reason": "downgrade"},
    ]
    commands = [
        {"name": "ack-42", "op": int(Op.ACK), "seq": 42, "value": 0, "nonce": "",
         "hex": encode_command(keys, BUTTON_ID, Op.ACK, 42).hex()},
        {"name": "test", "op": int(Op.TEST), "seq": 0, "value": 0, "nonce": NONCE.hex(),
         "hex": encode_command(keys, BUTTON_ID, Op.TEST, 0, 0, NONCE).hex()},
        {"name": "time", "op": int(Op.TIME), "seq": 0, "value": 1795000000,
         "nonce": NONCE.hex(),
         "hex": encode_command(keys, BUTTON_ID, Op.TIME, 0, 1795000000, NONCE).hex()},
        {"name": "warn-proximity", "op": int(Op.WARN), "seq": 0,
         "value": int(Pattern.PROXIMITY), "nonce": NONCE.hex(),
         "hex": encode_command(keys, BUTTON_ID, Op.WARN, 0, Pattern.PROXIMITY, NONCE).hex()},
    ]
    bursts = [{"name": "burst-" + f["name"], "frame": f["hex"],
               "hex": seal_burst(keys, bytes.fromhex(f["hex"])).hex()}
              for f in frames[:2]]
    return {"key": KEY.hex(), "centre_key": CENTRE_KEY.hex(), "other_key": OTHER_KEY.hex(),
            "button_id": BUTTON_ID, "frames": frames, "rejected": rejected,
            "centre_frames": centre_frames, "commands": commands, "bursts": bursts}


def render() -> str:
    """The JSON block exactly as it stands in docs/protocol.md."""
    data = generate()
    lines = ["{"]
    items = list(data.items())
    for n, (name, value) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if isinstance(value, list):
            rows = [" " * 3 + json.dumps(v) for v in value]
            lines.append(f" {json.dumps(name)}: [\n" + ",\n".join(rows) + f"\n ]{comma}")
        else:
            lines.append(f" {json.dumps(name)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines)
