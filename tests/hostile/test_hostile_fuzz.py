"""Hypothesis mutates valid messages on every receiver (issue 12, part 11): the HTTPS API,
DC-09 over TCP and UDP, the SMS inbox and the NMEA parser. Whatever arrives: no 5xx, no
traceback, and nothing accepted that was not sent (the only keys stored are the genuine
ones, there is one incident, and the operator's state stays strict JSON)."""
from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hostile_kit import Live, alarm, frame, key, update

from msa.bench.hostile_inputs import (BODY_FIELDS, BYTE_OPS, LITERALS, LOCATION_FIELDS,
                                      NMEA_LINES, hostile_values, mutate_body, mutate_bytes,
                                      mutate_text, nmea_checksummed, reframe)
from msa.wire import aml, dc09
from msa.wire import protocol as hp
from msa.wire.message import MessageKind
from msa.wire.api import body
from msa.host.nmea import NmeaError, NmeaTracker, parse

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One centre for the module, holding a genuine alarm and its first update."""
    c = Live(tmp_path_factory.mktemp("fuzz") / "centre")
    try:
        assert c.send(alarm(1))[0] == 201 and c.send(update(1, 1))[0] == 200
        yield c
    finally:
        c.close()


GENUINE = {key(1), f"{key(1)}/1"}


def _unchanged(live: Live) -> None:
    stored = live.keys()
    assert stored <= GENUINE | {f"{key(1)}/{n}" for n in range(2, 34)}, stored - GENUINE
    state = live.state_json()
    assert len(state["incidents"]) == 1
    for point in state["incidents"][0]["track"]:
        assert all(math.isfinite(point[k]) for k in ("lat", "lon", "accuracy_m", "fix_time"))


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80),
    st.sampled_from(hostile_values(key(1))),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3))


@SETTINGS
@given(which=st.sampled_from(["alarm", "update"]),
       field=st.sampled_from(BODY_FIELDS + LOCATION_FIELDS), value=HOSTILE_VALUES,
       literal=st.one_of(st.none(), st.sampled_from(LITERALS)))
def test_https_mutations(seeded: Live, which: str, field: str, value: Any,
                         literal: str | None) -> None:
    text = mutate_body(body(alarm(1) if which == "alarm" else update(1, 1)), field, value,
                       literal)
    path = "/alarms" if which == "alarm" else f"/alarms/{key(1)}/locations"
    status, answer = seeded.post(path, text)
    assert status < 500, answer
    _unchanged(seeded)


def _mutate(raw: bytes, data: st.DataObject) -> bytes:
    return mutate_bytes(raw, data.draw(st.lists(st.tuples(
        st.sampled_from(BYTE_OPS), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
        min_size=1, max_size=4)))


@SETTINGS
@given(data=st.data(), recrc=st.booleans(), udp=st.booleans())
def test_dc09_mutations(seeded: Live, data: st.DataObject, recrc: bool, udp: bool) -> None:
    raw = _mutate(seeded.dc09_event(alarm(1)) if data.draw(st.booleans())
                  else dc09.encode(dc09.event_for(alarm(1), seq=3, at=time.time(),
                                                  account=seeded.account)), data)
    if recrc:
        raw = reframe(raw)
    if udp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            s.sendto(raw[:4096], ("127.0.0.1", seeded.dc09_port))
            try:
                answer = s.recv(4096)
            except TimeoutError:
                answer = b""
    else:
        answer = seeded.dc09_tcp(raw[:4000].replace(b"\r", b"") + b"\r")
    if answer:
        reply = dc09.decode(answer, lambda _a: seeded.dc09_key)
        assert isinstance(reply, dc09.Dc09Reply)
    _unchanged(seeded)


SMS_TEXTS = [f"MSA1 A {key(1)} {frame(hp.Kind.ALARM, 1).hex()}",
             f"MSA1 L {key(1)}/1 {frame(hp.Kind.ALARM, 1).hex()}",
             aml.build(update(1, 1).fix, now=time.time())]


@SETTINGS
@given(text=st.sampled_from(SMS_TEXTS), at=st.integers(0, 200), cut=st.integers(0, 8),
       insert=st.text(max_size=6), sender=st.text(max_size=20))
def test_sms_mutations(seeded: Live, text: str, at: int, cut: int, insert: str,
                       sender: str) -> None:
    mutated = mutate_text(text, at, cut, insert)
    got = seeded.sms(sender, mutated)  # raises nothing
    assert got is None or got.verdict.value in ("duplicate", "rejected") or \
        mutated in SMS_TEXTS
    _unchanged(seeded)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(line=st.sampled_from(NMEA_LINES), at=st.integers(0, 80), cut=st.integers(0, 6),
       insert=st.text(max_size=6))
def test_nmea_mutations(line: str, at: int, cut: int, insert: str) -> None:
    mutated = mutate_text(line, at, cut, insert)
    tracker = NmeaTracker()
    # The mutated sentence with its checksum made right, and the other half of its epoch.
    other = NMEA_LINES[1 - NMEA_LINES.index(line)]
    for sentence in (nmea_checksummed(mutated), nmea_checksummed(other)):
        try:
            fix = tracker.feed(parse(sentence))
        except NmeaError:
            continue
        if fix is not None:
            assert math.isfinite(fix.accuracy_m) and 0 < fix.accuracy_m <= 500
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
