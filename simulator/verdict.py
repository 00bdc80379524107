"""Judges a proximity replay (simulator/proximity.py) against its scenario's [expect]: alerts
and pre-alerts counted per victim, each true crossing of R (an episode that a correct alert with
its hysteresis raises once) matched to an alert and its latency measured, operator flags and tag
warnings seen, every alert delivered to the victim. The figures of `msa bench --only proximity`
are computed from the same verdicts."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .proximity import Replay
from .scenario import Scenario

CLEAR_MARGIN_M = 100.0  # the rules' (centre/proximity.py): an episode ends beyond R + this


@dataclass
class Verdict:
    """One scenario's outcome: what was expected, what happened, and whether they agree."""

    name: str
    title: str
    expected: str
    got: str
    problems: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    episodes: int = 0
    detected: int = 0
    false_alerts: int = 0
    pair_days: float = 0.0  # pairs (case, tag) × days replayed
    drift: bool = False  # both parties still, apart: a drift scenario
    regular: bool = True  # every tag reports every 10 s, never silent, delayed or buffered

    @property
    def passed(self) -> bool:
        return not self.problems


def still(sc: Scenario) -> bool:
    """Every party holds one position for the whole file: a drift scenario."""
    tracks = [v.track for v in sc.victims] + [t.track for t in sc.tags]
    return all(len({(e, n) for _t, e, n in track}) == 1 for track in tracks)


def judge(replay: Replay) -> Verdict:
    sc = replay.scenario
    ex = sc.expect
    v = Verdict(sc.path.stem, sc.title, "", "", drift=still(sc),
                regular=all(t.interval_s == 10 and not (t.silent or t.delayed or t.buffered)
                            for t in sc.tags))
    expected, got = [], []
    for victim in sc.victims:
        case = victim.case
        alerts = [a for a in replay.alerts if a.case == case]
        pairs = sum(1 for t in sc.tags if case in t.cases)
        v.pair_days += pairs * sc.duration_s / 86_400
        want = ex.alerts.get(case)
        if want is not None:
            expected.append(f"{case}: {want} alert{'s' * (want != 1)}")
            if len(alerts) != want:
                v.problems.append(f"{case}: {len(alerts)} alerts, {want} expected")
        got.append(f"{case}: {len(alerts)} alert{'s' * (len(alerts) != 1)}")
        pre = replay.prealerts.get(case, 0)
        if case in ex.prealerts:
            low, high = ex.prealerts[case]
            expected.append(f"{low}-{high} pre-alerts" if low != high else f"{low} pre-alert"
                            + "s" * (low != 1))
            if not low <= pre <= high:
                v.problems.append(f"{case}: {pre} pre-alerts, {low} to {high} expected")
        got.append(f"{pre} pre-alert{'s' * (pre != 1)}")
        for a in alerts:
            if a.haptic is None:
                v.problems.append(f"{case}: alert {a.warning_id} never reached the victim")
        # Each true episode inside R must have its alert within the bound.
        episodes = sc.true_episodes(case, victim.alert_radius_m, CLEAR_MARGIN_M)
        used: set[int] = set()
        for k, ep in enumerate(episodes):
            v.episodes += 1
            # An episode's alert comes after the one before it and before the next: an
            # uncertain approach may raise it a little before the true crossing.
            since = episodes[k - 1].t_s if k else float("-inf")
            until = episodes[k + 1].t_s if k + 1 < len(episodes) else float("inf")
            match = next((a for a in alerts if a.tag == ep.tag and a.zone == ep.zone
                          and since < a.at_s < until and a.warning_id not in used), None)
            if match is None:
                v.problems.append(f"{case}: the crossing of {ep.zone} by {ep.tag} at"
                                  f" {ep.t_s:.0f} s raised no alert")
                continue
            used.add(match.warning_id)
            latency = max(0.0, match.at_s - ep.t_s) + (match.pipeline_s or 0.0)
            v.latencies_s.append(latency)
            if latency <= ex.alert_within_s:
                v.detected += 1
            else:
                v.problems.append(f"{case}: warned {latency:.1f} s after the crossing"
                                  f" ({ex.alert_within_s:g} s allowed)")
        v.false_alerts += sum(1 for a in alerts if a.warning_id not in used)
    seen_flags = set().union(*replay.flags.values()) if replay.flags else set()
    for flag in ex.flags:
        expected.append(f"flag {flag!r}")
        if flag not in seen_flags:
            v.problems.append(f"flag {flag!r} never raised")
    seen_warnings = set().union(*replay.warnings.values()) if replay.warnings else set()
    for warning in ex.warnings:
        expected.append(f"warning {warning!r}")
        if warning not in seen_warnings:
            v.problems.append(f"operator warning {warning!r} never shown")
    got += [f"flag {f!r}" for f in sorted(seen_flags)]
    got += [f"warning {w!r}" for w in sorted(seen_warnings)]
    if replay.refused:
        got.append(f"{len(replay.refused)} tag reports refused")
    v.expected, v.got = "; ".join(expected), "; ".join(got)
    return v


@dataclass(frozen=True)
class Figures:
    """The four figures issue 14 asks for, over a set of verdicts."""

    latency_p95_s: float | None  # over the regular scenarios (10 s fixes, no gaps)
    latency_median_s: float | None
    latency_p95_all_s: float | None  # over every scenario, silences and delays included
    false_alerts_per_pair_day: float | None
    detection: float | None
    scenarios_passed: int
    scenarios: int


def _p95(samples: list[float]) -> float | None:
    """The nearest-rank 95th percentile."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(0.95 * len(ordered)) - 1))]


def figures(verdicts: list[Verdict]) -> Figures:
    latencies = [x for v in verdicts if v.regular for x in v.latencies_s]
    drift = [v for v in verdicts if v.drift]
    days = sum(v.pair_days for v in drift)
    episodes = sum(v.episodes for v in verdicts)
    return Figures(_p95(latencies), statistics.median(latencies) if latencies else None,
                   _p95([x for v in verdicts for x in v.latencies_s]),
                   sum(v.false_alerts for v in drift) / days if days else None,
                   sum(v.detected for v in verdicts) / episodes if episodes else None,
                   sum(1 for v in verdicts if v.passed), len(verdicts))
