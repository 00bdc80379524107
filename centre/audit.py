"""The centre's audit trail: an append-only, hash-chained log of who did what, to which case
file or account, from where and when, in an area of its own (audit.db, 0600, or the `audit`
schema of the centre's PostgreSQL: centre/storage.py).

Each entry's hash is SHA-256 over a canonical JSON array of (format tag, seq, at, actor,
action, subject, source, detail, prev_hash), and each entry carries the hash of the one
before (the first: 32 zero bytes). A `head` row (entry count and last hash) is updated in the
same transaction as every append. verify() then detects, by anyone who edits the database
without rewriting everything after the edit: an edited field, a deleted, inserted or
reordered entry, and a deleted last entry (the head still counts it).

What it cannot detect: the hashes take no key, so someone with write access who deletes or
edits entries AND recomputes every later hash and the head leaves a log that verifies. Only an
external anchor catches that: export head() (count, hash) somewhere the centre cannot rewrite
(a signed bundle, a supervisor's daily report, another machine) and compare later.

Pruning (prune(), for the audit retention): only the oldest entries go, a run from seq 1 (or
from the last anchor) up to the first entry at or after the cut, and only from a log that
verifies. The last deleted entry's seq and hash become the `anchor` row, and an "audit.prune"
entry (detail through_seq, through_hash) is appended in the same transaction. verify() then
starts the chain from the anchor and requires the newest audit.prune entry (itself chained) to
claim exactly that anchor: moving the anchor to delete more, deleting it, or deleting entries
after it is detected. What pruning leaves undetectable: what the deleted entries said (their
content is gone; only their count and last hash remain), and so any edit made to them before
they were pruned unless verify() was run (prune() runs it first and refuses a broken log); an
exported head whose count is at or below the anchor can no longer be compared with the log.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AuditError
from .migrations import open_area
from .storage import Begin, Place, place

_FORMAT = "msa-audit-1"  # in every hash: a later encoding cannot be mistaken for this one
GENESIS = bytes(32)
FIELD_MAX = 200  # characters in actor, action, subject and source
DETAIL_MAX = 65_536  # characters of canonical JSON detail

PRUNE_ACTION = "audit.prune"
_COLUMNS = "seq, at, actor, action, subject, source, detail, prev_hash, hash"


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored; `detail` is the parsed form of `detail_json`."""

    seq: int
    at: float
    actor: str
    action: str
    subject: str
    source: str
    detail_json: str
    prev_hash: bytes
    hash: bytes

    @property
    def detail(self) -> dict[str, Any]:
        return dict(json.loads(self.detail_json))


@dataclass(frozen=True)
class Verification:
    """verify()'s finding: ok, the entries held, the first seq wrong (or missing) and why."""

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str


def canonical_detail(detail: dict[str, Any] | None) -> str:
    """The one JSON text for `detail` (sorted keys, no spaces, ASCII); ValueError if it holds
    anything but JSON's own types (str keys, finite numbers) or is too long."""
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise ValueError(f"detail must be a dict, not {type(detail).__name__}")
    _check_json(detail, "detail")
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    if len(text) > DETAIL_MAX:
        raise ValueError(f"detail is {len(text)} characters of JSON, at most {DETAIL_MAX}")
    return text


def _check_json(value: object, where: str) -> None:
    # json.dumps would turn int keys and tuples into something else: the stored detail would
    # not be what the caller logged, so refuse instead.
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: only finite numbers")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has key {key!r}: keys must be strings")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise ValueError(f"{where} is a {type(value).__name__}: not a JSON type")


def entry_hash(seq: int, at: float, actor: str, action: str, subject: str, source: str,
               detail_json: str, prev_hash: bytes) -> bytes:
    """SHA-256 over a JSON array, so no field can bleed into the next (`at` as Python's
    shortest round-trip repr, `prev_hash` as hex)."""
    text = json.dumps([_FORMAT, seq, at, actor, action, subject, source, detail_json,
                       prev_hash.hex()], separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).digest()


def _check_field(name: str, value: object) -> None:
    # Only the subject may be empty: an action on nothing in particular (a report, a backup).
    if not isinstance(value, str) or not (value or name == "subject"):
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > FIELD_MAX:
        raise ValueError(f"{name} is {len(value)} characters, at most {FIELD_MAX}")
    if not value.isprintable():
        raise ValueError(f"{name} {value!r} holds unprintable characters")


class AuditLog:
    """The audit log at `where` (a SQLite file, or the audit area of a PostgreSQL URL or Place).
    Several AuditLogs (in several processes, on several nodes) may append to one log: each
    append takes the area's write lock first (Begin.EXCLUSIVE), so the chain cannot fork."""

    def __init__(self, where: Place | Path | str) -> None:
        self.place = place(where, "audit")
        self.path = str(self.place)
        self._db = open_area(self.place, "audit", AuditError)

    def _exec(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.rows(sql, args)

    def append(self, actor: str, action: str, subject: str, source: str,
               detail: dict[str, Any] | None = None, at: float | None = None) -> Entry:
        """Records that `actor` did `action` to `subject` from `source` (an IP address or
        "cli") at `at` (now if None), committed to disk before it returns. AuditError for bad
        input, or when the last entry and the head disagree (run verify()): nothing written."""
        detail_json, when = self._checked(actor, action, subject, source, detail, at)
        with self._db.transaction(Begin.EXCLUSIVE):
            return self._append_locked(actor, action, subject, source, detail_json, when)

    def _checked(self, actor: str, action: str, subject: str, source: str,
                 detail: dict[str, Any] | None, at: float | None) -> tuple[str, float]:
        """An entry's canonical detail and time; AuditError for anything append() refuses."""
        try:
            for name, value in (("actor", actor), ("action", action), ("subject", subject),
                                ("source", source)):
                _check_field(name, value)
            detail_json = canonical_detail(detail)
            when = time.time() if at is None else at
            if isinstance(when, bool) or not isinstance(when, (int, float)) \
                    or not math.isfinite(when):
                raise ValueError(f"at must be a finite number of seconds, not {when!r}")
        except ValueError as exc:
            raise AuditError(self.path, f"entry refused: {exc}") from exc
        return detail_json, float(when) + 0.0  # SQLite gives back -0.0 as 0.0: hash that

    def _append_locked(self, actor: str, action: str, subject: str, source: str,
                       detail_json: str, when: float) -> Entry:
        """append() inside the caller's write transaction."""
        count, prev = self.head()
        # No entry left: the chain ends where pruning anchored it (a prune of every entry).
        last = (self._exec("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
                or self._exec("SELECT seq, hash FROM anchor") or [(0, GENESIS)])
        if (count, prev) != (last[0][0], last[0][1]):
            raise AuditError(self.path, "the last entry and the head disagree: the log"
                             " was tampered with; run verify() before appending")
        seq = count + 1
        digest = entry_hash(seq, when, actor, action, subject, source, detail_json, prev)
        self._exec(f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (seq, when, actor, action, subject, source, detail_json, prev, digest))
        self._exec("INSERT INTO head (id, count, hash) VALUES (1, ?, ?) ON CONFLICT(id)"
                   " DO UPDATE SET count = excluded.count, hash = excluded.hash",
                   (seq, digest))
        return Entry(seq, when, actor, action, subject, source, detail_json, prev, digest)

    def prune(self, before_at: float, actor: str, source: str,
              subject: str = "audit") -> int:
        """Deletes the oldest entries, those before `before_at` up to the first entry at or
        after it (a prefix of the chain, never a hole), anchors the chain at the last one
        deleted and appends an "audit.prune" entry saying so, all in one transaction. How
        many went (0: none, and nothing appended). AuditError, nothing deleted, when the log
        does not verify: pruning must not erase the evidence of an edit.

        The whole log is verified in a read snapshot, so appends go on meanwhile (200,000
        entries take seconds); under the write lock only what was appended since is checked."""
        _, when = self._checked(actor, PRUNE_ACTION, subject, source, None, None)
        if isinstance(before_at, bool) or not isinstance(before_at, (int, float)) \
                or not math.isfinite(before_at):
            raise AuditError(self.path, f"prune refused: before_at {before_at!r} is no time")
        with self._db.transaction(Begin.SNAPSHOT):
            found = self._verify_locked()
            seen = self.head()
        if not found.ok:
            raise AuditError(self.path, f"prune refused: the log does not verify at seq"
                             f" {found.first_bad_seq} ({found.reason})")
        with self._db.transaction(Begin.EXCLUSIVE):
            self._check_since(seen)
            first_kept = self._exec("SELECT MIN(seq) FROM entries WHERE at >= ?",
                                    (float(before_at),))[0][0]
            bound = "" if first_kept is None else " WHERE seq < ?"
            args = () if first_kept is None else (first_kept,)
            rows = self._exec(f"SELECT COUNT(*), MAX(seq) FROM entries{bound}", args)
            removed, through = rows[0]
            if not removed:
                return 0
            through_hash = self._exec("SELECT hash FROM entries WHERE seq = ?", (through,))
            self._exec("DELETE FROM entries WHERE seq <= ?", (through,))
            self._exec("INSERT INTO anchor (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT(id)"
                       " DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                       (through, through_hash[0][0]))
            detail_json = canonical_detail({"through_seq": through, "removed": removed,
                                            "through_hash": bytes(through_hash[0][0]).hex(),
                                            "before_at": float(before_at)})
            self._append_locked(actor, PRUNE_ACTION, subject, source, detail_json, when)
        return int(removed)

    def _check_since(self, seen: tuple[int, bytes]) -> None:
        """AuditError unless the entries from the verified head `seen` on still chain to it
        and end at the head (what was appended since verify(), under the write lock)."""
        rows = self._exec(f"SELECT {_COLUMNS} FROM entries WHERE seq >= ? ORDER BY seq",
                          (seen[0],))
        prev, bad = seen[1], ""
        if not rows or (rows[0][0], rows[0][8]) != seen:
            bad = "the verified head is gone"
        for expected, row in enumerate(rows[1:], start=seen[0] + 1):
            bad = bad or _check_row(expected, row, prev)
            prev = row[8]
        if not bad and self.head() != (seen[0] + len(rows) - 1, prev):
            bad = "the head moved"
        if bad:
            raise AuditError(self.path, "prune refused: the log changed while it was verified"
                             f" ({bad}); prune again")

    def head(self) -> tuple[int, bytes]:
        """(entry count, last entry's hash): export it to anchor the log outside the centre."""
        rows = self._exec("SELECT count, hash FROM head WHERE id = 1") or [(0, GENESIS)]
        count, digest = rows[0]
        if not (isinstance(count, int) and isinstance(digest, bytes)):
            raise AuditError(self.path, "the head row holds the wrong types: run verify()")
        return count, digest

    def entries(self, since_seq: int = 0, subject: str | None = None) -> list[Entry]:
        """The entries after `since_seq` (only those about `subject`, if given), oldest first,
        as stored (verify() says if they are genuine)."""
        where, args = ("", (since_seq,)) if subject is None else (" AND subject = ?",
                                                                  (since_seq, subject))
        rows = self._exec(f"SELECT {_COLUMNS} FROM entries WHERE seq > ?{where} ORDER BY seq",
                          args)
        return [Entry(*row) for row in rows]

    def verify(self) -> Verification:
        """Recomputes every entry's hash and link, checks the seqs run 1, 2, ... (or on from
        the anchor left by pruning, which the newest audit.prune entry must claim) without a
        gap and that the head counts and ends where the entries do: one snapshot, read while
        appends from other processes go on."""
        with self._db.transaction(Begin.SNAPSHOT):
            return self._verify_locked()

    def _verify_locked(self) -> Verification:
        rows = self._exec(f"SELECT {_COLUMNS} FROM entries ORDER BY seq")
        heads = self._exec("SELECT count, hash FROM head")
        anchors = self._exec("SELECT seq, hash FROM anchor")
        n = len(rows)
        start, prev = 0, GENESIS  # the seq and hash the first entry held links to
        if anchors:
            start, prev = anchors[0]
            if not (isinstance(start, int) and start > 0 and isinstance(prev, bytes)):
                return Verification(False, n, 1, "the anchor row holds the wrong types")
        for expected, row in enumerate(rows, start=start + 1):
            bad = _check_row(expected, row, prev)
            if bad:
                return Verification(False, n, expected, bad)
            prev = row[8]
        claim = _prune_claim(rows, (start, anchors[0][1]) if anchors else None)
        if claim:
            return Verification(False, n, claim[0], claim[1])
        if not heads:
            return Verification(not n and not anchors, n, 1 if n else None,
                                "the head row is missing" if n else "empty log")
        count, last = heads[0]
        if count != start + n:
            first = min(count, start + n) + 1 if isinstance(count, int) else 1
            return Verification(False, n, first, f"the head counts {count!r} entries, the log"
                                f" holds {start + n}: entries at the end were deleted or"
                                " added")
        if last != prev:
            return Verification(False, n, start + n or 1,
                                "the head's hash is not the last entry's")
        pruned = f" after {start} pruned" if anchors else ""
        return Verification(True, n, None, f"{n} entries{pruned}, chain and head intact")

    def close(self) -> None:
        self._db.close()


def _check_row(expected: int, row: tuple[Any, ...], prev: bytes) -> str:
    """Why the stored row at position `expected` is not genuine, or "" if it is."""
    seq, at, actor, action, subject, source, detail_json, prev_hash, digest = row
    if seq != expected:
        return f"expected seq {expected}, found {seq!r}: an entry was deleted or moved"
    # A time edited to infinity (SQLite stores it) has no JSON form to hash: a wrong value too.
    if not (isinstance(at, float) and math.isfinite(at)
            and all(isinstance(v, str) for v in row[2:7])
            and isinstance(prev_hash, bytes) and isinstance(digest, bytes)):
        return "a field holds the wrong type"
    if prev_hash != prev:
        return "prev_hash is not the previous entry's hash: the chain is broken here"
    if entry_hash(seq, at, actor, action, subject, source, detail_json, prev) != digest:
        return "the hash does not match the entry: a field was altered"
    return ""


def _prune_claim(rows: list[tuple[Any, ...]], anchor: tuple[int, bytes] | None
                 ) -> tuple[int, str] | None:
    """(seq, why) when the anchor and the newest audit.prune entry (already verified as part
    of the chain) disagree, None when they agree or neither exists."""
    claims = [row for row in rows if row[3] == PRUNE_ACTION]
    if not claims:
        return None if anchor is None else (
            anchor[0] + 1, "the chain starts at an anchor no audit.prune entry claims")
    seq, detail_json = claims[-1][0], claims[-1][6]
    try:
        detail = json.loads(detail_json)
        said = (detail["through_seq"], bytes.fromhex(detail["through_hash"]))
    except (ValueError, TypeError, KeyError):
        return seq, "the audit.prune entry's detail names no anchor"
    if anchor is None:
        return seq, "an audit.prune entry claims pruned entries but the anchor is missing"
    if said != anchor:
        return seq, (f"the anchor (seq {anchor[0]}) is not the one the newest audit.prune"
                     f" entry claims (seq {said[0]})")
    return None
