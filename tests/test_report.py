"""The supervisor's daily report (issue 15, part 6): a real Centre, Registry, Tags and AuditLog
fed with genuine button frames (verified by the centre as any channel's) and tag reports at
chosen times; the report's silent periods, battery trend, alarm and test refs and counts are
checked against values worked out by hand, across a local day in a non-UTC zone, and against
an independent model for random message times (Hypothesis). Markdown, CSV and the CLI too."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import statistics
import stat
import tempfile
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from backends import State, make_state, state  # noqa: F401
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.audit import AuditLog
from msa.centre.core import Centre, Inbound, Verdict
from msa.centre.errors import ReportError
from msa.centre.registry import Case, Registry
from msa.centre.server import start_centre
from msa.centre.report import (DailyReport, Silence, daily_report, to_csv, to_json,
                               to_markdown)
from msa.centre.tags import Tags
from msa.tools.cli_report import report as report_command
from msa.tools.errors import ToolError
from msa.wire import protocol as hp
from msa.wire.message import Message, MessageKind
from msa.wire.tag import TagReport

CENTRE_KEY = bytes(range(64, 96))  # K_c, registered for every button here
KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
TZ = dt.timezone(dt.timedelta(hours=1))  # the day runs from 00:00+01:00 to 00:00+01:00
DAY = dt.datetime.now(TZ).date() - dt.timedelta(days=3)  # the real clock: the CLI's `now`
START = dt.datetime.combine(DAY, dt.time(0), tzinfo=TZ).timestamp()
END = START + 86_400.0
LATER = END + 2 * 86_400.0  # report time for a day that is over
A, B, C, D = 0x0A000001, 0x0B000002, 0x0C000003, 0x0D000004

_MESSAGE = {hp.Kind.HEARTBEAT: MessageKind.HEARTBEAT, hp.Kind.ALARM: MessageKind.ALARM,
            hp.Kind.TEST: MessageKind.TEST, hp.Kind.LOW_BATTERY: MessageKind.LOW_BATTERY}


def at(hms: str, day: dt.date = DAY) -> str:
    """The report's ISO form of a local time of `day` (written out here, not computed by it)."""
    return f"{day.isoformat()}T{hms}+01:00"


def inbound(button_id: int, kind: hp.Kind, seq: int, t: float, battery: int | None
            ) -> Inbound:
    """A message as a channel hands it over, with the button's genuine frame."""
    raw = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=button_id,
                                          boot_id=1, seq=seq, battery_pct=battery))
    key = Message.event_key(button_id, 1, seq)
    incident = key if kind in (hp.Kind.ALARM, hp.Kind.TEST) else ""
    return Inbound("https", key, _MESSAGE[kind], button_id, raw, incident=incident,
                   received_at=t)


@dataclass
class World:
    state: State
    registry: Registry
    centre: Centre
    tags: Tags
    audit: AuditLog
    seq: int = 0

    def send(self, button_id: int, kind: hp.Kind, t: float, battery: int | None) -> str:
        """One genuine frame from the button, received at `t`; the incident's ref, if any."""
        self.seq += 1
        got = self.centre.ingest(inbound(button_id, kind, self.seq, t, battery))
        assert got.verdict is Verdict.ACCEPTED, got.reason
        return got.incident

    def report(self, now: float = LATER, tz: dt.tzinfo = TZ,
               day: dt.date = DAY) -> DailyReport:
        return daily_report(self.centre, self.registry, self.tags, self.audit, day, now, tz)

    def close(self) -> None:
        for closing in (self.audit, self.tags, self.centre, self.registry):
            closing.close()


def make_world(state: State) -> World:
    registry = Registry(state.registry)
    return World(state, registry, Centre(state.records, registry), Tags(registry),
                 AuditLog(state.audit))


def where(state: State) -> list[str]:
    """The CLI's options naming the centre's data."""
    database = [] if state.database is None else ["--database", state.database]
    return ["--state-dir", str(state.dir), *database]


@pytest.fixture
def world(state: State) -> Iterator[World]:
    w = make_world(state)
    yield w
    w.close()


def fleet(w: World) -> dict[str, str]:
    """Four buttons and their day (times as offsets from local midnight); returns the tag
    tags' ids to their names here (t1, t2). A: default 60 s heartbeat (silent after 180 s); B: never
    heard from, hourly heartbeat; C: hourly heartbeat (silent after 3 h); D: last heard long
    before the day."""
    w.registry.put_case(Case("CASE-1", "Jane Example", suspect="John Roe"))
    w.registry.put_case(Case("CASE|3", "Ann Example"))  # a | must not split a Markdown row
    w.registry.register(A, CENTRE_KEY, "CASE-1")
    w.registry.register(B, CENTRE_KEY, None)
    w.registry.register(C, CENTRE_KEY, "CASE|3")
    w.registry.register(D, CENTRE_KEY, None)
    w.registry.expect_heartbeat(B, 3600)
    w.registry.expect_heartbeat(C, 3600)
    hb = hp.Kind.HEARTBEAT
    w.send(A, hp.Kind.ALARM, START - 3600, 81)  # INC-000001: the day before, not counted
    w.send(A, hb, START - 100, 80)
    w.send(A, hb, START + 50, 79)  # 150 s after the last one: not silent
    w.send(A, hb, START + 230, 79)  # exactly 180 s: not silent (silence is longer)
    w.send(A, hb, START + 411, 78)  # 181 s: silent
    w.send(A, hp.Kind.ALARM, START + 1000, 64)  # INC-000002
    w.send(A, hp.Kind.LOW_BATTERY, START + 1050, 64)
    w.send(A, hp.Kind.TEST, START + 1100, 65)  # INC-000003
    w.send(A, hb, START + 43_200, 75)
    w.send(A, hb, END - 1, 70)  # 23:59:59: the day's
    w.send(A, hb, END, 10)  # 00:00:00: the next day's, in nothing of this report
    w.send(A, hp.Kind.ALARM, END + 5, 10)  # INC-000004: the next day's
    w.send(C, hb, START - 5000, None)
    w.send(C, hb, START + 5799, None)  # 10,799 s after the last: not silent
    w.send(C, hb, START + 16_600, None)  # 10,801 s: silent
    w.send(D, hb, START - 20_000, 90)
    w.send(D, hb, START + 100, 90)
    # Tags: T1 every 60 s (silent after 120 s), T2 issued at noon and never heard from,
    # one issued after the day and one retired: neither in the report.
    t1 = w.tags.issue("CASE-1", 60, now=START - 86_400).tag
    for t, pct, tamper in ((START - 7200, 60.0, False), (START - 30, 50.0, False),
                           (START + 100, 45.0, False), (START + 200, 40.0, True),
                           (START + 300, 19.0, False), (END + 10, 5.0, True)):
        w.tags.record(t1, TagReport(51.0, 3.7, 5.0, t, pct, tamper), t)
    t2 = w.tags.issue("CASE-1", 300, now=START + 43_200).tag
    w.tags.issue("CASE-1", 60, now=END + 1)
    gone = w.tags.issue("CASE-1", 60, now=START - 10).tag
    assert w.tags.retire(gone.tag_id)
    return {t1.tag_id: "t1", t2.tag_id: "t2"}


def _slope_per_day(samples: Sequence[tuple[float, float]]) -> float:
    return statistics.linear_regression([x for x, _ in samples],
                                        [y for _, y in samples]).slope * 86_400


def test_each_button_and_tag_has_its_day_exactly(world: World) -> None:
    tag_ids = fleet(world)
    r = world.report()
    assert (r.start, r.end, r.until) == (START, END, END)
    assert r.audit_entries == 0 and r.audit_head == "00" * 32
    a, b, c, d = r.buttons
    assert [x.button_id for x in r.buttons] == [A, B, C, D]
    assert (a.case_ref, b.case_ref, c.case_ref) == ("CASE-1", None, "CASE|3")
    assert a.last_heartbeat == END - 1 and a.heartbeats == 5 and a.heartbeats_expected == 1440
    assert (a.battery.last_pct, a.battery.lowest_pct) == (70.0, 64.0)
    week = [(START - 3600, 81), (START - 100, 80), (START + 50, 79), (START + 230, 79),
            (START + 411, 78), (START + 1000, 64), (START + 1050, 64), (START + 1100, 65),
            (START + 43_200, 75), (END - 1, 70)]
    assert a.battery.trend_pct_per_day == pytest.approx(_slope_per_day(week), rel=1e-9)
    assert a.battery.trend_pct_per_day is not None and a.battery.trend_pct_per_day < -3
    assert a.low_battery and not d.low_battery
    assert (a.alarms, a.tests) == (("INC-000002",), ("INC-000003",))
    assert a.silences == (Silence(START + 230, START + 411, 181),
                          Silence(START + 411, START + 1000, 589),
                          Silence(START + 1100, START + 43_200, 42_100),
                          Silence(START + 43_200, END - 1, 43_199))
    # Never heard from: silent the whole day, nothing else known.
    assert b.silences == (Silence(START, END, 86_400),)
    assert (b.heartbeats, b.heartbeats_expected, b.last_heartbeat) == (0, 24, None)
    assert (b.battery.last_pct, b.battery.lowest_pct, b.battery.trend_pct_per_day) == \
        (None, None, None)
    assert (b.alarms, b.tests, b.low_battery) == ((), (), False)
    # An hourly button: silent only after 3 h; its first gap counts from the day before.
    assert c.silences == (Silence(START + 5799, START + 16_600, 10_801),
                          Silence(START + 16_600, END, END - START - 16_600))
    assert (c.heartbeats, c.heartbeats_expected, c.battery.last_pct) == (2, 24, None)
    # Silent since long before the day: the period is cut at midnight.
    assert d.silences == (Silence(START, START + 100, 100), Silence(START + 100, END, 86_300))
    assert d.battery.trend_pct_per_day == 0.0  # 90 % on both sides of midnight
    t1, t2 = sorted(r.tags, key=lambda t: tag_ids[t.tag_id])
    assert len(r.tags) == 2
    assert (t1.last_position, t1.positions, t1.positions_expected, t1.tamper_reports) == \
        (START + 300, 3, 1440, 1)
    assert (t1.battery.last_pct, t1.battery.lowest_pct, t1.low_battery) == (19.0, 19.0, True)
    assert t1.battery.trend_pct_per_day == pytest.approx(_slope_per_day(
        [(START - 7200, 60), (START - 30, 50), (START + 100, 45), (START + 200, 40),
         (START + 300, 19)]), rel=1e-9)
    assert t1.silences == (Silence(START, START + 100, 100),
                           Silence(START + 300, END, 86_100))
    assert (t2.positions, t2.positions_expected, t2.last_position) == (0, 144, None)
    assert t2.silences == (Silence(START + 43_200, END, 43_200),)  # silent since its issue
    assert t2.battery.trend_pct_per_day is None and not t2.low_battery


def test_the_battery_trend_needs_two_readings_an_hour_apart(world: World) -> None:
    world.registry.register(A, CENTRE_KEY, None)
    world.registry.register(B, CENTRE_KEY, None)
    world.send(A, hp.Kind.HEARTBEAT, START + 10, 90)
    world.send(A, hp.Kind.HEARTBEAT, START + 3609, 80)  # 59 min 59 s later: no trend
    world.send(B, hp.Kind.HEARTBEAT, START + 10, 90)
    world.send(B, hp.Kind.HEARTBEAT, START + 3610, 80)  # one hour: 10 points in 1/24 day
    world.send(B, hp.Kind.HEARTBEAT, START - 7 * 86_400, 100)  # before the week: left out
    a, b = world.report().buttons
    assert a.battery.trend_pct_per_day is None
    assert b.battery.trend_pct_per_day == pytest.approx(-240.0, rel=1e-9)


def test_today_runs_to_now_and_a_day_to_come_is_refused(world: World) -> None:
    fleet(world)
    now = START + 2000
    r = world.report(now=now)
    a = r.buttons[0]
    assert r.until == now and a.heartbeats == 3 and a.heartbeats_expected == 33
    assert a.silences[-1] == Silence(START + 1100, now, 900)  # silent up to now
    assert a.last_heartbeat == START + 411 and a.battery.last_pct == 65.0
    assert r.buttons[1].silences == ()  # hourly: not silent before 3 h without a word
    assert r.buttons[3].silences == (Silence(START, START + 100, 100),
                                     Silence(START + 100, now, 1900))
    assert "not over" in to_markdown(r)
    with pytest.raises(ReportError) as refused:
        world.report(now=now, day=DAY + dt.timedelta(days=1))
    assert refused.value.day == (DAY + dt.timedelta(days=1)).isoformat()


def test_the_days_bounds_are_local_midnights(world: World) -> None:
    fleet(world)
    # The same records in UTC: the local 00:00:00+01:00 message is 23:00 UTC, in the UTC day.
    utc = world.report(tz=dt.timezone.utc)
    assert utc.start == START + 3600
    a = utc.buttons[0]
    assert a.heartbeats == 3 and a.last_heartbeat == END and a.battery.last_pct == 10.0
    assert (a.alarms, a.tests) == (("INC-000004",), ())  # 01:00+01:00 onwards only
    js = to_json(world.report())
    assert (js["from"], js["to"]) == (at("00:00:00"), at("00:00:00", DAY + dt.timedelta(1)))


def test_a_day_with_a_clock_change_has_its_own_length(world: World) -> None:
    brussels = zoneinfo.ZoneInfo("Europe/Brussels")
    world.registry.register(A, CENTRE_KEY, None)
    autumn = world.report(day=dt.date(2026, 10, 25), tz=brussels, now=LATER)  # 25 hours
    spring = world.report(day=dt.date(2026, 3, 29), tz=brussels, now=LATER)  # 23 hours
    assert autumn.end - autumn.start == 25 * 3600 and spring.end - spring.start == 23 * 3600
    assert (autumn.buttons[0].heartbeats_expected, spring.buttons[0].heartbeats_expected) == \
        (1500, 1380)
    assert to_json(autumn)["from"] == "2026-10-25T00:00:00+02:00"
    assert to_json(autumn)["to"] == "2026-10-26T00:00:00+01:00"


def test_markdown_and_csv_hold_every_button_and_tag(world: World) -> None:
    fleet(world)
    r = world.report()
    rows = list(csv.DictReader(io.StringIO(to_csv(r))))
    assert [(row["kind"], row["id"]) for row in rows] == \
        [("button", "0a000001"), ("button", "0b000002"), ("button", "0c000003"),
         ("button", "0d000004")] + [("tag", t.tag_id) for t in r.tags]
    a = rows[0]
    assert a["case_ref"] == "CASE-1" and a["last_seen"] == at("23:59:59")
    assert (a["battery_last_pct"], a["battery_lowest_pct"], a["low_battery"]) == \
        ("70", "64", "1")
    assert float(a["battery_trend_pct_per_day"]) == \
        pytest.approx(r.buttons[0].battery.trend_pct_per_day, abs=0.005)
    assert (a["alarms"], a["tests"], a["received"], a["expected"]) == \
        ("INC-000002", "INC-000003", "5", "1440")
    assert a["silent_periods"].split(";") == [
        f"{at('00:03:50')}–{at('00:06:51')}", f"{at('00:06:51')}–{at('00:16:40')}",
        f"{at('00:18:20')}–{at('12:00:00')}", f"{at('12:00:00')}–{at('23:59:59')}"]
    assert float(a["silent_seconds"]) == 181 + 589 + 42_100 + 43_199
    b = rows[1]
    assert (b["case_ref"], b["last_seen"], b["battery_last_pct"], b["received"],
            b["expected"]) == ("", "", "", "0", "24")
    assert b["silent_periods"] == f"{at('00:00:00')}–{at('00:00:00', DAY + dt.timedelta(1))}"
    assert rows[2]["case_ref"] == "CASE|3"
    tag = next(row for row in rows if row["kind"] == "tag" and row["received"] == "3")
    assert (tag["tamper_reports"], tag["expected"], tag["battery_last_pct"],
            tag["low_battery"]) == ("1", "1440", "19", "1")
    assert {row["day"] for row in rows} == {DAY.isoformat()}
    assert {row["audit_head"] for row in rows} == {r.audit_head}
    md = to_markdown(r)
    for name in ("0a000001", "0b000002", "0c000003", "0d000004", *(t.tag_id for t in r.tags)):
        assert sum(line.startswith(f"| {name} |") for line in md.splitlines()) == 1
    assert "| CASE\\|3 |" in md  # escaped: the row keeps its columns
    assert "| 1: INC-000002 | 1: INC-000003 | 5/1440 |" in md
    assert "0/24" in md and "3/1440" in md and "0/144" in md
    js = json.loads(json.dumps(to_json(r), allow_nan=False))  # JSON's types only
    assert [b["button"] for b in js["buttons"]] == ["0a000001", "0b000002", "0c000003",
                                                     "0d000004"]
    assert js["buttons"][0]["silent"][0] == {"from": at("00:03:50"), "to": at("00:06:51"),
                                             "seconds": 181.0}
    assert (js["buttons"][0]["alarms"], js["buttons"][0]["tests"]) == \
        (["INC-000002"], ["INC-000003"])
    assert js["buttons"][1]["last_heartbeat"] is None and js["until"] == js["to"]
    assert {t["tag_id"] for t in js["tags"]} == {t.tag_id for t in r.tags}
    assert f"{at('00:03:50')}–{at('00:06:51')} (0h03m01s)" in md


def test_the_audit_head_at_report_time_is_in_the_report(world: World) -> None:
    entry = world.audit.append("sup", "login", "sup", "127.0.0.1", at=START)
    r = world.report()
    assert (r.audit_entries, r.audit_head) == (1, entry.hash.hex())
    assert to_json(r)["audit"] == {"entries": 1, "head": entry.hash.hex()}


# Random message times: the report's silent periods are exactly the gaps above the threshold
# in a model of the rule written here (the day's messages, the last one before it, the day's
# end or `now`), and never more than the day.

def _model(times: list[float], until: float, threshold: float) -> list[Silence]:
    before = [t for t in times if t < START]
    points = [max(before) if before else START]
    points += sorted(t for t in times if START <= t < END and t <= until) + [until]
    out = []
    for a, b in zip(points, points[1:]):
        if b - a > threshold and b > max(a, START):
            out.append(Silence(max(a, START), b, b - max(a, START)))
    return out


# Gaps near each threshold (180 s; 1800 s for a 600 s period), exactly on it, and long ones.
_GAPS = st.one_of(st.sampled_from([0, 179, 180, 181, 1799, 1800, 1801]),
                  st.integers(0, 2400), st.integers(0, 40_000))


@settings(max_examples=60, deadline=None)
@given(first=st.one_of(st.none(), st.integers(-50_000, 90_000)),
       gaps=st.lists(_GAPS, max_size=25),
       now_offset=st.one_of(st.none(), st.integers(0, 86_399)),
       period=st.sampled_from([None, 30, 60, 600]))
@example(first=100, gaps=[180, 181, 0], now_offset=None, period=None)  # on the threshold
@example(first=-1800, gaps=[1801, 1800, 1799], now_offset=7000, period=600)
def test_silent_periods_are_exactly_the_long_gaps(first: int | None, gaps: list[int],
                                                  now_offset: int | None,
                                                  period: int | None) -> None:
    # SQLite only: a fresh centre per example, and a PostgreSQL database per example would
    # cost ten times the test.
    with tempfile.TemporaryDirectory() as tmp:
        w = make_world(make_state(Path(tmp), None))
        try:
            w.registry.register(A, CENTRE_KEY, None)
            if period is not None:
                w.registry.expect_heartbeat(A, period)
            times = [] if first is None else [START + first + sum(gaps[:i])
                                              for i in range(len(gaps) + 1)]
            for t in reversed(times):  # the order of arrival is not the order of time
                w.send(A, hp.Kind.HEARTBEAT, t, 50)
            now = LATER if now_offset is None else START + now_offset
            r = w.report(now=now)
        finally:
            w.close()
    got = r.buttons[0].silences
    threshold = max(180.0, 3 * (period or 60))
    assert list(got) == _model(times, min(now, END), threshold)
    assert sum(s.seconds for s in got) <= min(now, END) - START
    assert all(START <= s.start < s.end <= END for s in got)
    assert all(x.end <= y.start for x, y in zip(got, got[1:]))


# The command: run against the state folder as `msa centre report`; every view is audited.

def test_the_cli_writes_csv_and_markdown_and_audits_each_view(state: State,
                                                              tmp_path: Path) -> None:
    w = make_world(state)
    try:
        fleet(w)
    finally:
        w.close()
    runner = CliRunner()
    result = runner.invoke(report_command, [*where(state), "--day", DAY.isoformat(),
                                            "--tz", "+01:00", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["id"] for row in rows][:4] == ["0a000001", "0b000002", "0c000003", "0d000004"]
    assert rows[0]["received"] == "5" and rows[0]["last_seen"] == at("23:59:59")
    out = tmp_path / "report.md"
    result = runner.invoke(report_command, [*where(state), "--day", DAY.isoformat(),
                                            "--tz", "+01:00", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == "" and stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert text.startswith(f"# Daily report {DAY.isoformat()} (UTC+01:00)")
    assert "Audit log head: 1 entries" in text  # the first view's entry, before this one
    log = AuditLog(state.audit)
    try:
        views = log.entries()
        assert [(e.action, e.subject, e.source, e.detail) for e in views] == \
            [("report.view", f"report:{DAY.isoformat()}", "cli", {"day": DAY.isoformat()})] * 2
        assert all(e.actor.startswith("cli:") and len(e.actor) > 4 for e in views)
        assert log.verify().ok
    finally:
        log.close()


def test_the_cli_defaults_to_yesterday_and_refuses_what_it_cannot_do(state: State,
                                                                     tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(report_command, ["--state-dir", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and isinstance(result.exception, ToolError)
    assert not (tmp_path / "nowhere").exists()  # nothing made where no centre is
    w = make_world(state)
    w.registry.register(A, CENTRE_KEY, None)
    w.close()
    result = runner.invoke(report_command, [*where(state), "--tz",
                                            "Europe/Brussels", "--format", "csv"])
    assert result.exit_code == 0, result.output
    yesterday = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Brussels")).date() - \
        dt.timedelta(days=1)
    assert {row["day"] for row in csv.DictReader(io.StringIO(result.output))} == \
        {yesterday.isoformat()}
    for bad in (["--tz", "Mars/Olympus"], ["--tz", "+25:00"], ["--day", "2026-13-01"]):
        result = runner.invoke(report_command, [*where(state), *bad])
        assert result.exit_code == 2 and "Invalid value" in result.output
    future = dt.date.today() + dt.timedelta(days=2)
    result = runner.invoke(report_command, [*where(state), "--day", future.isoformat()])
    assert isinstance(result.exception, ReportError) and result.exit_code != 0
    log = AuditLog(state.audit)
    try:  # one view: the refused one was not shown, so not recorded
        assert [e.detail["day"] for e in log.entries()] == [yesterday.isoformat()]
    finally:
        log.close()


def test_the_cli_reads_the_state_of_a_running_centre(state: State) -> None:
    async def body() -> tuple[str, Verdict]:
        c = await start_centre(state.config(dc09_port=None))
        try:
            c.centre.registry.register(A, CENTRE_KEY, None)
            for seq, offset in enumerate((10.0, 500.0), start=1):
                assert c.centre.ingest(inbound(A, hp.Kind.HEARTBEAT, seq, START + offset,
                                               88)).verdict is Verdict.ACCEPTED
            result = CliRunner().invoke(report_command, [
                *where(state), "--day", DAY.isoformat(), "--tz", "+01:00",
                "--format", "csv"])
            assert result.exit_code == 0, result.output
            # The report left no lock behind: the centre records the next message at once.
            after = c.centre.ingest(inbound(A, hp.Kind.HEARTBEAT, 3, START + 600, 87))
            return result.output, after.verdict
        finally:
            await c.stop()
    output, verdict = asyncio.run(body())
    assert verdict is Verdict.ACCEPTED
    row, = csv.DictReader(io.StringIO(output))
    assert (row["id"], row["received"], row["battery_last_pct"]) == ("0a000001", "2", "88")
    assert row["silent_periods"] == f"{at('00:00:10')}–{at('00:08:20')};" \
        f"{at('00:08:20')}–{at('00:00:00', DAY + dt.timedelta(1))}"
