"""The silent call's events at the centre (issue 16): the checks of a CALL message's key and
payload beyond the frame (core.py verifies the frame), its row in the `calls` table, and the
reads the operator's page and the timeline show (the call's latest state, every event)."""
from __future__ import annotations

from msa.wire.call import CallPayload, call_no

from .storage import Connection

# A genuine call number is never far past the highest the centre has (the host numbers them in
# order): as for location updates (core.UPDATE_LEAD), a made-up one cannot pin the latest state.
CALL_LEAD = 32


def check_call(key: str, event: str, call: CallPayload | None, has_fix: bool) -> int | str:
    """n of a CALL's key, which must be exactly "<event>/c<n>" (`event` built from the verified
    frame), or why it is refused."""
    prefix, slash, suffix = key.partition("/")
    n = call_no(suffix)
    if prefix != event or not slash or n is None:
        return "key does not match the frame"
    if call is None:
        return "a call event without its call"
    if has_fix:
        return "a call event carries no position"
    return n


def lead_refusal(db: Connection, incident: int, n: int) -> str:
    """Why call event n is too far past the incident's latest ("" when it is not)."""
    highest = int(db.execute("SELECT COALESCE(MAX(n), 0) FROM calls WHERE incident = ?",
                             (incident,)).rows[0][0])
    if n > highest + CALL_LEAD:
        return f"call event {n} is more than {CALL_LEAD} past the incident's latest ({highest})"
    return ""


def record_call(db: Connection, incident: int, n: int, call: CallPayload, channel: str,
                now: float) -> None:
    db.execute("INSERT INTO calls (incident, n, event, at, attempt, cause, channel,"
               " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
               (incident, n, call.event.value, call.at, call.attempt, call.cause, channel, now))


def call_events(db: Connection, incident: int) -> list[dict[str, object]]:
    """Incident `incident`'s call events in the host's order (its numbers)."""
    return [{"n": n, "event": event, "at": at, "attempt": attempt, "cause": cause,
             "channel": channel, "received_at": received}
            for n, event, at, attempt, cause, channel, received in db.execute(
                "SELECT n, event, at, attempt, cause, channel, received_at FROM calls"
                " WHERE incident = ? ORDER BY n", (incident,)).rows]


def call_state(db: Connection, incident: int) -> dict[str, object] | None:
    """The call's latest state for the operator (None: no call event yet): the latest event,
    its attempt and cause, and since when the line is up when it is answered."""
    events = call_events(db, incident)
    if not events:
        return None
    latest = events[-1]
    return {"event": latest["event"], "at": latest["at"], "attempt": latest["attempt"],
            "cause": latest["cause"], "events": len(events)}
