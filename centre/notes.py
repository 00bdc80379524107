"""Operators' notes on incidents, kept beside the alarm records (their area: records.db, 0600,
or the `records` schema) in a table of their own: who wrote what about which incident, and
when. Notes are only ever added: a note that was wrong is answered by a later note, as on paper.

Notes has its own connection to the records. A Centre on the same SQLite file in the same
thread may hold a write batch open until its event loop's next turn: call Centre.flush() before
add() there (as Centre.resolve() does), or the add waits on SQLite's lock and fails.
"""
from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

from msa.wire.message import MAX_TIME, finite

from .errors import RecordError
from .migrations import open_area
from .storage import Place, place

NOTE_MAX = 4000  # characters, after stripping
AUTHOR_MAX = 200  # characters (an account name, as in the audit log)
_ALLOWED_CONTROLS = frozenset("\n\t")

_COLUMNS = ("id", "incident", "author", "text", "at")


def _check_text(text: object) -> str:
    """The note's text as stored: stripped; ValueError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError(f"the text must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("the text is empty")
    if len(text) > NOTE_MAX:
        raise ValueError(f"the text is {len(text)} characters, at most {NOTE_MAX}")
    for i, char in enumerate(text):
        # Cc: NUL and the other control characters (an escape sequence could rewrite a
        # terminal that shows the note); Cs: a lone surrogate cannot even be stored.
        if unicodedata.category(char) in ("Cc", "Cs") and char not in _ALLOWED_CONTROLS:
            raise ValueError(f"the text holds control character U+{ord(char):04X} at"
                             f" {i}: only newline and tab are allowed")
    return text


def _check_author(author: object) -> str:
    if not isinstance(author, str) or not author:
        raise ValueError("the author must be a non-empty string")
    if len(author) > AUTHOR_MAX:
        raise ValueError(f"the author is {len(author)} characters, at most {AUTHOR_MAX}")
    if not author.isprintable():
        raise ValueError(f"the author {author!r} holds unprintable characters")
    return author


class Notes:
    """The notes table in the records at `where`."""

    def __init__(self, where: Place | Path | str) -> None:
        self.place = place(where, "records")
        self.path = str(self.place)
        self._db = open_area(self.place, "records", RecordError)

    def check(self, text: str) -> str:
        """The text as add() would store it (stripped); RecordError saying what is wrong."""
        try:
            return _check_text(text)
        except ValueError as exc:
            raise RecordError(self.path, f"note refused: {exc}") from exc

    @staticmethod
    def digest(text: str) -> str:
        """SHA-256 (hex) of a note's stored text: an audit entry that holds it shows whether
        the note was changed afterwards."""
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def add(self, incident: int, author: str, text: str, at: float) -> int:
        """Adds a note to incident number `incident`, committed (synced) before it returns;
        its id. RecordError, with nothing stored, for a bad text, author or time, or an
        incident the records do not hold."""
        try:
            if isinstance(incident, bool) or not isinstance(incident, int) or incident < 1:
                raise ValueError(f"the incident must be a positive integer, not {incident!r}")
            author = _check_author(author)
            text = _check_text(text)
            when = finite(at, 0.0, MAX_TIME, "the time")
        except ValueError as exc:
            raise RecordError(self.path, f"note refused: {exc}") from exc
        # One statement: the incident cannot vanish between a check and the insert.
        row = self._db.execute(
            "INSERT INTO notes (incident, author, text, at) SELECT ?, ?, ?, ?"
            " WHERE EXISTS (SELECT 1 FROM incidents WHERE id = ?) RETURNING id",
            (incident, author, text, when, incident)).one()
        if row is None:
            raise RecordError(self.path, f"note refused: no incident number {incident}")
        return int(row[0])

    def for_incident(self, incident: int) -> list[dict[str, object]]:
        """The incident's notes, oldest first (by `at`, then in the order they were added)."""
        rows = self._db.rows(f"SELECT {', '.join(_COLUMNS)} FROM notes"
                             " WHERE incident = ? ORDER BY at, id", (incident,))
        return [dict(zip(_COLUMNS, row)) for row in rows]

    def close(self) -> None:
        self._db.close()
