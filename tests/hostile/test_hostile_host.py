"""A compromised host (issue 12, "protocol version 2"): stalkerware on the victim's phone holds
everything the host holds, the button's key K, its own API token and DC-09 key, its SMS
modem. With them it makes frames whose host tag is valid; none of them may become an alarm,
a test or a notice at the centre, on any channel, because the centre checks the centre tag,
made with K_c, which no host holds."""
from __future__ import annotations

import dataclasses
import secrets

import pytest
from hostile_kit import BID, HOST_PHONE, KEYS, Live, alarm, key

from msa.centre.core import Verdict
from msa.wire import dc09
from msa.wire import protocol as hp
from msa.wire.message import Message, MessageKind
from msa.wire.msa1 import render_msa1

pytestmark = pytest.mark.usefixtures("no_tracebacks")


def _host_made(seq: int, centre_tag: bytes) -> bytes:
    """An alarm frame as a host can make one: body and host tag right, the centre tag made up."""
    full = hp.encode_frame(KEYS, hp.CentreKey.from_master(secrets.token_bytes(32)),
                           kind=hp.Kind.ALARM, button_id=BID, boot_id=1, seq=seq,
                           gesture=hp.Gesture.HOLD, battery_pct=70, age_ms=100)
    hp.verify(full, KEYS)  # what the host itself would accept
    return full[:hp.BODY_LEN] + centre_tag


# The centre tags a host might try: a guess, the host tag in its place, zeros, and the centre
# tag of another of the button's frames (right key, wrong body).
def _forgeries() -> list[tuple[str, bytes]]:
    other = alarm(7).frame[hp.BODY_LEN:]
    return [("random", _host_made(1, secrets.token_bytes(8))),
            ("host-tag", hp.encode_frame(KEYS, hp.CentreKey.from_master(bytes(32)),
                                         kind=hp.Kind.ALARM, button_id=BID, boot_id=1, seq=1,
                                         gesture=hp.Gesture.HOLD, battery_pct=70,
                                         age_ms=100)[:26]),
            ("zeros", _host_made(1, bytes(8))),
            ("borrowed", _host_made(1, other))]


def _forged_alarm(raw: bytes) -> Message:
    return dataclasses.replace(alarm(1), frame=raw)


@pytest.mark.parametrize("name", [n for n, _ in _forgeries()])
def test_a_host_holding_k_forges_no_alarm_over_https(live: Live, name: str) -> None:
    raw = dict(_forgeries())[name]
    status, text = live.send(_forged_alarm(raw))
    assert status == 422 and "tag" in text
    assert live.incidents() == []


def test_a_host_holding_k_forges_no_alarm_over_dc09_or_sms(live: Live) -> None:
    for i, (_name, raw) in enumerate(_forgeries(), start=1):
        reply = live.reply(live.dc09_tcp(live.dc09_event(_forged_alarm(raw), seq=i)))
        assert reply.token is not dc09.Token.ACK
        got = live.sms(HOST_PHONE, render_msa1(MessageKind.ALARM, key(1), raw))
        assert got is not None and got.verdict is Verdict.REJECTED
    assert live.incidents() == []


def test_the_genuine_frame_still_counts_once(live: Live) -> None:
    for _name, raw in _forgeries():
        live.send(_forged_alarm(raw))
    assert live.send(alarm(1))[0] == 201
    assert [i["key"] for i in live.incidents()] == [key(1)]
