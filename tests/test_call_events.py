"""The silent call's events from host to centre (issue 16, part 2): the CALL message's wire forms
(JSON, MSA1) with round trips, error tables and the shared vectors in tests/call_vectors.json;
the host's outbox numbering them per incident across a restart and delivering them over HTTPS
to a started centre; the centre counting each once, refusing bad keys, payloads and frames, and
showing them in /api/state's incident and in the incident's timeline, on both backends."""
from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from backends import State, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.audit import AuditLog
from msa.centre.core import Centre, Inbound, Verdict
from msa.centre.notes import Notes
from msa.centre.registry import Case, Registry
from msa.centre.timeline import incident_timeline
from msa.host.dispatcher import Dispatcher, Policy
from msa.host.https import HttpsChannel
from msa.host.outbox import Outbox
from msa.host.silentcall import CallEventKind
from msa.wire import protocol as hp
from msa.wire.api import body, read_body
from msa.wire.call import (EVENT_LETTERS, MAX_CALL_NO, CallEvent, CallPayload, call_no,
                           clean_cause)
from msa.wire.errors import ApiError
from msa.wire.message import Message, MessageKind
from msa.wire.msa1 import parse_msa1, render_msa1

V = json.loads((Path(__file__).parent / "call_vectors.json").read_text())
FRAME = bytes.fromhex(V["frame"])
INC = V["incident"]
BID = V["button_id"]
CENTRE_KEY = bytes(range(64, 96))
AT = 1_795_000_000.0


def payload(event: CallEvent = CallEvent.ANSWERED, at: float = AT, attempt: int = 1,
            cause: str = "") -> CallPayload:
    return CallPayload(event, at, attempt, cause)


def call_message(n: int, call: CallPayload | None = None) -> Message:
    return Message(f"{INC}/c{n}", MessageKind.CALL, BID, FRAME, AT, incident=INC,
                   call=call or payload())


# --- the wire ---------------------------------------------------------------------------------

def test_the_host_and_the_wire_name_the_same_events() -> None:
    assert [e.value for e in CallEventKind] == [e.value for e in CallEvent]
    assert len(set(EVENT_LETTERS.values())) == len(CallEvent)


@pytest.mark.parametrize("vector", V["accepted"], ids=lambda v: v["name"])
def test_vectors_are_what_the_host_renders_and_the_centre_reads(vector: dict[str, Any]) -> None:
    posted = read_body(vector["body"], frozenset({MessageKind.CALL}))
    assert posted.call is not None and posted.key == vector["body"]["key"]
    message = Message(posted.key, MessageKind.CALL, BID, FRAME, AT, incident=INC,
                      call=posted.call)
    rendered = body(message)
    rendered.pop("created_at")
    assert rendered == vector["body"]
    line = render_msa1(MessageKind.CALL, posted.key, FRAME, posted.call)
    assert line == vector["msa1"]
    parsed = parse_msa1(line)
    assert parsed.call is not None and parsed.key == posted.key and parsed.frame == FRAME
    # The SMS keeps the event, whole seconds and the attempt; the cause goes by IP only.
    assert (parsed.call.event, parsed.call.at, parsed.call.attempt) == (
        posted.call.event, float(int(posted.call.at)), posted.call.attempt)


@pytest.mark.parametrize("call", [payload(e, AT + 0.5, 7, "busy" if e is CallEvent.ENDED
                                          else "") for e in CallEvent])
def test_a_payload_round_trips(call: CallPayload) -> None:
    assert CallPayload.from_json(json.loads(json.dumps(call.as_json()))) == call
    assert CallPayload.from_short(call.short()) == payload(call.event, AT, 7)


GOOD = {"event": "ended", "at": AT, "attempt": 1, "cause": "busy"}


@pytest.mark.parametrize("change", [
    {"event": "ringing"}, {"event": "ENDED"}, {"event": 1}, {"event": None},
    {"at": math.inf}, {"at": math.nan}, {"at": -1.0}, {"at": 999_999_999.0},
    {"at": 2.0 ** 33 + 1}, {"at": "1795000000"}, {"at": True}, {"at": 10 ** 400},
    {"attempt": 0}, {"attempt": 1000}, {"attempt": 1.0}, {"attempt": True}, {"attempt": "1"},
    {"cause": "x" * 81}, {"cause": "tab\there"}, {"cause": "caf\u00e9"}, {"cause": None},
    {"cause": 5}, {"extra": 1},
], ids=repr)
def test_a_bad_payload_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CallPayload.from_json({**GOOD, **change})
    with pytest.raises(ApiError) as raised:
        read_body({**V["accepted"][0]["body"], "call": {**GOOD, **change}},
                  frozenset({MessageKind.CALL}))
    assert raised.value.field == "call"


@pytest.mark.parametrize("missing", ["event", "at", "attempt", "cause"])
def test_a_payload_missing_a_field_is_refused(missing: str) -> None:
    with pytest.raises(ValueError):
        CallPayload.from_json({k: v for k, v in GOOD.items() if k != missing})


def test_a_call_only_on_a_call_event() -> None:
    vector = V["accepted"][0]["body"]
    with pytest.raises(ApiError, match="call"):
        read_body({k: v for k, v in vector.items() if k != "call"},
                  frozenset({MessageKind.CALL}))
    with pytest.raises(ApiError, match="call"):
        read_body({**vector, "kind": "location"}, frozenset({MessageKind.LOCATION}))
    with pytest.raises(ValueError):
        render_msa1(MessageKind.CALL, f"{INC}/c1", FRAME)
    with pytest.raises(ValueError):
        render_msa1(MessageKind.ALARM, INC, FRAME, payload())


@pytest.mark.parametrize("suffix,n", [("c1", 1), ("c999", MAX_CALL_NO), ("c01", None),
                                      ("c0", None), ("c1000", None), ("C1", None), ("1", None),
                                      ("c+1", None), ("c 1", None), ("c\u0661", None),
                                      ("", None)])
def test_call_numbers_have_one_form(suffix: str, n: int | None) -> None:
    assert call_no(suffix) == n


@pytest.mark.parametrize("word", ["X1795000000/1", "A1795000000/0", "A1795000000/01",
                                  "A179500000/1", "A1795000000", "a1795000000/1",
                                  "A9999999999/1"])
def test_a_bad_short_form_is_refused(word: str) -> None:
    line = f"MSA1 C {INC}/c1 {V['frame']} {word}"
    with pytest.raises(ValueError):
        parse_msa1(line)


def test_a_fifth_word_only_on_a_call_line() -> None:
    with pytest.raises(ValueError):
        parse_msa1(f"MSA1 A {INC} {V['frame']} A1795000000/1")
    with pytest.raises(ValueError):
        parse_msa1(f"MSA1 C {INC}/c1 {V['frame']}")


def test_a_modems_words_are_made_fit_for_the_wire() -> None:
    cause = clean_cause("NO CARRIER\r\n\u00e9" + "x" * 100)
    assert cause.startswith("NO CARRIER???") and len(cause) == 80
    payload(CallEvent.ENDED, cause=cause)  # accepted as it is


# --- the centre, on both backends --------------------------------------------------------------

@pytest.fixture
def centre(state: State) -> Centre:
    reg = Registry(state.registry)
    reg.put_case(Case("C-1", "Victim", "+32 1", "Suspect", "notes", (), True, "+32 9"))
    reg.register(BID, CENTRE_KEY, "C-1")
    c = Centre(state.records, reg, clock=lambda: AT + 100)
    assert c.ingest(Inbound("https", INC, MessageKind.ALARM, BID, FRAME)).verdict \
        is Verdict.ACCEPTED
    return c


def inbound(key: str, call: CallPayload | None = None, frame: bytes = FRAME,
            channel: str = "https", **kw: Any) -> Inbound:
    return Inbound(channel, key, MessageKind.CALL, BID, frame, incident=INC,
                   call=call or payload(), **kw)


def test_the_vectors_are_counted_once_and_shown(centre: Centre, state: State) -> None:
    for vector in V["accepted"]:
        posted = read_body(vector["body"], frozenset({MessageKind.CALL}))
        assert centre.ingest(inbound(posted.key, posted.call)).verdict is Verdict.ACCEPTED
    again = centre.ingest(inbound(f"{INC}/c4", payload(CallEvent.ANSWERED, AT + 3.0)))
    assert again.verdict is Verdict.DUPLICATE and again.incident == "INC-000001"
    [incident] = centre.incidents()
    assert incident["call"] == {"event": "ended", "at": 1795000063.0, "attempt": 1,
                                "cause": "NO CARRIER: Normal call clearing", "events": 5}
    assert centre.count(MessageKind.CALL) == 5
    kinds = [(a.key, a.verdict) for a in centre.arrivals(1) if a.kind == "call"]
    assert kinds[-1] == (f"{INC}/c4", "duplicate") and len(kinds) == 6
    timeline = incident_timeline(centre, "INC-000001", notes=Notes(state.records),
                                 audit=AuditLog(state.audit), proximity=None)
    assert timeline is not None
    calls = [e for e in timeline["events"] if e["what"] == "call"]  # type: ignore[attr-defined]
    assert [c["event"] for c in calls] == ["attempt", "dialling", "alerting", "answered",
                                           "ended"]
    assert calls[0]["by"] == "host" and calls[-1]["cause"].startswith("NO CARRIER")


@pytest.mark.parametrize("vector", V["rejected_keys"], ids=lambda v: v["name"])
def test_every_other_key_form_is_refused(centre: Centre, vector: dict[str, str]) -> None:
    result = centre.ingest(inbound(vector["key"]))
    assert result.verdict is Verdict.REJECTED, vector
    assert centre.count(MessageKind.CALL) == 0


def test_a_call_event_needs_its_call_its_alarm_and_a_good_frame(centre: Centre) -> None:
    no_call = Inbound("https", f"{INC}/c1", MessageKind.CALL, BID, FRAME, incident=INC)
    assert centre.ingest(no_call).reason == "a call event without its call"
    flipped = FRAME[:-1] + bytes([FRAME[-1] ^ 1])
    assert centre.ingest(inbound(f"{INC}/c1", frame=flipped)).reason == "frame tag"
    assert centre.ingest(inbound(f"{INC}/c1", update_no=1)).verdict is Verdict.REJECTED
    assert centre.ingest(inbound(f"{INC}/c40")).reason.startswith("call event 40 is more")
    stray = Inbound("https", INC, MessageKind.ALARM, BID, FRAME, call=payload())
    assert centre.ingest(stray).reason == "a call on a message that is no call event"
    assert centre.count(MessageKind.CALL) == 0
    assert centre.ingest(inbound(f"{INC}/c1")).verdict is Verdict.ACCEPTED


def test_a_call_event_by_sms_is_counted(centre: Centre) -> None:
    from msa.centre.sms import SmsInbox
    inbox = SmsInbox(centre)
    result = inbox.receive("+32 9", V["accepted"][3]["msa1"], at=AT + 50)
    assert result is not None and result.verdict is Verdict.ACCEPTED
    [incident] = centre.incidents()
    assert incident["call"]["event"] == "answered"  # type: ignore[index]
    assert centre.calls(1)[0]["channel"] == "sms" and centre.track(1) == []  # no position


# --- the host -----------------------------------------------------------------------------------

def alarm() -> Message:
    return Message(INC, MessageKind.ALARM, BID, FRAME, AT, incident=INC)


def test_the_outbox_numbers_call_events_per_incident_across_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put(alarm())
    box.open_incident(alarm(), AT + 7200)
    first = box.add_call(INC, payload(CallEvent.ATTEMPT), AT)
    box.close()
    box = Outbox(tmp_path / "o.db")  # a restart: the number goes on, the event is kept
    second = box.add_call(INC, payload(CallEvent.ENDED, cause="busy"), AT + 1)
    assert first is not None and second is not None
    assert (first.key, second.key) == (f"{INC}/c1", f"{INC}/c2")
    due = {m.key: m for m in box.due(AT + 10)}
    assert due[f"{INC}/c2"].call == payload(CallEvent.ENDED, cause="busy")
    assert due[f"{INC}/c1"].frame == FRAME and due[f"{INC}/c1"].kind is MessageKind.CALL
    with pytest.raises(Exception, match="no incident"):
        box.add_call("12345678-3-41", payload(), AT)


def test_call_events_go_to_a_started_centre_over_https(state: State) -> None:
    from msa.centre.server import start_centre

    async def scenario() -> dict[str, object]:
        running = await start_centre(state.config())
        reg = running.centre.registry
        reg.put_case(Case("C-1", "V", "+32 1", "S", measures=(), weapons=False))
        reg.register(BID, CENTRE_KEY, "C-1")
        token = running.issue_host("C-1", "host-calls").token
        channel = HttpsChannel(base_url=running.api_url, token=token,
                               ca_file=str(running.tls.ca_cert))
        box = Outbox(state.dir / "host.db")
        dispatcher = Dispatcher(box, [channel], _NoFix(), Policy(track_interval_s=3600))

        task = asyncio.create_task(dispatcher.run())
        try:
            box.put(alarm())
            box.open_incident(alarm(), time.time() + 7200)
            dispatcher._wake.set()
            for event in (CallEvent.ATTEMPT, CallEvent.DIALLING, CallEvent.ANSWERED):
                dispatcher.call_event(INC, payload(event, time.time()))
            while box.undelivered():
                await asyncio.sleep(0.05)
            return running.centre.incidents()[0]
        finally:
            await dispatcher.stop()
            await task
            await channel.close()
            box.close()
            await running.stop()

    incident = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert incident["call"]["event"] == "answered"  # type: ignore[index]
    assert incident["call"]["events"] == 3  # type: ignore[index]


class _NoFix:
    name = "none"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def best(self) -> None:
        return None
