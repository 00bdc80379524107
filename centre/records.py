"""What the centre's records say (the read side of centre/core.py's Centre): incidents with
their case files and tracks, summaries of the resolved ones, each incident's arrivals, the
buttons' warnings and message counts. Reads only: every write is core.py's."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from msa.wire.message import EVENT_KEY, MessageKind

from .calls import call_events, call_state

from .registry import Registry
from .storage import Connection

# A button is silent after missing this many heartbeats of its own period (see warnings()).
SILENT_HEARTBEATS = 3
_REFERENCE = re.compile(r"INC-([0-9]{6,12})", re.ASCII)


def incident_ref(number: int) -> str:
    return f"INC-{number:06d}"


class Arrival(NamedTuple):
    """One copy of an incident's message as it reached the centre."""

    key: str
    kind: str  # the message's kind: "alarm", "test" or "location"
    channel: str
    received_at: float
    verdict: str  # "accepted" (counted) or "duplicate" (acknowledged again, not counted)
    frame: bytes  # the centre frame as received (its tag verified before it was recorded)


class IncidentRow(NamedTuple):
    """An incident as the records hold it, without its case file and track."""

    key: str
    button_id: int
    test: bool
    case_ref: str | None
    opened_at: float
    pressed_at: float | None
    channel: str
    status: str
    resolved_at: float | None
    battery_pct: int | None


class RecordReads:
    """The read side of the records, mixed into Centre (which owns the connection)."""

    _db: Connection
    registry: Registry
    _clock: Callable[[], float]
    warning_sources: list[Callable[[float], list[dict[str, object]]]]

    def incident_id(self, reference: str) -> int | None:
        """The row id for a reference ("INC-000012") or an alarm key; None for anything else
        (whatever a request names, only these two forms reach the database)."""
        found = self._incident(reference)
        return None if found is None else found[0]

    def incident_key(self, reference: str) -> str | None:
        """The alarm key of the incident a reference or key names, None if there is none."""
        found = self._incident(reference)
        return None if found is None else found[1]

    def _incident(self, reference: str) -> tuple[int, str] | None:
        number = _REFERENCE.fullmatch(reference)
        if number is not None:
            row = self._db.execute("SELECT id, key FROM incidents WHERE id = ?",
                                   (int(number[1]),)).one()
        elif EVENT_KEY.fullmatch(reference):
            row = self._db.execute("SELECT id, key FROM incidents WHERE key = ?",
                                   (reference,)).one()
        else:
            return None
        return None if row is None else (int(row[0]), str(row[1]))

    def calls(self, number: int) -> list[dict[str, object]]:
        """Incident `number`'s call events, in the host's order."""
        return call_events(self._db, number)

    def incident_row(self, number: int) -> IncidentRow | None:
        """Incident `number` (its row id), None if there is none."""
        row = self._db.execute("SELECT key, button_id, test, case_ref, opened_at, pressed_at,"
                               " channel, status, resolved_at, battery_pct FROM incidents"
                               " WHERE id = ?", (number,)).one()
        return None if row is None else IncidentRow._make((*row[:2], bool(row[2]), *row[3:]))

    def arrivals(self, number: int) -> list[Arrival]:
        """Every copy of incident `number`'s messages that arrived, oldest first."""
        return [Arrival(*row) for row in self._db.rows(
            "SELECT key, kind, channel, received_at, verdict, frame FROM arrivals"
            " WHERE incident = ? ORDER BY received_at, id", (number,))]

    def incidents(self, include_resolved: bool = False) -> list[dict[str, object]]:
        """What the operator sees: incidents with case file and track, newest first."""
        where = "" if include_resolved else "WHERE status = 'open'"
        rows = self._db.execute("SELECT id, key, button_id, test, case_ref, opened_at,"
                                " pressed_at, channel, status, resolved_at, battery_pct"
                                f" FROM incidents {where} ORDER BY id DESC").rows
        out: list[dict[str, object]] = []
        for (number, key, button_id, test, case_ref, opened, pressed, channel, status,
             resolved, battery) in rows:
            case = self.registry.case(case_ref) if case_ref else None
            out.append({"incident": incident_ref(number), "key": key, "button_id": button_id,
                        "test": bool(test), "opened_at": opened, "pressed_at": pressed,
                        "channel": channel, "status": status, "resolved_at": resolved,
                        "battery_pct": battery, "case": None if case is None
                        else case.as_json(), "track": self.track(number),
                        "call": call_state(self._db, number)})
        return out

    def resolved(self, limit: int) -> list[dict[str, object]]:
        """The latest `limit` resolved incidents, newest first, as summaries: no case file,
        no track (opening one is a view of the case file of its own)."""
        rows = self._db.execute("SELECT id, key, button_id, test, case_ref, opened_at,"
                                " pressed_at, channel, resolved_at FROM incidents"
                                " WHERE status = 'resolved' ORDER BY id DESC LIMIT ?",
                                (limit,)).rows
        return [{"incident": incident_ref(number), "key": key, "button_id": button_id,
                 "test": bool(test), "case_ref": case_ref, "opened_at": opened,
                 "pressed_at": pressed, "channel": channel, "status": "resolved",
                 "resolved_at": resolved}
                for number, key, button_id, test, case_ref, opened, pressed, channel, resolved
                in rows]

    def track(self, number: int) -> list[dict[str, object]]:
        rows = self._db.execute("SELECT update_no, lat, lon, accuracy_m, fix_time, source,"
                                " channel, received_at FROM track WHERE incident = ?"
                                " ORDER BY update_no", (number,)).rows
        return [{"update_no": u, "lat": la, "lon": lo, "accuracy_m": acc, "fix_time": ft,
                 "source": src, "channel": ch, "received_at": rx}
                for u, la, lo, acc, ft, src, ch, rx in rows]

    def warnings(self, silent_after_s: float = 180.0,
                 now: float | None = None) -> list[dict[str, object]]:
        """Buttons gone silent or with a low battery. Silent: no word for `silent_after_s`
        (three of the default 60 s heartbeats), or for SILENT_HEARTBEATS of the button's own
        heartbeat period when the registry has a longer one: a sleep-mode button speaks once
        an hour and is not missing in between. Then those of every `warning_sources` entry
        (perpetrator tags: centre/tags.py), asked with the same `now` (default: the clock)."""
        now = self._clock() if now is None else now
        out: list[dict[str, object]] = []
        seen = {int(b): (float(t), bat, low) for b, t, bat, low in self._db.execute(
            "SELECT button_id, last_seen, battery_pct, low_battery FROM buttons").rows}
        periods = self.registry.heartbeat_periods()
        for button_id in self.registry.buttons():
            last = seen.get(button_id)
            case = self.registry.case_of(button_id)
            ref = None if case is None else case.case_ref
            silent_s = max(silent_after_s, SILENT_HEARTBEATS * periods.get(button_id, 0))
            if last is None or now - last[0] > silent_s:
                out.append({"button_id": button_id, "case_ref": ref, "warning": "silent",
                            "last_seen": None if last is None else last[0]})
            if last is not None and last[2]:
                out.append({"button_id": button_id, "case_ref": ref, "warning": "low battery",
                            "battery_pct": last[1]})
        for source in self.warning_sources:
            out.extend(source(now))
        return out

    def count(self, kind: MessageKind | None = None) -> int:
        if kind is None:
            rows = self._db.rows("SELECT COUNT(*) FROM messages")
        else:
            rows = self._db.rows("SELECT COUNT(*) FROM messages WHERE kind = ?", (kind.value,))
        return int(rows[0][0])
