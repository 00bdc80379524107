"""The reference centre's SMS inbox: a ghost call arrives as an AML SMS (the location, readable
by any 112 infrastructure) followed by an MSA1 SMS (message key and the button's own frame,
which the centre verifies like any other channel's). The AML fix joins the MSA1 that follows
it from the same sender; an AML whose MSA1 never comes still warns the operator.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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


@dataclass(frozen=True)
class GhostCall:
    """An AML SMS not (yet) matched by a verified MSA1: shown to the operator as such."""

    sender: str
    received_at: float
    fix: Fix | None


def _fix(report: aml.Report) -> Fix | None:
    if report.lat is None or report.lon is None:
        return None
    return Fix(lat=report.lat, lon=report.lon, accuracy_m=float(report.radius_m or 0),
               time=report.time.timestamp(), quality=FixQuality.GNSS, source="aml")


class SmsInbox:
    """Feeds SMS text to the centre. `receive()` takes one SMS as the modem got it."""

    def __init__(self, centre: Centre) -> None:
        self.centre = centre
        self.unmatched: dict[str, GhostCall] = {}
        self.rejected = 0

    def receive(self, sender: str, text: str, at: float | None = None) -> Ingested | None:
        now = time.time() if at is None else at
        if text.startswith('A"ML='):
            try:
                report = aml.parse(text)
                fix = _fix(report)
            except (WireError, ValueError) as exc:
                self.rejected += 1
                _throttled.warning("aml", "malformed AML SMS: %s", exc)
                return None
            self.unmatched[sender] = GhostCall(sender, now, fix)
            return None
        try:
            msa1 = parse_msa1(text)
        except ValueError as exc:
            self.rejected += 1
            _throttled.warning("msa1", "SMS neither AML nor MSA1: %s", exc)
            return None
        ghost = self.unmatched.pop(sender, None)
        fix = ghost.fix if ghost is not None and now - ghost.received_at <= AML_PAIRING_S \
            else None
        try:
            result = self.centre.ingest(Inbound.keyed("sms", msa1.key, msa1.kind, msa1.frame,
                                                      fix, now))
        except CentreError as exc:  # the centre's storage failed, not the sender
            self.rejected += 1
            _throttled.warning("store", "SMS not stored: %s", exc)
            return None
        if result.verdict is Verdict.REJECTED:
            self.rejected += 1
        return result

    def ghost_calls(self) -> list[GhostCall]:
        """AML SMS with no verified MSA1 after them (yet)."""
        return list(self.unmatched.values())
