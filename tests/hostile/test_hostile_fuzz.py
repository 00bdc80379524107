"""Hypothesis mutates valid messages on every receiver (issue 12, part 11): the HTTPS API,
DC-09 over TCP and UDP, the SMS inbox and the NMEA parser. Whatever arrives: no 5xx, no
traceback, and nothing accepted that was not sent (the only keys stored are the genuine
ones, there is one incident, and the operator's state stays strict JSON)."""
from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hostile_kit import Live, alarm, frame, key, update

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
    st.sampled_from([2 ** 62, 2 ** 63, 2 ** 64, -1, 0, 1e308, -1e308, "", "٣", "\x00",
                     f"{key(1)}/", f"{key(1)}/0", f"{key(1)}/01", "INC-000001", "alarm",
                     "location", "a" * 52]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3))
LITERALS = st.sampled_from(["Infinity", "-Infinity", "NaN", "1e999", "-1e999", "[[[[[[", "{}",
                            "null", '"\\ud800"', "1" * 400])


@SETTINGS
@given(which=st.sampled_from(["alarm", "update"]), field=st.sampled_from(
    ["key", "kind", "button_id", "frame", "pressed_at", "update_no", "incident", "location",
     "lat", "lon", "accuracy_m", "time", "altitude_m", "quality"]), value=HOSTILE_VALUES,
    literal=st.one_of(st.none(), LITERALS))
def test_https_mutations(seeded: Live, which: str, field: str, value: Any,
                         literal: str | None) -> None:
    payload = body(alarm(1) if which == "alarm" else update(1, 1))
    target = payload["location"] if field in ("lat", "lon", "accuracy_m", "time",
                                              "altitude_m", "quality") else payload
    target[field] = value
    text = json.dumps(payload)
    if literal is not None:
        text = text.replace(json.dumps(value), literal, 1) if value is not None else \
            text.replace("null", literal, 1)
    path = "/alarms" if which == "alarm" else f"/alarms/{key(1)}/locations"
    status, answer = seeded.post(path, text)
    assert status < 500, answer
    _unchanged(seeded)


def _mutate(raw: bytes, data: st.DataObject) -> bytes:
    ops = data.draw(st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "dup"]),
                                       st.integers(0, 10_000), st.binary(min_size=1,
                                                                         max_size=8)),
                             min_size=1, max_size=4))
    out = bytearray(raw)
    for op, at, blob in ops:
        i = at % max(1, len(out))
        if op == "flip":
            out[i] ^= blob[0] or 1
        elif op == "cut":
            del out[i:i + len(blob)]
        elif op == "insert":
            out[i:i] = blob
        else:
            out[i:i] = out[i:i + len(blob) * 4]
    return bytes(out)


def _recrc(raw: bytes) -> bytes:
    """A mutated body framed anew (right CRC and length), so the parser behind is reached."""
    start = raw.find(b'"')
    content = raw[start:].rstrip(b"\r") if start >= 0 else raw
    return b"\n%04X0%03X" % (dc09.crc16(content), len(content) & 0xFFF) + content + b"\r"


def _plain_alarm() -> bytes:
    return dc09.encode(dc09.event_for(alarm(1), seq=3, at=time.time()), bytes(range(16)))


@SETTINGS
@given(data=st.data(), reframe=st.booleans(), udp=st.booleans())
def test_dc09_mutations(seeded: Live, data: st.DataObject, reframe: bool, udp: bool) -> None:
    raw = _mutate(seeded.dc09_event(alarm(1)) if data.draw(st.booleans())
                  else dc09.encode(dc09.event_for(alarm(1), seq=3, at=time.time())), data)
    if reframe:
        raw = _recrc(raw)
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
        reply = dc09.decode(answer, lambda _a: bytes(range(16)))
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
    i = at % len(text)
    mutated = text[:i] + insert + text[i + cut:]
    got = seeded.sms(sender, mutated)  # raises nothing
    assert got is None or got.verdict.value in ("duplicate", "rejected") or \
        mutated in SMS_TEXTS
    _unchanged(seeded)


def _checksummed(line: str) -> str:
    checksum = 0
    for c in line[1:].encode("ascii", errors="replace"):
        checksum ^= c
    return f"{line}*{checksum:02X}"


NMEA = ["$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(line=st.sampled_from(NMEA), at=st.integers(0, 80), cut=st.integers(0, 6),
       insert=st.text(max_size=6))
def test_nmea_mutations(line: str, at: int, cut: int, insert: str) -> None:
    i = at % len(line)
    mutated = line[:i] + insert + line[i + cut:]
    tracker = NmeaTracker()
    # The mutated sentence with its checksum made right, and the other half of its epoch.
    for sentence in (_checksummed(mutated), _checksummed(NMEA[1 - NMEA.index(line)])):
        try:
            fix = tracker.feed(parse(sentence))
        except NmeaError:
            continue
        if fix is not None:
            assert math.isfinite(fix.accuracy_m) and 0 < fix.accuracy_m <= 500
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
