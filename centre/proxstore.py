"""The proximity part of the case file and record, in the registry's database (registry.db,
0600): each case's radii and fixed zones, extra cases a tag is linked to (one offender, two
victims), the victim's positions (kept only as long as the rules need them), and the record of
every pre-alert, alert, flag, warning delivery and acknowledgement."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass


from .errors import RegistryError, StorageConflict
from .geo import Circle, Polygon, Shape
from .proximity import ALERT, FLAGS, VICTIM_ZONE, CaseRules, Change, shape_json
from .registry import Database, Registry

DEFAULT_RADIUS_M = 500.0  # Spain's Cometa; a court order sets the case's own
MIN_RADIUS_M, MAX_RADIUS_M = 50.0, 50_000.0  # France's bracelet goes to 10 km, pre-alert 20
RETENTION_S = 86_400.0  # victim positions outside an alarm are kept this long by default
MAX_CORNERS = 64
ZONE_NAME_MAX = 32


@dataclass(frozen=True)
class Delivery:
    """A warning's delivery as the host reported it."""

    warning_id: int
    at: float
    delivery: dict[str, str]


def parse_shape(text: str) -> Shape:
    """A zone's shape from the case file's JSON ({"circle": {lat, lon, radius_m}} or
    {"polygon": [[lat, lon], ...]}); ValueError saying what is wrong."""
    obj = json.loads(text)
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError('a shape is {"circle": {...}} or {"polygon": [...]}')
    if "circle" in obj:
        c = obj["circle"]
        if not isinstance(c, dict) or set(c) != {"lat", "lon", "radius_m"}:
            raise ValueError("a circle has lat, lon and radius_m")
        return Circle(_coord(c["lat"], 90), _coord(c["lon"], 180),
                      _real(c["radius_m"], 0.0, 10_000.0, "radius_m"))
    corners = obj.get("polygon")
    if not isinstance(corners, list) or not 3 <= len(corners) <= MAX_CORNERS:
        raise ValueError(f"a polygon has 3 to {MAX_CORNERS} corners")
    out = []
    for corner in corners:
        if not isinstance(corner, list) or len(corner) != 2:
            raise ValueError("a corner is [lat, lon]")
        out.append((_coord(corner[0], 90), _coord(corner[1], 180)))
    return Polygon(tuple(out))


def _real(value: object, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{what} must be a number from {low:g} to {high:g}")
    return float(value)


def _coord(value: object, limit: float) -> float:
    return _real(value, -limit, limit, "a latitude or longitude")


class ProximityStore(Database):
    """The proximity tables; positions go through a second connection without fsync per write
    (a victim position lost to a power cut is replaced by the next, 10 to 30 s later)."""

    def __init__(self, registry: Registry, retention_s: float = RETENTION_S) -> None:
        super().__init__(registry.place, positions=True)
        self.registry = registry
        self.retention_s = retention_s

    # --- the case file: radii, zones, links (msa case) ---
    def set_rules(self, case_ref: str, alert_radius_m: float, prealert_radius_m: float | None,
                  moving_zone: bool) -> CaseRules:
        """Sets a case's radii (pre-alert default 2R) and whether the zone moves with her."""
        if self.registry.case(case_ref) is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        pre = 2 * alert_radius_m if prealert_radius_m is None else prealert_radius_m
        if not MIN_RADIUS_M <= alert_radius_m <= MAX_RADIUS_M or not alert_radius_m < pre <= \
                2 * MAX_RADIUS_M:
            raise RegistryError(self.path, f"radius {alert_radius_m:g} m, pre-alert {pre:g} m:"
                                f" R from {MIN_RADIUS_M:g} to {MAX_RADIUS_M:g} m, the pre-alert"
                                " radius above it")
        self._write("INSERT INTO proximity_rules VALUES (?, ?, ?, ?) ON CONFLICT (case_ref)"
                    " DO UPDATE SET alert_radius_m = excluded.alert_radius_m,"
                    " prealert_radius_m = excluded.prealert_radius_m,"
                    " moving_zone = excluded.moving_zone",
                    (case_ref, alert_radius_m, pre, int(moving_zone)))
        return self.rules(case_ref)

    def add_zone(self, case_ref: str, name: str, shape: Shape) -> None:
        """A fixed zone (home, work, school) for a case; RegistryError for a name in use."""
        if self.registry.case(case_ref) is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        if not (name.isascii() and name.replace("-", "").replace("_", "").isalnum()
                and 0 < len(name) <= ZONE_NAME_MAX and name != VICTIM_ZONE):
            raise RegistryError(self.path, f"zone name {name!r}: 1 to {ZONE_NAME_MAX} letters,"
                                f" digits, - and _, not {VICTIM_ZONE!r}")
        try:
            self._db.execute("INSERT INTO zones VALUES (?, ?, ?, ?)",
                             (case_ref, name, json.dumps(shape_json(shape)), time.time()))
        except StorageConflict:
            raise RegistryError(self.path, f"case {case_ref!r} has a zone {name!r} already:"
                                " remove it first") from None

    def remove_zone(self, case_ref: str, name: str) -> bool:
        return self._write("DELETE FROM zones WHERE case_ref = ? AND name = ?",
                           (case_ref, name)) > 0

    def link(self, tag_id: str, case_ref: str) -> None:
        """Links a tag to a further case (the same offender, another victim)."""
        if self.registry.case(case_ref) is None:
            raise RegistryError(self.path, f"no case {case_ref!r}: add the case first")
        if not self._exec("SELECT 1 FROM tags WHERE tag_id = ? AND retired_at IS NULL",
                          (tag_id,)):
            raise RegistryError(self.path, f"no tag {tag_id!r} in service")
        self._write("INSERT INTO tag_links VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (tag_id, case_ref))

    def cases_of(self, tag_id: str, case_ref: str) -> list[str]:
        """The cases a tag is linked to: its own first, then the others."""
        return [case_ref, *(str(r[0]) for r in self._exec(
            "SELECT case_ref FROM tag_links WHERE tag_id = ? AND case_ref != ?"
            " ORDER BY case_ref", (tag_id, case_ref)))]

    def tags_of(self, case_ref: str) -> list[str]:
        """The tags in service watched for a case (its own and those linked to it)."""
        return [str(r[0]) for r in self._exec(
            "SELECT tag_id FROM tags WHERE case_ref = ? AND retired_at IS NULL UNION"
            " SELECT t.tag_id FROM tag_links l JOIN tags t ON t.tag_id = l.tag_id"
            " WHERE l.case_ref = ? AND t.retired_at IS NULL ORDER BY 1", (case_ref, case_ref))]

    def rules(self, case_ref: str) -> CaseRules:
        """A case's rules; the defaults (R 500 m, 2R, moving zone) where none are set."""
        rows = self._exec("SELECT alert_radius_m, prealert_radius_m, moving_zone FROM"
                          " proximity_rules WHERE case_ref = ?", (case_ref,))
        zones = {str(name): parse_shape(str(shape)) for name, shape in self._exec(
            "SELECT name, shape FROM zones WHERE case_ref = ? ORDER BY name", (case_ref,))}
        if not rows:
            return CaseRules(case_ref, DEFAULT_RADIUS_M, 2 * DEFAULT_RADIUS_M, True, zones)
        r, p, moving = rows[0]
        return CaseRules(case_ref, float(str(r)), float(str(p)), bool(moving), zones)

    # --- positions ---
    def record_victim(self, case_ref: str, received_at: float, fix_time: float, lat: float,
                      lon: float, accuracy_m: float) -> None:
        self._write("INSERT INTO victim_positions (case_ref, received_at, fix_time, lat, lon,"
                    " accuracy_m) VALUES (?, ?, ?, ?, ?, ?)",
                    (case_ref, received_at, fix_time, lat, lon, accuracy_m), fast=True)

    def victim_positions(self, case_ref: str) -> list[dict[str, float]]:
        names = ("received_at", "fix_time", "lat", "lon", "accuracy_m")
        return [dict(zip(names, (float(str(v)) for v in r))) for r in self._exec(
            "SELECT received_at, fix_time, lat, lon, accuracy_m FROM victim_positions"
            " WHERE case_ref = ? ORDER BY id", (case_ref,))]

    def prune(self, now: float, keep_cases: frozenset[str] = frozenset()) -> int:
        """Deletes victim positions older than the retention, except those of cases with an
        alert open (`keep_cases`: they are the alarm's evidence). How many went."""
        # NOT IN () is SQLite's only: an empty list keeps the case no one has ("").
        kept = sorted(keep_cases) or [""]
        marks = ",".join("?" * len(kept))
        return self._write(f"DELETE FROM victim_positions WHERE received_at < ?"
                           f" AND case_ref NOT IN ({marks})",
                           (now - self.retention_s, *kept), fast=True)

    def open_alert_cases(self) -> frozenset[str]:
        """The cases with a proximity alert not cleared in the record: their victim positions
        are the alert's evidence (prune() keeps them). Read from the record, so it holds
        across restarts, processes and nodes."""
        rows = self._exec(
            "SELECT DISTINCT a.case_ref FROM proximity_events a WHERE a.kind = ? AND NOT"
            " EXISTS (SELECT 1 FROM proximity_events c WHERE c.case_ref = a.case_ref AND"
            " c.tag_id = a.tag_id AND c.zone = a.zone AND c.kind = ? AND c.id > a.id)",
            (ALERT, f"{ALERT} cleared"))
        return frozenset(str(r[0]) for r in rows)

    # --- the record ---
    def record(self, change: Change) -> int:
        """One pre-alert, alert, clearing or flag in the case record; its id. A flag is
        written without an fsync of its own (it comes with the next durable write)."""
        return self._write("INSERT INTO proximity_events (case_ref, tag_id, zone, kind, at,"
                           " distance_m, near_m) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                           (change.case_ref, change.tag_id, change.zone, change.kind,
                            change.at, change.distance_m, change.near_m),
                           fast=change.kind in FLAGS)

    def record_note(self, case_ref: str, tag_id: str, zone: str, kind: str, at: float,
                    ref: int | None, detail: dict[str, object]) -> int:
        """A delivery, an acknowledgement or a warning sent, tied to its alert by `ref`."""
        return self._write("INSERT INTO proximity_events (case_ref, tag_id, zone, kind, at,"
                           " ref, detail) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                           (case_ref, tag_id, zone, kind, at, ref,
                            json.dumps(detail, sort_keys=True)))

    def alerts_after(self, case_ref: str, after: int, limit: int = 50
                     ) -> list[tuple[int, str, str, float, float | None]]:
        """The case's alerts with an id above `after`: (id, tag, zone, at, distance)."""
        return [(int(str(i)), str(t), str(z), float(str(a)),
                 None if d is None else float(str(d))) for i, t, z, a, d in self._exec(
            "SELECT id, tag_id, zone, at, distance_m FROM proximity_events WHERE case_ref = ?"
            " AND id > ? AND kind = 'alert' ORDER BY id LIMIT ?", (case_ref, after, limit))]

    def event(self, case_ref: str, event_id: int) -> tuple[str, str, str] | None:
        """(kind, tag, zone) of a case's record entry, None if it is not the case's."""
        rows = self._exec("SELECT kind, tag_id, zone FROM proximity_events WHERE id = ? AND"
                          " case_ref = ?", (event_id, case_ref))
        return None if not rows else (str(rows[0][0]), str(rows[0][1]), str(rows[0][2]))

    def events(self, case_ref: str) -> list[dict[str, object]]:
        """The case's proximity record, oldest first."""
        names = ("id", "tag_id", "zone", "kind", "at", "distance_m", "near_m", "ref", "detail")
        out = []
        for row in self._exec(f"SELECT {', '.join(names)} FROM proximity_events WHERE"
                              " case_ref = ? ORDER BY id", (case_ref,)):
            item = dict(zip(names, row))
            item["detail"] = None if row[8] is None else json.loads(str(row[8]))
            out.append(item)
        return out
