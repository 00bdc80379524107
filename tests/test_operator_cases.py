"""The case side of the operator page (issue 15, parts 3 and 6) over HTTP against a started
centre: a case file with its timeline, notes (bad ones refused with nothing stored or
audited, a good one stored even while an alarm batch is open), and the report's day checked."""
from __future__ import annotations

import asyncio
import datetime
import time

import aiohttp
import pytest

from msa.centre.registry import Case
from msa.centre.server import start_centre
from msa.wire import protocol as hp

from backends import State, state  # noqa: F401
from pg import pg_database, pg_server  # noqa: F401
from staff import session_headers
from test_operator_page import BID, CENTRE_KEY, _alarm

BAD_NOTES = [("", 400), (" \n\t ", 400), ("x" * 4001, 400), ("nul\x00byte", 400),
             ("escape \x1b[2J", 400), (7, 400), (None, 400)]


@pytest.mark.parametrize("text, status", BAD_NOTES)
def test_a_bad_note_is_refused_with_nothing_stored(state: State, text: object,
                                                   status: int) -> None:
    async def body() -> None:
        running = await start_centre(state.config())
        try:
            running.centre.registry.register(BID, CENTRE_KEY, None)
            for m in _alarm(hp.Kind.ALARM, 4, 1, time.time()):
                running.centre.ingest(m)
            base = f"http://127.0.0.1:{running.operator_port}"
            own = session_headers(running.work, "olga", base=base)
            async with aiohttp.ClientSession() as s:
                async with s.post(base + "/api/incidents/INC-000001/notes", headers=own,
                                  json={"text": text}) as r:
                    assert r.status == status, await r.text()
            assert running.notes.for_incident(1) == []
            assert running.audit.entries() == []
        finally:
            await running.stop()
    asyncio.run(body())


def test_case_file_and_note_while_an_alarm_batch_is_open(state: State) -> None:
    async def body() -> None:
        running = await start_centre(state.config())
        try:
            reg = running.centre.registry
            reg.put_case(Case("CASE-9", "Vera", "+32470000009"))
            reg.register(BID, CENTRE_KEY, "CASE-9")
            for m in _alarm(hp.Kind.ALARM, 4, 2, time.time() - 20):
                running.centre.ingest(m)
            base = f"http://127.0.0.1:{running.operator_port}"
            own = session_headers(running.work, "olga", base=base)
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/api/incidents/INC-000001", headers=own) as r:
                    case = await r.json()
                assert (case["incident"], case["case"]["victim"], len(case["track"])) == \
                    ("INC-000001", "Vera", 2)
                async with s.get(base + "/api/incidents/INC-000042", headers=own) as r:
                    assert r.status == 404
                # A batch of alarms the loop has staged but not yet committed holds the
                # records' write lock: the note commits it first, and is then stored.
                running.centre._begin(synced=True)
                started = time.monotonic()
                async with s.post(base + "/api/incidents/INC-000001/notes", headers=own,
                                  json={"text": "  called her back\n"}) as r:
                    assert r.status == 201, await r.text()
                    answer = await r.json()
                assert time.monotonic() - started < 4.0  # not SQLite's 5 s lock wait
            notes = [e for e in answer["events"] if e["what"] == "note"]
            assert [(n["author"], n["text"]) for n in notes] == [("olga", "called her back")]
            assert [(e.action, e.subject) for e in running.audit.entries()] == \
                [("case.view", "INC-000001"), ("incident.note", "INC-000001")]
        finally:
            await running.stop()
    asyncio.run(body())


def test_the_report_takes_a_past_day_only(state: State) -> None:
    async def body() -> None:
        running = await start_centre(state.config())
        try:
            base = f"http://127.0.0.1:{running.operator_port}"
            own = session_headers(running.work, "sven", "supervisor", base=base)
            tomorrow = datetime.datetime.now(datetime.timezone.utc).date() + \
                datetime.timedelta(days=2)
            async with aiohttp.ClientSession() as s:
                for day, status in (("2026-02-30", 400), ("yesterday", 400), ("", 400),
                                    (tomorrow.isoformat(), 400), ("2026-01-02", 200)):
                    async with s.get(base + "/api/report", params={"day": day},
                                     headers=own) as r:
                        assert r.status == status, (day, await r.text())
            assert [e.subject for e in running.audit.entries()] == ["report:2026-01-02"]
        finally:
            await running.stop()
    asyncio.run(body())
