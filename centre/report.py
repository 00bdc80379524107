"""The supervisor's daily report: per button in service and per perpetrator tag in service, one
local day's last word, battery (last, lowest, trend over a week), alarms and tests, messages
received against those expected, and every silent period, with the audit log's head as an
external anchor (a supervisor who keeps the reports can later see a rewritten log).

Read through connections of its own, read-only (`mode=ro`), each inside one transaction: one
snapshot of records.db and one of registry.db, taken while the centre goes on writing. The
work is SQL over the messages' (button_id, received_at) index, a few queries per button: one
aggregate over the week (counts, lowest battery, the trend's sums) and the day's times in order,
from which one pass in Python finds the gaps.

Silent periods: every gap between consecutive messages (any kind) longer than the button's
threshold, max(SILENT_AFTER_S, SILENT_HEARTBEATS x its heartbeat period) (as the operator's
warnings count silence); for a tag, its interval + SILENCE_GRACE_S. The first gap runs from
the last message before the day (a tag: its issue, when it sent nothing before; a button with
no earlier message: the day's start), the last gap to the day's end, or to `now` for today.
Each period is cut to the day, so together they never exceed it.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .audit import AuditLog
from .core import SILENT_HEARTBEATS, Centre, incident_ref
from .errors import ReportError
from .registry import Registry
from .storage import Begin, Connection, Place, connect
from .tags import SILENCE_GRACE_S, Tags

SILENT_AFTER_S = 180.0  # the operator's warning's default: three 60 s heartbeats
DEFAULT_PERIOD_S = 60  # a button provisioned without a heartbeat period sends one a minute
TREND_DAYS = 7  # the battery trend's window: the report's day and the six before it
TREND_MIN_SPAN_S = 3600.0  # samples closer together than this give no trend


@dataclass(frozen=True)
class Silence:
    """A silent period within the day: no message from `start` to `end` (epoch seconds)."""

    start: float
    end: float
    seconds: float


@dataclass(frozen=True)
class Battery:
    """Battery in percent: the day's last and lowest reading, and the trend in percentage
    points per day over TREND_DAYS (None: fewer than 2 readings or under an hour apart)."""

    last_pct: float | None
    lowest_pct: float | None
    trend_pct_per_day: float | None


@dataclass(frozen=True)
class ButtonDay:
    button_id: int
    case_ref: str | None
    period_s: int  # its heartbeat period
    last_heartbeat: float | None  # at or before the day's end (maybe an earlier day's)
    battery: Battery
    low_battery: bool  # the centre's flag: the button said so (records.db, buttons)
    alarms: tuple[str, ...]  # refs of the alarms opened in the day
    tests: tuple[str, ...]  # refs of the TEST alarms opened in the day
    heartbeats: int
    heartbeats_expected: int
    silences: tuple[Silence, ...]


@dataclass(frozen=True)
class TagDay:
    tag_id: str
    case_ref: str
    interval_s: int
    last_position: float | None  # at or before the day's end (maybe an earlier day's)
    battery: Battery
    low_battery: bool  # the day's last reading at or below the centre's threshold
    tamper_reports: int  # reports in the day that said the tag was tampered with
    positions: int
    positions_expected: int
    silences: tuple[Silence, ...]


@dataclass(frozen=True)
class DailyReport:
    day: dt.date
    tz: dt.tzinfo
    start: float  # the day's local midnight
    end: float  # the next local midnight
    until: float  # what the report covers: the day's end, or `now` for today
    made_at: float
    audit_entries: int  # the audit log's head at report time
    audit_head: str  # hex
    buttons: tuple[ButtonDay, ...]
    tags: tuple[TagDay, ...]


@dataclass(frozen=True)
class _Series:
    """Where one kind of sender's messages are: table, id column, which rows are the
    expected ones (heartbeats; every tag report)."""

    table: str
    column: str
    beat: str


_BUTTONS = _Series("messages", "button_id", "kind = 'heartbeat'")
_TAGS = _Series("tag_positions", "tag_id", "TRUE")


@dataclass(frozen=True)
class _Window:
    start: float
    hi: float  # exclusive bound of "in the day" (just above `now` for today)
    until: float
    trend_from: float


@dataclass(frozen=True)
class _Activity:
    beats: int
    last_beat: float | None
    battery: Battery
    silences: tuple[Silence, ...]


def audit_subject(day: dt.date) -> str:
    """The subject of a "report.view" audit entry: the log refuses an empty one, and no
    incident ref or account name holds a colon, so this names the day's report alone."""
    return f"report:{day.isoformat()}"


def midnight(day: dt.date, tz: dt.tzinfo) -> float:
    """The epoch time of `day`'s local midnight in `tz` (zoneinfo's rules for a midnight that
    a clock change skips or repeats)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()


@contextmanager
def _snapshot(where: Place, day: dt.date) -> Iterator[Connection]:
    """A connection of its own inside one read-only transaction: every query sees the same
    data."""
    def error(path: str, detail: str) -> ReportError:
        return ReportError(day.isoformat(), f"cannot read {path}: {detail}")
    db = connect(where, error)
    try:
        with db.transaction(Begin.SNAPSHOT):
            yield db
    finally:
        db.close()


def daily_report(centre: Centre, registry: Registry, tags: Tags, audit: AuditLog,
                 day: dt.date, now: float, tz: dt.tzinfo = dt.timezone.utc) -> DailyReport:
    """The report for local `day` in `tz` as of `now`; ReportError for a day still to come or
    records that cannot be read."""
    start, end = midnight(day, tz), midnight(day + dt.timedelta(days=1), tz)
    if start > now:
        raise ReportError(day.isoformat(), "the day has not begun yet: choose today or an"
                          " earlier day")
    until = min(end, now)
    window = _Window(start, end if now >= end else math.nextafter(now, math.inf), until,
                     midnight(day - dt.timedelta(days=TREND_DAYS - 1), tz))
    count, digest = audit.head()
    periods = registry.heartbeat_periods()
    with _snapshot(centre.place, day) as db:
        low = {int(b): bool(f) for b, f in db.rows(
            "SELECT button_id, low_battery FROM buttons")}
        opened: dict[int, list[tuple[int, bool]]] = {}
        for number, button_id, test in db.rows(
                "SELECT id, button_id, test FROM incidents WHERE opened_at >= ?"
                " AND opened_at < ? ORDER BY id", (start, window.hi)):
            opened.setdefault(int(button_id), []).append((int(number), bool(test)))
        buttons = []
        for button_id in registry.buttons():
            period = periods.get(button_id, DEFAULT_PERIOD_S)
            threshold = max(SILENT_AFTER_S, SILENT_HEARTBEATS * period)
            act = _activity(db, _BUTTONS, button_id, window, start, threshold)
            case = registry.case_of(button_id)
            mine = opened.get(button_id, [])
            buttons.append(ButtonDay(
                button_id, None if case is None else case.case_ref, period, act.last_beat,
                act.battery, low.get(button_id, False),
                tuple(incident_ref(n) for n, test in mine if not test),
                tuple(incident_ref(n) for n, test in mine if test), act.beats,
                _expected(start, until, period), act.silences))
    with _snapshot(tags.place, day) as db:
        tag_days = []
        for tag_id, case_ref, interval_s, issued_at in db.rows(
                "SELECT tag_id, case_ref, interval_s, issued_at FROM tags WHERE retired_at"
                " IS NULL AND issued_at < ? ORDER BY tag_id", (window.hi,)):
            interval, since = int(interval_s), max(start, float(issued_at))
            act = _activity(db, _TAGS, str(tag_id), window, float(issued_at),
                            interval + SILENCE_GRACE_S)
            tamper = db.execute("SELECT COUNT(*) FROM tag_positions WHERE tag_id = ? AND"
                                " received_at >= ? AND received_at < ? AND tamper = 1",
                                (tag_id, start, window.hi)).rows[0][0]
            last = act.battery.last_pct
            tag_days.append(TagDay(
                str(tag_id), str(case_ref), interval, act.last_beat, act.battery,
                last is not None and last <= tags.low_battery_pct, int(tamper), act.beats,
                _expected(since, until, interval), act.silences))
    return DailyReport(day, tz, start, end, until, now, count, digest.hex(), tuple(buttons),
                       tuple(tag_days))


def _expected(since: float, until: float, period_s: int) -> int:
    return int((until - since) // period_s) if until > since else 0


def _activity(db: Connection, s: _Series, ident: object, w: _Window,
              origin: float, threshold_s: float) -> _Activity:
    """One sender's day: `origin` stands in for the last message before the day when there
    was none (a tag's issue; the day's start for a button)."""
    where = f"FROM {s.table} WHERE {s.column} = ? AND received_at"
    # One pass over the week: the day's counts, and the trend's sums. x is seconds from the
    # week's middle: epoch seconds squared would swamp a double's precision.
    mid = (w.trend_from + w.hi) / 2
    beats, lowest, n, sx, sy, sxx, sxy, span = db.execute(
        f"SELECT COUNT(*) FILTER (WHERE received_at >= ? AND {s.beat}),"
        " MIN(battery_pct) FILTER (WHERE received_at >= ?), COUNT(battery_pct),"
        " SUM(received_at - ?) FILTER (WHERE battery_pct IS NOT NULL), SUM(battery_pct),"
        " SUM((received_at - ?) * (received_at - ?)) FILTER (WHERE battery_pct IS NOT NULL),"
        " SUM((received_at - ?) * battery_pct),"
        " MAX(received_at) FILTER (WHERE battery_pct IS NOT NULL) -"
        f" MIN(received_at) FILTER (WHERE battery_pct IS NOT NULL) {where} >= ?"
        " AND received_at < ?", (w.start, w.start, mid, mid, mid, mid, ident, w.trend_from,
                                 w.hi)).rows[0]
    last_beat = _one(db, f"SELECT received_at {where} < ? AND {s.beat}"
                     " ORDER BY received_at DESC LIMIT 1", (ident, w.hi))
    last_pct = _one(db, f"SELECT battery_pct {where} >= ? AND received_at < ? AND battery_pct"
                    " IS NOT NULL ORDER BY received_at DESC LIMIT 1", (ident, w.start, w.hi))
    before = _one(db, f"SELECT received_at {where} < ? ORDER BY received_at DESC LIMIT 1",
                  (ident, w.start))
    # The day's times, one ordered pass (faster here than SQL's LAG over the same index).
    times = [before if before is not None else origin]
    times += [float(t) for (t,) in db.rows(
        f"SELECT received_at {where} >= ? AND received_at < ? ORDER BY received_at",
        (ident, w.start, w.hi))]
    times.append(w.until)
    lo = max(w.start, origin)
    silences = tuple(Silence(a, b, b - a) for a, b in
                     ((max(frm, lo), to) for frm, to in zip(times, times[1:])
                      if to - frm > threshold_s) if b > a)
    trend = None
    if n and int(n) >= 2 and float(span) >= TREND_MIN_SPAN_S:
        # Floats, whatever the database summed in (PostgreSQL sums integers as numeric).
        n, sx, sy, sxx, sxy = int(n), float(sx), float(sy), float(sxx), float(sxy)
        trend = (n * sxy - sx * sy) / (n * sxx - sx * sx) * 86_400.0
    battery = Battery(None if last_pct is None else float(last_pct),
                      None if lowest is None else float(lowest), trend)
    return _Activity(int(beats), None if last_beat is None else float(last_beat), battery,
                     silences)


def _one(db: Connection, sql: str, args: tuple[object, ...]) -> Any:
    row = db.execute(sql, args).one()
    return None if row is None else row[0]


# Renderers: Markdown (a supervisor's file), CSV (a spreadsheet), JSON (the operator page).

def iso(t: float | None, tz: dt.tzinfo) -> str:
    """ISO 8601 with the zone's offset, to the second ("" for None)."""
    return "" if t is None else dt.datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def _trend_text(v: float | None) -> str:
    return "" if v is None else f"{v:+.2f}"


def _silences(report: DailyReport, silences: tuple[Silence, ...]) -> str:
    return ";".join(f"{iso(s.start, report.tz)}–{iso(s.end, report.tz)}" for s in silences)


def _hex(button_id: int) -> str:
    return f"{button_id:08x}"


def to_json(report: DailyReport) -> dict[str, object]:
    """The report as JSON's types: times in ISO 8601, durations in seconds."""
    tz = report.tz

    def battery(b: Battery) -> dict[str, object]:
        return {"last_pct": b.last_pct, "lowest_pct": b.lowest_pct,
                "trend_pct_per_day": b.trend_pct_per_day}

    def silences(ss: tuple[Silence, ...]) -> list[dict[str, object]]:
        return [{"from": iso(s.start, tz), "to": iso(s.end, tz), "seconds": s.seconds}
                for s in ss]

    return {
        "day": report.day.isoformat(), "tz": str(tz), "from": iso(report.start, tz),
        "to": iso(report.end, tz), "until": iso(report.until, tz),
        "made_at": iso(report.made_at, tz),
        "audit": {"entries": report.audit_entries, "head": report.audit_head},
        "buttons": [{"button_id": b.button_id, "button": _hex(b.button_id),
                     "case_ref": b.case_ref, "period_s": b.period_s,
                     "last_heartbeat": iso(b.last_heartbeat, tz) or None,
                     "battery": battery(b.battery), "low_battery": b.low_battery,
                     "alarms": list(b.alarms), "tests": list(b.tests),
                     "heartbeats": b.heartbeats, "heartbeats_expected": b.heartbeats_expected,
                     "silent": silences(b.silences)} for b in report.buttons],
        "tags": [{"tag_id": t.tag_id, "case_ref": t.case_ref, "interval_s": t.interval_s,
                  "last_position": iso(t.last_position, tz) or None,
                  "battery": battery(t.battery), "low_battery": t.low_battery,
                  "tamper_reports": t.tamper_reports, "positions": t.positions,
                  "positions_expected": t.positions_expected, "silent": silences(t.silences)}
                 for t in report.tags],
    }


CSV_COLUMNS = ("kind", "id", "case_ref", "last_seen", "battery_last_pct", "battery_lowest_pct",
               "battery_trend_pct_per_day", "low_battery", "alarms", "tests", "tamper_reports",
               "received", "expected", "silent_periods", "silent_seconds", "day",
               "audit_entries", "audit_head")


def to_csv(report: DailyReport) -> str:
    """One row per button ("button") and per tag ("tag"); each row carries the day and the
    audit head, so that any row kept alone still says what it anchors."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    tail = (report.day.isoformat(), report.audit_entries, report.audit_head)
    for b in report.buttons:
        writer.writerow(("button", _hex(b.button_id), b.case_ref or "",
                         iso(b.last_heartbeat, report.tz), _pct(b.battery.last_pct),
                         _pct(b.battery.lowest_pct), _trend_text(b.battery.trend_pct_per_day),
                         int(b.low_battery), ";".join(b.alarms), ";".join(b.tests), "",
                         b.heartbeats, b.heartbeats_expected, _silences(report, b.silences),
                         f"{sum(s.seconds for s in b.silences):g}", *tail))
    for t in report.tags:
        writer.writerow(("tag", t.tag_id, t.case_ref, iso(t.last_position, report.tz),
                         _pct(t.battery.last_pct), _pct(t.battery.lowest_pct),
                         _trend_text(t.battery.trend_pct_per_day), int(t.low_battery), "", "",
                         t.tamper_reports, t.positions, t.positions_expected,
                         _silences(report, t.silences),
                         f"{sum(s.seconds for s in t.silences):g}", *tail))
    return out.getvalue()


def _cell(text: str) -> str:
    """A Markdown table cell: a case reference with | or a line break cannot split the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def to_markdown(report: DailyReport) -> str:
    tz = report.tz
    lines = [f"# Daily report {report.day.isoformat()} ({tz})", "",
             f"Covers {iso(report.start, tz)} to {iso(report.until, tz)}"
             f"{'' if report.until >= report.end else ' (the day is not over)'};"
             f" made at {iso(report.made_at, tz)}.",
             f"Audit log head: {report.audit_entries} entries, {report.audit_head}.", "",
             f"## Buttons ({len(report.buttons)})", "",
             _row(["Button", "Case", "Last heartbeat", "Battery %", "Lowest %",
                   "Trend %/day", "Low", "Alarms", "Tests", "Heartbeats", "Silent periods"]),
             _row(["---"] * 11)]
    for b in report.buttons:
        lines.append(_row([
            _hex(b.button_id), b.case_ref or "", iso(b.last_heartbeat, tz) or "never",
            _pct(b.battery.last_pct), _pct(b.battery.lowest_pct),
            _trend_text(b.battery.trend_pct_per_day), "LOW" if b.low_battery else "",
            _refs(b.alarms), _refs(b.tests),
            f"{b.heartbeats}/{b.heartbeats_expected}", _silence_text(report, b.silences)]))
    lines += ["", f"## Tags ({len(report.tags)})", "",
              _row(["Tag", "Case", "Last position", "Battery %", "Lowest %", "Trend %/day",
                    "Low", "Tamper", "Positions", "Silent periods"]), _row(["---"] * 10)]
    for t in report.tags:
        lines.append(_row([
            t.tag_id, t.case_ref, iso(t.last_position, tz) or "never",
            _pct(t.battery.last_pct), _pct(t.battery.lowest_pct),
            _trend_text(t.battery.trend_pct_per_day), "LOW" if t.low_battery else "",
            str(t.tamper_reports), f"{t.positions}/{t.positions_expected}",
            _silence_text(report, t.silences)]))
    return "\n".join(lines) + "\n"


def _refs(refs: tuple[str, ...]) -> str:
    return f"{len(refs)}: {' '.join(refs)}" if refs else "0"


def _silence_text(report: DailyReport, silences: tuple[Silence, ...]) -> str:
    if not silences:
        return "none"
    return "; ".join(f"{iso(s.start, report.tz)}–{iso(s.end, report.tz)}"
                     f" ({_duration(s.seconds)})" for s in silences)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m{whole % 60:02d}s"
