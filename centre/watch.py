"""The centre's proximity watch: runs the rules (centre/proximity.py) over every tag report and
victim position as they arrive, records each change in the case record, wakes the hosts whose
victim must be warned, and answers the operator's view. State lives in memory (the rules') and
in the registry's database (the record); docs/proximity.md says what a restart forgets."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from msa.wire.proximity import REPORT_EVERY_S, REPORT_FAST_S, VictimFix, Warning
from msa.wire.tag import TagReport

from .errors import CentreError
from .proximity import ALERT, CLEAR, CaseRules, Change, Engine, Fix, Params
from .proxstore import ProximityStore
from .tags import Tag

RULES_TTL_S = 10.0  # a zone, radius or link changed with `msa case` counts within this long
PRUNE_EVERY_S = 60.0
UNDELIVERED_AFTER_S = 30.0  # an alert no host has acknowledged by then is flagged


K = TypeVar("K")
V = TypeVar("V")


def _nothing() -> None:
    pass


class _Cache(Generic[K, V]):
    """What the registry said, kept RULES_TTL_S (the rules read it on every position)."""

    def __init__(self) -> None:
        self._kept: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[K], V]) -> V:
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is None or now - kept[0] > RULES_TTL_S:
            kept = self._kept[key] = (now, load(key))
        return kept[1]

    def clear(self) -> None:
        self._kept.clear()


class NoMovingZone(CentreError):
    """The case's zone does not move with the victim: her host has nothing to report."""

    def __init__(self, case_ref: str) -> None:
        self.case_ref = case_ref
        super().__init__(f"case {case_ref}: no moving zone")


class ProximityWatch:
    """The rules and their record for every case; one per running centre."""

    def __init__(self, store: ProximityStore, clock: Callable[[], float] = time.time,
                 params: Params | None = None) -> None:
        self.store = store
        self.clock = clock
        self.engine = Engine(params)
        self._rules: _Cache[str, CaseRules] = _Cache()
        self._links: _Cache[tuple[str, str], list[str]] = _Cache()  # the cases of a tag
        self._tags: _Cache[str, list[str]] = _Cache()  # the tags of a case
        self._woken: dict[str, asyncio.Event] = {}
        self._pruned_at = 0.0
        self._alerts: dict[int, tuple[str, str, str, float]] = {}  # open alert id -> pair, at
        self._delivered: set[int] = set()
        self._closing = False  # the centre is stopping: long polls answer at once
        self.changes = 0  # how many changes were recorded (the bench reads it)
        # Called after every position taken in: the operator's page may show it differently.
        self.on_change: Callable[[], None] = _nothing

    def rules(self, case_ref: str) -> CaseRules:
        return self._rules.get(case_ref, self.store.rules)

    def _cases_of(self, tag: Tag) -> list[str]:
        return self._links.get((tag.tag_id, tag.case_ref),
                               lambda key: self.store.cases_of(*key))

    def _tags_of(self, case_ref: str) -> list[str]:
        return self._tags.get(case_ref, self.store.tags_of)

    def _record(self, changes: list[Change]) -> None:
        for change in changes:
            ident = self.store.record(change)
            self.changes += 1
            if change.kind == ALERT:
                self._alerts[ident] = (change.case_ref, change.tag_id, change.zone, change.at)
                self._wake(change.case_ref)
            elif change.kind == "alert cleared":
                for key, (case, tag, zone, _at) in list(self._alerts.items()):
                    if (case, tag, zone) == (change.case_ref, change.tag_id, change.zone):
                        del self._alerts[key]
                        self._delivered.discard(key)

    def _wake(self, case_ref: str) -> None:
        event = self._woken.pop(case_ref, None)
        if event is not None:
            event.set()

    def on_tag(self, tag: Tag, report: TagReport, received_at: float) -> None:
        """A tag's stored report, through the rules of every case it is linked to."""
        fix = Fix(report.lat, report.lon, report.accuracy_m, report.time, received_at)
        cases = [self.rules(c) for c in self._cases_of(tag)]
        self._record(self.engine.tag_fix(tag.tag_id, fix, cases))
        self.on_change()

    def on_victim(self, case_ref: str, fix: VictimFix | None, received_at: float) -> int:
        """The victim's host's report; how often it is to report now. NoMovingZone when her
        case's zones are all fixed."""
        rules = self.rules(case_ref)
        if not rules.moving_zone:
            raise NoMovingZone(case_ref)
        if fix is not None:
            self.store.record_victim(case_ref, received_at, fix.time, fix.lat, fix.lon,
                                     fix.accuracy_m)
            self._record(self.engine.victim_fix(
                rules, Fix(fix.lat, fix.lon, fix.accuracy_m, fix.time, received_at),
                self._tags_of(case_ref)))
            self.on_change()
        if received_at - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = received_at
            self.store.prune(received_at, frozenset(a[0] for a in self._alerts.values()))
        return self.report_every(case_ref)

    def report_every(self, case_ref: str) -> int:
        return REPORT_EVERY_S if self.engine.open_level(case_ref) == CLEAR else REPORT_FAST_S

    def warnings(self, case_ref: str, after: int) -> list[Warning]:
        """The alerts of the case after `after`, as its host's warnings."""
        return [Warning(ident, "proximity", ALERT, zone, 0 if d is None else int(round(d, -1)),
                        at) for ident, _tag, zone, at, d in self.store.alerts_after(case_ref,
                                                                                      after)]

    async def wait_warnings(self, case_ref: str, after: int, wait_s: float) -> list[Warning]:
        """The warnings after `after`, waiting up to `wait_s` for one (a long poll)."""
        deadline = time.monotonic() + wait_s
        while True:
            event = self._woken.setdefault(case_ref, asyncio.Event())
            found = self.warnings(case_ref, after)
            left = deadline - time.monotonic()
            if found or left <= 0 or self._closing:
                return found
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                pass

    def close(self) -> None:
        """The centre is stopping: every long poll answers now with what there is, rather
        than holding the server's shutdown for up to its wait (a host just polls again)."""
        self._closing = True
        for event in self._woken.values():
            event.set()

    def ack(self, case_ref: str, warning_id: int, at: float, delivery: dict[str, str]) -> bool:
        """The host's report of a warning's delivery, into the case record; False when the id
        is not an alert of this case."""
        found = self.store.event(case_ref, warning_id)
        if found is None or found[0] != ALERT:
            return False
        kind, tag_id, zone = found
        self.store.record_note(case_ref, tag_id, zone, "delivered to the victim", at,
                               warning_id, dict(delivery))
        self._delivered.add(warning_id)
        return True

    def operator_ack(self, case_ref: str, tag_id: str, zone: str) -> bool:
        """The operator has seen an open pre-alert or alert: into the case record."""
        if not self.engine.acknowledge(case_ref, tag_id, zone):
            return False
        self.store.record_note(case_ref, tag_id, zone, "acknowledged by the operator",
                               self.clock(), None, {})
        self.on_change()
        return True

    def views(self) -> list[dict[str, object]]:
        """The operator's view of every pair (docs/proximity.md)."""
        now = self.clock()
        cases = {case for case, _tag, _zone in self.engine.pairs}
        out = self.engine.views({c: self.rules(c) for c in cases}, now)
        late = {(case, tag, zone) for ident, (case, tag, zone, at) in self._alerts.items()
                if ident not in self._delivered and now - at > UNDELIVERED_AFTER_S}
        for view in out:
            if (view["case_ref"], view["tag_id"], view["zone"]) in late:
                flags = view["flags"]
                assert isinstance(flags, list)
                flags.append("victim not yet warned")
        return out
