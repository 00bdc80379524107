"""The reference centre's SMS inbox: a ghost call arrives as an AML SMS (the location, readable
by any 112 infrastructure) followed by an MSA1 SMS (message key and the button's own frame,
which the centre verifies like any other channel's). The AML fix joins the MSA1 that follows
it from the same sender; an AML whose MSA1 never comes still warns the operator.

An MSA1 counts only from the number registered for the button's case (`host_phone`): from any
other sender it is refused, however good its frame (a replayed frame by SMS opens nothing). An
AML alone is never verified: from a registered number it is kept, with its case, until that
number's MSA1 comes; from an unknown number it is shown as unverified for `ghost_ttl_s` and at
most `max_ghosts` such are kept (the oldest go first), so a flood of texts cannot bury the page.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from msa.wire import aml
from msa.wire.errors import WireError
from msa.wire.message import Fix, FixQuality
from msa.wire.msa1 import parse_msa1

from .core import Centre, Inbound, Ingested, Verdict
from .errors import CentreError
from .ratelog import Throttle

log = logging.getLogger("msa.centre.sms")
_throttled = Throttle(log)

AML_PAIRING_S = 120.0  # an AML this recent goes with the sender's next MSA1
GHOST_TTL_S = 600.0  # an unknown number's ghost call is shown this long
MAX_GHOSTS = 100  # unknown numbers' ghost calls kept at most


@dataclass(frozen=True)
class GhostCall:
    """An AML SMS not (yet) matched by a verified MSA1: shown to the operator as such."""

    sender: str
    received_at: float
    fix: Fix | None
    case_ref: str | None = None  # the case whose host has this number; None: unknown number


def _fix(report: aml.Report) -> Fix | None:
    if report.lat is None or report.lon is None:
        return None
    return Fix(lat=report.lat, lon=report.lon, accuracy_m=float(report.radius_m or 0),
               time=report.time.timestamp(), quality=FixQuality.GNSS, source="aml")


def _nothing() -> None:
    pass


class SmsInbox:
    """Feeds SMS text to the centre. `receive()` takes one SMS as the modem got it."""

    def __init__(self, centre: Centre, ghost_ttl_s: float = GHOST_TTL_S,
                 max_ghosts: int = MAX_GHOSTS, clock: Callable[[], float] = time.time) -> None:
        self.centre = centre
        self.ghost_ttl_s = ghost_ttl_s
        self.max_ghosts = max_ghosts
        self._clock = clock
        self.known: dict[str, GhostCall] = {}  # registered numbers: one each, until its MSA1
        self.unknown: OrderedDict[str, GhostCall] = OrderedDict()  # oldest first
        self.rejected = 0
        self.on_change: Callable[[], None] = _nothing  # a ghost call came or went

    def _refused(self, why: str, *args: object) -> None:
        self.rejected += 1
        _throttled.warning(why, "SMS refused: " + why, *args)

    def receive(self, sender: str, text: str, at: float | None = None) -> Ingested | None:
        now = self._clock() if at is None else at
        if text.startswith('A"ML='):
            try:
                report = aml.parse(text)
                fix = _fix(report)
            except (WireError, ValueError) as exc:
                self._refused("malformed AML: %s", exc)
                return None
            self._keep(sender, now, fix)
            return None
        try:
            msa1 = parse_msa1(text)
        except ValueError as exc:
            self._refused("neither AML nor MSA1: %s", exc)
            return None
        inbound = Inbound.keyed("sms", msa1.key, msa1.kind, msa1.frame, None, now,
                                call=msa1.call)
        try:
            case = self.centre.registry.case_of(inbound.button_id) if inbound.button_id else None
        except CentreError as exc:
            self._refused("registry not read: %s", exc)
            return None
        if case is None or not case.host_phone or case.host_phone != sender:
            self._refused("MSA1 for button %#010x not from its host's registered number",
                          inbound.button_id)
            return Ingested(Verdict.REJECTED, "sender is not the button's host")
        ghost = self.known.get(sender)
        if msa1.call is not None:
            ghost = None  # a call event comes alone: an AML before it is another message's
        if ghost is not None and now - ghost.received_at <= AML_PAIRING_S:
            inbound = replace(inbound, fix=ghost.fix)
        try:
            result = self.centre.ingest(inbound)
        except CentreError as exc:  # the centre's storage failed, not the sender
            self._refused("not stored: %s", exc)
            return None
        if result.verdict is Verdict.REJECTED:
            self.rejected += 1  # and the ghost call stays on the page: nothing verified it
        elif msa1.call is None:
            self.known.pop(sender, None)
        return result

    def _keep(self, sender: str, now: float, fix: Fix | None) -> None:
        try:
            case = self.centre.registry.case_for_phone(sender)
        except CentreError as exc:
            case = None
            _throttled.warning("registry", "AML sender not looked up: %s", exc)
        self.on_change()
        if case is not None:
            self.known[sender] = GhostCall(sender, now, fix, case.case_ref)
            return
        self.unknown.pop(sender, None)
        self.unknown[sender] = GhostCall(sender, now, fix)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self.unknown:
            oldest = next(iter(self.unknown.values()))
            if len(self.unknown) <= self.max_ghosts and now - oldest.received_at <= \
                    self.ghost_ttl_s:
                return
            self.unknown.popitem(last=False)

    def ghost_calls(self) -> list[GhostCall]:
        """AML SMS with no verified MSA1 after them (yet): the registered numbers' ones, then
        the unknown numbers' ones not yet expired, newest first."""
        self._expire(self._clock())
        return [*self.known.values(), *reversed(self.unknown.values())]
