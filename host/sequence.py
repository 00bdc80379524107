"""Replay and duplicate rejection for verified frames, with state that survives host restarts.

Per button the host keeps the highest sequence number accepted and the ranges below it that it
has not seen (gaps). A frame is accepted if its number is above the highest, or inside a gap
(a frame that arrived late, e.g. through an advert burst out of order); in both cases exactly
once. Everything else is a duplicate or a replay and is rejected: there is no grace window.
Gaps are reported when they open; the oldest are given up (reported as lost) past MAX_GAPS.
Each decision is committed to SQLite before it is returned, so an acknowledgement sent after it
is never followed by a second acceptance of the same number, even across a crash.
"""
from __future__ import annotations

import enum
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StateError
from msa.common.sqlite import open_wal

MAX_GAPS = 32


class Outcome(enum.Enum):
    """What the guard decided for one sequence number."""

    NEW = "new"  # above everything seen so far
    LATE = "late"  # filled a gap
    DUPLICATE = "duplicate"  # equal to the highest accepted
    REPLAY = "replay"  # below the highest and not in a gap: seen before, or given up


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    gap: tuple[int, int] | None = None  # numbers skipped by this frame, inclusive
    lost: tuple[tuple[int, int], ...] = field(default=())  # gaps given up because of it

    @property
    def accepted(self) -> bool:
        return self.outcome in (Outcome.NEW, Outcome.LATE)


def decide(high: int, gaps: list[tuple[int, int]], seq: int
           ) -> tuple[Verdict, int, list[tuple[int, int]]]:
    """The pure rule: (verdict, new highest, new gaps) for `seq` given the state."""
    if seq > high:
        gaps = list(gaps)
        gap = None
        if high > 0 and seq > high + 1:
            gap = (high + 1, seq - 1)
            gaps.append(gap)
        lost = tuple(gaps[:-MAX_GAPS]) if len(gaps) > MAX_GAPS else ()
        return Verdict(Outcome.NEW, gap, lost), seq, gaps[-MAX_GAPS:]
    for i, (lo, hi) in enumerate(gaps):
        if lo <= seq <= hi:
            split = [(a, b) for a, b in ((lo, seq - 1), (seq + 1, hi)) if a <= b]
            return Verdict(Outcome.LATE), high, gaps[:i] + split + gaps[i + 1:]
    outcome = Outcome.DUPLICATE if seq == high else Outcome.REPLAY
    return Verdict(outcome), high, list(gaps)


class SequenceGuard:
    """The persisted guard for all buttons of one host (SQLite, WAL)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            self._db = open_wal(self.path, (
                "CREATE TABLE IF NOT EXISTS seq_state ("
                " button_id INTEGER PRIMARY KEY, high INTEGER NOT NULL, gaps TEXT NOT NULL)",))
        except (sqlite3.Error, OSError) as exc:
            raise StateError(self.path, str(exc)) from exc

    def state(self, button_id: int) -> tuple[int, list[tuple[int, int]]]:
        """(highest accepted, gaps) for a button; (0, []) before its first frame."""
        try:
            row = self._db.execute("SELECT high, gaps FROM seq_state WHERE button_id = ?",
                                   (button_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StateError(self.path, str(exc)) from exc
        if row is None:
            return 0, []
        return int(row[0]), [(int(a), int(b)) for a, b in json.loads(row[1])]

    def peek(self, button_id: int, seq: int) -> Verdict:
        """What check() would decide, without committing it. The host stores an accepted
        event durably (idempotently, by key) between peek() and check(): a crash in between
        then finds the number still new, and the outbox dedupes the second store."""
        high, gaps = self.state(button_id)
        return decide(high, gaps, seq)[0]

    def check(self, button_id: int, seq: int) -> Verdict:
        """Decides for one verified frame and commits the new state before returning."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            high, gaps = self.state(button_id)
            verdict, high, gaps = decide(high, gaps, seq)
            if verdict.accepted:
                self._db.execute(
                    "INSERT INTO seq_state (button_id, high, gaps) VALUES (?, ?, ?)"
                    " ON CONFLICT(button_id) DO UPDATE SET high = excluded.high,"
                    " gaps = excluded.gaps", (button_id, high, json.dumps(gaps)))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StateError(self.path, str(exc)) from exc
        return verdict

    def forget(self, button_id: int) -> None:
        """Drops a retired button's state."""
        try:
            self._db.execute("DELETE FROM seq_state WHERE button_id = ?", (button_id,))
        except sqlite3.Error as exc:
            raise StateError(self.path, str(exc)) from exc

    def close(self) -> None:
        self._db.close()
