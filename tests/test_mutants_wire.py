"""Exact values of the wire codecs where mutation testing found a change that no other test
noticed (docs/testing.md lists them): every field, bound and error message of the MSA1 SMS
form, DC-09, AML and the frame codec."""
from __future__ import annotations

import pytest

from msa.wire import protocol as hp
from msa.wire.message import MessageKind
from msa.wire.msa1 import KIND_LETTERS, MSA1_TAG, Msa1, parse_msa1, render_msa1

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE = hp.CentreKey.from_master(bytes(range(64, 96)))
BID = 0x0BADC0DE
FRAME = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.ALARM, button_id=BID,
                                        boot_id=3, seq=17, gesture=hp.Gesture.HOLD,
                                        battery_pct=80, age_ms=120))


# --- MSA1 ------------------------------------------------------------------------------------

def test_msa1_letters_and_tag() -> None:
    assert MSA1_TAG == "MSA1"
    assert KIND_LETTERS == {MessageKind.ALARM: "A", MessageKind.TEST: "T",
                            MessageKind.LOCATION: "L", MessageKind.LOW_BATTERY: "B"}


@pytest.mark.parametrize("kind,letter,key", [
    (MessageKind.ALARM, "A", "0badc0de-3-17"), (MessageKind.TEST, "T", "0badc0de-3-17"),
    (MessageKind.LOCATION, "L", "0badc0de-3-17/86400"),
    (MessageKind.LOW_BATTERY, "B", "0badc0de-65535-4294967295")])
def test_msa1_renders_exactly_and_parses_back(kind: MessageKind, letter: str, key: str) -> None:
    line = render_msa1(kind, key, FRAME)
    assert line == f"MSA1 {letter} {key} {FRAME.hex()}"
    assert parse_msa1(line) == Msa1(kind=kind, key=key, frame=FRAME)


@pytest.mark.parametrize("kind,key,frame,error", [
    (MessageKind.HEARTBEAT, "0badc0de-3-17", FRAME, "heartbeat messages do not go by SMS"),
    (MessageKind.BOOT, "0badc0de-3-17", FRAME, "boot messages do not go by SMS"),
    (MessageKind.ALARM, "0BADC0DE-3-17", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17/0", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17 ", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17", FRAME[:-1],
     f"a frame is {len(FRAME)} bytes, got {len(FRAME) - 1}"),
    (MessageKind.ALARM, "0badc0de-3-17", FRAME + b"\x00",
     f"a frame is {len(FRAME)} bytes, got {len(FRAME) + 1}"),
])
def test_msa1_render_refuses_with_its_reason(kind: MessageKind, key: str, frame: bytes,
                                             error: str) -> None:
    with pytest.raises(ValueError) as err:
        render_msa1(kind, key, frame)
    assert str(err.value) == error


GOOD = f"MSA1 A 0badc0de-3-17 {FRAME.hex()}"


@pytest.mark.parametrize("text,error", [
    ("MSA2" + GOOD[4:], "not an MSA1 message"),
    (GOOD + " x", "not an MSA1 message"),
    (GOOD.rsplit(" ", 1)[0], "not an MSA1 message"),
    (GOOD.replace(" ", "  ", 1), "not an MSA1 message"),
    (GOOD.replace(" A ", " H "), "unknown kind letter 'H'"),
    (GOOD.replace(" A ", " a "), "unknown kind letter 'a'"),
    (GOOD.replace("0badc0de-3-17", "0badc0de-3"), "malformed key"),
    (GOOD.replace("0badc0de-3-17", "0badc0de-3-17/01"), "malformed key"),
    (GOOD[:-2], f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
    (GOOD + "00", f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
    (GOOD[:-2] + "AB", f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
])
def test_msa1_parse_refuses_with_its_reason(text: str, error: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_msa1(text)
    assert str(err.value) == error
