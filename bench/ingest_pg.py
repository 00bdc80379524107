"""Centre ingest on PostgreSQL beside SQLite, and the failover gap of two centre nodes (issue 17;
docs/performance.md, "ingest"): part of the `ingest` section.

A throw-away PostgreSQL (msa.simulator.pgserver: Debian's server in a temp folder, fsync on)
holds a fleet's registry and records; the same mixed stream as bench/ingest.py goes through
Centre.submit on it and, alternating run by run, on a state folder's SQLite files, so that the
ratio compares like with like. The floors are each database's own commit: a one-row
transaction, waited for on disk or not. The failover gap is simulator/nodes.py's drill: two
`msa centre run` processes, a fleet through both, one SIGKILLed again and again.

Without PostgreSQL (not installed, or this user may not run it) the figures say so and carry
no value.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path

import psycopg

from msa.centre.core import Centre
from msa.centre.migrations import migrate_all
from msa.centre.registry import Registry
from msa.common.sqlite import open_wal
from msa.simulator.nodes import DEADLINE_S, drill
from msa.wire.message import MessageKind
from msa.simulator.pgserver import PostgresServer, PostgresUnavailable, start_server

from .figures import Better, Figure, Options, median, rate
from .ingest_load import Fleet, Item, build_fleet, drive, fix, fleet_minute, quiet

SECTION = "ingest"
TARGET = 5000.0  # frames/s, as on SQLite (issue 6)
GAP_TARGET_S = 2.0  # issue 17: a host's ACK from the other node within 2 s of a kill
SMS_FALLBACK_S = 5.0  # the dispatcher's, after which the SMS goes anyway
IN_FLIGHT = 32
KILLS = 8  # at scale 1 (the tests' drill does 20)


def _pg_commits(url: str, synced: bool, n: int) -> float:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS bench_commit (k BIGSERIAL PRIMARY KEY,"
                   " v BYTEA NOT NULL)")
        db.execute(f"SET synchronous_commit = {'on' if synced else 'off'}")
        return rate(n, lambda i: db.execute("INSERT INTO bench_commit (v) VALUES (%s)",
                                             (b"x" * 64,)))


def _pg_round_trips(url: str, n: int) -> float:
    with psycopg.connect(url, autocommit=True) as db:
        return rate(n, lambda i: db.execute("SELECT 1"))


def _sqlite_commits(path: Path, n: int) -> float:
    db = open_wal(str(path), ("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY,"
                              " v BLOB NOT NULL)",), "FULL")
    try:
        return rate(n, lambda i: db.execute("INSERT INTO t (v) VALUES (?)", (b"x" * 64,)))
    finally:
        db.close()


def _mixed(fleet: Fleet, records: Path | str, options: Options, rng: random.Random
           ) -> tuple[float, float]:
    """(mixed stream at IN_FLIGHT, alarms one at a time) on a warm centre."""
    registry = Registry(fleet.registry)
    centre = Centre(records, registry)
    try:
        drive(centre, fleet_minute(fleet, rng, time.time(), fleet.ids[:options.count(2000)]),
              IN_FLIGHT)  # warm: keys derived, connections prepared
        sample = rng.sample(fleet.ids, min(len(fleet.ids), options.count(20_000)))
        mixed = drive(centre, fleet_minute(fleet, rng, time.time(), sample), IN_FLIGHT).rate
        alarms = [Item("alarm", fleet.message(b, MessageKind.ALARM, time.time(),
                                              fix(rng, time.time())))
                  for b in rng.sample(fleet.ids, min(len(fleet.ids), options.count(500)))]
        return mixed, drive(centre, alarms).rate
    finally:
        centre.close()
        registry.close()


def _unavailable(why: str) -> list[Figure]:
    return [Figure(SECTION, name, None, unit, None, Better.HIGHER, "", f"not measured: {why}")
            for name, unit in (("PostgreSQL: mixed stream", "frames/s"),
                               ("two nodes: kill -> other node's ACK", "s"))]


def run(options: Options) -> list[Figure]:
    root = options.root / "ingest-pg"
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        return _unavailable(exc.what)
    try:
        return _measure(root, server, options)
    finally:
        server.stop()


def _measure(root: Path, server: PostgresServer, options: Options) -> list[Figure]:
    rng = random.Random(options.seed + 17)
    size = options.count(20_000)
    _, url = server.new_database()
    migrate_all(url)
    pg_fleet = build_fleet(root / "pg", size, random.Random(options.seed), database=url)
    sq_fleet = build_fleet(root / "sqlite", size, random.Random(options.seed))
    s: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        s.setdefault(name, []).append(value)

    with quiet():
        for _ in range(options.runs):  # alternating: the machine's noise falls on both
            pg = _mixed(pg_fleet, url, options, rng)
            sq = _mixed(sq_fleet, root / "sqlite" / "records.db", options, rng)
            for name, (mixed, alarms) in (("pg", pg), ("sqlite", sq)):
                add(f"{name} mixed", mixed)
                add(f"{name} alarms 1", alarms)
            add("ratio", pg[0] / sq[0])
            add("pg on", _pg_commits(url, True, options.count(1000)))
            add("pg off", _pg_commits(url, False, options.count(5000)))
            add("pg trip", _pg_round_trips(url, options.count(5000)))
            add("sqlite full", _sqlite_commits(root / "commit.db", options.count(1000)))
    _, drill_url = server.new_database()
    migrate_all(drill_url)
    result = asyncio.run(drill(root / "drill", drill_url, kills=max(2, options.count(KILLS))))
    if result.problems:
        raise RuntimeError(f"the failover drill lost or doubled messages: {result.problems}")
    return _figures({k: median(v) for k, v in s.items()}, s, size, result.gaps_s,
                    [max(k.gaps_s) for k in result.kills], result.messages)


def _figures(f: dict[str, float], s: dict[str, list[float]], size: int, gaps: list[float],
             worst: list[float], messages: int) -> list[Figure]:
    trip_us = 1e6 / f["pg trip"]
    floor = (f"one round trip to the server {trip_us:.0f} µs, and a message takes 3 (a"
             " heartbeat) to 11 (an alarm with a position) statements; one commit:"
             f" PostgreSQL {f['pg on']:,.0f}/s synced, {f['pg off']:,.0f}/s not"
             f" (synchronous_commit off); SQLite FULL {f['sqlite full']:,.0f}/s")

    def spread(key: str) -> str:
        v = s[key]
        return f"median of {len(v)} runs, {min(v):,.0f}–{max(v):,.0f}"

    return [
        Figure(SECTION, "PostgreSQL: mixed stream", f["pg mixed"], "frames/s", TARGET,
               Better.HIGHER, floor, f"{size:,} buttons' mix, {IN_FLIGHT} in flight (group"
               f" commit), a throw-away server on this machine; {spread('pg mixed')}"),
        Figure(SECTION, "SQLite: the same mixed stream, alternating", f["sqlite mixed"],
               "frames/s", TARGET, Better.HIGHER, floor, spread("sqlite mixed")),
        Figure(SECTION, "PostgreSQL ÷ SQLite, mixed stream", f["ratio"], "×", None,
               Better.HIGHER, "", f"median of the runs' ratios {min(s['ratio']):.2f}–"
               f"{max(s['ratio']):.2f}: a round trip to the server per statement"),
        Figure(SECTION, "PostgreSQL: alarms one at a time", f["pg alarms 1"], "frames/s",
               TARGET, Better.HIGHER, f"one synced commit {f['pg on']:,.0f}/s",
               f"Centre.ingest, each committed and synced before it returns;"
               f" SQLite {f['sqlite alarms 1']:,.0f}/s"),
        Figure(SECTION, "two nodes: kill -> other node's ACK, median", statistics.median(gaps),
               "s", GAP_TARGET_S, Better.LOWER, f"the channel's deadline {DEADLINE_S:g} s;"
               f" the SMS fallback at {SMS_FALLBACK_S:g} s",
               f"{len(worst)} SIGKILLs mid-stream, {len(gaps)} host waits; {messages:,}"
               " messages, 0 lost, 0 counted twice"),
        Figure(SECTION, "two nodes: kill -> other node's ACK, worst host", max(gaps), "s",
               GAP_TARGET_S, Better.LOWER, f"the channel's deadline {DEADLINE_S:g} s",
               f"per kill the slowest host's wait: median {statistics.median(worst):.3f} s"),
    ]
