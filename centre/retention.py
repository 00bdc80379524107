"""How long the centre keeps what it records, and the prune that applies it: victim positions
outside an alert, perpetrator-tag positions, the track of incidents resolved long ago, and audit
entries (never less than a year). Run once (prune()) or hourly by the running centre
(run_retention()); every kind left at None is kept for ever, as before retention existed.

Each prune opens its own connections (another process, `msa centre`, may be serving) and closes
them again; the database orders it with the centre's writes. Two nodes on one PostgreSQL each
prune: a second prune finds nothing left to remove.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .audit import AuditLog
from .errors import CentreConfigError, CentreError, RecordError
from .proxstore import RETENTION_S, ProximityStore
from .migrations import open_area
from .registry import Registry
from .storage import Engine, Place, place
from .tags import Tags

log = logging.getLogger("msa.centre.retention")

DAY_S = 86_400.0
MIN_AUDIT_S = 365 * DAY_S  # an audit trail shorter than a year would not outlast a complaint
PRUNE_ACTOR = "centre:retention"  # who the audit.prune entry names when the centre prunes
PRUNE_SOURCE = "centre"


@dataclass(frozen=True)
class StatePaths:
    """Where a centre's three areas are (centre/storage.py): a state folder's files, or the
    schemas of its PostgreSQL database."""

    registry: Place
    records: Place
    audit: Place

    @classmethod
    def of(cls, state_dir: Path, database: str | None = None) -> StatePaths:
        """The areas in `state_dir`, or in the database at URL `database` if given."""
        base = place(state_dir / "registry.db") if database is None else \
            place(database, "registry")
        return cls(base, base.sibling("records"), base.sibling("audit"))


@dataclass(frozen=True)
class Retention:
    """How long each kind is kept, in seconds; None keeps it for ever. CentreConfigError for a
    time that is not positive, or an audit retention under MIN_AUDIT_S."""

    victim_positions_s: float = RETENTION_S  # outside an open alert (CentreConfig.retention_s)
    tag_positions_s: float | None = None
    resolved_tracks_s: float | None = None  # counted from the incident's resolution
    audit_s: float | None = None

    def __post_init__(self) -> None:
        for key, value in (("victim retention", self.victim_positions_s),
                           ("tag retention", self.tag_positions_s),
                           ("track retention", self.resolved_tracks_s),
                           ("audit retention", self.audit_s)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise CentreConfigError(key, f"{value!r} s: a positive number of seconds")
        if self.audit_s is not None and self.audit_s < MIN_AUDIT_S:
            raise CentreConfigError("audit retention", f"{self.audit_s / DAY_S:g} days: at"
                                    f" least {MIN_AUDIT_S / DAY_S:g} days (or keep it all)")


@dataclass(frozen=True)
class PruneReport:
    """How many of each kind one prune removed."""

    victim_positions: int = 0
    tag_positions: int = 0
    track_points: int = 0
    audit_entries: int = 0


def _prune_tracks(where: Place, before: float) -> int:
    if where.kind is Engine.SQLITE and not Path(where.target).exists():
        return 0  # no alarm recorded yet
    db = open_area(where, "records", RecordError)
    try:
        return db.execute("DELETE FROM track WHERE incident IN (SELECT id FROM incidents"
                          " WHERE status = 'resolved' AND resolved_at < ?)",
                          (before,)).rowcount
    finally:
        db.close()


def prune(paths: StatePaths, retention: Retention, now: float, *, actor: str = PRUNE_ACTOR,
          source: str = PRUNE_SOURCE) -> PruneReport:
    """Removes what `retention` no longer keeps at `now`. An open incident's track is never
    removed, nor the victim positions of a case with an open alert. CentreConfigError when the
    folder holds no registry; the databases' own errors otherwise."""
    if paths.registry.kind is Engine.SQLITE and not Path(paths.registry.target).is_file():
        raise CentreConfigError("state folder", f"no registry at {paths.registry}: is this a"
                                " centre's state folder?")
    registry = Registry(paths.registry)
    try:
        store = ProximityStore(registry, retention.victim_positions_s)
        try:
            victim = store.prune(now, store.open_alert_cases())
        finally:
            store.close()
        tag = 0
        if retention.tag_positions_s is not None:
            tags = Tags(registry)
            try:
                tag = tags.prune(now - retention.tag_positions_s)
            finally:
                tags.close()
    finally:
        registry.close()
    track = 0 if retention.resolved_tracks_s is None else _prune_tracks(
        paths.records, now - retention.resolved_tracks_s)
    audit_n = 0
    if retention.audit_s is not None:
        audit = AuditLog(paths.audit)
        try:
            audit_n = audit.prune(now - retention.audit_s, actor, source)
        finally:
            audit.close()
    return PruneReport(victim, tag, track, audit_n)


async def run_retention(paths: StatePaths, retention: Retention, clock: Callable[[], float],
                        interval_s: float = 3600.0,
                        on_pruned: Callable[[PruneReport], None] | None = None) -> None:
    """The running centre's retention: prunes at once, then every `interval_s`, until
    cancelled; off the event loop (a prune of a year's positions takes a while). A failed
    prune is logged and tried again at the next interval: it must not stop the centre."""
    if not interval_s > 0:
        raise CentreConfigError("retention interval", f"{interval_s!r} s: must be positive")
    while True:
        try:
            report = await asyncio.to_thread(prune, paths, retention, clock())
        except CentreError as exc:
            log.error("retention: prune failed, tried again in %g s: %s", interval_s, exc)
        except Exception:  # noqa: BLE001 - a fault of ours: logged whole, the centre goes on
            log.exception("retention: prune failed, tried again in %g s", interval_s)
        else:
            log.info("retention: pruned %s", report)
            if on_pruned is not None:
                on_pruned(report)
        await asyncio.sleep(interval_s)
