"""Perpetrator GPS tags at the centre: each tag is linked to a case (the case's suspect wears
it), has a public id (TAG-xxxxxxxx, for people and logs) and a secret of its own (256 random
bits, URL-safe) that is its OsmAnd `id` and its bearer token alike, kept as its SHA-256 only and
shown once at issue. Positions go to tag_positions; supervision (silence, low battery, tamper)
is computed when the operator's warnings are read, so a silent tag needs no message to be seen.

The tables live in the registry's database (registry.db, 0600), read on every request so that
`msa case tag-retire` in another process takes effect at once (as centre/hosts.py does).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from msa.wire.tag import LOW_BATTERY_PCT, TagReport

from .errors import RegistryError, StorageConflict
from .hosts import secret_hash
from .registry import Database, Registry

SECRET_BYTES = 32  # 43 URL-safe characters: far above the 128 bits an OsmAnd id must carry
SILENCE_GRACE_S = 60.0  # a tag is silent after its interval and this much more
MIN_INTERVAL_S, MAX_INTERVAL_S = 1, 86_400


@dataclass(frozen=True)
class Tag:
    """A tag as the operator and the CLI see it (no secret)."""

    tag_id: str
    case_ref: str
    interval_s: int
    issued_at: float
    retired: bool


@dataclass(frozen=True)
class IssuedTag:
    """A tag just issued: its secret is shown once, to the technician, never again."""

    tag: Tag
    secret: str = field(repr=False)


class Tags(Database):
    """The tags and their positions, in the registry's database (a connection of its own)."""

    def __init__(self, registry: Registry, low_battery_pct: float = LOW_BATTERY_PCT) -> None:
        # Positions without an fsync each (Database, `positions`): 5,000 a second need it,
        # and a tag reports again within its interval.
        super().__init__(registry.place, positions=True)
        self.registry = registry
        self.low_battery_pct = low_battery_pct

    def issue(self, case_ref: str, interval_s: int, now: float | None = None) -> IssuedTag:
        """A new tag for the suspect of `case_ref`, expected to report every `interval_s`;
        RegistryError for an unknown case, one without a suspect, or an interval out of range."""
        if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
            raise RegistryError(self.path, f"interval {interval_s} s: from {MIN_INTERVAL_S} to"
                                f" {MAX_INTERVAL_S} s")
        case = self.registry.case(case_ref)
        if case is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        if not case.suspect.strip():
            raise RegistryError(self.path, f"case {case_ref!r} names no suspect: a tag is"
                                " worn by the suspect (msa case add --suspect)")
        issued_at = time.time() if now is None else now
        secret = secrets.token_urlsafe(SECRET_BYTES)
        for _ in range(8):  # a new id on the rare clash with one given before
            tag_id = "TAG-" + secrets.token_hex(4).upper()
            try:
                self._db.execute("INSERT INTO tags (tag_id, case_ref, secret_sha256,"
                                 " interval_s, issued_at) VALUES (?, ?, ?, ?, ?)",
                                 (tag_id, case_ref, secret_hash(secret), interval_s, issued_at))
            except StorageConflict:
                continue
            return IssuedTag(Tag(tag_id, case_ref, interval_s, issued_at, False), secret)
        raise RegistryError(self.path, "no free tag id found")

    def retire(self, tag_id: str) -> bool:
        """Takes a tag out of service: its secret stops working at once and it is no longer
        supervised. False if no tag of that id was in service."""
        return self._write("UPDATE tags SET retired_at = ? WHERE tag_id = ? AND retired_at IS"
                           " NULL", (time.time(), tag_id)) > 0

    _COLUMNS = "tag_id, case_ref, interval_s, issued_at, retired_at"

    @staticmethod
    def _tag(row: tuple[object, ...]) -> Tag:
        tag_id, case_ref, interval_s, issued_at, retired_at = row[:5]
        return Tag(str(tag_id), str(case_ref), int(str(interval_s)), float(str(issued_at)),
                   retired_at is not None)

    def by_secret(self, secret: str) -> Tag | None:
        """The tag in service whose secret this is, None for any other string (a retired
        tag's too: the caller cannot tell them apart, and neither can the sender)."""
        rows = self._exec(f"SELECT {self._COLUMNS} FROM tags WHERE secret_sha256 = ?"
                          " AND retired_at IS NULL", (secret_hash(secret),))
        return self._tag(rows[0]) if rows else None

    def of_case(self, case_ref: str) -> list[Tag]:
        """The case's tags, in service and retired, oldest first (no secrets)."""
        return [self._tag(r) for r in self._exec(
            f"SELECT {self._COLUMNS} FROM tags WHERE case_ref = ? ORDER BY issued_at, tag_id",
            (case_ref,))]

    def record(self, tag: Tag, report: TagReport, received_at: float) -> None:
        """Stores one checked report of a tag in service (committed before it returns)."""
        self._write("INSERT INTO tag_positions (tag_id, received_at, fix_time, lat, lon,"
                    " accuracy_m, battery_pct, tamper) VALUES (?,?,?,?,?,?,?,?)",
                    (tag.tag_id, received_at, report.time, report.lat, report.lon,
                     report.accuracy_m, report.battery_pct, int(report.tamper)), fast=True)

    def positions(self, tag_id: str) -> list[dict[str, object]]:
        """A tag's stored reports, oldest first."""
        names = ("received_at", "fix_time", "lat", "lon", "accuracy_m", "battery_pct",
                 "tamper")
        return [dict(zip(names, (*r[:6], bool(r[6])))) for r in self._exec(
            "SELECT received_at, fix_time, lat, lon, accuracy_m, battery_pct, tamper"
            " FROM tag_positions WHERE tag_id = ? ORDER BY id", (tag_id,))]

    def prune(self, before: float) -> int:
        """Deletes tag positions received before `before` (the tag-position retention), but
        keeps what warnings() reads: each tag's newest report (its battery, when it was last
        heard) and the tamper reports of tags in service (a tamper warning stays until the
        tag is retired). How many went."""
        return self._write("DELETE FROM tag_positions WHERE received_at < ? AND id NOT IN"
                           " (SELECT MAX(id) FROM tag_positions GROUP BY tag_id) AND NOT"
                           " (tamper = 1 AND tag_id IN (SELECT tag_id FROM tags WHERE"
                           " retired_at IS NULL))", (before,), fast=True)

    def warnings(self, now: float) -> list[dict[str, object]]:
        """The operator's warnings for tags in service: silent (no report for its interval +
        SILENCE_GRACE_S, counted from issue before its first), low battery (its latest report
        at or below the threshold), tampered (any report since issue said so: it stays until
        the tag is retired or replaced)."""
        out: list[dict[str, object]] = []
        rows = self._exec(
            "SELECT t.tag_id, t.case_ref, t.interval_s, t.issued_at,"
            " (SELECT MAX(received_at) FROM tag_positions p WHERE p.tag_id = t.tag_id),"
            " (SELECT battery_pct FROM tag_positions p WHERE p.tag_id = t.tag_id"
            "  ORDER BY id DESC LIMIT 1),"
            " (SELECT MAX(received_at) FROM tag_positions p WHERE p.tag_id = t.tag_id"
            "  AND tamper = 1)"
            " FROM tags t WHERE t.retired_at IS NULL ORDER BY t.tag_id")
        for tag_id, case_ref, interval_s, issued_at, last, battery, tampered in rows:
            base = {"button_id": None, "tag_id": str(tag_id), "case_ref": str(case_ref)}
            since = float(str(issued_at if last is None else last))
            if now - since > int(str(interval_s)) + SILENCE_GRACE_S:
                out.append({**base, "warning": "tag silent", "last_seen": last})
            if battery is not None and float(str(battery)) <= self.low_battery_pct:
                out.append({**base, "warning": "tag low battery",
                            "battery_pct": float(str(battery))})
            if tampered is not None:
                out.append({**base, "warning": "tag tampered", "tamper_at": tampered})
        return out
