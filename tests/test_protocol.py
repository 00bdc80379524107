"""The host's wire format against docs/protocol.md: tables, vectors, and frames made by the
firmware running in MicroPython."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import frame as fw_frame
import hypothesis.strategies as st
import pytest
import vectors as doc_vectors
from hypothesis import HealthCheck, given, settings

from msa.wire import protocol as hp
from msa.wire.errors import FrameError
from msa.tools import vectors as gen
from mpy import Worker

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
V = doc_vectors.load(str(DOC))
KEYS = hp.ButtonKeys.from_master(bytes.fromhex(V["key"]))
BID = V["button_id"]
_SIZES = {"B": 1, "H": 2, "I": 4}


def _doc_table(name: str) -> list[tuple[int, int, str]]:
    text = DOC.read_text()
    block = text[text.index(f"<!-- {name}:begin -->"):text.index(f"<!-- {name}:end -->")]
    return [(int(m[0]), int(m[1]), m[2]) for m in
            re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \|", block, re.M)]


def _layout(fields: tuple[tuple[str, str], ...], tag_len: int) -> list[tuple[int, int, str]]:
    out, off = [], 0
    for name, code in fields:
        out.append((off, _SIZES[code], name))
        off += _SIZES[code]
    return out + [(off, tag_len, "tag")]


@pytest.mark.parametrize("table,host_fields,fw_fields", [
    ("frame-fields", hp.FRAME_FIELDS, fw_frame.FRAME_FIELDS),
    ("command-fields", hp.COMMAND_FIELDS, fw_frame.COMMAND_FIELDS),
])
def test_both_sides_implement_the_documented_layout(table: str, host_fields: tuple[
        tuple[str, str], ...], fw_fields: tuple[tuple[str, str], ...]) -> None:
    doc = _doc_table(table)
    assert _layout(host_fields, hp.TAG_LEN) == doc
    assert _layout(fw_fields, fw_frame.TAG_LEN) == doc


def test_documented_vectors_are_what_the_generator_makes() -> None:
    assert V == gen.generate(), "docs/protocol.md vectors drifted: run `msa protocol vectors`"


@pytest.mark.parametrize("vec", V["frames"], ids=lambda v: v["name"])
def test_vector_frames_verify_to_their_fields(vec: dict[str, object]) -> None:
    f = hp.verify(bytes.fromhex(str(vec["hex"])), KEYS)
    assert (f.kind, f.boot_id, f.seq, f.gesture, f.battery_pct, f.age_ms) == (
        vec["kind"], vec["boot_id"], vec["seq"], vec["gesture"], vec["battery_pct"],
        vec["age_ms"])
    assert f.button_id == BID and f.key == (BID, vec["boot_id"], vec["seq"])


@pytest.mark.parametrize("vec", V["rejected"], ids=lambda v: v["name"])
def test_vector_rejections_carry_their_reason(vec: dict[str, str]) -> None:
    with pytest.raises(FrameError) as err:
        hp.verify(bytes.fromhex(vec["hex"]), KEYS)
    assert err.value.reason == vec["reason"]


@pytest.mark.parametrize("vec", V["commands"], ids=lambda v: v["name"])
def test_host_builds_the_vector_commands(vec: dict[str, object]) -> None:
    cmd = hp.encode_command(KEYS, BID, hp.Op(vec["op"]), int(str(vec["seq"])),
                            int(str(vec["value"])), bytes.fromhex(str(vec["nonce"])))
    assert cmd.hex() == vec["hex"]


@pytest.mark.parametrize("vec", V["bursts"], ids=lambda v: v["name"])
def test_bursts_open_to_their_frame(vec: dict[str, str]) -> None:
    other = hp.ButtonKeys.from_master(bytes.fromhex(V["other_key"]))
    f = hp.open_burst(bytes.fromhex(vec["hex"]), [(99, other), (BID, KEYS)])
    assert f.raw.hex() == vec["frame"]
    with pytest.raises(FrameError):
        hp.open_burst(bytes.fromhex(vec["hex"]), [(BID, other)])


def test_every_flipped_bit_of_every_vector_frame_is_rejected() -> None:
    for vec in V["frames"]:
        raw = bytes.fromhex(vec["hex"])
        for i in range(len(raw)):
            for bit in range(8):
                bad = bytearray(raw)
                bad[i] ^= 1 << bit
                with pytest.raises(FrameError):
                    hp.verify(bytes(bad), KEYS)


def test_keys_never_show_in_repr() -> None:
    assert bytes.fromhex(V["key"]).hex() not in repr(KEYS) and "frame=" not in repr(KEYS)


def test_command_nonce_rules() -> None:
    with pytest.raises(ValueError):
        hp.encode_command(KEYS, BID, hp.Op.TEST, 0)
    with pytest.raises(ValueError):
        hp.encode_command(KEYS, BID, hp.Op.ACK, 1, nonce=bytes(8))


specs = st.tuples(st.sampled_from([1, 2, 3, 4, 5]), st.integers(0, 0xFFFF),
                  st.integers(1, 2**32 - 1), st.integers(0, 4),
                  st.one_of(st.integers(0, 100), st.just(255)), st.integers(0, 2**32 - 1))


@given(spec_list=st.lists(specs, min_size=1, max_size=8), key=st.binary(min_size=32,
                                                                          max_size=32),
       button_id=st.integers(1, 2**32 - 1))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_frames_from_micropython_verify_on_the_host_and_tampering_fails(
        mp: Worker, spec_list: list[tuple[int, ...]], key: bytes, button_id: int) -> None:
    keys = hp.ButtonKeys.from_master(key)
    frames = mp.call("props", "encode_frames", key.hex(), button_id, [list(s) for s in spec_list])
    for spec, hexframe in zip(spec_list, frames):
        raw = bytes.fromhex(hexframe)
        f = hp.verify(raw, keys)
        assert (f.kind, f.boot_id, f.seq, f.gesture, f.button_id) == (
            spec[0], spec[1], spec[2], spec[3], button_id)
        for i in range(len(raw)):
            bad = bytearray(raw)
            bad[i] ^= 0xFF
            with pytest.raises(FrameError):
                hp.verify(bytes(bad), keys)
    payloads = mp.call("props", "seal_frames", key.hex(), frames)
    for hexframe, payload in zip(frames, payloads):
        assert hp.open_burst(bytes.fromhex(payload), [(button_id, keys)]).raw.hex() == hexframe


@given(op=st.sampled_from(list(hp.Op)), seq=st.integers(0, 2**32 - 1),
       value=st.integers(0, 2**32 - 1), nonce=st.binary(min_size=8, max_size=8),
       key=st.binary(min_size=32, max_size=32))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_host_commands_are_accepted_by_micropython_firmware(
        mp: Worker, op: hp.Op, seq: int, value: int, nonce: bytes, key: bytes) -> None:
    keys = hp.ButtonKeys.from_master(key)
    uses_nonce = op in hp.NONCE_OPS
    cmd = hp.encode_command(keys, 5, op, seq, value, nonce if uses_nonce else b"")
    assert mp.call("props", "check_command", key.hex(), 5, cmd.hex(), nonce.hex()) == [
        int(op), seq, value]
    if uses_nonce:
        stale = bytes(b ^ 1 for b in nonce)
        assert mp.call("props", "check_command", key.hex(), 5, cmd.hex(), stale.hex()) == "tag"


def test_burst_advert_helper_reads_manufacturer_data() -> None:
    payload = bytes.fromhex(V["bursts"][0]["hex"])
    assert hp.burst_from_advert({0xFFFF: payload}) == payload
    assert hp.burst_from_advert({0xFFFF: payload[:-1]}) is None
    assert hp.burst_from_advert({0x004C: payload}) is None
    assert struct.calcsize(">" + "".join(c for _, c in hp.FRAME_FIELDS)) == 18
