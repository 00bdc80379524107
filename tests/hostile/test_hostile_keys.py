"""Replays into new incidents and made-up positions (issue 12, "the centre builds every key
itself"): one genuine alarm frame, re-sent under every key a sender could write, must stay one
incident on every channel; an update number out of reason never becomes the latest position."""
from __future__ import annotations

import json

import pytest
from hostile_kit import BID, Live, alarm, frame, key, update

from msa.centre.core import UPDATE_LEAD
from msa.wire.message import MAX_UPDATE_NO
from msa.wire import protocol as hp
from msa.wire.message import MessageKind
from msa.wire.api import body
from msa.wire.msa1 import KIND_LETTERS

pytestmark = pytest.mark.usefixtures("no_tracebacks")

# Keys that are not the frame's own, but whose part before the first "/" is.
VARIANTS = [f"{key(1)}/", f"{key(1)}-1", f"{key(1)}/x", f"{key(1)}//1",
            *(f"{key(1)}/{n}" for n in range(1, 20)),
            f"{BID:08X}-1-1", f"{BID:08x}-01-1", f"{BID:08x}-1-01", f"{BID:08x}-1-1 "]


def test_https_replays_under_other_keys_open_no_incident(live: Live) -> None:
    assert live.send(alarm(1))[0] == 201
    for variant in VARIANTS:
        payload = {**body(alarm(1)), "key": variant, "incident": variant}
        status, text = live.post("/alarms", payload)
        assert status in (400, 422), (variant, status, text)
    assert len(live.incidents()) == 1 and live.keys() == {key(1)}


def test_dc09_replays_under_other_keys_open_no_incident(live: Live) -> None:
    from msa.wire import dc09
    assert live.reply(live.dc09_tcp(live.dc09_event(alarm(1)))).token is dc09.Token.ACK
    for i, variant in enumerate(v for v in VARIANTS if " " not in v and "//" not in v):
        m = alarm(1)
        forged = type(m)(**{**m.__dict__, "key": variant, "incident": variant})
        answer = live.reply(live.dc09_tcp(live.dc09_event(forged, seq=i + 2)))
        assert answer.token is dc09.Token.DUH, variant
    assert len(live.incidents()) == 1 and live.keys() == {key(1)}


def test_sms_replays_from_spoofed_senders_open_no_incident(live: Live) -> None:
    raw = frame(hp.Kind.ALARM, 1).hex()
    letter = KIND_LETTERS[MessageKind.ALARM]
    assert live.sms("+32470000001", f"MSA1 {letter} {key(1)} {raw}").verdict.value == "accepted"
    for i, n in enumerate(range(1, 200)):
        got = live.sms(f"+3247{i:07d}", f"MSA1 {letter} {key(1)}/{n} {raw}")
        assert got is None or got.verdict.value == "rejected"
    assert len(live.incidents()) == 1 and live.keys() == {key(1)}


def _latest(live: Live) -> dict[str, object]:
    track = live.incidents()[0]["track"]
    return track[-1]  # type: ignore[no-any-return]


@pytest.mark.parametrize("n", [2 ** 62, 2 ** 63, 2 ** 64 + 1, MAX_UPDATE_NO + 1])
def test_an_update_number_out_of_range_is_refused(live: Live, n: int) -> None:
    assert live.send(alarm(1))[0] == 201
    fake = update(1, 1, lat=10.0)
    # In the body only, and in the key too: neither may place a position.
    status, _ = live.post(f"/alarms/{key(1)}/locations", {**body(fake), "update_no": n})
    assert status == 400
    status, _ = live.post(f"/alarms/{key(1)}/locations",
                          {**body(fake), "key": f"{key(1)}/{n}", "update_no": n})
    assert status in (400, 422)
    status, _ = live.post(f"/alarms/{key(1)}/locations",
                          {**body(fake), "key": "anything", "update_no": 5})
    assert status in (400, 422)
    assert live.send(update(1, 1, lat=51.06))[0] == 200  # the genuine one goes in, and is latest
    assert _latest(live)["lat"] == pytest.approx(51.06)


def test_an_update_far_ahead_of_the_track_is_refused_and_the_genuine_one_stays_latest(
        live: Live) -> None:
    assert live.send(alarm(1))[0] == 201
    assert live.send(update(1, 1, lat=51.06))[0] == 200
    status, text = live.send(update(1, 2 + UPDATE_LEAD, lat=10.0))
    assert status == 422 and "past" in text
    assert live.send(update(1, 2, lat=51.07))[0] == 200
    assert _latest(live)["lat"] == pytest.approx(51.07)
    assert [p["update_no"] for p in live.incidents()[0]["track"]] == [0, 1, 2]


def test_a_location_that_names_another_incident_or_none_is_refused(live: Live) -> None:
    assert live.send(alarm(1))[0] == 201
    assert live.send(alarm(2))[0] == 201
    other = update(1, 1)
    status, _ = live.post(f"/alarms/{key(2)}/locations", body(other))  # URL of another
    assert status == 400
    status, _ = live.post("/alarms/INC-99999999999999999999/locations", body(other))
    assert status == 404
    status, _ = live.post(f"/alarms/{key(1)}/locations", {**body(other), "location": None})
    assert status == 422  # an update without a position says nothing


def test_infinity_accuracy_is_refused_and_the_state_stays_strict_json(live: Live) -> None:
    assert live.send(alarm(1))[0] == 201
    text = json.dumps(body(update(1, 1)))
    for poison in ("Infinity", "-Infinity", "NaN", "1e999"):
        status, _ = live.post(f"/alarms/{key(1)}/locations",
                              text.replace('"accuracy_m": 8.0', f'"accuracy_m": {poison}'))
        assert status == 400, poison
    for field in ('"lat": 51.05', '"time": '):
        status, _ = live.post(f"/alarms/{key(1)}/locations",
                              text.replace(field, field.split(":")[0] + ": NaN, \"x\": 0"))
        assert status == 400
    state = live.state_json()  # strict: Infinity or NaN in it fails the test
    assert len(state["incidents"][0]["track"]) == 1
