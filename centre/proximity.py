"""The proximity rules (pure: no storage, no clock of their own): from perpetrator tag fixes and
victim positions to pre-alerts, alerts, their clearing, and the flags an operator must see
(stale fixes, position jumps, a victim position too old to use). docs/proximity.md gives each
rule, its default and why.

A *pair* is (case, tag, zone): the zone is the victim herself ("victim", moving with her) or one
of the case's fixed zones (home, work, school). Each pair is clear, pre-alerted or alerted.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .geo import Circle, Shape, geodesic_m, local_m, screen_m, screen_to_shape_m, to_shape_m

VICTIM_ZONE = "victim"
CLEAR, PRE_ALERT, ALERT = "clear", "pre-alert", "alert"


@dataclass(frozen=True)
class Params:
    """The rules' constants (docs/proximity.md: each with its reasoning)."""

    sigmas: float = 2.0  # the margin, in combined accuracy radii, for "certainly" in or out
    confirm_sigmas: float = 1.0  # and for "likely" inside, which confirms a marginal fix
    unknown_accuracy_m: float = 50.0  # a fix that gives none counts as this uncertain
    clear_margin_m: float = 100.0  # an alert clears only this far outside its radius
    stale_after_s: float = 60.0  # a tag fix received later than this after its time is stale
    victim_fresh_s: float = 120.0  # a victim position older than this is held, flagged
    victim_hold_s: float = 1800.0  # and one older than this is not used at all
    victim_drift_mps: float = 0.5  # a held position's uncertainty grows this fast (indoors)
    max_accel_mps2: float = 3.0  # what a car or a runner can do; more is a jump
    max_speed_mps: float = 70.0  # 250 km/h: faster is a jump, whatever the history
    velocity_window_s: float = 120.0  # a velocity from fixes further apart is not trusted


@dataclass(frozen=True)
class Fix:
    """One position as the rules see it; accuracy is the 68 % radius in metres (None: unknown)."""

    lat: float
    lon: float
    accuracy_m: float | None
    fix_time: float
    received_at: float

    def as_json(self, unknown_m: float) -> dict[str, float]:
        return {"lat": self.lat, "lon": self.lon, "fix_time": self.fix_time,
                "accuracy_m": unknown_m if self.accuracy_m is None else self.accuracy_m}


@dataclass(frozen=True)
class CaseRules:
    """A case's zones and radii (from the court order): R, the pre-alert radius (default 2R),
    whether the zone moves with the victim, and the fixed zones by name."""

    case_ref: str
    alert_radius_m: float = 500.0
    prealert_radius_m: float = 1000.0
    moving_zone: bool = True
    zones: Mapping[str, Shape] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """Something the operator (and for an alert, the victim) must be told."""

    kind: str  # "pre-alert", "alert", "pre-alert cleared", "alert cleared", or a flag
    case_ref: str
    tag_id: str
    zone: str
    at: float
    distance_m: float | None = None
    near_m: float | None = None


# Flags: they raise nothing, they are shown to the operator.
STALE, JUMP = "stale fix", "position jump"
VICTIM_HELD, VICTIM_STALE = "victim position held", "victim position too old"
FLAGS = frozenset({STALE, JUMP, VICTIM_HELD, VICTIM_STALE})


class Track:
    """One source's accepted fixes, judged by their motion: a fix that leaves the path the last
    fixes predict by more than a car can accelerate (or that implies > max speed) is a jump and
    is held aside; a second fix that agrees with it and not with the track makes it real."""

    def __init__(self, params: Params) -> None:
        self.p = params
        self.last: Fix | None = None
        self.velocity: tuple[float, float] | None = None  # m/s east, north
        self.held: Fix | None = None  # the last jump, waiting for a fix that agrees with it

    def _u(self, a: Fix, b: Fix) -> float:
        unknown = self.p.unknown_accuracy_m
        ua = unknown if a.accuracy_m is None else a.accuracy_m
        ub = unknown if b.accuracy_m is None else b.accuracy_m
        return self.p.sigmas * math.hypot(ua, ub)

    def _fits(self, ref: Fix, velocity: tuple[float, float] | None, fix: Fix) -> bool:
        dt = fix.fix_time - ref.fix_time
        east, north = local_m(ref.lat, ref.lon, fix.lat, fix.lon)
        slack = self._u(ref, fix)
        if math.hypot(east, north) > self.p.max_speed_mps * dt + slack:
            return False
        if velocity is None:
            return True
        # Anywhere from here to where the velocity would carry it: it may have braked (a car
        # stops far harder than it speeds up), then within what it can accelerate aside.
        ahead_e, ahead_n = velocity[0] * dt, velocity[1] * dt
        reach2 = ahead_e * ahead_e + ahead_n * ahead_n
        t = 0.0 if reach2 == 0 else max(0.0, min(1.0, (east * ahead_e + north * ahead_n)
                                                 / reach2))
        residual = math.hypot(east - t * ahead_e, north - t * ahead_n)
        return residual <= 0.5 * self.p.max_accel_mps2 * dt * dt + slack

    def _accept(self, fix: Fix) -> None:
        last = self.last
        self.velocity = None
        if last is not None and 0 < fix.fix_time - last.fix_time <= self.p.velocity_window_s:
            dt = fix.fix_time - last.fix_time
            east, north = local_m(last.lat, last.lon, fix.lat, fix.lon)
            self.velocity = (east / dt, north / dt)
        self.last, self.held = fix, None

    def judge(self, fix: Fix) -> str | None:
        """None for an accepted fix; JUMP, or "old" for a fix not newer than the track's."""
        last = self.last
        if last is None:
            self._accept(fix)
            return None
        if fix.fix_time <= last.fix_time:
            return "old"
        if self._fits(last, self.velocity, fix):
            self._accept(fix)
            return None
        held = self.held
        if held is not None and fix.fix_time > held.fix_time and self._fits(held, None, fix):
            self.last, self.velocity = held, None  # two fixes agree: the jump was real
            self._accept(fix)
            return None
        self.held = fix
        return JUMP


@dataclass
class Pair:
    """One (case, tag, zone)'s state and what the operator's view shows of it."""

    level: str = CLEAR
    since: float | None = None
    pending_alert: bool = False  # the last fix was marginal for R: the next may confirm
    pending_pre: bool = False
    distance_m: float | None = None
    near_m: float | None = None
    tag: Fix | None = None
    victim: Fix | None = None
    acknowledged: bool = False


class Engine:
    """The rules over every pair. Feed tag fixes and victim positions in the order received;
    each call returns the changes it caused."""

    def __init__(self, params: Params | None = None) -> None:
        self.p = params or Params()
        self.pairs: dict[tuple[str, str, str], Pair] = {}
        self._of_case: dict[str, list[Pair]] = {}  # each case's pairs, for open_level
        self.tags: dict[str, Track] = {}
        self.victims: dict[str, Track] = {}
        # (case, tag) -> flag -> when it was last raised: shown to the operator for a while.
        self.flags: dict[tuple[str, str], dict[str, float]] = {}

    def _pair(self, case_ref: str, tag_id: str, zone: str) -> Pair:
        key = (case_ref, tag_id, zone)
        pair = self.pairs.get(key)
        if pair is None:
            pair = self.pairs[key] = Pair()
            self._of_case.setdefault(case_ref, []).append(pair)
        return pair

    def _accuracy(self, fix: Fix) -> float:
        return self.p.unknown_accuracy_m if fix.accuracy_m is None else fix.accuracy_m

    def _flag(self, change: Change, out: list[Change], once: bool = False) -> None:
        """Raises a flag on (case, tag); `once`: only if it is not up already (a condition that
        lasts, rather than an event)."""
        raised = self.flags.setdefault((change.case_ref, change.tag_id), {})
        if once and change.kind in raised:
            return
        raised[change.kind] = change.at
        out.append(change)

    def tag_fix(self, tag_id: str, fix: Fix, cases: Iterable[CaseRules]) -> list[Change]:
        """A tag's fix against every zone of every case the tag is linked to."""
        out: list[Change] = []
        cases = list(cases)
        verdict: str | None = STALE
        if fix.received_at - fix.fix_time <= self.p.stale_after_s:
            verdict = self.tags.setdefault(tag_id, Track(self.p)).judge(fix)
        if verdict is not None:
            if verdict != "old":  # an old fix is a repeat or out of order: nothing to say
                for rules in cases:
                    self._flag(Change(verdict, rules.case_ref, tag_id, "", fix.received_at),
                               out)
            return out
        for rules in cases:
            if rules.moving_zone:
                self._moving(rules, tag_id, fix, self._victim(rules.case_ref), fix.received_at,
                             out)
            for name, shape in rules.zones.items():
                self._fixed(rules, tag_id, name, shape, fix, out)
        return out

    def _victim(self, case_ref: str) -> Fix | None:
        track = self.victims.get(case_ref)
        return None if track is None else track.last

    def victim_fix(self, rules: CaseRules, fix: Fix | None, tag_ids: Iterable[str]
                   ) -> list[Change]:
        """The victim's host's report (None: no fix) against each of the case's tags' last
        fix that is still fresh."""
        out: list[Change] = []
        if fix is None:
            return out
        track = self.victims.setdefault(rules.case_ref, Track(self.p))
        if track.judge(fix) is not None:
            return out  # a victim position that jumps or is old: the last one stays in use
        for tag_id in tag_ids:
            tag = self.tags.get(tag_id)
            if tag is None or tag.last is None:
                continue
            if fix.received_at - tag.last.fix_time > self.p.stale_after_s:
                continue  # the tag's fix is old news: it cannot raise anything now
            self._moving(rules, tag_id, tag.last, fix, fix.received_at, out)
        return out

    def _moving(self, rules: CaseRules, tag_id: str, tag: Fix, victim: Fix | None, now: float,
                out: list[Change]) -> None:
        pair = self._pair(rules.case_ref, tag_id, VICTIM_ZONE)
        pair.tag = tag
        raised = self.flags.setdefault((rules.case_ref, tag_id), {})
        age = math.inf if victim is None else now - victim.fix_time
        if victim is None or age > self.p.victim_hold_s:
            raised.pop(VICTIM_HELD, None)
            self._flag(Change(VICTIM_STALE, rules.case_ref, tag_id, VICTIM_ZONE, now), out,
                       once=True)
            return
        raised.pop(VICTIM_STALE, None)
        accuracy = self._accuracy(victim)
        if age > self.p.victim_fresh_s:
            # Her host has had no fix for a while (indoors): her last position is kept, less
            # certain the older it is, and the operator is told it is held.
            accuracy += self.p.victim_drift_mps * (age - self.p.victim_fresh_s)
            self._flag(Change(VICTIM_HELD, rules.case_ref, tag_id, VICTIM_ZONE, now), out,
                       once=True)
        else:
            raised.pop(VICTIM_HELD, None)
        pair.victim = victim
        u = self.p.sigmas * math.hypot(self._accuracy(tag), accuracy)
        if self._far(pair, rules, screen_m(tag.lat, tag.lon, victim.lat, victim.lon), u):
            return
        d = geodesic_m(tag.lat, tag.lon, victim.lat, victim.lon)
        self._step(pair, rules, tag_id, VICTIM_ZONE, d, u, now, out)

    def _fixed(self, rules: CaseRules, tag_id: str, name: str, shape: Shape, tag: Fix,
               out: list[Change]) -> None:
        pair = self._pair(rules.case_ref, tag_id, name)
        pair.tag = tag
        u = self.p.sigmas * self._accuracy(tag)
        if self._far(pair, rules, screen_to_shape_m(tag.lat, tag.lon, shape), u):
            return
        self._step(pair, rules, tag_id, name, to_shape_m(tag.lat, tag.lon, shape), u,
                   tag.received_at, out)

    def _far(self, pair: Pair, rules: CaseRules, lower_m: float, u: float) -> bool:
        """True when a clear pair is certainly outside its pre-alert radius: nothing can
        change, so the geodesic is not computed (the view keeps the lower bound)."""
        if pair.level != CLEAR or lower_m - u <= rules.prealert_radius_m:
            return False
        pair.distance_m, pair.near_m = None, lower_m - u
        pair.pending_alert = pair.pending_pre = False
        return True

    def _step(self, pair: Pair, rules: CaseRules, tag_id: str, zone: str, d: float, u: float,
              now: float, out: list[Change]) -> None:
        near, far = max(0.0, d - u), d + u
        likely = u * self.p.confirm_sigmas / self.p.sigmas
        pair.distance_m, pair.near_m = d, near
        r, p, margin = rules.alert_radius_m, rules.prealert_radius_m, self.p.clear_margin_m

        def change(kind: str) -> None:
            out.append(Change(kind, rules.case_ref, tag_id, zone, now, d, near))

        if pair.level == ALERT:
            if near > r + margin:
                change("alert cleared")
                pair.level, pair.since, pair.acknowledged = CLEAR, now, False
                if near <= p + margin:
                    pair.level = PRE_ALERT  # still inside the pre-alert ring: stays watched
            pair.pending_alert = pair.pending_pre = False
            if pair.level != CLEAR:
                return
        possible = near <= r
        # Certainly inside: at once. Marginal: when this fix is likely inside (within one
        # accuracy radius) and the one before was at least possibly inside (it confirms it).
        if far <= r or (d - likely <= r and pair.pending_alert):
            change("alert")
            pair.level, pair.since, pair.acknowledged = ALERT, now, False
            pair.pending_alert = pair.pending_pre = False
            return
        pair.pending_alert = possible
        if pair.level == PRE_ALERT:
            if near > p + margin:
                change("pre-alert cleared")
                pair.level, pair.since, pair.acknowledged = CLEAR, now, False
            pair.pending_pre = False
            return
        possible_pre = near <= p
        if far <= p or (d - likely <= p and pair.pending_pre):
            change("pre-alert")
            pair.level, pair.since, pair.acknowledged = PRE_ALERT, now, False
            pair.pending_pre = False
            return
        pair.pending_pre = possible_pre

    def open_level(self, case_ref: str) -> str:
        """The most severe state of any of the case's pairs (the host reports faster while
        anything is open)."""
        levels = {pair.level for pair in self._of_case.get(case_ref, ())}
        return ALERT if ALERT in levels else PRE_ALERT if PRE_ALERT in levels else CLEAR

    def acknowledge(self, case_ref: str, tag_id: str, zone: str) -> bool:
        """The operator has seen an open pre-alert or alert; False if there is none."""
        pair = self.pairs.get((case_ref, tag_id, zone))
        if pair is None or pair.level == CLEAR:
            return False
        pair.acknowledged = True
        return True

    def views(self, rules: Mapping[str, CaseRules], now: float, flag_shown_s: float = 600.0,
              max_clear: int = 50) -> list[dict[str, object]]:
        """The operator's view (docs/proximity.md, "The operator's view"): every pair that is
        pre-alerted, alerted or flagged (a flag raised in the last `flag_shown_s`, or one that
        lasts), and of the clear ones the `max_clear` closest (a page for 10,000 pairs would
        otherwise carry them all every second)."""
        def shown(case_ref: str, tag_id: str) -> list[str]:
            raised = self.flags.get((case_ref, tag_id), {})
            return sorted(k for k, at in raised.items()
                          if k in (VICTIM_HELD, VICTIM_STALE) or now - at <= flag_shown_s)

        keys: list[tuple[str, str, str]] = []
        calm: list[tuple[str, str, str]] = []
        for k, pair in self.pairs.items():
            (keys if pair.level != CLEAR or shown(*k[:2]) else calm).append(k)
        calm.sort(key=lambda k: math.inf if self.pairs[k].near_m is None
                  else float(self.pairs[k].near_m or 0.0))
        out: list[dict[str, object]] = []
        unknown = self.p.unknown_accuracy_m
        for case_ref, tag_id, zone in sorted(keys + calm[:max_clear]):
            pair = self.pairs[(case_ref, tag_id, zone)]
            case = rules.get(case_ref)
            if case is None:
                continue
            shape = case.zones.get(zone)
            out.append({
                "case_ref": case_ref, "tag_id": tag_id, "zone": zone, "state": pair.level,
                "since": pair.since, "distance_m": pair.distance_m, "near_m": pair.near_m,
                "alert_radius_m": case.alert_radius_m,
                "prealert_radius_m": case.prealert_radius_m,
                "tag": None if pair.tag is None else pair.tag.as_json(unknown),
                "victim": (None if zone != VICTIM_ZONE or pair.victim is None
                           else pair.victim.as_json(unknown)),
                "shape": None if shape is None else shape_json(shape),
                "flags": shown(case_ref, tag_id),
                "acknowledged": pair.acknowledged})
        return out


def shape_json(shape: Shape) -> dict[str, object]:
    """A zone's shape as the case file and the operator's view write it."""
    if isinstance(shape, Circle):
        return {"circle": {"lat": shape.lat, "lon": shape.lon, "radius_m": shape.radius_m}}
    return {"polygon": [[lat, lon] for lat, lon in shape.corners]}
