"""Exact values the audit log, the evidence check and the centre's read side promise, where
mutation testing found a change that no other test noticed (docs/testing.md lists them): the
audit log's limits, refusals and verdicts with their seq and reason, pruning at its edges, each
evidence check's own finding on a bundle changed (and re-signed) in one way, and the records'
reads field by field. Real AuditLog, Centre and Registry on tmp_path, real bundles."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msa.centre.audit import (DETAIL_MAX, FIELD_MAX, GENESIS, PRUNE_ACTION, AuditLog,
                              canonical_detail, entry_hash)
from msa.centre.core import Centre, Inbound, Verdict
from msa.centre.errors import AuditError
from msa.centre.evidence import canonical, export
from msa.centre.evidence_check import (MANIFEST, MAX_FILE_BYTES, SIGNATURE, Check,
                                       content_digest, verify, verify_bundle)
from msa.centre.registry import Registry
from msa.centre.signing import SigningKey, fingerprint, signing_key
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

T = 1_700_000_000.0


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(tmp_path / "audit.db")
    yield audit
    audit.close()


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(f"op{i}", "case.view", f"CASE-{i % 2}", "10.0.0.7", {"i": i}, at=T + i)


def _raw(log: AuditLog, sql: str, args: tuple[Any, ...] = ()) -> None:
    # What someone holding the file would do: another connection, no AuditLog involved.
    db = sqlite3.connect(log.path, isolation_level=None)
    db.execute(sql, args)
    db.close()


# --- audit: what append() takes ---------------------------------------------------------------

@pytest.mark.parametrize("field", ["actor", "action", "subject", "source"])
def test_each_field_up_to_its_limit_and_only_the_subject_empty(log: AuditLog,
                                                               field: str) -> None:
    args = {"actor": "alice", "action": "case.view", "subject": "CASE-1", "source": "cli"}
    entry = log.append(**{**args, field: "x" * FIELD_MAX})
    assert getattr(entry, field) == "x" * FIELD_MAX and FIELD_MAX == 200
    for value, detail in [("x" * (FIELD_MAX + 1), f"{field} is 201 characters, at most 200"),
                          ("a\tb", f"{field} 'a\\tb' holds unprintable characters")]:
        with pytest.raises(AuditError) as caught:
            log.append(**{**args, field: value})
        assert (caught.value.path, caught.value.detail) == (log.path, f"entry refused: {detail}")
    if field == "subject":
        assert log.append(**{**args, "subject": ""}).subject == ""
    else:
        with pytest.raises(AuditError) as caught:
            log.append(**{**args, field: ""})
        assert caught.value.detail == f"entry refused: {field} must be a non-empty string"
    assert log.head()[0] == 1 + (field == "subject") and log.verify().ok


def test_detail_up_to_its_limit_in_canonical_ascii_json(log: AuditLog) -> None:
    pad = DETAIL_MAX - len('{"x":""}')
    assert len(canonical_detail({"x": "y" * pad})) == DETAIL_MAX == 65_536
    assert log.append("a", "b", "c", "cli", {"x": "y" * pad}).detail == {"x": "y" * pad}
    with pytest.raises(ValueError) as caught:
        canonical_detail({"x": "y" * (pad + 1)})
    assert str(caught.value) == "detail is 65537 characters of JSON, at most 65536"
    assert canonical_detail(None) == "{}"
    assert canonical_detail({"n": "Zo\u00eb", "a": [1, 2.5]}) == \
        '{"a":[1,2.5],"n":"Zo\\u00eb"}'
    entry = log.append("a", "b", "c", "cli", {"n": "Zo\u00eb"}, at=T)
    assert entry.detail_json == '{"n":"Zo\\u00eb"}' and entry.detail == {"n": "Zo\u00eb"}


@pytest.mark.parametrize("detail, why", [
    (["a"], "detail must be a dict, not list"),
    ({"x": b"raw"}, "detail['x'] is a bytes: not a JSON type"),
    ({"x": [1, {"y": float("inf")}]}, "detail['x'][1]['y'] is inf: only finite numbers"),
    ({"x": [0, [1, (2,)]]}, "detail['x'][1][1] is a tuple: not a JSON type"),
    ({"x": {3: "a"}}, "detail['x'] has key 3: keys must be strings"),
])
def test_a_refused_detail_says_where(detail: Any, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        canonical_detail(detail)
    assert str(caught.value) == why


def test_entry_hash_refuses_a_time_json_cannot_hold() -> None:
    # The encoding has no Infinity or NaN: a hash of such a time would be of non-JSON text.
    for at in (float("inf"), float("nan")):
        with pytest.raises(ValueError):
            entry_hash(1, at, "a", "b", "c", "cli", "{}", GENESIS)


def test_the_log_is_synced_in_full_and_errors_carry_the_path(tmp_path: Path,
                                                             log: AuditLog) -> None:
    assert int(log._db.rows("PRAGMA synchronous")[0][0]) == 2  # FULL
    missing = tmp_path / "nowhere" / "audit.db"
    with pytest.raises(AuditError) as caught:
        AuditLog(missing)
    assert caught.value.path == str(missing)
    assert "No such file or directory" in caught.value.detail
    _raw(log, "DROP TABLE head")
    with pytest.raises(AuditError) as caught:
        log.head()
    assert (caught.value.path, caught.value.detail) == (log.path, "no such table: head")


@pytest.mark.parametrize("count, digest", [("two", b"\x01" * 32), (2, "ab" * 32)])
def test_a_head_of_the_wrong_type_is_refused_by_head(log: AuditLog, count: object,
                                                     digest: object) -> None:
    _fill(log, 2)
    _raw(log, "UPDATE head SET count = ?, hash = ?", (count, digest))
    with pytest.raises(AuditError) as caught:
        log.head()
    assert (caught.value.path, caught.value.detail) == (
        log.path, "the head row holds the wrong types: run verify()")


def test_entries_by_subject_and_since(log: AuditLog) -> None:
    _fill(log, 5)
    assert [e.seq for e in log.entries(subject="CASE-1")] == [2, 4]
    assert [e.seq for e in log.entries(since_seq=2, subject="CASE-0")] == [3, 5]
    assert log.entries(subject="CASE-9") == []


def test_no_entry_onto_a_log_whose_head_disagrees(log: AuditLog) -> None:
    _fill(log, 3)
    _raw(log, "DELETE FROM entries WHERE seq = 3")
    with pytest.raises(AuditError) as caught:
        log.append("alice", "case.view", "CASE-1", "cli")
    assert (caught.value.path, caught.value.detail) == (
        log.path, "the last entry and the head disagree: the log was tampered with; run"
        " verify() before appending")


# --- audit: verify()'s verdicts, each with its seq and reason --------------------------------

def _verdict(log: AuditLog) -> tuple[bool, int, int | None, str]:
    v = log.verify()
    return v.ok, v.entries, v.first_bad_seq, v.reason


def test_an_intact_log_says_how_many_and_an_empty_one_says_so(log: AuditLog) -> None:
    assert _verdict(log) == (True, 0, None, "empty log")
    _fill(log, 5)
    assert _verdict(log) == (True, 5, None, "5 entries, chain and head intact")
    _raw(log, "DELETE FROM head")
    assert _verdict(log) == (False, 5, 1, "the head row is missing")


@pytest.mark.parametrize("column, value, why", [
    ("actor", b"raw", "a field holds the wrong type"),  # bytes would not even hash
    ("actor", 7, "the hash does not match the entry: a field was altered"),
    ("at", 1e999, "a field holds the wrong type"),  # infinity: stored, but no JSON number
    ("at", -1e999, "a field holds the wrong type"),
    ("prev_hash", b"\x02" * 32,
     "prev_hash is not the previous entry's hash: the chain is broken here"),
    ("detail", '{"i":9}', "the hash does not match the entry: a field was altered"),
])
def test_each_edit_has_its_reason(log: AuditLog, column: str, value: object, why: str) -> None:
    _fill(log, 3)
    _raw(log, f"UPDATE entries SET {column} = ? WHERE seq = 2", (value,))
    assert _verdict(log) == (False, 3, 2, why)


def test_the_head_counting_or_ending_elsewhere_has_its_reason(log: AuditLog) -> None:
    _fill(log, 5)
    _raw(log, "UPDATE head SET count = 7")
    assert _verdict(log) == (False, 5, 6, "the head counts 7 entries, the log holds 5: entries"
                             " at the end were deleted or added")
    _raw(log, "UPDATE head SET count = 'five'")
    assert _verdict(log)[2] == 1
    _raw(log, "UPDATE head SET count = 5, hash = zeroblob(32)")
    assert _verdict(log) == (False, 5, 5, "the head's hash is not the last entry's")


def test_an_empty_log_with_a_forged_head_hash(log: AuditLog) -> None:
    _raw(log, "INSERT INTO head (id, count, hash) VALUES (1, 0, ?)", (b"\x01" * 32,))
    assert _verdict(log) == (False, 0, 1, "the head's hash is not the last entry's")


# --- audit: pruning at its edges -------------------------------------------------------------

@pytest.fixture
def pruned(log: AuditLog) -> AuditLog:
    """Ten entries at T+0..T+9, the first five pruned: entries 6..10 and the prune entry 11."""
    _fill(log, 10)
    assert log.prune(T + 5, "centre:retention", "centre") == 5
    return log


def test_a_pruned_log_says_so_and_the_prune_entry_is_about_the_audit(pruned: AuditLog) -> None:
    assert _verdict(pruned) == (True, 6, None, "6 entries after 5 pruned, chain and head intact")
    last = pruned.entries()[-1]
    assert (last.seq, last.action, last.subject) == (11, PRUNE_ACTION, "audit")
    _raw(pruned, "UPDATE head SET count = 12")
    assert _verdict(pruned) == (False, 6, 12, "the head counts 12 entries, the log holds 11:"
                                " entries at the end were deleted or added")


def test_pruning_everything_leaves_only_the_prune_entry(log: AuditLog) -> None:
    _fill(log, 4)
    fourth = log.entries()[-1]
    assert log.prune(T + 100, "a", "cli", subject="retention") == 4
    [entry] = log.entries()
    assert (entry.seq, entry.subject, entry.prev_hash) == (5, "retention", fourth.hash)
    assert entry.detail == {"through_seq": 4, "removed": 4, "through_hash": fourth.hash.hex(),
                            "before_at": T + 100}
    assert _verdict(log) == (True, 1, None, "1 entries after 4 pruned, chain and head intact")


@pytest.mark.parametrize("before_at", [True, "yesterday", float("nan"), float("inf")])
def test_prune_refuses_a_cut_that_is_no_time(log: AuditLog, before_at: Any) -> None:
    _fill(log, 3)
    with pytest.raises(AuditError) as caught:
        log.prune(before_at, "a", "cli")
    assert (caught.value.path, caught.value.detail) == (
        log.path, f"prune refused: before_at {before_at!r} is no time")
    assert len(log.entries()) == 3 and log.head()[0] == 3


def test_prune_refusing_a_broken_log_names_it(log: AuditLog) -> None:
    _fill(log, 3)
    _raw(log, "UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(AuditError) as caught:
        log.prune(T + 5, "a", "cli")
    assert (caught.value.path, caught.value.detail) == (
        log.path, "prune refused: the log does not verify at seq 2 (the hash does not match"
        " the entry: a field was altered)")


def _forge(log: AuditLog, seq: int, detail_json: str) -> None:
    """Rewrites entry `seq`'s detail with its hash recomputed, and the head with it: what only
    someone rewriting the end of the chain could do."""
    e = next(e for e in log.entries() if e.seq == seq)
    digest = entry_hash(seq, e.at, e.actor, e.action, e.subject, e.source, detail_json,
                        e.prev_hash)
    _raw(log, "UPDATE entries SET detail = ?, hash = ? WHERE seq = ?", (detail_json, digest, seq))
    _raw(log, "UPDATE head SET hash = ?", (digest,))


def test_each_disagreement_of_anchor_and_prune_entry_has_its_reason(pruned: AuditLog) -> None:
    _forge(pruned, 11, "{}")
    assert _verdict(pruned) == (False, 6, 11, "the audit.prune entry's detail names no anchor")
    sixth = pruned.entries()[0]
    _forge(pruned, 11, json.dumps({"through_seq": 6, "through_hash": sixth.hash.hex()}))
    assert _verdict(pruned) == (False, 6, 11, "the anchor (seq 5) is not the one the newest"
                                " audit.prune entry claims (seq 6)")


def test_an_anchor_no_prune_entry_claims(pruned: AuditLog) -> None:
    tenth = pruned.entries()[-2]
    _raw(pruned, "DELETE FROM entries WHERE seq = 11")
    _raw(pruned, "UPDATE head SET count = 10, hash = ?", (tenth.hash,))
    assert _verdict(pruned) == (False, 5, 6, "the chain starts at an anchor no audit.prune"
                                " entry claims")


def test_a_prune_entry_without_an_anchor(log: AuditLog) -> None:
    _fill(log, 2)
    log.append("a", PRUNE_ACTION, "audit", "cli", {"through_seq": 1, "through_hash": "00" * 32})
    assert _verdict(log) == (False, 3, 3, "an audit.prune entry claims pruned entries but the"
                             " anchor is missing")


@pytest.mark.parametrize("seq, digest", [(0, b"\x01" * 32), (5, "ab" * 32),
                                        ("five", b"\x01" * 32)])
def test_an_anchor_of_the_wrong_types(pruned: AuditLog, seq: object, digest: object) -> None:
    _raw(pruned, "UPDATE anchor SET seq = ?, hash = ?", (seq, digest))
    assert _verdict(pruned) == (False, 6, 1, "the anchor row holds the wrong types")


def _meanwhile(log: AuditLog, monkeypatch: pytest.MonkeyPatch, act: Any) -> None:
    """Runs `act` right after prune()'s snapshot verify, before it takes the write lock (as
    another process would then)."""
    verify = log._verify_locked

    def verify_then_act() -> Any:
        found = verify()
        act()
        return found
    monkeypatch.setattr(log, "_verify_locked", verify_then_act)


def test_each_change_while_prune_verifies_has_its_reason(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def tenth_deleted(log: AuditLog) -> None:
        _raw(log, "DELETE FROM entries WHERE seq = 10")

    def appended_then_edited(log: AuditLog) -> None:
        other = AuditLog(log.path)
        other.append("bob", "case.view", "CASE-1", "cli", at=T + 20)
        other.close()
        _raw(log, "UPDATE entries SET actor = 'mallory' WHERE seq = 11")

    def head_moved(log: AuditLog) -> None:
        _raw(log, "UPDATE head SET hash = zeroblob(32)")

    for act, why in [(tenth_deleted, "the verified head is gone"),
                     (appended_then_edited,
                      "the hash does not match the entry: a field was altered"),
                     (head_moved, "the head moved")]:
        log = AuditLog(tmp_path / f"{why[:12]}.db")
        _fill(log, 10)
        _meanwhile(log, monkeypatch, lambda: act(log))
        with pytest.raises(AuditError) as caught:
            log.prune(T + 5, "a", "cli")
        monkeypatch.undo()
        assert (caught.value.path, caught.value.detail) == (
            log.path, f"prune refused: the log changed while it was verified ({why}); prune"
            " again")
        assert log.entries()[0].seq == 1  # nothing pruned
        log.close()


# --- evidence: each check's own finding -------------------------------------------------------

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0C0FFEE5
REF = "INC-000001"
EVENT = Message.event_key(BID, 2, 4)  # "0c0ffee5-2-4"


def _frame(seq: int, centre: hp.CentreKey = CENTRE) -> bytes:
    return hp.centre_frame(hp.encode_frame(KEYS, centre, kind=hp.Kind.ALARM, button_id=BID,
                                           boot_id=2, seq=seq, gesture=hp.Gesture.HOLD,
                                           battery_pct=64, age_ms=40))


@dataclass(frozen=True)
class Bundle:
    path: Path  # never written to: each test changes its own copy
    signer: SigningKey
    head: tuple[int, bytes]  # the audit log's head right after the export


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """An alarm, two updates and an SMS duplicate of it, two audit entries of the incident
    and one of another subject, exported with the real stores."""
    state = tmp_path_factory.mktemp("evidence") / "state"
    state.mkdir(mode=0o700)
    registry = Registry(state / "registry.db")
    registry.register(BID, CENTRE_KEY, None)
    centre = Centre(state / "records.db", registry)
    t0 = T
    raw = _frame(4)
    for n in range(3):
        fix = Fix(51.05 + n * 0.001, 3.71, 6.0, t0 + 10 * n, FixQuality.GNSS, "nmea")
        got = centre.ingest(Inbound("https", EVENT if n == 0 else f"{EVENT}/{n}",
                                    MessageKind.ALARM if n == 0 else MessageKind.LOCATION,
                                    BID, raw, fix, incident=EVENT, update_no=n,
                                    pressed_at=t0, received_at=t0 + 10 * n))
        assert got.verdict is Verdict.ACCEPTED
    dup = Inbound.keyed("sms", EVENT, MessageKind.ALARM, raw, None, t0 + 3)
    assert centre.ingest(dup).verdict is Verdict.DUPLICATE
    centre.close()
    registry.close()
    audit = AuditLog(state / "audit.db")
    audit.append("op.anna", "case.view", REF, "10.0.0.5", at=t0 + 20)
    audit.append("op.anna", "case.view", "CASE-9", "10.0.0.5", at=t0 + 21)
    audit.append("op.anna", "incident.note", REF, "10.0.0.5", {"note": 1}, at=t0 + 22)
    audit.close()
    out = state.parent / "bundle"
    export(state, REF, out, actor="op.bert", source="cli")
    audit = AuditLog(state / "audit.db")
    head = audit.head()
    audit.close()
    return Bundle(out, signing_key(state), head)


def _load(path: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((path / name).read_text()))


def _copy(b: Bundle, tmp_path: Path) -> Path:
    return Path(shutil.copytree(b.path, tmp_path / "copy"))


def _resign(b: Bundle, path: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edits `name` as JSON, lists the files' digests afresh and signs the manifest with the
    centre's own key: only the inner checks can catch what is left."""
    obj = _load(path, name)
    edit(obj)
    (path / name).write_bytes(canonical(obj))
    if name != MANIFEST:
        manifest = _load(path, MANIFEST)
        manifest["files"] = {n: hashlib.sha256((path / n).read_bytes()).hexdigest()
                             for n in manifest["files"]}
        (path / MANIFEST).write_bytes(canonical(manifest))
    (path / SIGNATURE).write_bytes(b.signer.sign((path / MANIFEST).read_bytes()))


def _findings(b: Bundle, path: Path, pinned: bool = True,
              keys: bool = True) -> dict[str, tuple[bool, str]]:
    checks = verify_bundle(path, b.signer.public_key if pinned else None,
                           {BID: CENTRE_KEY} if keys else None)
    assert all(isinstance(c, Check) for c in checks)
    return {c.name: (c.ok, c.detail) for c in checks}


def test_each_check_of_a_good_bundle_says_what_it_found(bundle: Bundle) -> None:
    audit = _load(bundle.path, "audit.json")
    entries = audit["entries"]
    assert [e["action"] for e in entries] == ["case.view", "incident.note", "incident.export"]
    head = (audit["head"]["count"], audit["head"]["hash"])
    assert (bundle.head[0], bundle.head[1].hex()) == head == (4, entries[-1]["hash"])
    fp = fingerprint(bundle.signer.public_key)
    assert _findings(bundle, bundle.path) == {
        "signature": (True, f"signed by the pinned centre key {fp}"),
        "files": (True, "4 files, each as listed, none other"),
        "audit": (True, f"3 entries of {REF}, each hash recomputes; the log's head at"
                  f" export: 4 entries, hash {bundle.head[1].hex()}"),
        "export entry": (True, "entry 4 records this export, by op.bert"),
        "frames": (True, "4 frames, each the button's own (centre tag verified)"),
        "timeline": (True, "timeline.json holds the same 4 frames as frames.json"),
    }
    unpinned = _findings(bundle, bundle.path, pinned=False, keys=False)
    assert unpinned["signature"] == (True, "signature valid, but the key is NOT PINNED: it is"
                                     " the key the bundle names itself (fingerprint"
                                     f" {fp}); compare it with the centre's published"
                                     " fingerprint, or give the public key")
    assert unpinned["frames"] == (True, "4 frames NOT checked (no key given)")
    report = verify(bundle.path, public_key=bundle.signer.public_key,
                    centre_keys={BID: CENTRE_KEY})
    assert report.ok and [c.name for c in report.checks] == list(unpinned)


def test_the_content_digest_is_of_the_file_list_without_the_audit() -> None:
    files = {"timeline.json": "aa" * 32, "audit.json": "bb" * 32, "frames.json": "cc" * 32}
    text = '{"frames.json":"' + "cc" * 32 + '","timeline.json":"' + "aa" * 32 + '"}'
    assert content_digest(files) == hashlib.sha256(text.encode()).hexdigest()


def _entry(i: int, field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["entries"][i].__setitem__(field, value)


def _rehash(obj: dict[str, Any], i: int, **fields: Any) -> None:
    """Changes audit entry i and recomputes its hash (what the key's holder could do)."""
    e = obj["entries"][i]
    e.update(fields)
    e["hash"] = entry_hash(e["seq"], e["at"], e["actor"], e["action"], e["subject"],
                           e["source"], e["detail_json"], bytes.fromhex(e["prev_hash"])).hex()


def _frames(i: int, field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["frames"][i].__setitem__(field, value)


def _both(b: Bundle, path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    _resign(b, path, "frames.json", edit)
    _resign(b, path, "timeline.json", edit)


Edit = Callable[[Bundle, Path], None]


def _in(name: str, edit: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda b, path: _resign(b, path, name, edit)


def _another_export_first(obj: dict[str, Any]) -> None:
    fake = dict(obj["entries"][-1], detail_json='{"manifest_sha256":"' + "0" * 64 + '"}')
    obj["entries"].insert(0, fake)


FAULTS: list[tuple[str, Edit, str, str]] = [
    ("manifest of another format", _in(MANIFEST, lambda o: o.__setitem__("format", "x")),
     "files", "manifest.json is not format msa-evidence-1"),
    ("manifest incident a number", _in(MANIFEST, lambda o: o.__setitem__("incident", 1)),
     "files", "manifest.json: 'incident' is missing or of the wrong type"),
    ("manifest lists itself", _in(MANIFEST, lambda o: o["files"].__setitem__(SIGNATURE,
                                                                               "00" * 32)),
     "files", "manifest.json lists 'manifest.sig', not a bundle file's name"),
    ("manifest digest upper case",
     _in(MANIFEST, lambda o: o["files"].__setitem__("report.html", "AB" * 32)),
     "files", "manifest.json's digest of report.html is not 64 lowercase hex digits"),
    ("manifest names another key",
     _in(MANIFEST, lambda o: o.__setitem__("centre_key", "ab" * 32)),
     "signature", "manifest.json names another centre key than the pinned one"),
    ("report unlisted", _in(MANIFEST, lambda o: o["files"].pop("report.html")),
     "files", "manifest.json does not list report.html"),
    ("audit entries empty", _in("audit.json", lambda o: o.__setitem__("entries", [])),
     "audit", "audit.json holds no entries (it always holds the export's own)"),
    ("audit entry a string", _in("audit.json", lambda o: o["entries"].append("x")),
     "audit", "audit.json holds no entries (it always holds the export's own)"),
    ("audit head missing", _in("audit.json", lambda o: o.pop("head")),
     "audit", "audit.json: 'head' is missing or of the wrong type"),
    ("audit seq a bool", _in("audit.json", _entry(0, "seq", True)),
     "audit", "audit entry True: 'seq' is missing or of the wrong type"),
    ("audit source missing", _in("audit.json", lambda o: o["entries"][0].pop("source")),
     "audit", "audit entry 1: 'source' is missing or of the wrong type"),
    ("audit prev_hash short", _in("audit.json", _entry(0, "prev_hash", "ab")),
     "audit", "audit entry 1's prev_hash is not 64 lowercase hex digits"),
    ("audit hash short", _in("audit.json", _entry(0, "hash", "ab")),
     "audit", "audit entry 1's hash is not 64 lowercase hex digits"),
    ("audit entry of another subject",
     _in("audit.json", lambda o: _rehash(o, 0, subject="CASE-9")),
     "audit", "audit entry 1 is about 'CASE-9', not INC-000001"),
    ("audit entry edited", _in("audit.json", _entry(1, "actor", "op.bert")),
     "audit", "audit entry 3: its hash does not recompute (a field was altered)"),
    ("audit entries out of order", _in("audit.json", lambda o: o["entries"].reverse()),
     "audit", "audit entry 3 follows seq 4: entries out of order"),
    ("audit entry repeated",
     _in("audit.json", lambda o: o["entries"].insert(1, dict(o["entries"][0]))),
     "audit", "audit entry 1 follows seq 1: entries out of order"),
    ("audit link broken", _in("audit.json", lambda o: _rehash(o, 2, prev_hash="00" * 32)),
     "audit", "audit entry 4 does not link to entry 3: the chain is broken"),
    ("audit head behind", _in("audit.json", lambda o: o["head"].__setitem__("count", 3)),
     "audit", "the head (count 3) does not end at or after the last entry (seq 4)"),
    ("audit head at the last entry with another hash",
     _in("audit.json", lambda o: o["head"].__setitem__("hash", "00" * 32)),
     "audit", "the head (count 4) does not end at or after the last entry (seq 4)"),
    ("export entry missing", _in("audit.json", lambda o: o["entries"].pop()),
     "export entry", "the audit excerpt holds no incident.export entry"),
    ("export entry of other files",
     _in("audit.json", _entry(2, "detail_json", '{"manifest_sha256":"' + "0" * 64 + '"}')),
     "export entry", "the last export entry names other files than this bundle's"),
    ("export entry detail not JSON", _in("audit.json", _entry(2, "detail_json", "{")),
     "export entry", "the export entry's detail is not JSON: JSONDecodeError"),
    ("export entry detail a number", _in("audit.json", _entry(2, "detail_json", 5)),
     "export entry", "the export entry: 'detail_json' is missing or of the wrong type"),
    ("export entry by another", _in(MANIFEST, lambda o: o.__setitem__("exported_by", "op.x")),
     "export entry", "the export entry's actor is not the manifest's exported_by"),
    ("frame a list", _in("frames.json", lambda o: o["frames"].__setitem__(0, [])),
     "frames", "frame 0 is not an object"),
    ("frame channel missing", _in("frames.json", lambda o: o["frames"][1].pop("channel")),
     "frames", "frame 1: 'channel' is missing or of the wrong type"),
    ("frame button a bool", _in("frames.json", _frames(0, "button_id", True)),
     "frames", "frame 0: 'button_id' is missing or of the wrong type"),
    ("frame received_at a string", _in("frames.json", _frames(0, "received_at", "1")),
     "frames", "frame 0: 'received_at' is missing or of the wrong type"),
    ("frame key a number", _in("frames.json", _frames(0, "key", 4)),
     "frames", "frame 0: 'key' is missing or of the wrong type"),
    ("frame hex a number", _in("frames.json", _frames(0, "frame_hex", 4)),
     "frames", "frame 0: 'frame_hex' is missing or of the wrong type"),
    ("frame of another button", _in("frames.json", _frames(2, "button_id", BID + 1)),
     "frames", f"frame 2 ({EVENT}/1): no key given for button 0c0ffee6"),
    ("frame of another press", _in("frames.json", _frames(3, "frame_hex", _frame(5).hex())),
     "frames", f"frame 3 ({EVENT}/2): the frame is {EVENT[:-1]}5, not what its key names"),
    ("frame key with a bad suffix", _in("frames.json", _frames(3, "key", f"{EVENT}/x")),
     "frames", f"frame 3 ({EVENT}/x): the frame is {EVENT}, not what its key names"),
    ("frame key of another event", _in("frames.json", _frames(0, "key", f"{EVENT}0")),
     "frames", f"frame 0 ({EVENT}0): the frame is {EVENT}, not what its key names"),
    ("timeline of another format", _in("timeline.json", lambda o: o.__setitem__("format", "x")),
     "timeline", "timeline.json is not format msa-timeline-1"),
    ("frames of another incident",
     _in("frames.json", lambda o: o.__setitem__("incident", "INC-000002")),
     "timeline", "frames.json is about another incident than the manifest"),
    ("frames not a list", _in("frames.json", lambda o: o.__setitem__("frames", {})),
     "timeline", "timeline.json and frames.json hold different numbers of frames"),
    ("timeline key of another event", _in("timeline.json", lambda o: o.__setitem__("key", "k")),
     "timeline", "frame 0 is not one of the incident's ('k')"),
    ("timeline key a number", _in("timeline.json", lambda o: o.__setitem__("key", 7)),
     "timeline", "frame 0 is not one of the incident's (7)"),
    ("timeline of another button",
     _in("timeline.json", lambda o: o.__setitem__("button_id", BID + 1)),
     "timeline", "frame 0 differs between timeline.json and frames.json"),
    *[(f"timeline frame {name} differs", _in("timeline.json", _frames(1, name, "x")),
       "timeline", "frame 1 differs between timeline.json and frames.json")
      for name in ("key", "channel", "received_at", "frame_hex")],
    ("timeline frame a string", _in("timeline.json", lambda o: o["frames"].__setitem__(2, "x")),
     "timeline", "frame 2 differs between timeline.json and frames.json"),
    ("both frames of another key", lambda b, p: _both(b, p, _frames(3, "key", "k/2")),
     "timeline", "frame 3 is not one of the incident's ('0c0ffee5-2-4')"),
]


@pytest.mark.parametrize(("edit", "check", "detail"), [f[1:] for f in FAULTS],
                         ids=[f[0] for f in FAULTS])
def test_each_fault_fails_its_check_with_its_finding(bundle: Bundle, tmp_path: Path,
                                                     edit: Edit, check: str,
                                                     detail: str) -> None:
    copy = _copy(bundle, tmp_path)
    edit(bundle, copy)
    found = _findings(bundle, copy)
    assert found[check] == (False, detail), found
    assert not verify(copy, public_key=bundle.signer.public_key,
                      centre_keys={BID: CENTRE_KEY}).ok


def test_the_last_export_entry_is_the_one_checked(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    _resign(bundle, copy, "audit.json", _another_export_first)
    found = _findings(bundle, copy)
    assert found["export entry"] == (True, "entry 4 records this export, by op.bert")
    assert found["audit"][0] is False  # the forged first entry repeats seq 4


def test_a_head_ahead_of_the_excerpt_is_fine(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    _resign(bundle, copy, "audit.json", lambda o: o["head"].update(count=9, hash="00" * 32))
    assert _findings(bundle, copy)["audit"] == (True, f"3 entries of {REF}, each hash"
                                                " recomputes; the log's head at export: 9"
                                                f" entries, hash {'00' * 32}")


def test_entries_with_a_gap_need_not_link(bundle: Bundle, tmp_path: Path) -> None:
    # seq 2 (another subject's) is left out: entry 3 links to 2, not to 1, and that is right.
    copy = _copy(bundle, tmp_path)
    seqs = [e["seq"] for e in _load(copy, "audit.json")["entries"]]
    assert seqs == [1, 3, 4] and _findings(bundle, copy)["audit"][0] is True


def test_the_signature_findings(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    other = Ed25519PrivateKey.generate()
    other_pub = other.public_key().public_bytes_raw()
    found = verify_bundle(copy, other_pub, None)[0]
    assert found == Check("signature", False, "manifest.sig is not a signature by the pinned"
                          f" key {fingerprint(other_pub)} over manifest.json")
    assert verify_bundle(copy, other_pub[:31], None)[0] == Check(
        "signature", False, "the pinned key is 31 bytes, not 32")
    (copy / SIGNATURE).write_bytes(other.sign((copy / MANIFEST).read_bytes()))
    assert verify_bundle(copy, None, None)[0] == Check(
        "signature", False, "manifest.sig is not a signature by the key manifest.json names")
    _resign(bundle, copy, MANIFEST, lambda o: o.__setitem__("centre_key", "AB" * 32))
    assert verify_bundle(copy, None, None)[0] == Check(
        "signature", False, "manifest.json's centre_key is not 64 lowercase hex digits")


def test_the_files_findings(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    for extra in ("notes.txt", ".hidden"):
        (copy / extra).write_text("added")
    assert _findings(bundle, copy)["files"] == (False,
                                                "not in the manifest: '.hidden', 'notes.txt'")
    shutil.rmtree(copy)
    copy = _copy(bundle, tmp_path)
    data = bytearray((copy / "report.html").read_bytes())
    data[10] ^= 1
    (copy / "report.html").write_bytes(bytes(data))
    assert _findings(bundle, copy)["files"] == (
        False, "report.html is not the file the manifest lists (SHA-256 differs)")
    (copy / "report.html").unlink()
    assert _findings(bundle, copy)["files"] == (False, "report.html is missing")
    (copy / "report.html").symlink_to(bundle.path / "report.html")
    assert _findings(bundle, copy)["files"] == (False, "report.html is not a regular file")
    (copy / "report.html").unlink()
    with (copy / "report.html").open("wb") as sparse:  # no disk used: a hole, then one byte
        sparse.truncate(MAX_FILE_BYTES + 1)
    assert _findings(bundle, copy)["files"] == (
        False, f"report.html is {MAX_FILE_BYTES + 1} bytes, more than any bundle holds")
    assert MAX_FILE_BYTES == 256 << 20


@pytest.mark.parametrize("content, detail", [
    (b"{not json", "manifest.json is not JSON: JSONDecodeError"),
    (b"\xff{}", "manifest.json is not JSON: UnicodeDecodeError"),
    (b"[]", "manifest.json is not a JSON object"),
    (b'{"format": "msa-evidence-1", "incident": "I", "files": []}',
     "manifest.json: 'files' is missing or of the wrong type"),
    (b'{"format": "msa-evidence-1", "incident": "I", "files": {"../x": "' + b"0" * 64 + b'"}}',
     "manifest.json lists '../x', not a bundle file's name"),
])
def test_a_malformed_manifest_is_the_files_finding(bundle: Bundle, tmp_path: Path,
                                                   content: bytes, detail: str) -> None:
    copy = _copy(bundle, tmp_path)
    (copy / MANIFEST).write_bytes(content)
    (copy / SIGNATURE).write_bytes(bundle.signer.sign(content))
    found = _findings(bundle, copy)
    assert found["files"] == (False, detail)
    assert found["signature"] == (False, detail)  # signed, but no manifest to read


def test_a_missing_manifest(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    (copy / MANIFEST).unlink()
    assert _findings(bundle, copy)["files"] == (False, "manifest.json is missing")
    (copy / SIGNATURE).unlink()
    assert _findings(bundle, copy)["signature"] == (False, "manifest.sig is missing")


def test_a_frame_under_another_key_says_why(bundle: Bundle, tmp_path: Path) -> None:
    copy = _copy(bundle, tmp_path)
    other = hp.CentreKey.from_master(bytes(32))
    _resign(bundle, copy, "frames.json", _frames(0, "frame_hex", _frame(4, other).hex()))
    ok, detail = _findings(bundle, copy)["frames"]
    assert not ok and detail.startswith(f"frame 0 ({EVENT}) does not verify with the"
                                        " button's key: ")
    assert len(detail) > len(f"frame 0 ({EVENT}) does not verify with the button's key: ")


# --- records: the centre's read side, field by field -----------------------------------------

RBID = 0x0A0B0C0D


def _rframe(kind: hp.Kind, seq: int, button_id: int = RBID, battery_pct: int = 80) -> bytes:
    return hp.centre_frame(hp.encode_frame(
        KEYS, CENTRE, kind=kind, button_id=button_id, boot_id=1, seq=seq,
        gesture=hp.Gesture.HOLD if kind in (hp.Kind.ALARM, hp.Kind.TEST) else hp.Gesture.NONE,
        battery_pct=battery_pct, age_ms=100))


_FRAME_KIND = {MessageKind.ALARM: hp.Kind.ALARM, MessageKind.TEST: hp.Kind.TEST,
               MessageKind.HEARTBEAT: hp.Kind.HEARTBEAT,
               MessageKind.LOW_BATTERY: hp.Kind.LOW_BATTERY}


def _msg(kind: MessageKind, seq: int, at: float, *, button_id: int = RBID,
         channel: str = "https", battery_pct: int = 80, fix: Fix | None = None,
         pressed_at: float | None = None) -> Inbound:
    return Inbound(channel, Message.event_key(button_id, 1, seq), kind, button_id,
                   _rframe(_FRAME_KIND[kind], seq, button_id, battery_pct), fix=fix,
                   pressed_at=pressed_at, received_at=at)


@dataclass
class Records:
    centre: Centre
    registry: Registry
    now: list[float]


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    from msa.centre.registry import Case
    registry = Registry(tmp_path / "registry.db")
    registry.put_case(Case("C-1", "Victim"))
    registry.register(RBID, CENTRE_KEY, "C-1")
    now = [T]
    centre = Centre(tmp_path / "records.db", registry, clock=lambda: now[0])
    yield Records(centre, registry, now)
    centre.close()
    registry.close()


def test_an_incident_row_and_its_arrivals_in_order(records: Records) -> None:
    from msa.centre.records import Arrival, IncidentRow
    c = records.centre
    fix = Fix(51.0, 3.7, 5.0, T, FixQuality.GNSS, "gnss")
    c.ingest(_msg(MessageKind.ALARM, 5, T + 1, fix=fix, battery_pct=61, pressed_at=T - 2))
    c.ingest(_msg(MessageKind.ALARM, 5, T + 0.5, channel="sms"))  # earlier, arrived later
    c.ingest(_msg(MessageKind.ALARM, 5, T + 0.5, channel="dc09"))
    assert c.incident_row(1) == IncidentRow(f"{RBID:08x}-1-5", RBID, False, "C-1", T + 1,
                                            T - 2, "https", "open", None, 61)
    assert c.incident_row(2) is None
    raw = _rframe(hp.Kind.ALARM, 5)
    assert c.arrivals(1) == [
        Arrival(f"{RBID:08x}-1-5", "alarm", "sms", T + 0.5, "duplicate", raw),
        Arrival(f"{RBID:08x}-1-5", "alarm", "dc09", T + 0.5, "duplicate", raw),
        Arrival(f"{RBID:08x}-1-5", "alarm", "https", T + 1, "accepted",
                _rframe(hp.Kind.ALARM, 5, battery_pct=61))]
    assert c.arrivals(2) == []


def test_resolved_summaries_newest_first_up_to_the_limit(records: Records) -> None:
    c = records.centre
    for seq in (5, 6, 7):
        c.ingest(_msg(MessageKind.TEST if seq == 6 else MessageKind.ALARM, seq, T + seq,
                      pressed_at=T + seq - 1))
    records.now[0] = T + 100
    assert c.resolve("INC-000001") and c.resolve("INC-000002")
    assert c.resolved(5) == [
        {"incident": "INC-000002", "key": f"{RBID:08x}-1-6", "button_id": RBID, "test": True,
         "case_ref": "C-1", "opened_at": T + 6, "pressed_at": T + 5, "channel": "https",
         "status": "resolved", "resolved_at": T + 100},
        {"incident": "INC-000001", "key": f"{RBID:08x}-1-5", "button_id": RBID, "test": False,
         "case_ref": "C-1", "opened_at": T + 5, "pressed_at": T + 4, "channel": "https",
         "status": "resolved", "resolved_at": T + 100}]
    assert [r["incident"] for r in c.resolved(1)] == ["INC-000002"]
    assert [i["incident"] for i in c.incidents()] == ["INC-000003"]
    assert [i["incident"] for i in c.incidents(include_resolved=True)] == [
        "INC-000003", "INC-000002", "INC-000001"]


def test_a_sleeping_button_is_silent_only_after_three_of_its_own_periods(
        records: Records) -> None:
    c, reg = records.centre, records.registry
    reg.expect_heartbeat(RBID, 3600)
    c.ingest(_msg(MessageKind.HEARTBEAT, 1, T, battery_pct=70))
    records.now[0] = T + 3 * 3600
    assert c.warnings() == []
    records.now[0] = T + 3 * 3600 + 1
    assert c.warnings() == [{"button_id": RBID, "case_ref": "C-1", "warning": "silent",
                             "last_seen": T}]
    assert c.warnings(silent_after_s=4 * 3600) == []  # a longer threshold still wins
    reg.expect_heartbeat(RBID, 30)  # shorter than the default: the default 180 s holds
    records.now[0] = T + 180
    assert c.warnings() == []
    assert c.warnings(now=T + 181)[0]["warning"] == "silent"


def test_warning_sources_are_asked_with_the_same_now(records: Records) -> None:
    c = records.centre
    asked: list[float] = []

    def source(now: float) -> list[dict[str, object]]:
        asked.append(now)
        return [{"warning": "tag", "at": now}]
    c.warning_sources.append(source)
    c.ingest(_msg(MessageKind.HEARTBEAT, 1, T))
    records.now[0] = T + 10
    assert c.warnings() == [{"warning": "tag", "at": T + 10}]
    assert c.warnings(now=T + 500)[-1] == {"warning": "tag", "at": T + 500}
    assert asked == [T + 10, T + 500]


def test_counts_by_kind(records: Records) -> None:
    c = records.centre
    c.ingest(_msg(MessageKind.HEARTBEAT, 1, T))
    c.ingest(_msg(MessageKind.HEARTBEAT, 2, T + 1))
    c.ingest(_msg(MessageKind.ALARM, 3, T + 2))
    assert (c.count(), c.count(MessageKind.HEARTBEAT), c.count(MessageKind.ALARM),
            c.count(MessageKind.TEST)) == (3, 2, 1, 0)


FAULTS_MORE: list[tuple[str, Edit, str, str]] = [
    ("audit time an int", _in("audit.json", _entry(0, "at", 1)),
     "audit", "audit entry 1: 'at' is missing or of the wrong type"),
    ("audit head count missing", _in("audit.json", lambda o: o["head"].pop("count")),
     "audit", "audit.json's head: 'count' is missing or of the wrong type"),
    ("audit head hash short", _in("audit.json", lambda o: o["head"].__setitem__("hash", "0")),
     "audit", "audit.json's head hash is not 64 lowercase hex digits"),
    ("two files unlisted",
     _in(MANIFEST, lambda o: [o["files"].pop(n) for n in ("timeline.json", "report.html")]),
     "files", "manifest.json does not list timeline.json, report.html"),
    ("frames not a list in frames.json", _in("frames.json", lambda o: o.__setitem__("frames", 1)),
     "frames", "frames.json: 'frames' is missing or of the wrong type"),
    ("timeline of another incident",
     _in("timeline.json", lambda o: o.__setitem__("incident", "INC-000002")),
     "timeline", "timeline.json is about another incident than the manifest"),
]


@pytest.mark.parametrize(("edit", "check", "detail"), [f[1:] for f in FAULTS_MORE],
                         ids=[f[0] for f in FAULTS_MORE])
def test_more_faults_fail_their_check_with_their_finding(bundle: Bundle, tmp_path: Path,
                                                         edit: Edit, check: str,
                                                         detail: str) -> None:
    copy = _copy(bundle, tmp_path)
    edit(bundle, copy)
    assert _findings(bundle, copy)[check] == (False, detail)


def test_a_shape_no_check_foresaw_is_a_failed_check(bundle: Bundle, tmp_path: Path) -> None:
    # JSON's parser reads "Infinity"; such a time has no canonical form to hash. Written as
    # the key's holder would, with the digests listed afresh and the manifest signed again.
    copy = _copy(bundle, tmp_path)
    audit = _load(copy, "audit.json")
    audit["entries"][0]["at"] = float("inf")
    (copy / "audit.json").write_text(json.dumps(audit))
    _resign(bundle, copy, MANIFEST, lambda o: o["files"].__setitem__(
        "audit.json", hashlib.sha256((copy / "audit.json").read_bytes()).hexdigest()))
    checks = verify_bundle(copy, bundle.signer.public_key, {BID: CENTRE_KEY})
    assert checks[2] == Check("audit", False, "malformed bundle (ValueError: Out of range float"
                              " values are not JSON compliant)")
    assert [c.ok for c in checks] == [True, True, False, True, True, True]
