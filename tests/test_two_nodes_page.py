"""Two started centres on one PostgreSQL (issue 17): an alarm committed by one node reaches the
other node's operator page by its event stream (NOTIFY/LISTEN, then /api/events), not by a
poll, and a resolve on that page shows on the first node's."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from hostile_kit import BID, CENTRE_KEY, frame, key  # noqa: E402

from msa.centre.core import Inbound, Verdict  # noqa: E402
from msa.centre.migrations import migrate_all  # noqa: E402
from msa.centre.registry import Case  # noqa: E402
from msa.centre.server import CentreConfig, RunningCentre, start_centre  # noqa: E402
from msa.wire.message import MessageKind  # noqa: E402
from msa.wire.protocol import Kind  # noqa: E402

from pg import pg_database, pg_server  # noqa: E402,F401
from staff import cheap, session_headers  # noqa: E402,F401

WAIT_S = 10.0  # for what comes in milliseconds (a NOTIFY on loopback), on a busy machine


async def _listening(url: str, nodes: int) -> None:
    """Until `nodes` centres LISTEN on the database (their follow() connections are up): an
    event seen after this is a commit's, not a connection's first wake-up."""
    deadline = time.monotonic() + WAIT_S
    while True:
        async with await psycopg.AsyncConnection.connect(url) as db:
            cur = await db.execute("SELECT count(*) FROM pg_stat_activity WHERE"
                                   " application_name = 'msa-centre-listen' AND"
                                   " query LIKE 'LISTEN%'")
            row = await cur.fetchone()
        if row is not None and row[0] >= nodes:
            return
        assert time.monotonic() < deadline, "the nodes never listened"
        await asyncio.sleep(0.05)


async def _event(stream: aiohttp.ClientResponse) -> str:
    """The next event's data (keep-alive comments and the retry line are skipped)."""
    while True:
        line = (await asyncio.wait_for(stream.content.readline(), WAIT_S)).decode()
        if line.startswith("data:"):
            return line[5:].strip()


async def _until_shown(s: aiohttp.ClientSession, base: str, headers: dict[str, str],
                       stream: aiohttp.ClientResponse, ref: str, status: str) -> float:
    """Reads the page's event stream; at each event reads the state, as the page does, until
    incident `ref` shows with `status`. How long it took."""
    start = time.monotonic()
    while True:
        await _event(stream)
        async with s.get(f"{base}/api/state", headers=headers) as r:
            assert r.status == 200
            shown = {i["incident"]: i["status"] for i in (await r.json())["incidents"]}
        if shown.get(ref) == status:
            return time.monotonic() - start


def test_an_alarm_on_one_node_is_live_on_the_other_s_page_and_back(
        tmp_path: Path, pg_database: str, cheap: None) -> None:
    migrate_all(pg_database)

    async def body() -> tuple[float, float]:
        nodes: list[RunningCentre] = []
        try:
            for name in ("a", "b"):
                nodes.append(await start_centre(CentreConfig(state_dir=tmp_path / name,
                                                             database=pg_database)))
            a, b = nodes
            a.centre.registry.put_case(Case("C-1", "V. Victim"))
            a.centre.registry.register(BID, CENTRE_KEY, "C-1")
            bases = [f"http://127.0.0.1:{n.operator_port}" for n in nodes]
            olga = session_headers(b.work, "olga")  # accounts are shared: one for both pages
            await _listening(pg_database, 2)
            async with aiohttp.ClientSession() as s:
                streams = [await s.get(f"{base}/api/events", headers=olga) for base in bases]
                try:
                    for stream in streams:
                        assert stream.status == 200
                        assert stream.headers["Content-Type"] == "text/event-stream"
                        await _event(stream)  # the count as the stream opens: nothing new
                    alarm = Inbound("https", key(1), MessageKind.ALARM, BID,
                                    frame(Kind.ALARM, 1))
                    got = await a.centre.submit(alarm)
                    assert got.verdict is Verdict.ACCEPTED
                    to_b = await _until_shown(s, bases[1], olga, streams[1], got.incident,
                                              "open")
                    async with s.post(f"{bases[1]}/api/incidents/{got.incident}/resolve",
                                      headers=session_headers(b.work, "oskar",
                                                              base=bases[1])) as r:
                        assert r.status == 200, await r.text()
                    to_a = await _until_shown(s, bases[0], olga, streams[0], got.incident,
                                              "resolved")
                finally:
                    for stream in streams:
                        stream.close()
            return to_b, to_a
        finally:
            for n in nodes:
                await n.stop()
    to_b, to_a = asyncio.run(asyncio.wait_for(body(), 120))
    print(f"alarm on A shown on B's page after {to_b:.3f} s; B's resolve on A's after {to_a:.3f} s")
    assert to_b < WAIT_S and to_a < WAIT_S
