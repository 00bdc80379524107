"""The host's wire format against docs/protocol.md: tables, vectors, and frames made by the
firmware running in MicroPython."""
from __future__ import annotations

import dataclasses
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
CENTRE = hp.CentreKey.from_master(bytes.fromhex(V["centre_key"]))
BID = V["button_id"]
_SIZES = {"B": 1, "H": 2, "I": 4}


def _doc_table(name: str) -> list[tuple[int, int, str]]:
    text = DOC.read_text()
    block = text[text.index(f"<!-- {name}:begin -->"):text.index(f"<!-- {name}:end -->")]
    return [(int(m[0]), int(m[1]), m[2]) for m in
            re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \|", block, re.M)]


def _layout(fields: tuple[tuple[str, str], ...], tags: tuple[str, ...],
            tag_len: int) -> list[tuple[int, int, str]]:
    out, off = [], 0
    for name, code in fields:
        out.append((off, _SIZES[code], name))
        off += _SIZES[code]
    return out + [(off + i * tag_len, tag_len, tag) for i, tag in enumerate(tags)]


@pytest.mark.parametrize("table,host_fields,fw_format,tags,host_len,fw_len", [
    ("frame-fields", hp.FRAME_FIELDS, fw_frame.FRAME_FORMAT, ("tag", "centre_tag"),
     hp.FRAME_LEN, fw_frame.FRAME_LEN),
    ("command-fields", hp.COMMAND_FIELDS, fw_frame.COMMAND_FORMAT, ("tag",), hp.COMMAND_LEN,
     fw_frame.COMMAND_LEN),
])
def test_both_sides_implement_the_documented_layout(
        table: str, host_fields: tuple[tuple[str, str], ...], fw_format: str,
        tags: tuple[str, ...], host_len: int, fw_len: int) -> None:
    doc = _doc_table(table)
    assert _layout(host_fields, tags, hp.TAG_LEN) == doc
    # The firmware keeps formats, not names: its field sizes, in order, are the document's.
    assert fw_format[0] == ">"
    fw_fields = tuple((name, code) for (_, _, name), code in zip(doc, fw_format[1:]))
    assert len(fw_format) - 1 == len(doc) - len(tags)
    assert _layout(fw_fields, tags, fw_frame.TAG_LEN) == doc
    assert host_len == fw_len == doc[-1][0] + doc[-1][1]
    assert hp.VERSION == fw_frame.VERSION == 2


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


@pytest.mark.parametrize("vec", V["centre_frames"], ids=lambda v: v["name"])
def test_the_centre_takes_only_frames_with_its_own_tag(vec: dict[str, str]) -> None:
    raw = bytes.fromhex(vec["hex"])
    if not vec["reason"]:
        f = hp.verify_centre(raw, CENTRE)
        assert f.kind is hp.Kind.ALARM and f.button_id == BID and f.raw == raw
        return
    with pytest.raises(FrameError) as err:
        hp.verify_centre(raw, CENTRE)
    assert err.value.reason == vec["reason"]


def test_the_host_passes_on_exactly_the_centre_frame() -> None:
    for vec in V["frames"]:
        raw = bytes.fromhex(str(vec["hex"]))
        f = hp.verify(raw, KEYS)
        assert f.raw == hp.centre_frame(raw) == raw[:18] + raw[26:]
        assert hp.verify_centre(f.raw, CENTRE).key == f.key


@pytest.mark.parametrize("vec", V["commands"], ids=lambda v: v["name"])
def test_host_builds_the_vector_commands(vec: dict[str, object]) -> None:
    cmd = hp.encode_command(KEYS, BID, hp.Op(vec["op"]), int(str(vec["seq"])),
                            int(str(vec["value"])), bytes.fromhex(str(vec["nonce"])))
    assert cmd.hex() == vec["hex"]


@pytest.mark.parametrize("vec", V["bursts"], ids=lambda v: v["name"])
def test_bursts_open_to_their_frame(vec: dict[str, str]) -> None:
    other = hp.ButtonKeys.from_master(bytes.fromhex(V["other_key"]))
    f = hp.open_burst(bytes.fromhex(vec["hex"]), [(99, other), (BID, KEYS)])
    frame = bytes.fromhex(vec["frame"])
    assert f.raw == hp.centre_frame(frame) and f.tag == frame[18:24]
    assert f == dataclasses.replace(hp.verify(frame, KEYS), tag=frame[18:24])
    with pytest.raises(FrameError):
        hp.open_burst(bytes.fromhex(vec["hex"]), [(BID, other)])


def test_every_flipped_bit_of_every_vector_frame_is_rejected() -> None:
    # The host checks the body and the host tag; the centre the body and the centre tag.
    for vec in V["frames"]:
        raw = bytes.fromhex(vec["hex"])
        for i in range(len(raw)):
            for bit in range(8):
                bad = bytearray(raw)
                bad[i] ^= 1 << bit
                if i < 26:
                    with pytest.raises(FrameError):
                        hp.verify(bytes(bad), KEYS)
                if not 18 <= i < 26:
                    with pytest.raises(FrameError):
                        hp.verify_centre(hp.centre_frame(bytes(bad)), CENTRE)


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
    centre_master = bytes(reversed(key))
    centre = hp.CentreKey.from_master(centre_master)
    frames = mp.call("props", "encode_frames", key.hex(), centre_master.hex(), button_id,
                     [list(s) for s in spec_list])
    for spec, hexframe in zip(spec_list, frames):
        raw = bytes.fromhex(hexframe)
        f = hp.verify(raw, keys)
        assert (f.kind, f.boot_id, f.seq, f.gesture, f.button_id) == (
            spec[0], spec[1], spec[2], spec[3], button_id)
        assert hp.verify_centre(f.raw, centre).key == f.key
        for i in range(len(raw)):
            bad = bytearray(raw)
            bad[i] ^= 0xFF
            with pytest.raises(FrameError):
                if i < 26:
                    hp.verify(bytes(bad), keys)
                else:
                    hp.verify_centre(hp.centre_frame(bytes(bad)), centre)
    payloads = mp.call("props", "seal_frames", key.hex(), frames)
    for hexframe, payload in zip(frames, payloads):
        opened = hp.open_burst(bytes.fromhex(payload), [(button_id, keys)])
        assert opened.raw == hp.centre_frame(bytes.fromhex(hexframe))


@given(op=st.sampled_from(list(hp.Op)), seq=st.integers(0, 2**32 - 1),
       value=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(list(hp.Pattern))), nonce=st.binary(min_size=8, max_size=8),
       key=st.binary(min_size=32, max_size=32))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_host_commands_are_accepted_by_micropython_firmware(
        mp: Worker, op: hp.Op, seq: int, value: int, nonce: bytes, key: bytes) -> None:
    keys = hp.ButtonKeys.from_master(key)
    uses_nonce = op in hp.NONCE_OPS
    cmd = hp.encode_command(keys, 5, op, seq, value, nonce if uses_nonce else b"")
    # A WARN for a pattern outside the table fails like any other check.
    known = op is not hp.Op.WARN or value in set(hp.Pattern)
    assert mp.call("props", "check_command", key.hex(), 5, cmd.hex(), nonce.hex()) == (
        [int(op), seq, value] if known else "pattern")
    if uses_nonce and known:
        stale = bytes(b ^ 1 for b in nonce)
        assert mp.call("props", "check_command", key.hex(), 5, cmd.hex(), stale.hex()) == "tag"


def test_burst_advert_helper_reads_manufacturer_data() -> None:
    payload = bytes.fromhex(V["bursts"][0]["hex"])
    assert hp.burst_from_advert({0xFFFF: payload}) == payload
    assert hp.burst_from_advert({0xFFFF: payload[:-1]}) is None
    assert len(payload) == hp.BURST_LEN == 27  # with its AD header, a legacy advert's 31 bytes
    assert hp.burst_from_advert({0x004C: payload}) is None
    assert struct.calcsize(">" + "".join(c for _, c in hp.FRAME_FIELDS)) == 18
