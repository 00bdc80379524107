"""The host's receiver: typed events, acknowledgement decisions, rejections (no BLE here)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import vectors as doc_vectors

from msa.wire import protocol as hp
from msa.host.events import AlarmEvent, BootEvent, HeartbeatEvent, Via
from msa.host.receiver import Receiver
from msa.host.sequence import SequenceGuard

V = doc_vectors.load(str(Path(__file__).resolve().parent.parent / "docs" / "protocol.md"))
KEY = bytes.fromhex(V["key"])
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = V["button_id"]


def frame(kind: hp.Kind, seq: int, age_ms: int | None = 100) -> bytes:
    return hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID, boot_id=1, seq=seq,
                           gesture=hp.Gesture.HOLD if kind is hp.Kind.ALARM else hp.Gesture.NONE,
                           battery_pct=80, age_ms=age_ms)


@pytest.fixture
def rx(tmp_path: Path) -> Receiver:
    return Receiver({BID: KEYS}, SequenceGuard(tmp_path / "state.db"))


def test_alarm_becomes_a_typed_event_and_is_acked(rx: Receiver) -> None:
    out = rx.frame(frame(hp.Kind.ALARM, 5, age_ms=1500))
    assert isinstance(out.event, AlarmEvent) and out.ack == 5 and out.rejected is None
    assert out.event.pressed_at is not None
    assert abs(out.event.received_at - out.event.pressed_at - 1.5) < 1e-6


def test_heartbeat_is_passed_on_but_not_acked(rx: Receiver) -> None:
    out = rx.frame(frame(hp.Kind.HEARTBEAT, 5))
    assert isinstance(out.event, HeartbeatEvent) and out.ack is None


def test_duplicate_is_acked_again_but_not_passed_on(rx: Receiver) -> None:
    raw = frame(hp.Kind.ALARM, 9)
    assert rx.frame(raw).event is not None
    again = rx.frame(raw)
    assert again.event is None and again.ack == 9 and again.rejected == "duplicate"


def test_gap_is_reported_on_the_event(rx: Receiver) -> None:
    rx.frame(frame(hp.Kind.BOOT, 1))
    out = rx.frame(frame(hp.Kind.ALARM, 4))
    assert out.event is not None and out.event.gap == (2, 3)


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:-1], "length"),
    (lambda b: b[:5], "length"),
    (lambda b: b[:25] + bytes([b[25] ^ 1]) + b[26:], "tag"),  # the host tag's last bit
    (lambda b: b[:2] + b"\x00\x00\x00\x01" + b[6:], "button"),
])
def test_bad_frames_are_rejected_and_logged_without_secrets(
        rx: Receiver, caplog: pytest.LogCaptureFixture, mutate: object, reason: str) -> None:
    raw = frame(hp.Kind.ALARM, 3)
    with caplog.at_level(logging.WARNING, "msa.host.receiver"):
        out = rx.frame(mutate(raw))  # type: ignore[operator]
    assert out.event is None and out.ack is None and out.rejected == reason
    assert rx.rejections[reason] == 1
    assert KEY.hex() not in caplog.text and raw.hex() not in caplog.text
    # The genuine frame after the forgeries is still accepted.
    assert isinstance(rx.frame(raw).event, AlarmEvent)


def test_burst_advert_is_opened_and_never_acked(rx: Receiver) -> None:
    raw = frame(hp.Kind.ALARM, 12)
    out = rx.advert(hp.seal_burst(KEYS, raw))
    assert isinstance(out.event, AlarmEvent) and out.event.via is Via.ADVERT and out.ack is None
    # The same alarm arriving later over GATT is a duplicate, acknowledged so the button stops.
    gatt = rx.frame(raw)
    assert gatt.event is None and gatt.ack == 12


def test_boot_event_type(rx: Receiver) -> None:
    assert isinstance(rx.frame(frame(hp.Kind.BOOT, 1)).event, BootEvent)
