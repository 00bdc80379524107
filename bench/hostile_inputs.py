"""Hostile inputs made from valid ones, for every receiver: the mutation operators and the values
they plant, shared by the hostile benchmark (drawn from a seeded random.Random) and the
Hypothesis tests in tests/hostile/ (drawn by Hypothesis). Pure functions: no receiver here."""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from msa.wire import dc09

# (operation, where, bytes): "flip" xors a byte, "cut" deletes, "insert" adds, "dup" repeats.
BYTE_OPS = ("flip", "cut", "insert", "dup")
ByteOp = tuple[str, int, bytes]

# Fields of a dispatch API body, and of its location, that a mutation may replace.
BODY_FIELDS = ("key", "kind", "button_id", "frame", "pressed_at", "update_no", "incident",
               "location")
LOCATION_FIELDS = ("lat", "lon", "accuracy_m", "time", "altitude_m", "quality")
# JSON a strict reader must refuse, put where a value was.
LITERALS = ("Infinity", "-Infinity", "NaN", "1e999", "-1e999", "[[[[[[", "{}", "null",
            '"\\ud800"', "1" * 400)

NMEA_LINES = ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
              "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")


def hostile_values(key: str) -> list[Any]:
    """Values out of reason for any field, some shaped like the genuine message's `key`."""
    return [None, True, False, 0, -1, 1, 2 ** 62, 2 ** 63, 2 ** 64, 2 ** 80, -(2 ** 80), 1e308,
            -1e308, 1.5, "", "٣", "\x00", f"{key}/", f"{key}/0", f"{key}/01", f"{key}/2",
            f"{key}/99999999", "INC-000001", "alarm", "location", "heartbeat", "a" * 52,
            "0" * 52, [1, 2], {"a": 1}, [], {}]


def mutate_body(body: dict[str, Any], field: str, value: Any, literal: str | None) -> str:
    """The JSON text of `body` with one field (of it or of its location) set to `value`, and
    then, with a `literal`, that value's JSON written as the literal instead."""
    payload = json.loads(json.dumps(body))
    target = payload["location"] if field in LOCATION_FIELDS and isinstance(
        payload.get("location"), dict) else payload
    target[field] = value
    text = json.dumps(payload)
    if literal is not None:
        text = text.replace(json.dumps(value), literal, 1) if value is not None else \
            text.replace("null", literal, 1)
    return text


def mutate_bytes(raw: bytes, ops: Sequence[ByteOp]) -> bytes:
    """`raw` with each operation applied in turn (positions wrap around the current length)."""
    out = bytearray(raw)
    for op, at, blob in ops:
        i = at % max(1, len(out))
        if op == "flip":
            out[i] ^= blob[0] or 1
        elif op == "cut":
            del out[i:i + len(blob)]
        elif op == "insert":
            out[i:i] = blob
        else:
            out[i:i] = out[i:i + len(blob) * 4]
    return bytes(out)


def reframe(raw: bytes) -> bytes:
    """A mutated DC-09 message framed anew (right CRC and length), so that the parser behind
    the framing is reached."""
    start = raw.find(b'"')
    content = raw[start:].rstrip(b"\r") if start >= 0 else raw
    return b"\n%04X0%03X" % (dc09.crc16(content), len(content) & 0xFFF) + content + b"\r"


def mutate_text(text: str, at: int, cut: int, insert: str) -> str:
    """`text` with `cut` characters at `at` (wrapping) replaced by `insert`."""
    i = at % max(1, len(text))
    return text[:i] + insert + text[i + cut:]


def nmea_checksummed(line: str) -> str:
    """An NMEA sentence with its checksum made right (whatever its body now says)."""
    checksum = 0
    for c in line[1:].encode("ascii", errors="replace"):
        checksum ^= c
    return f"{line}*{checksum:02X}"


# --- the same, drawn from a seeded random.Random (the benchmark's side) ---

def random_ops(rng: random.Random) -> list[ByteOp]:
    return [(rng.choice(BYTE_OPS), rng.randrange(10_000), rng.randbytes(rng.randint(1, 8)))
            for _ in range(rng.randint(1, 4))]


def random_text(rng: random.Random, max_size: int = 6) -> str:
    """Short text of any kind: ASCII, control characters, non-ASCII, surrogates excepted."""
    alphabet = "AZaz09 ,*$-./\r\n\x00\t;=\"'٣éü€" + "".join(chr(rng.randrange(32, 0xD7FF))
                                                          for _ in range(4))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_size)))


def random_body_mutation(rng: random.Random, body: dict[str, Any], key: str) -> str:
    field = rng.choice(BODY_FIELDS + LOCATION_FIELDS)
    literal = rng.choice(LITERALS) if rng.random() < 0.3 else None
    return mutate_body(body, field, rng.choice(hostile_values(key)), literal)
