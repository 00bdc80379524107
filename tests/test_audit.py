"""The centre's audit log, on SQLite and on PostgreSQL: entries round-trip, the chain and head
catch edits made to the database behind the log's back (plain sqlite3, plain psycopg),
appenders in two processes share one chain, bad input writes nothing."""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from backends import State, sql, state  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.audit import GENESIS, AuditLog, entry_hash
from msa.centre.errors import AuditError
from msa.centre.storage import Engine

@pytest.fixture
def log(state: State) -> Iterator[AuditLog]:
    audit = AuditLog(state.audit)
    yield audit
    audit.close()


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append(f"op{i}", "case.view", f"CASE-{i}", "10.0.0.7", {"i": i, "why": "alarm"},
                   at=1_700_000_000.0 + i)


def _raw(log: AuditLog, statement: str, args: tuple[Any, ...] = ()) -> None:
    # What someone with the file or the database's password would do: another connection,
    # no AuditLog involved.
    sql(log.place, statement, args)


def test_append_and_verify_round_trip(log: AuditLog) -> None:
    assert log.verify().ok and log.verify().entries == 0
    first = log.append("alice", "case.view", "CASE-1", "127.0.0.1", {"b": 1, "a": [1.5, None]},
                       at=1_700_000_000.25)
    second = log.append("bob", "alarm.resolve", "INC-7", "cli")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert first.detail_json == '{"a":[1.5,null],"b":1}'
    assert second.detail == {}
    assert log.entries() == [first, second]
    assert log.entries(since_seq=1) == [second]
    assert first.hash == entry_hash(1, 1_700_000_000.25, "alice", "case.view", "CASE-1",
                                    "127.0.0.1", first.detail_json, GENESIS)
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_seq) == (True, 2, None)
    assert log.head() == (2, second.hash)


@pytest.mark.parametrize("at", [-0.0, 0.0, 1e300, -5e-324, 1_700_000_000.123456789])
def test_any_finite_time_verifies(log: AuditLog, at: float) -> None:
    # SQLite returns -0.0 as 0.0: the entry must hash what is stored, not what was given.
    log.append("alice", "case.view", "CASE-1", "cli", at=at)
    assert log.verify().ok and log.entries()[0].at == at


def test_entries_survive_reopening(state: State) -> None:
    audit = AuditLog(state.audit)
    entry = audit.append("alice", "note.add", "INC-1", "cli", {"text": "called back"})
    audit.close()
    again = AuditLog(state.audit)
    assert again.entries() == [entry] and again.verify().ok
    again.close()


def test_entry_hash_golden_vector() -> None:
    # Written out by hand, so an offline verifier can re-implement the encoding from this.
    text = ('["msa-audit-1",3,1700000000.5,"alice","case.view","CASE-1","10.0.0.7",'
            '"{\\"a\\":1}","' + "ab" * 32 + '"]')
    assert entry_hash(3, 1_700_000_000.5, "alice", "case.view", "CASE-1", "10.0.0.7",
                      '{"a":1}', bytes.fromhex("ab" * 32)) == hashlib.sha256(text.encode()).digest()
    assert entry_hash(4, 1_700_000_000.5, "alice", "case.view", "CASE-1", "10.0.0.7",
                      '{"a":1}', bytes.fromhex("ab" * 32)) != hashlib.sha256(text.encode()).digest()


def test_the_encoding_is_unambiguous() -> None:
    # Plain concatenation would hash "ab"+"c" and "a"+"bc" alike.
    one = entry_hash(1, 1.0, "ab", "c", "s", "cli", "{}", GENESIS)
    two = entry_hash(1, 1.0, "a", "bc", "s", "cli", "{}", GENESIS)
    assert one != two


# The wrong-typed edits below that PostgreSQL's columns refuse (SQLite stores anything).
WRONG_TYPES_PG = {("at", str), ("at", bytes)}


@pytest.mark.parametrize("column, value", [
    ("seq", 100), ("at", 1.5), ("actor", "mallory"), ("action", "case.ignore"),
    ("subject", "CASE-X"), ("source", "10.9.9.9"), ("detail", '{"i":99}'),
    ("detail", '{"why": "alarm", "i": 2}'),  # the same JSON, not canonically written
    ("prev_hash", bytes(32)), ("hash", b"\x01" * 32), ("at", "yesterday"),
    ("at", b"\x00"), ("detail", b"{}"), ("hash", "ab" * 32),  # wrong types: no crash either
])
@pytest.mark.parametrize("seq", [1, 3, 5])
def test_editing_any_column_of_any_entry_fails_at_that_seq(
        log: AuditLog, column: str, value: object, seq: int) -> None:
    _fill(log)
    if column == "prev_hash" and seq == 1:
        value = b"\x02" * 32  # entry 1's prev_hash already is zeros
    if log.place.kind is Engine.POSTGRESQL and (column, type(value)) in WRONG_TYPES_PG:
        # PostgreSQL's typed columns refuse the edit itself: the log stays as it was.
        with pytest.raises((psycopg.DataError, psycopg.ProgrammingError)):
            _raw(log, f"UPDATE entries SET {column} = ? WHERE seq = ?", (value, seq))
        assert log.verify().ok
        return
    _raw(log, f"UPDATE entries SET {column} = ? WHERE seq = ?", (value, seq))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == seq, result.reason


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(log: AuditLog) -> None:
    _fill(log)
    e = log.entries()[1]
    forged = entry_hash(2, e.at, "mallory", e.action, e.subject, e.source, e.detail_json,
                        e.prev_hash)
    _raw(log, "UPDATE entries SET actor = 'mallory', hash = ? WHERE seq = 2", (forged,))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "chain" in result.reason


def test_deleting_a_middle_entry_is_detected(log: AuditLog) -> None:
    _fill(log)
    _raw(log, "DELETE FROM entries WHERE seq = 3")
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 4, 3)


def test_deleting_the_last_entry_is_caught_by_the_head(log: AuditLog) -> None:
    _fill(log)
    _raw(log, "DELETE FROM entries WHERE seq = 5")
    result = log.verify()
    assert (result.ok, result.entries, result.first_bad_seq) == (False, 4, 5)
    with pytest.raises(AuditError, match="disagree"):
        log.append("alice", "case.view", "CASE-1", "cli")  # no entry onto a broken log
    assert len(log.entries()) == 4


def test_deleting_the_tail_and_fixing_the_head_needs_an_anchor(log: AuditLog) -> None:
    # The documented limit: the chain alone verifies; the exported head does not match.
    _fill(log)
    anchor = log.head()
    fourth = log.entries()[3]
    _raw(log, "DELETE FROM entries WHERE seq = 5")
    _raw(log, "UPDATE head SET count = 4, hash = ?", (fourth.hash,))
    assert log.verify().ok
    assert log.head() != anchor


def test_replacing_the_last_entry_is_caught_by_the_head(log: AuditLog) -> None:
    _fill(log)
    prev = log.entries()[3].hash
    _raw(log, "DELETE FROM entries WHERE seq = 5")
    forged = entry_hash(5, 1.0, "mallory", "case.view", "CASE-1", "cli", "{}", prev)
    _raw(log, "INSERT INTO entries VALUES (5, 1.0, 'mallory', 'case.view', 'CASE-1', 'cli',"
         " '{}', ?, ?)", (prev, forged))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "head" in result.reason


def test_a_gap_in_seqs_is_refused_even_when_chain_and_head_agree(log: AuditLog) -> None:
    # Renumbering the last entry and its hash (and the head) leaves every link intact.
    _fill(log)
    e = log.entries()[4]
    forged = entry_hash(7, e.at, e.actor, e.action, e.subject, e.source, e.detail_json,
                        e.prev_hash)
    _raw(log, "UPDATE entries SET seq = 7, hash = ? WHERE seq = 5", (forged,))
    _raw(log, "UPDATE head SET hash = ?", (forged,))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "seq" in result.reason


def test_a_head_of_the_wrong_type_is_an_audit_error(tmp_path: Path) -> None:
    # SQLite only: PostgreSQL's typed column refuses a text count (WRONG_TYPES_PG).
    log = AuditLog(tmp_path / "audit.db")
    _fill(log, 2)
    _raw(log, "UPDATE head SET count = 'two'")
    assert not log.verify().ok
    with pytest.raises(AuditError, match="head"):
        log.append("alice", "case.view", "CASE-1", "cli")


def test_deleting_the_head_is_detected(log: AuditLog) -> None:
    _fill(log, 2)
    _raw(log, "DELETE FROM head")
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 1)


def test_swapping_two_entries_is_detected(log: AuditLog) -> None:
    _fill(log)
    _raw(log, "UPDATE entries SET seq = -2 WHERE seq = 2")
    _raw(log, "UPDATE entries SET seq = 2 WHERE seq = 4")
    _raw(log, "UPDATE entries SET seq = 4 WHERE seq = -2")
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)


@pytest.mark.parametrize("where", ["middle", "end"])
def test_inserting_an_entry_is_detected(log: AuditLog, where: str) -> None:
    _fill(log)
    if where == "middle":  # shift 3.. up by one and put a forged entry 3 in between
        for seq in (5, 4, 3):
            _raw(log, "UPDATE entries SET seq = ? WHERE seq = ?", (seq + 1, seq))
        prev = log.entries()[1].hash
        new_seq, expected_bad = 3, 4  # the forgery chains onto 2; the old 3 no longer links
    else:  # a correctly chained entry 6, but the head not told
        prev = log.entries()[4].hash
        new_seq, expected_bad = 6, 6
    forged = entry_hash(new_seq, 1.0, "mallory", "case.view", "CASE-1", "cli", "{}", prev)
    _raw(log, "INSERT INTO entries VALUES (?, 1.0, 'mallory', 'case.view', 'CASE-1', 'cli',"
         " '{}', ?, ?)", (new_seq, prev, forged))
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, expected_bad), result.reason


def test_two_logs_on_one_file_share_one_chain(state: State) -> None:
    one, two = AuditLog(state.audit), AuditLog(state.audit)
    a = one.append("alice", "case.view", "CASE-1", "cli")
    b = two.append("bob", "case.view", "CASE-2", "cli")
    c = one.append("alice", "note.add", "CASE-1", "cli")
    assert (b.seq, b.prev_hash, c.seq, c.prev_hash) == (2, a.hash, 3, b.hash)
    assert one.verify().ok and two.verify().entries == 3
    one.close()
    two.close()


_APPENDER = """
import sys
from msa.centre.audit import AuditLog
log = AuditLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    log.append(sys.argv[2], "case.view", f"CASE-{i}", "cli", {"i": i})
"""


def test_two_processes_appending_at_once_never_fork_the_chain(state: State,
                                                              tmp_path: Path) -> None:
    # The file, or the database's URL (AuditLog takes either).
    path = state.database or state.audit.target
    AuditLog(path).close()  # the schema exists before both start
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, path, who, "60"],
                              cwd=tmp_path, stderr=subprocess.PIPE)
             for who in ("alice", "bob")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    log = AuditLog(path)
    result = log.verify()
    assert (result.ok, result.entries) == (True, 120), result.reason
    actors = [e.actor for e in log.entries()]
    assert actors.count("alice") == actors.count("bob") == 60
    log.close()


@pytest.mark.parametrize("kwargs, why", [
    ({"actor": ""}, "actor"), ({"action": "x" * 201}, "action"),
    ({"subject": "CASE-1\nforged line"}, "subject"), ({"source": "\x1b[2J"}, "source"),
    ({"actor": 7}, "actor"), ({"detail": {"x": math.nan}}, "finite"),
    ({"detail": {"x": [math.inf]}}, "finite"), ({"detail": {1: "a"}}, "keys"),
    ({"detail": {"x": b"raw"}}, "bytes"), ({"detail": {"x": (1, 2)}}, "tuple"),
    ({"detail": ["not", "a", "dict"]}, "dict"), ({"detail": {"x": "y" * 70_000}}, "at most"),
    ({"at": math.nan}, "finite"), ({"at": "now"}, "finite"), ({"at": True}, "finite"),
])
def test_bad_input_is_refused_and_nothing_written(log: AuditLog, kwargs: dict[str, Any],
                                                  why: str) -> None:
    _fill(log, 2)
    before = log.head()
    args: dict[str, Any] = {"actor": "alice", "action": "case.view", "subject": "CASE-1",
                            "source": "cli", **kwargs}
    with pytest.raises(AuditError, match=why) as caught:
        log.append(**args)
    assert caught.value.path == log.path
    assert log.head() == before and len(log.entries()) == 2 and log.verify().ok


_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn",
                                                    "Cf", "Zs")), min_size=1, max_size=20)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT, _TEXT,
                          st.dictionaries(st.text(max_size=5), _JSON, max_size=3),
                          st.floats(allow_nan=False, allow_infinity=False)), max_size=8))
def test_any_sequence_of_appends_verifies(tmp_path: Path, appends: list[Any]) -> None:
    # SQLite only: a fresh log per example (a PostgreSQL database each would cost ten times).
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        _appends_verify(AuditLog(Path(folder) / "audit.db"), appends)


def _appends_verify(log: AuditLog, appends: list[Any]) -> None:
    for actor, action, subject, source, detail, at in appends:
        entry = log.append(actor, action, subject, source, detail, at=at)
        assert entry.detail == detail and entry.at == at
    result = log.verify()
    assert (result.ok, result.entries) == (True, len(appends)), result.reason
    assert [e.seq for e in log.entries()] == list(range(1, len(appends) + 1))
    log.close()
