"""Expected values computed straight from docs/protocol.md's text with the standard library's
hmac and `cryptography`'s bare AES block, never with the project's codec: the field tables
give the offsets, the key table the derivations, the burst section the counter blocks. The
published vectors must be exactly these bytes."""
from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
import vectors as doc_vectors
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
TEXT = DOC.read_text()
V = doc_vectors.load(str(DOC))
K = bytes.fromhex(V["key"])
BID = V["button_id"]


def table(name: str) -> dict[str, tuple[int, int]]:
    """field -> (offset, size) from a field table of the document."""
    block = TEXT[TEXT.index(f"<!-- {name}:begin -->"):TEXT.index(f"<!-- {name}:end -->")]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \|", block, re.M)
    return {field: (int(off), int(size)) for off, size, field in rows}


def derivation(name: str) -> tuple[bytes, int | None]:
    """(label, truncation) of a purpose key, read from the key table's derivation column."""
    row = re.search(rf"^\s*\| `{name}` \| `HMAC\(K, \"([^\"]+)\"\)`(?: \((\d+) bytes\))?"
                    rf"|^\s*\| `{name}` \| first (\d+) bytes of `HMAC\(K, \"([^\"]+)\"\)`",
                    TEXT, re.M)
    assert row is not None, name
    if row[1] is not None:
        return row[1].encode(), int(row[2]) if row[2] else None
    return row[4].encode(), int(row[3])


def purpose_key(name: str) -> bytes:
    label, size = derivation(name)
    return hmac.new(K, label, hashlib.sha256).digest()[:size]


FRAME = table("frame-fields")
COMMAND = table("command-fields")
TAG_OFF, TAG_LEN = FRAME["tag"]


def put(layout: dict[str, tuple[int, int]], values: dict[str, int]) -> bytearray:
    """The body of a frame or command: each value big-endian at its documented offset."""
    out = bytearray(layout["tag"][0])
    for name, value in values.items():
        off, size = layout[name]
        out[off:off + size] = value.to_bytes(size, "big")
    return out


def frame_bytes(body: bytes) -> bytes:
    return body + hmac.new(purpose_key("k_frame"), body, hashlib.sha256).digest()[:TAG_LEN]


def frame_of(vec: dict[str, Any]) -> bytes:
    battery = 255 if vec["battery_pct"] is None else vec["battery_pct"]
    age = 0xFFFFFFFF if vec["age_ms"] is None else vec["age_ms"]
    return frame_bytes(bytes(put(FRAME, {
        "version": 1, "kind": vec["kind"], "button_id": BID, "boot_id": vec["boot_id"],
        "seq": vec["seq"], "gesture": vec["gesture"], "battery_pct": battery, "age_ms": age})))


def test_the_document_says_what_this_test_reads() -> None:
    assert len(FRAME) == 9 and TAG_OFF + TAG_LEN == 26 and COMMAND["tag"] == (10, 8)
    assert derivation("k_frame") == (b"msa1 frame", 32)
    assert derivation("k_cmd") == (b"msa1 cmd", 32)
    assert derivation("k_adv") == (b"msa1 adv", 16)


@pytest.mark.parametrize("vec", V["frames"], ids=lambda v: v["name"])
def test_frames(vec: dict[str, Any]) -> None:
    assert frame_of(vec).hex() == vec["hex"]


@pytest.mark.parametrize("vec", V["commands"], ids=lambda v: v["name"])
def test_commands(vec: dict[str, Any]) -> None:
    body = bytes(put(COMMAND, {"version": 1, "op": vec["op"], "seq": vec["seq"],
                               "value": vec["value"]}))
    nonce = bytes.fromhex(vec["nonce"])
    assert (nonce == b"") == (vec["op"] == 1)  # only ACK goes without the challenge
    tag = hmac.new(purpose_key("k_cmd"), BID.to_bytes(4, "big") + body + nonce,
                   hashlib.sha256).digest()[:8]
    assert (body + tag).hex() == vec["hex"]


def keystream_block(key: bytes, iv: bytes, i: int) -> bytes:
    """The document's counter block `iv || 00 x 11 || i`, through one bare AES block."""
    block = iv + bytes(11) + bytes([i])
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


@pytest.mark.parametrize("vec", V["bursts"], ids=lambda v: v["name"])
def test_bursts(vec: dict[str, str]) -> None:
    frame = bytes.fromhex(vec["frame"])
    iv = frame[TAG_OFF:TAG_OFF + 4]
    plain = frame[0:2] + frame[6:26]
    stream = keystream_block(purpose_key("k_adv"), iv, 0) + keystream_block(
        purpose_key("k_adv"), iv, 1)
    payload = iv + bytes(p ^ s for p, s in zip(plain, stream))
    assert len(payload) == 26 and payload.hex() == vec["hex"]


RETAGGED = {"version-2": ("version", 2), "unknown-kind": ("kind", 9),
            "unknown-gesture": ("gesture", 5), "battery-150": ("battery_pct", 150)}


@pytest.mark.parametrize("name", sorted(RETAGGED))
def test_validly_tagged_wrong_frames(name: str) -> None:
    field, value = RETAGGED[name]
    alarm = next(f for f in V["frames"] if f["name"] == "alarm-hold")
    body = bytearray(frame_of(alarm)[:TAG_OFF])
    off, size = FRAME[field]
    body[off:off + size] = value.to_bytes(size, "big")
    vec = next(r for r in V["rejected"] if r["name"] == name)
    assert frame_bytes(bytes(body)).hex() == vec["hex"]


def test_wrong_key_and_downgrade_frames() -> None:
    alarm = next(f for f in V["frames"] if f["name"] == "alarm-hold")
    body = frame_of(alarm)[:TAG_OFF]
    other_k = hmac.new(bytes.fromhex(V["other_key"]), b"msa1 frame", hashlib.sha256).digest()
    wrong = body + hmac.new(other_k, body, hashlib.sha256).digest()[:8]
    v0 = b"\x00" + body[1:]
    rejected = {r["name"]: r["hex"] for r in V["rejected"]}
    assert rejected["wrong-key"] == wrong.hex()
    assert rejected["downgrade-v0"] == frame_bytes(v0).hex()
