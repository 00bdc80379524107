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
MASTERS = {"K": bytes.fromhex(V["key"]), "K_c": bytes.fromhex(V["centre_key"])}
BID = V["button_id"]


def table(name: str) -> dict[str, tuple[int, int]]:
    """field -> (offset, size) from a field table of the document."""
    block = TEXT[TEXT.index(f"<!-- {name}:begin -->"):TEXT.index(f"<!-- {name}:end -->")]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \|", block, re.M)
    return {field: (int(off), int(size)) for off, size, field in rows}


def derivation(name: str) -> tuple[str, bytes, int | None]:
    """(master, label, truncation) of a purpose key, read from the key table."""
    row = re.search(rf"^\s*\| `{name}` \| `HMAC\((\w+), \"([^\"]+)\"\)`(?: \((\d+) bytes\))?"
                    rf"|^\s*\| `{name}` \| first (\d+) bytes of `HMAC\((\w+), \"([^\"]+)\"\)`",
                    TEXT, re.M)
    assert row is not None, name
    if row[1] is not None:
        return row[1], row[2].encode(), int(row[3]) if row[3] else None
    return row[5], row[6].encode(), int(row[4])


def purpose_key(name: str) -> bytes:
    master, label, size = derivation(name)
    return hmac.new(MASTERS[master], label, hashlib.sha256).digest()[:size]


FRAME = table("frame-fields")
COMMAND = table("command-fields")
TAG_OFF, TAG_LEN = FRAME["tag"]
CENTRE_OFF, CENTRE_LEN = FRAME["centre_tag"]
VERSION = int(re.search(r"^\| 0 \| 1 \| version \| `(\d+)` \|", TEXT, re.M)[1])  # type: ignore[index]


def put(layout: dict[str, tuple[int, int]], values: dict[str, int]) -> bytearray:
    """The body of a frame or command: each value big-endian at its documented offset."""
    out = bytearray(layout["tag"][0])
    for name, value in values.items():
        off, size = layout[name]
        out[off:off + size] = value.to_bytes(size, "big")
    return out


def frame_bytes(body: bytes) -> bytes:
    return (body + hmac.new(purpose_key("k_frame"), body, hashlib.sha256).digest()[:TAG_LEN]
            + hmac.new(purpose_key("k_centre"), body, hashlib.sha256).digest()[:CENTRE_LEN])


def frame_of(vec: dict[str, Any]) -> bytes:
    battery = 255 if vec["battery_pct"] is None else vec["battery_pct"]
    age = 0xFFFFFFFF if vec["age_ms"] is None else vec["age_ms"]
    return frame_bytes(bytes(put(FRAME, {
        "version": VERSION, "kind": vec["kind"], "button_id": BID, "boot_id": vec["boot_id"],
        "seq": vec["seq"], "gesture": vec["gesture"], "battery_pct": battery, "age_ms": age})))


def test_the_document_says_what_this_test_reads() -> None:
    assert len(FRAME) == 10 and TAG_OFF == 18 and CENTRE_OFF + CENTRE_LEN == 34
    assert COMMAND["tag"] == (10, 8) and VERSION == 2
    assert derivation("k_frame") == ("K", b"msa1 frame", 32)
    assert derivation("k_cmd") == ("K", b"msa1 cmd", 32)
    assert derivation("k_adv") == ("K", b"msa1 adv", 16)
    assert derivation("k_centre") == ("K_c", b"msa2 centre", 32)


@pytest.mark.parametrize("vec", V["frames"], ids=lambda v: v["name"])
def test_frames(vec: dict[str, Any]) -> None:
    assert frame_of(vec).hex() == vec["hex"]


@pytest.mark.parametrize("vec", V["commands"], ids=lambda v: v["name"])
def test_commands(vec: dict[str, Any]) -> None:
    body = bytes(put(COMMAND, {"version": VERSION, "op": vec["op"], "seq": vec["seq"],
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
    # The burst section: byte 1, bytes 6-17, bytes 22-23, bytes 26-33.
    plain = frame[1:2] + frame[6:18] + frame[22:24] + frame[26:34]
    stream = keystream_block(purpose_key("k_adv"), iv, 0) + keystream_block(
        purpose_key("k_adv"), iv, 1)
    payload = iv + bytes(p ^ s for p, s in zip(plain, stream))
    assert len(payload) == 27 and payload.hex() == vec["hex"]


RETAGGED = {"version-3": ("version", 3), "unknown-kind": ("kind", 9),
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
    centre_tag = hmac.new(purpose_key("k_centre"), body, hashlib.sha256).digest()[:8]
    wrong = body + hmac.new(other_k, body, hashlib.sha256).digest()[:8] + centre_tag
    v1 = b"\x01" + body[1:]
    rejected = {r["name"]: r["hex"] for r in V["rejected"]}
    assert rejected["wrong-key"] == wrong.hex()
    assert rejected["downgrade-v1"] == frame_bytes(v1).hex()


def test_centre_frames() -> None:
    alarm = frame_of(next(f for f in V["frames"] if f["name"] == "alarm-hold"))
    centre = {r["name"]: (r["hex"], r["reason"]) for r in V["centre_frames"]}
    assert centre["centre-alarm-hold"] == ((alarm[:18] + alarm[26:]).hex(), "")
    assert centre["centre-host-tag-instead"] == (alarm[:26].hex(), "tag")
