"""The centre's proximity watch over real HTTPS (issue 14, parts 2-4): the victim's host reports
her position with its own token and is told how often to report; a tag's OsmAnd fixes go
through the rules; an alert reaches the host's long poll at once and only the host of that
case; its delivery is acknowledged into the case record; fixed zones need no victim position;
victim positions are kept only for the retention; the operator sees and acknowledges the
state. The real host client (host/proximity.py) runs against the real centre at the end."""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import State, state  # noqa: F401
from geographiclib.geodesic import Geodesic
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.geo import Circle
from msa.centre.registry import Case
from msa.wire.proximity import REPORT_EVERY_S, REPORT_FAST_S, read_warnings

from test_tags import Centre, good

G = Geodesic.WGS84
LAT, LON = 51.0543, 3.7174


def at(east_m: float) -> tuple[float, float]:
    g = G.Direct(LAT, LON, 90.0, east_m)
    return float(g["lat2"]), float(g["lon2"])


class Prox(Centre):
    """test_tags' centre, with a second case (its own host) and helpers for proximity."""

    def __init__(self, state: State) -> None:
        super().__init__(state)
        reg = self.running.centre.registry
        self.do(lambda: reg.put_case(Case("C-O", "O. Other", suspect="S. Other")))
        self.other_token = self.do(lambda: self.running.issue_host("C-O")).token
        self.store = self.running.watch.store

    def position(self, east_m: float | None, token: str | None = None,
                 body: Any = None) -> tuple[int, bytes]:
        now = time.time()
        if body is None:
            fix = None if east_m is None else dict(zip(("lat", "lon"), at(east_m)),
                                                   accuracy_m=8.0, time=now)
            body = {"time": now, "fix": fix}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", "/v1/victim/position", raw, {
            "Authorization": f"Bearer {token or self.host_token}",
            "Content-Type": "application/json"})

    def tag_at(self, east_m: float) -> None:
        lat, lon = at(east_m)
        status, _ = self.osmand_get(good(self.secret, lat=f"{lat:.7f}", lon=f"{lon:.7f}",
                                         accuracy="10", timestamp=str(int(time.time()))))
        assert status == 200

    def warnings(self, after: int = 0, wait_s: int = 0, token: str | None = None
                 ) -> tuple[int, Any]:
        status, raw = self.request("GET", f"/v1/warnings?after={after}&wait_s={wait_s}",
                                   headers={"Authorization": f"Bearer {token or self.host_token}"})
        return status, json.loads(raw) if status == 200 else raw

    def events(self, case_ref: str = "C-T") -> list[dict[str, object]]:
        return self.do(lambda: self.store.events(case_ref))


@pytest.fixture
def prox(state: State) -> Iterator[Prox]:
    c = Prox(state)
    yield c
    c.close()


def test_a_victim_report_is_stored_and_told_how_often(prox: Prox) -> None:
    status, body = prox.position(0.0)
    assert (status, json.loads(body)) == (200, {"report_every_s": REPORT_EVERY_S})
    stored = prox.do(lambda: prox.store.victim_positions("C-T"))
    assert len(stored) == 1 and stored[0]["accuracy_m"] == 8.0
    assert prox.position(None)[0] == 200  # no fix (indoors): accepted, nothing stored
    assert len(prox.do(lambda: prox.store.victim_positions("C-T"))) == 1


@pytest.mark.parametrize("body", [
    b"not json", [], {"time": 1}, {"fix": None}, {"time": time.time()},
    {"time": time.time(), "fix": {"lat": 91, "lon": 0, "accuracy_m": 5, "time": time.time()}},
    {"time": time.time(), "fix": {"lat": 1, "lon": 0, "accuracy_m": -5, "time": time.time()}},
    {"time": time.time(), "fix": {"lat": 1, "lon": 0, "accuracy_m": 5}},
    {"time": time.time(), "fix": {"lat": 1, "lon": 0, "accuracy_m": 5, "time": 1e9 + 1e8,
                                  "x": 1}},
    {"time": time.time() + 3600, "fix": None},
    {"time": True, "fix": None},
])
def test_a_malformed_report_is_400_and_nothing_stored(prox: Prox, body: Any) -> None:
    assert prox.position(None, body=body)[0] == 400
    assert prox.do(lambda: prox.store.victim_positions("C-T")) == []


def test_credentials_and_cases(prox: Prox) -> None:
    assert prox.position(0.0, token=prox.secret)[0] == 401  # a tag's secret is not a host's
    assert prox.position(0.0, token="x" * 43)[0] == 401
    prox.do(lambda: prox.store.set_rules("C-O", 500.0, None, moving_zone=False))
    prox.running.watch._rules.clear()  # the cache's 10 s, skipped
    assert prox.position(0.0, token=prox.other_token)[0] == 409  # fixed zones only


def test_an_alert_wakes_the_long_poll_and_only_its_own_host(prox: Prox) -> None:
    prox.position(0.0)
    assert prox.warnings() == (200, {"warnings": [], "report_every_s": REPORT_EVERY_S})
    got: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        got["answer"] = prox.warnings(wait_s=20)
        got["took"] = time.monotonic() - started

    waiting = threading.Thread(target=poll)
    waiting.start()
    prox.tag_at(2000.0)
    time.sleep(0)
    prox.tag_at(2000.0)  # far: nothing; the poll keeps waiting
    prox.tag_at(1960.0)
    prox.tag_at(100.0)  # 1.9 km in a second: a jump, flagged, no alert
    assert not got
    lat, lon = at(120.0)
    # The same place again, 20 s after his last fix: no longer a jump, certainly inside.
    status, _ = prox.osmand_get(good(prox.secret, lat=f"{lat:.7f}", lon=f"{lon:.7f}",
                                     accuracy="10", timestamp=str(int(time.time()) + 20)))
    assert status == 200
    status2, _ = prox.osmand_get(good(prox.secret, lat=f"{lat:.7f}", lon=f"{lon:.7f}",
                                      accuracy="10", timestamp=str(int(time.time()) + 30)))
    waiting.join(30)
    status, body = got["answer"]
    assert status == 200 and got["took"] < 15
    warnings, every = read_warnings(body)
    assert every == REPORT_FAST_S
    assert [(w.kind, w.level, w.zone) for w in warnings] == [("proximity", "alert", "victim")]
    assert warnings[0].distance_m % 10 == 0 and 80 <= warnings[0].distance_m <= 160
    kinds = [e["kind"] for e in prox.events()]
    assert "position jump" in kinds and "alert" in kinds
    # The other case's host hears nothing of it, and cannot acknowledge it.
    assert read_warnings(prox.warnings(token=prox.other_token)[1])[0] == []
    ack = json.dumps({"at": time.time(), "delivery": {"haptic": "ok", "hook": "none"}}).encode()
    path = f"/v1/warnings/{warnings[0].id}/ack"
    assert prox.request("POST", path, ack, {"Authorization": f"Bearer {prox.other_token}"}
                        )[0] == 404
    assert prox.request("POST", path, ack, {"Authorization": f"Bearer {prox.host_token}"}
                        )[0] == 200
    delivered = [e for e in prox.events() if e["kind"] == "delivered to the victim"]
    assert len(delivered) == 1 and delivered[0]["ref"] == warnings[0].id
    assert delivered[0]["detail"] == {"haptic": "ok", "hook": "none"}
    # Nothing newer than the last id: an empty answer.
    assert read_warnings(prox.warnings(after=warnings[0].id)[1])[0] == []


@pytest.mark.parametrize("body, status", [
    ({"at": time.time(), "delivery": {"haptic": "buzzed"}}, 400),
    ({"at": time.time(), "delivery": {"sms": "ok"}}, 400),
    ({"at": time.time()}, 400),
    ({"at": time.time(), "delivery": {"haptic": "failed: \x00"}}, 400),
])
def test_a_malformed_ack_is_400(prox: Prox, body: Any, status: int) -> None:
    assert prox.request("POST", "/v1/warnings/1/ack", json.dumps(body).encode(), {
        "Authorization": f"Bearer {prox.host_token}"})[0] == status


@pytest.mark.parametrize("query", ["after=-1", "after=x", "wait_s=26", "wait_s=1.5",
                                   "after=99999999999999999999"])
def test_a_malformed_poll_is_400(prox: Prox, query: str) -> None:
    assert prox.request("GET", f"/v1/warnings?{query}", headers={
        "Authorization": f"Bearer {prox.host_token}"})[0] == 400


def test_a_fixed_zone_alerts_without_any_victim_position(prox: Prox) -> None:
    prox.do(lambda: prox.store.add_zone("C-T", "home", Circle(*at(0.0), 25.0)))
    prox.running.watch._rules.clear()
    prox.tag_at(300.0)
    alerts = [e for e in prox.events() if e["kind"] == "alert"]
    assert [(e["zone"], round(float(str(e["distance_m"])))) for e in alerts] == [("home", 275)]
    views = {v["zone"]: v for v in prox.do(prox.running.watch.views)}
    assert views["home"]["state"] == "alert" and views["home"]["shape"] == {
        "circle": {"lat": LAT, "lon": LON, "radius_m": 25.0}}
    assert views["victim"]["flags"] == ["victim position too old"]
    assert prox.do(lambda: prox.running.watch.operator_ack("C-T", prox.tag_id, "home"))
    assert not prox.do(lambda: prox.running.watch.operator_ack("C-T", prox.tag_id, "work"))
    assert [e["kind"] for e in prox.events()][-1] == "acknowledged by the operator"


def test_victim_positions_are_kept_only_for_the_retention(prox: Prox) -> None:
    store = prox.store
    # A day ahead of the clock: the centre's own prune, which runs off the loop as it starts
    # (and may still be running now), must find none of these old enough to remove.
    now = time.time() + 86_400.0
    for case, age in (("C-T", 90_000.0), ("C-T", 10.0), ("C-O", 90_000.0)):
        prox.do(lambda c=case, a=age: store.record_victim(c, now - a, now - a, LAT, LON, 5.0))
    # C-O has an alert open: its positions are the alarm's evidence and stay.
    assert prox.do(lambda: store.prune(now, frozenset({"C-O"}))) == 1
    assert [p["received_at"] for p in prox.do(lambda: store.victim_positions("C-T"))] == [
        now - 10.0]
    assert len(prox.do(lambda: store.victim_positions("C-O"))) == 1


def test_the_real_host_client_against_the_real_centre(prox: Prox, tmp_path: Path) -> None:
    # host/proximity.py and host/warn.py, unchanged, against this centre: a report, an alert,
    # its delivery through a hook program, its acknowledgement in the case record.
    import asyncio
    from msa.host.proximity import ProximityClient, ProximitySettings
    from msa.host.warn import Hook, Warner
    from msa.wire.message import Fix, FixQuality

    out = tmp_path / "hook.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(out)!r}, 'w').write(sys.stdin.read())\n")
    host_state = tmp_path / "host"
    host_state.mkdir()

    async def run() -> list[Any]:
        client = ProximityClient(ProximitySettings(
            prox.running.api_url, prox.host_token, str(prox.running.tls.ca_cert)),
            Warner([], Hook([sys.executable, str(hook)])), host_state)
        try:
            lat, lon = at(0.0)
            every = await client.report_once(Fix(lat=lat, lon=lon, accuracy_m=6.0,
                                                 time=time.time(), quality=FixQuality.GNSS,
                                                 source="test"))
            assert every == REPORT_EVERY_S
            await asyncio.to_thread(prox.tag_at, 50.0)
            return await client.poll_once(5)
        finally:
            await client.close()

    deliveries = asyncio.run(run())
    assert [(d.notice.kind, d.notice.zone, d.haptic, d.hook) for d in deliveries] == [
        ("proximity", "victim", "not connected", "ok")]
    assert json.loads(out.read_text())["kind"] == "proximity"
    delivered = [e for e in prox.events() if e["kind"] == "delivered to the victim"]
    assert delivered[0]["detail"] == {"haptic": "not connected", "hook": "ok"}


def test_the_watch_prunes_victim_positions_past_the_retention(state: State) -> None:
    from msa.centre.proxstore import ProximityStore
    from msa.centre.registry import Registry
    from msa.centre.watch import PRUNE_EVERY_S, ProximityWatch
    from msa.wire.proximity import VictimFix

    registry = Registry(state.registry)
    registry.put_case(Case("C-R", "V"))
    store = ProximityStore(registry, retention_s=3600.0)
    watch = ProximityWatch(store)
    t0 = 1_900_000_000.0
    try:
        for t in (t0, t0 + 1800.0, t0 + 3600.0 + PRUNE_EVERY_S):
            watch.on_victim("C-R", VictimFix(LAT, LON, 5.0, t), t)
        kept = [p["received_at"] for p in store.victim_positions("C-R")]
        assert kept == [t0 + 1800.0, t0 + 3600.0 + PRUNE_EVERY_S]
    finally:
        store.close()
        registry.close()


def test_an_open_alert_keeps_her_positions_and_is_flagged_until_delivered(
        state: State) -> None:
    from msa.centre.proxstore import ProximityStore
    from msa.centre.registry import Registry
    from msa.centre.tags import Tags
    from msa.centre.watch import UNDELIVERED_AFTER_S, ProximityWatch
    from msa.wire.proximity import VictimFix
    from msa.wire.tag import TagReport

    registry = Registry(state.registry)
    registry.put_case(Case("C-A", "V", suspect="S"))
    tags = Tags(registry)
    store = ProximityStore(registry, retention_s=3600.0)
    t0 = 1_900_000_000.0
    now = [t0]
    watch = ProximityWatch(store, clock=lambda: now[0])
    try:
        tag = tags.issue("C-A", 10, now=t0).tag
        watch.on_victim("C-A", VictimFix(LAT, LON, 5.0, t0), t0)
        lat, lon = at(50.0)
        watch.on_tag(tag, TagReport(lat, lon, 5.0, t0 + 1), t0 + 1)
        [warning] = watch.warnings("C-A", 0)

        def flags() -> object:
            return [v["flags"] for v in watch.views() if v["zone"] == "victim"][0]

        now[0] = t0 + 1 + UNDELIVERED_AFTER_S - 1
        assert "victim not yet warned" not in str(flags())
        now[0] = t0 + 2 + UNDELIVERED_AFTER_S
        assert flags() == ["victim not yet warned"]
        assert watch.ack("C-A", warning.id, now[0], {"haptic": "ok", "hook": "none"})
        assert flags() == []
        # A day later, the alert still open: her positions are its evidence and stay.
        later = t0 + 90_000.0
        watch.on_victim("C-A", VictimFix(LAT, LON, 5.0, later), later)
        assert len(store.victim_positions("C-A")) == 2
    finally:
        tags.close()
        store.close()
        registry.close()
