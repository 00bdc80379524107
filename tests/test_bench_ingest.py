"""The centre-ingest benchmark (bench/ingest.py) at a tiny scale: its streams are what they
claim (counts, mix, order), the centre stores exactly the frames sent minus duplicates and
forgeries through both of its paths, and every figure comes out as a sane value. Timing is never
asserted: these machines are shared."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from msa.bench import ingest, ingest_load
from msa.bench.figures import Better, Options
from msa.centre.core import Centre, Verdict
from msa.centre.registry import Registry
from msa.wire.message import MessageKind


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> ingest_load.Fleet:
    return ingest_load.build_fleet(tmp_path_factory.mktemp("fleet"), 200, random.Random(1))


def test_the_fleet_is_provisioned_in_the_registry(fleet: ingest_load.Fleet) -> None:
    registry = Registry(fleet.registry)
    try:
        assert registry.buttons() == fleet.ids and len(fleet.ids) == 200
        case = registry.case_of(fleet.ids[0])
        assert case is not None and case.case_ref == f"C-{fleet.ids[0]:08x}"
        assert all(registry.key(b) is not None for b in fleet.ids[:10])
    finally:
        registry.close()


def test_a_fleet_minute_has_the_mix_in_an_order_a_real_stream_allows(
        fleet: ingest_load.Fleet) -> None:
    items = ingest_load.fleet_minute(fleet, random.Random(2), 1_700_000_000.0)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.category] = counts.get(item.category, 0) + 1
    n = len(fleet.ids)
    assert counts == {"heartbeat": n, **{k: max(1, round(n * v)) for k, v in ingest_load.MIX.items()}}
    seen: set[str] = set()
    for item in items:
        m = item.message
        if item.category == "location":
            assert m.kind is MessageKind.LOCATION and m.incident in seen and m.fix is not None
        if item.category == "duplicate":
            assert m.key in seen  # its original came first
        if item.category != "bad":
            seen.add(m.key)
    originals = [i.message.key for i in items if i.category not in ("duplicate", "bad")]
    assert len(set(originals)) == len(originals)


@pytest.mark.parametrize("in_flight", [0, 1, 8])
def test_the_centre_stores_the_frames_sent_minus_duplicates_and_forgeries(
        fleet: ingest_load.Fleet, tmp_path: Path, in_flight: int) -> None:
    registry = Registry(fleet.registry)
    centre = Centre(tmp_path / "records.db", registry)
    try:
        items = ingest_load.fleet_minute(fleet, random.Random(3), 1_700_000_000.0)
        with ingest_load.quiet():
            tally = ingest_load.drive(centre, items, in_flight)
        dups = sum(1 for i in items if i.category == "duplicate")
        bad = sum(1 for i in items if i.category == "bad")
        assert tally.sent == len(items) and not tally.wrong
        assert tally.verdicts == {Verdict.ACCEPTED: len(items) - dups - bad,
                                  Verdict.DUPLICATE: dups, Verdict.REJECTED: bad}
        assert tally.stored == centre.count() == len(items) - dups - bad
        alarms = sum(1 for i in items if i.category == "alarm")
        assert len(centre.incidents()) == alarms
        assert centre.count(MessageKind.HEARTBEAT) == len(fleet.ids)
        assert sum(len(i["track"]) for i in centre.incidents()) == alarms + sum(  # type: ignore[arg-type]
            1 for i in items if i.category == "location")
        assert set(tally.latency) == {i.category for i in items}
    finally:
        centre.close()
        registry.close()


def test_the_section_reports_sane_figures(tmp_path: Path) -> None:
    figures = ingest.run(Options(root=tmp_path, scale=0.005, runs=2))
    by_name = {f.name: f for f in figures}
    assert len(by_name) == len(figures) and all(f.section == ingest.SECTION for f in figures)
    for f in figures:
        assert f.value is not None and math.isfinite(f.value) and f.value > 0, f
    rates = [f for f in figures if f.unit == "frames/s" and not f.name.startswith("floor")]
    assert len(rates) >= 10
    assert all(f.target == ingest.TARGET and f.better is Better.HIGHER and f.floor
               for f in rates)
    for name, buttons in (("mixed stream", 150), ("mixed, the fleet's first minute after a start",
                                                   500)):
        shares = {k: max(1, round(buttons * v)) for k, v in ingest_load.MIX.items()}
        sent = buttons + sum(shares.values())
        stored = sent - shares["duplicate"] - shares["bad"]
        assert f"{sent:,} frames, {stored:,} stored" in by_name[name].note, by_name[name].note
    mixed = by_name["mixed stream"]
    assert "150 of the 500 buttons" in mixed.note and "median of 2 runs" in mixed.note
    headroom = by_name["fleet headroom (mixed stream ÷ 1,700/s)"]
    assert headroom.value == pytest.approx(mixed.value / ingest.FLEET_RATE)  # type: ignore[operator]
    assert "heartbeats, 5,000 messages on record" in by_name
    for name in ("ingest latency p99, heartbeat", "ingest latency p99, alarm"):
        assert by_name[name].unit == "ms" and by_name[name].value < 10_000  # type: ignore[operator]
    floors = [f for f in figures if f.name.startswith("floor:")]
    assert {f.unit for f in floors} >= {"commits/s", "fsyncs/s", "handshakes/s"}
    assert all(f.target is None for f in floors)
