"""Retention (issue 15, part 5): each kind is pruned exactly past its limit and no further; an
open incident's track and an open alert's victim positions are never pruned; tag pruning keeps
what the operator's warnings read; audit pruning leaves a log that verifies from its anchor, in
which a later edit, a moved or deleted anchor, or a further deletion is still detected; an audit
retention under a year is refused; the running centre's task prunes and survives a failure."""
from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from backends import BACKENDS, State, make_state, sql, state  # noqa: F401
from pg import PostgresServer, pg_database, pg_server  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))

from hostile_kit import BID, CENTRE_KEY, fix, frame, key  # noqa: E402

from msa.centre.audit import AuditLog  # noqa: E402
from msa.centre.core import Centre, Inbound, Verdict  # noqa: E402
from msa.centre.errors import AuditError, CentreConfigError  # noqa: E402
from msa.centre.proximity import Change  # noqa: E402
from msa.centre.proxstore import ProximityStore  # noqa: E402
from msa.centre.registry import Case, Registry  # noqa: E402
from msa.centre.retention import (DAY_S, PRUNE_ACTOR, PruneReport, Retention,  # noqa: E402
                                  StatePaths, prune, run_retention)
from msa.centre.tags import Tags  # noqa: E402
from msa.wire.message import MessageKind  # noqa: E402
from msa.wire.protocol import Kind  # noqa: E402
from msa.wire.tag import TagReport  # noqa: E402

CASE = "C-H"


@pytest.fixture
def paths(state: State) -> Iterator[StatePaths]:
    p = state.paths
    registry = Registry(p.registry)
    registry.put_case(Case(CASE, "V. Victim", suspect="S. Suspect"))
    registry.put_case(Case("C-A", "A. Victim", suspect="T. Suspect"))
    registry.register(BID, CENTRE_KEY, CASE)
    registry.close()
    yield p


# --- the settings ---

@pytest.mark.parametrize("kwargs, key", [
    ({"audit_s": 364 * DAY_S}, "audit retention"),
    ({"audit_s": 365 * DAY_S - 1}, "audit retention"),
    ({"audit_s": 0.0}, "audit retention"),
    ({"tag_positions_s": -1.0}, "tag retention"),
    ({"resolved_tracks_s": float("nan")}, "track retention"),
    ({"victim_positions_s": 0.0}, "victim retention"),
    ({"tag_positions_s": True}, "tag retention"),
])
def test_bad_retentions_are_refused(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(CentreConfigError) as caught:
        Retention(**kwargs)
    assert caught.value.key == key


def test_a_year_of_audit_and_none_for_the_rest_are_fine() -> None:
    r = Retention(audit_s=365 * DAY_S)
    assert (r.tag_positions_s, r.resolved_tracks_s) == (None, None)


# --- victim positions: ProximityStore.prune, with the open alerts read from the record ---

def test_victim_positions_go_past_their_limit_except_an_open_alerts(paths: StatePaths) -> None:
    store = ProximityStore(Registry(paths.registry))
    for case in (CASE, "C-A"):
        for t in (0.0, 899.0, 900.0, 950.0):
            store.record_victim(case, t, t, 51.0, 3.7, 10.0)
    store.record(Change("alert", "C-A", "TAG-1", "victim", 800.0, 100.0))
    store.close()
    report = prune(paths, Retention(victim_positions_s=100.0), now=1000.0)
    assert report == PruneReport(victim_positions=2)
    left = sql(paths.registry, "SELECT case_ref, received_at FROM victim_positions"
                " ORDER BY case_ref, received_at")
    assert left == [("C-A", 0.0), ("C-A", 899.0), ("C-A", 900.0), ("C-A", 950.0),
                    (CASE, 900.0), (CASE, 950.0)]
    store = ProximityStore(Registry(paths.registry))
    store.record(Change("alert cleared", "C-A", "TAG-1", "victim", 990.0))
    store.close()
    assert prune(paths, Retention(victim_positions_s=100.0), now=1000.0).victim_positions == 2


# --- tag positions ---

def _report(t: float, tamper: bool = False, battery: float = 80.0) -> TagReport:
    return TagReport(51.0, 3.7, 5.0, t, battery, tamper)


def test_tag_positions_go_past_their_limit_and_the_warnings_stay(paths: StatePaths) -> None:
    registry = Registry(paths.registry)
    tags = Tags(registry)
    kept = tags.issue(CASE, 60, now=0.0).tag
    retired = tags.issue("C-A", 60, now=0.0).tag
    quiet = tags.issue(CASE, 60, now=0.0).tag
    for t, tamper in ((10.0, False), (20.0, True), (30.0, False), (45.0, False),
                      (50.0, False)):
        tags.record(kept, _report(t, tamper, battery=10.0), t)
    tags.record(retired, _report(5.0, True), 5.0)
    tags.record(retired, _report(6.0), 6.0)
    tags.record(quiet, _report(1.0), 1.0)  # its only report: kept, however old
    assert tags.retire(retired.tag_id)
    warnings = tags.warnings(1000.0)
    tags.close()
    registry.close()
    report = prune(paths, Retention(tag_positions_s=15.0), now=60.0)  # before 45.0
    assert report == PruneReport(tag_positions=3)  # kept's 10 and 30, retired's tamper at 5
    left = sql(paths.registry, "SELECT tag_id, received_at FROM tag_positions ORDER BY id")
    assert left == [(kept.tag_id, 20.0), (kept.tag_id, 45.0), (kept.tag_id, 50.0),
                    (retired.tag_id, 6.0), (quiet.tag_id, 1.0)]
    registry = Registry(paths.registry)
    tags = Tags(registry)
    assert tags.warnings(1000.0) == warnings
    assert {w["warning"] for w in warnings} == {"tag silent", "tag low battery",
                                                 "tag tampered"}
    tags.close()
    registry.close()


# --- tracks of resolved incidents ---

def _incident(centre: Centre, seq: int, at: float) -> None:
    alarm = Inbound("api", key(seq), MessageKind.ALARM, BID, frame(Kind.ALARM, seq),
                    fix(at), key(seq), received_at=at)
    assert centre.ingest(alarm).verdict is Verdict.ACCEPTED
    for n in (1, 2):
        update = Inbound("api", f"{key(seq)}/{n}", MessageKind.LOCATION, BID,
                         frame(Kind.ALARM, seq), fix(at + n), key(seq), n, received_at=at + n)
        assert centre.ingest(update).verdict is Verdict.ACCEPTED


def test_tracks_go_only_for_incidents_resolved_past_the_limit(paths: StatePaths) -> None:
    now = [0.0]
    registry = Registry(paths.registry)
    centre = Centre(paths.records, registry, clock=lambda: now[0])
    for seq in (1, 2, 3):
        _incident(centre, seq, 10.0 * seq)
    for seq, at in ((1, 1000.0), (2, 2000.0)):
        now[0] = at
        assert centre.resolve(key(seq))
    centre.close()
    registry.close()

    def points() -> dict[int, int]:
        return {int(i): int(n) for i, n in sql(
            paths.records, "SELECT incident, COUNT(*) FROM track GROUP BY incident")}
    assert points() == {1: 3, 2: 3, 3: 3}
    keep = Retention(resolved_tracks_s=500.0)
    assert prune(paths, keep, now=1500.0).track_points == 0  # resolved exactly at the limit
    assert prune(paths, keep, now=1500.5).track_points == 3
    assert points() == {2: 3, 3: 3}
    assert prune(paths, Retention(resolved_tracks_s=1.0), now=1e12).track_points == 3
    assert points() == {3: 3}  # the open incident's, though it opened long ago
    assert sql(paths.records, "SELECT COUNT(*) FROM incidents") == [(3,)]
    assert sql(paths.records, "SELECT COUNT(*) FROM messages") == [(9,)]


def test_kinds_left_at_none_are_kept(paths: StatePaths) -> None:
    audit = AuditLog(paths.audit)
    audit.append("alice", "case.view", CASE, "cli", at=0.0)
    audit.close()
    assert prune(paths, Retention(), now=1e12) == PruneReport()
    assert sql(paths.audit, "SELECT COUNT(*) FROM entries") == [(1,)]


def test_prune_refuses_a_folder_without_registry(tmp_path: Path) -> None:
    # SQLite only: a folder holding no file (a database that is not there: the test below).
    with pytest.raises(CentreConfigError, match="no registry"):
        prune(StatePaths.of(tmp_path), Retention(), now=0.0)
    assert list(tmp_path.iterdir()) == []


# --- the audit log ---

@pytest.fixture
def log(state: State) -> Iterator[AuditLog]:
    audit = AuditLog(state.audit)
    for i in range(10):
        audit.append(f"op{i}", "case.view", CASE, "10.0.0.7", {"i": i}, at=i * DAY_S)
    yield audit
    audit.close()


def _raw(log: AuditLog, statement: str, args: tuple[Any, ...] = ()) -> None:
    """A tamper behind the log's back, on its own connection."""
    sql(log.place, statement, args)


def test_audit_prune_removes_a_prefix_and_still_verifies(log: AuditLog) -> None:
    fifth = log.entries()[4]
    assert log.prune(5 * DAY_S, "centre:retention", "centre") == 5  # the one at 5 days stays
    kept = log.entries()
    assert [e.seq for e in kept] == [6, 7, 8, 9, 10, 11]
    assert kept[0].prev_hash == fifth.hash
    last = kept[-1]
    assert (last.action, last.actor, last.source) == ("audit.prune", "centre:retention",
                                                       "centre")
    assert last.detail == {"through_seq": 5, "through_hash": fifth.hash.hex(), "removed": 5,
                           "before_at": 5 * DAY_S}
    result = log.verify()
    assert (result.ok, result.entries) == (True, 6), result.reason
    assert log.head() == (11, last.hash)
    assert log.prune(5 * DAY_S, "centre:retention", "centre") == 0  # nothing more: no entry
    assert log.head() == (11, last.hash)
    log.append("alice", "case.view", CASE, "cli")
    assert log.verify().ok


def test_a_second_prune_moves_the_anchor_and_verifies(log: AuditLog) -> None:
    log.prune(3 * DAY_S, "a", "cli")
    assert log.prune(8 * DAY_S, "a", "cli") == 5  # seq 4..8
    assert [e.seq for e in log.entries()] == [9, 10, 11, 12]
    assert log.verify().ok


def test_only_a_prefix_goes_when_times_are_out_of_order(state: State) -> None:
    log = AuditLog(state.audit)
    for at in (0.0, 10 * DAY_S, 1 * DAY_S):
        log.append("alice", "case.view", CASE, "cli", at=at)
    assert log.prune(5 * DAY_S, "a", "cli") == 1  # the old third entry waits for the second
    assert [e.seq for e in log.entries()] == [2, 3, 4] and log.verify().ok
    log.close()


@pytest.mark.parametrize("tamper, bad_seq", [
    ("UPDATE entries SET actor = 'mallory' WHERE seq = 8", 8),  # a later edit
    ("UPDATE entries SET detail = '{}' WHERE seq = 11", 11),  # the prune entry's claim
    ("DELETE FROM entries WHERE seq = 6", 6),  # one more from the front
    ("DELETE FROM anchor", 1),  # the chain then claims to start at 1
    ("UPDATE anchor SET seq = 4", 5),
    ("UPDATE anchor SET hash = ?", 6),  # 32 zero bytes
])
def test_after_a_prune_tampering_is_still_detected(log: AuditLog, tamper: str,
                                                   bad_seq: int) -> None:
    log.prune(5 * DAY_S, "a", "cli")
    _raw(log, tamper, (bytes(32),) if "?" in tamper else ())
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == bad_seq, result.reason


def test_moving_the_anchor_to_hide_more_is_detected(log: AuditLog) -> None:
    # Deleting seq 6 and anchoring at its true hash leaves a chain that links: only the
    # newest audit.prune entry's claim (through seq 5) catches it.
    log.prune(5 * DAY_S, "a", "cli")
    sixth = log.entries()[0]
    _raw(log, "DELETE FROM entries WHERE seq = 6")
    _raw(log, "UPDATE anchor SET seq = 6, hash = ?", (sixth.hash,))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 11)
    assert "claims" in result.reason


def test_prune_refuses_a_log_that_does_not_verify(log: AuditLog) -> None:
    _raw(log, "UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(AuditError, match="does not verify at seq 2"):
        log.prune(5 * DAY_S, "a", "cli")
    assert len(log.entries()) == 10  # the evidence of the edit stays


def test_prune_through_retention_names_the_centre(paths: StatePaths) -> None:
    audit = AuditLog(paths.audit)
    for day in (0, 100, 400):
        audit.append("alice", "case.view", CASE, "cli", at=day * DAY_S)
    audit.close()
    report = prune(paths, Retention(audit_s=365 * DAY_S), now=400 * DAY_S)
    assert report == PruneReport(audit_entries=1)
    audit = AuditLog(paths.audit)
    assert audit.verify().ok and audit.entries()[-1].actor == PRUNE_ACTOR
    audit.close()


# --- the running centre's task ---

@pytest.mark.parametrize("backend", BACKENDS)
def test_run_retention_prunes_and_survives_a_failed_prune(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # No registry yet, so the first prunes fail: a state folder without its files, or a
    # database that does not exist yet.
    server: PostgresServer | None = None
    later = "msa_later_" + os.urandom(4).hex()
    made: list[str] = []
    if backend == "postgresql":
        server = request.getfixturevalue("pg_server")
        paths = StatePaths.of(tmp_path / "state", server.dsn_for(later))
    else:
        paths = StatePaths.of(tmp_path / "state")

    def make_aside() -> None:
        """Made aside and renamed into place: a prune sees nothing or the whole of it."""
        if server is None:
            aside = make_state(tmp_path / "aside", None)
        else:
            name, dsn = server.new_database()
            made.append(name)
            aside = make_state(tmp_path / "aside", dsn)
        registry = Registry(aside.registry)
        store = ProximityStore(registry)
        store.record_victim(CASE, 1.0, 1.0, 51.0, 3.7, 10.0)
        store.close()
        registry.close()
        if server is None:
            os.rename(tmp_path / "aside", tmp_path / "state")
        else:
            with psycopg.connect(server.dsn, autocommit=True) as admin:
                admin.execute(pgsql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    pgsql.Identifier(name), pgsql.Identifier(later)))

    async def main() -> PruneReport:
        pruned = asyncio.Event()
        got: list[PruneReport] = []

        def on_pruned(report: PruneReport) -> None:
            got.append(report)
            pruned.set()
        task = asyncio.create_task(run_retention(paths, Retention(victim_positions_s=10.0),
                                                 lambda: 1000.0, 0.01, on_pruned))
        await asyncio.sleep(0)
        make_aside()
        try:
            await asyncio.wait_for(pruned.wait(), 60)
        finally:
            task.cancel()
        return got[0]

    try:
        assert asyncio.run(main()) == PruneReport(victim_positions=1)
    finally:
        if server is not None:
            with psycopg.connect(server.dsn, autocommit=True) as admin:
                for name in (later, *made):
                    admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        pgsql.Identifier(name)))


def _meanwhile(log: AuditLog, monkeypatch: pytest.MonkeyPatch, act: Any) -> None:
    """Runs `act` right after prune()'s snapshot verify, before it takes the write lock (as
    another process appending then would)."""
    verify = log._verify_locked

    def verify_then_act() -> Any:
        found = verify()
        act()
        return found
    monkeypatch.setattr(log, "_verify_locked", verify_then_act)


def test_entries_appended_while_prune_verifies_are_kept_and_checked(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    other = AuditLog(log.place)
    _meanwhile(log, monkeypatch, lambda: other.append("bob", "case.view", CASE, "cli"))
    assert log.prune(5 * DAY_S, "a", "cli") == 5
    monkeypatch.undo()
    assert [e.actor for e in log.entries()[-2:]] == ["bob", "a"] and log.verify().ok
    other.close()


def test_an_edit_while_prune_verifies_refuses_the_prune(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    _meanwhile(log, monkeypatch, lambda: _raw(
        log, "UPDATE entries SET hash = ? WHERE seq = 10", (bytes(32),)))
    with pytest.raises(AuditError, match="changed while it was verified"):
        log.prune(5 * DAY_S, "a", "cli")
    assert len(log.entries()) == 10


def test_run_retention_beside_a_running_centre(state: State) -> None:
    # As the lead wires it: the task on the centre's own loop, the centre's connections open.
    from msa.centre.server import start_centre

    async def main() -> tuple[PruneReport, list[float]]:
        running = await start_centre(state.config())
        try:
            running.centre.registry.put_case(Case(CASE, "V. Victim", suspect="S. Suspect"))
            tag = running.tags.issue(CASE, 60, now=0.0).tag
            for t in (1.0, 2.0, 95.0):
                running.tags.record(tag, _report(t), t)
            got: list[PruneReport] = []
            pruned = asyncio.Event()

            def on_pruned(report: PruneReport) -> None:
                got.append(report)
                pruned.set()
            task = asyncio.create_task(run_retention(
                state.paths, Retention(tag_positions_s=10.0),
                lambda: 100.0, on_pruned=on_pruned))
            try:
                await asyncio.wait_for(pruned.wait(), 60)
            finally:
                task.cancel()
            left = [float(str(p["received_at"])) for p in running.tags.positions(tag.tag_id)]
            return got[0], left
        finally:
            await running.stop()

    report, left = asyncio.run(main())
    assert report == PruneReport(tag_positions=2) and left == [95.0]
