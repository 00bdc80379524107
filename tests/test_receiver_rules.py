"""Receiver rules 1-4 on the host, on the shared vectors of docs/protocol.md: each rejected
vector is refused by wire/protocol.py and by the Receiver for its published reason, the same
reason the firmware-side reference receiver gives (tests/firmware/test_receiver_vectors.py), and
nothing is passed on, acknowledged or spent from the sequence."""
from __future__ import annotations

from pathlib import Path

import pytest
import vectors as doc_vectors

from msa.wire import protocol as hp
from msa.wire.errors import FrameError
from msa.host.receiver import Receiver
from msa.host.sequence import SequenceGuard

V = doc_vectors.load(str(Path(__file__).resolve().parent.parent / "docs" / "protocol.md"))
KEY = bytes.fromhex(V["key"])
KEYS = hp.ButtonKeys.from_master(KEY)
BID = V["button_id"]
WRONG_INSIDE = {"version-3": "version", "unknown-kind": "field", "unknown-gesture": "field",
                "battery-150": "field"}


def test_the_validly_tagged_but_wrong_vectors_are_published_with_their_reasons() -> None:
    published = {r["name"]: r["reason"] for r in V["rejected"]}
    assert {name: published.get(name) for name in WRONG_INSIDE} == WRONG_INSIDE


@pytest.mark.parametrize("vec", V["rejected"], ids=lambda v: v["name"])
def test_host_and_firmware_side_refuse_each_vector_for_the_same_reason(
        vec: dict[str, str]) -> None:
    raw = bytes.fromhex(vec["hex"])
    with pytest.raises(FrameError) as err:
        hp.verify(raw, KEYS)
    assert err.value.reason == vec["reason"]
    with pytest.raises(ValueError) as fw:
        doc_vectors.check_frame(raw, KEY, BID)
    assert fw.value.args[0] == vec["reason"]


@pytest.mark.parametrize("name", sorted(WRONG_INSIDE))
def test_the_receiver_passes_nothing_on_acks_nothing_and_spends_no_number(
        tmp_path: Path, name: str) -> None:
    raw = bytes.fromhex(next(r["hex"] for r in V["rejected"] if r["name"] == name))
    rx = Receiver({BID: KEYS}, SequenceGuard(tmp_path / "state.db"))
    out = rx.frame(raw)
    assert (out.event, out.ack, out.rejected) == (None, None, WRONG_INSIDE[name])
    assert rx.rejections == {WRONG_INSIDE[name]: 1}
    # The genuine frame with the same number is still new: the refusal spent nothing.
    good = next(f for f in V["frames"] if f["name"] == "alarm-hold")
    first = rx.frame(bytes.fromhex(good["hex"]))
    assert first.event is not None and first.ack == good["seq"]


def test_the_field_rules_hold_without_the_tag_too() -> None:
    """decode() (no tag check) applies rules 1, 2 and 4 by itself."""
    for name, reason in WRONG_INSIDE.items():
        raw = bytes.fromhex(next(r["hex"] for r in V["rejected"] if r["name"] == name))
        with pytest.raises(FrameError) as err:
            hp.decode(raw)
        assert err.value.reason == reason, name
