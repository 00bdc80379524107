"""An incident's timeline, for its review afterwards (every incident is reviewed by a working
group of police, the dispatch centres and the telecom operator: it must be reconstructable):
what the button, the host, the centre, the proximity watch and the operators did, and when,
from the centre's records, the notes, the audit log and the case's proximity record.

Each event says who acted ("by") and when ("at", Unix seconds), and by whose clock:
- "press" and "host receipt": the host's clock. The host back-computes the press from the
  verified frame's age_ms (how long the button held the event before the host had it), so
  the host received it at pressed_at + age_ms / 1000.
- "arrival": each copy of the incident's messages that reached the centre, on any channel,
  accepted (counted and acknowledged) or duplicate (acknowledged again, not counted); the
  first accepted copy of the incident's own key is the "centre receipt" (one event, not two).
  The centre's clock, as are "location" (when each track point arrived) and "resolved".
- "call": each step of the silent call (attempt, dialling, alerting, answered, ended with its
  cause), at the host's clock, in the host's order; when it arrived is "received_at".
- "proximity": the case's proximity record from an hour before the incident opened until it
  was resolved (or now).
- "operator" (audit entries about the incident, with their hash to check against the log)
  and "note": the operators' own clock, the centre's.
Events at the same time keep that order.

What the centre cannot show: a channel attempt that never reached it (an HTTPS post that timed
out, an SMS the network dropped) is known to the host only, in its outbox. Every copy that did
arrive is in "frames", with its frame as received.

Frames are parsed with msa.wire.protocol's frame layout table (FRAME_FIELDS, FRAME_BODY)
without checking the tag: the wire package has no public decoder of a 26-byte centre frame
that does not verify it, and the centre verified each frame before it recorded it.
"""
from __future__ import annotations

import time

from msa.wire.protocol import (AGE_UNKNOWN, BATTERY_UNKNOWN, CENTRE_FRAME_LEN, FRAME_BODY,
                               FRAME_FIELDS)

from .audit import AuditLog
from .core import Centre, incident_ref
from .notes import Notes
from .proxstore import ProximityStore

FORMAT = "msa-timeline-1"
PROXIMITY_BEFORE_S = 3600.0  # proximity events this long before the incident opened count
# Events at the same time, in this order.
_RANK = {"press": 0, "host receipt": 1, "centre receipt": 2, "arrival": 2, "location": 3, "call": 3,
         "proximity": 4, "operator": 5, "note": 6, "resolved": 7}


def frame_fields(raw: bytes) -> dict[str, int | None]:
    """boot_id, seq, age_ms and battery_pct of a centre frame (None where the button did not
    know them, or all None for bytes that are no centre frame), its tag unchecked."""
    names = ("boot_id", "seq", "age_ms", "battery_pct")
    if len(raw) != CENTRE_FRAME_LEN:
        return dict.fromkeys(names)
    values = dict(zip((name for name, _ in FRAME_FIELDS), FRAME_BODY.unpack_from(raw)))
    age, battery = values["age_ms"], values["battery_pct"]
    return {"boot_id": values["boot_id"], "seq": values["seq"],
            "age_ms": None if age == AGE_UNKNOWN else age,
            "battery_pct": None if battery == BATTERY_UNKNOWN else battery}


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def incident_timeline(centre: Centre, ref: str, *, notes: Notes, audit: AuditLog,
                      proximity: ProximityStore | None, now: float | None = None
                      ) -> dict[str, object] | None:
    """The timeline of the incident `ref` (a reference "INC-000012" or its alarm key), ready
    for JSON; None if there is no such incident. `now` (default: the clock) ends the
    proximity window of an incident still open."""
    number = centre.incident_id(ref)
    row = None if number is None else centre.incident_row(number)
    if number is None or row is None:
        return None
    reference = incident_ref(number)
    events: list[dict[str, object]] = []
    frames: list[dict[str, object]] = []
    own_age_ms: int | None = None
    receipt_seen = False
    for arrival in centre.arrivals(number):
        fields = frame_fields(arrival.frame)
        frames.append({"key": arrival.key, "kind": arrival.kind, "channel": arrival.channel,
                       "received_at": arrival.received_at, "verdict": arrival.verdict,
                       "frame_hex": arrival.frame.hex(), **fields})
        receipt = (not receipt_seen and arrival.verdict == "accepted"
                   and arrival.key == row.key)
        if receipt:
            receipt_seen, own_age_ms = True, fields["age_ms"]
        events.append({"at": arrival.received_at,
                       "what": "centre receipt" if receipt else "arrival", "by": "centre",
                       "channel": arrival.channel, "key": arrival.key,
                       "verdict": arrival.verdict})
    if row.pressed_at is not None:
        events.append({"at": row.pressed_at, "what": "press", "by": "button",
                       "age_ms": own_age_ms})
        if own_age_ms is not None:
            events.append({"at": row.pressed_at + own_age_ms / 1000, "what": "host receipt",
                           "by": "host", "age_ms": own_age_ms})
    track = centre.track(number)
    for point in track:
        events.append({"at": point["received_at"], "what": "location", "by": "host",
                       **{name: point[name] for name in ("update_no", "lat", "lon",
                                                          "accuracy_m", "fix_time", "source",
                                                          "channel")}})
    for call in centre.calls(number):  # the silent call's steps, by the host's clock
        events.append({"at": call["at"], "what": "call", "by": "host",
                       **{name: call[name] for name in ("n", "event", "attempt", "cause",
                                                         "channel", "received_at")}})
    if proximity is not None and row.case_ref is not None:
        low = row.opened_at - PROXIMITY_BEFORE_S
        high = row.resolved_at if row.resolved_at is not None else \
            time.time() if now is None else now
        for item in proximity.events(row.case_ref):
            at = _float(item["at"])
            if low <= at <= high:
                events.append({"at": at, "what": "proximity", "by": "proximity",
                               "kind": item["kind"], "tag_id": item["tag_id"],
                               "zone": item["zone"], "distance_m": item["distance_m"]})
    for entry in audit.entries(subject=reference):
        events.append({"at": entry.at, "what": "operator", "by": "operator",
                       "actor": entry.actor, "action": entry.action, "source": entry.source,
                       "seq": entry.seq, "hash": entry.hash.hex()})
    for note in notes.for_incident(number):
        events.append({"at": note["at"], "what": "note", "by": "operator",
                       "author": note["author"], "text": note["text"], "note": note["id"]})
    if row.resolved_at is not None:
        events.append({"at": row.resolved_at, "what": "resolved", "by": "operator"})
    events.sort(key=lambda e: (_float(e["at"]), _RANK[str(e["what"])]))
    return {"format": FORMAT, "incident": reference, "key": row.key,
            "button_id": row.button_id, "test": row.test, "case_ref": row.case_ref,
            "status": row.status, "opened_at": row.opened_at, "resolved_at": row.resolved_at,
            "events": events, "frames": frames, "track": track}
