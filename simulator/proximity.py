"""Replays proximity scenarios (simulator/scenario.py) through the real path: a started centre
(its rules on a virtual clock), each tag's reports over HTTPS in the OsmAnd protocol, each
victim's host (host/proximity.py) reporting her position as often as the centre asks and
fetching her warnings, delivered through host/warn.py to a button — the simulated one, the
unmodified firmware in MicroPython over Bumble, whose motor is read back. What happened is
compared with what the file expects by simulator/verdict.py.

Time: the centre's rules and the host's reports run on a virtual clock that jumps from report
to report, so a 24 h file replays in seconds. The wall-clock time from a tag's request to the
victim's warning (HTTPS, rules, host, button) is measured for every alert and added to its
virtual latency.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import aiohttp

from msa.centre.geo import Circle, Polygon, Shape
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.host.proximity import NoMovingZone, ProximityClient, ProximitySettings
from msa.host.warn import Delivery, Hook, Warner, WarnLink
from msa.wire.message import Fix, FixQuality

from .scenario import Scenario, TagSample
from .scenario_format import Zone

T0 = 1_900_000_000.0  # the replay's virtual start (2030): well inside every time check
TAG_WARNINGS_EVERY_S = 60.0  # how often the operator's tag warnings are sampled


class VirtualClock:
    """The centre's and the hosts' clock during a replay: set by the driver."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # the driver moves time; a host never waits on it here


@dataclass
class Alert:
    """An alert as the centre raised it, and its delivery to the victim."""

    case: str
    tag: str
    zone: str
    at_s: float  # virtual, from the scenario's start
    warning_id: int
    pipeline_s: float | None = None  # wall clock from the tag's request to the delivery
    haptic: str | None = None
    hook: str | None = None


@dataclass
class Replay:
    """Everything one scenario's replay saw."""

    scenario: Scenario
    alerts: list[Alert] = field(default_factory=list)
    prealerts: dict[str, int] = field(default_factory=dict)
    flags: dict[str, set[str]] = field(default_factory=dict)  # per case
    warnings: dict[str, set[str]] = field(default_factory=dict)  # tag supervision, per case
    tag_posts: int = 0
    victim_posts: int = 0
    refused: list[str] = field(default_factory=list)  # tag reports the centre would not take
    wall_s: float = 0.0
    events: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # case records


def zone_shape(scenario: Scenario, zone: Zone) -> Shape:
    """A scenario's fixed zone as the centre's rules take it (latitudes and longitudes)."""
    plane = scenario.plane
    if zone.circle is not None:
        east, north, radius = zone.circle
        return Circle(*plane.latlon(east, north), radius)
    assert zone.polygon is not None
    return Polygon(tuple(plane.latlon(e, n) for e, n in zone.polygon))


class _Case:
    """One victim: her host's proximity client and its warner."""

    def __init__(self, case: str, client: ProximityClient, moving: bool) -> None:
        self.case = case
        self.client = client
        self.moving = moving
        self.next_report_s = 0.0
        self.last_alert = 0


class Driver:
    """One scenario against one started centre (a fresh state folder each)."""

    def __init__(self, scenario: Scenario, root: Path, links: list[WarnLink],
                 hook: list[str] | None = None) -> None:
        self.scenario = scenario
        self.root = root
        self.links = links
        self.hook = hook
        self.clock = VirtualClock()
        self.replay = Replay(scenario)
        self.running: RunningCentre | None = None
        self.cases: dict[str, _Case] = {}
        self.secrets: dict[str, str] = {}
        self.names: dict[str, str] = {}  # tag id -> the scenario's name for it
        self._session: aiohttp.ClientSession | None = None
        self._deliveries: dict[int, Delivery] = {}

    async def _setup(self) -> None:
        self.running = running = await start_centre(CentreConfig(
            state_dir=self.root / "centre", clock=self.clock))
        registry, store = running.centre.registry, running.watch.store
        for v in self.scenario.victims:
            ref = self._ref(v.case)
            registry.put_case(Case(ref, f"victim {v.case}", suspect="the tagged offender"))
            store.set_rules(ref, v.alert_radius_m, v.prealert_radius_m, v.moving_zone)
            for zone in v.zones:
                store.add_zone(ref, zone.name, zone_shape(self.scenario, zone))
        for t in self.scenario.tags:
            issued = running.tags.issue(self._ref(t.cases[0]), t.interval_s, now=self.clock())
            self.secrets[t.name] = issued.secret
            self.names[issued.tag.tag_id] = t.name
            for other in t.cases[1:]:
                store.link(issued.tag.tag_id, self._ref(other))
        for v in self.scenario.victims:
            token = running.issue_host(self._ref(v.case)).token
            warner = Warner(self.links, Hook(self.hook) if self.hook else None,
                            clock=self.clock, on_delivery=self._delivered)
            settings = ProximitySettings(running.api_url, token, str(running.tls.ca_cert),
                                         report_position=v.moving_zone)
            state = self.root / f"host-{v.case}"
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            client = ProximityClient(settings, warner, state, clock=self.clock)
            self.cases[v.case] = _Case(v.case, client, v.moving_zone)
        tls = ssl.create_default_context(cafile=str(running.tls.ca_cert))
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))

    def _ref(self, case: str) -> str:
        return f"SIM-{case}"

    def _delivered(self, delivery: Delivery) -> None:
        if delivery.notice.id is not None:
            self._deliveries[delivery.notice.id] = delivery

    async def _post_tag(self, s: TagSample) -> None:
        assert self.running is not None and self._session is not None
        params: dict[str, str] = {"id": self.secrets[s.tag], "lat": f"{s.lat:.7f}",
                                  "lon": f"{s.lon:.7f}", "accuracy": f"{s.accuracy_m:.1f}",
                                  "timestamp": str(int(T0 + s.t_s))}
        if s.battery_pct is not None:
            params["batt"] = f"{s.battery_pct:.1f}"
        if s.tamper:
            params["alarm"] = "tampering"
        url = f"https://127.0.0.1:{self.running.api_port}/v1/tags/osmand"
        async with self._session.get(url, params=params) as resp:
            await resp.read()
            if resp.status != 200:
                self.replay.refused.append(f"{s.tag} at {s.t_s:g} s: HTTP {resp.status}")
        self.replay.tag_posts += 1

    async def _report(self, c: _Case, t_s: float) -> None:
        got = self.scenario.victim_fix(c.case, t_s)
        fix = None if got is None else Fix(lat=got[0], lon=got[1], accuracy_m=got[2],
                                           time=self.clock(), quality=FixQuality.GNSS,
                                           source="replay")
        try:
            every = await c.client.report_once(fix)
        except NoMovingZone:
            c.moving = False
            return
        self.replay.victim_posts += 1
        c.next_report_s = t_s + every

    async def _poll(self, started: float, t_s: float) -> None:
        """Each host whose case has a new alert fetches it (as its long poll would be woken)
        and delivers it; the wall time since `started` is the alert's pipeline."""
        assert self.running is not None
        store = self.running.watch.store
        for c in self.cases.values():
            new = store.alerts_after(self._ref(c.case), c.last_alert)
            if not new:
                continue
            c.last_alert = new[-1][0]
            await c.client.poll_once(0)
            took = time.perf_counter() - started
            for ident, tag_id, zone, _at, _d in new:
                delivery = self._deliveries.get(ident)
                self.replay.alerts.append(Alert(
                    c.case, self.names.get(tag_id, tag_id), zone, t_s, ident, took,
                    None if delivery is None else delivery.haptic,
                    None if delivery is None else delivery.hook))

    def _sample_operator(self) -> None:
        assert self.running is not None
        for w in self.running.tags.warnings(self.clock()):
            case = str(w["case_ref"]).removeprefix("SIM-")
            self.replay.warnings.setdefault(case, set()).add(str(w["warning"]))
            for v in self.scenario.victims:  # a tag's warnings concern every linked case
                if v.case != case and any(v.case in t.cases and case in t.cases
                                          for t in self.scenario.tags):
                    self.replay.warnings.setdefault(v.case, set()).add(str(w["warning"]))

    def _collect(self) -> None:
        assert self.running is not None
        store = self.running.watch.store
        for v in self.scenario.victims:
            events = store.events(self._ref(v.case))
            self.replay.events[v.case] = events
            self.replay.prealerts[v.case] = sum(1 for e in events if e["kind"] == "pre-alert")
            self.replay.flags[v.case] = {str(e["kind"]) for e in events if e["kind"] not in (
                "pre-alert", "alert", "pre-alert cleared", "alert cleared",
                "delivered to the victim", "acknowledged by the operator")}

    async def run(self) -> Replay:
        started = time.perf_counter()
        await self._setup()
        try:
            await self._loop()
            self._collect()
        finally:
            await self._close()
        self.replay.wall_s = time.perf_counter() - started
        return self.replay

    async def _loop(self) -> None:
        samples = [s for s in self.scenario.timeline() if isinstance(s, TagSample)]
        i, next_sample_s = 0, 0.0
        end = self.scenario.duration_s
        while True:
            due = [c for c in self.cases.values() if c.moving]
            t_victim = min((c.next_report_s for c in due), default=float("inf"))
            t_tag = samples[i].sent_s if i < len(samples) else float("inf")
            t_s = min(t_victim, t_tag)
            if t_s >= end:
                break
            while next_sample_s <= t_s:  # the operator's page, read now and then
                self.clock.now = T0 + next_sample_s
                self._sample_operator()
                next_sample_s += TAG_WARNINGS_EVERY_S
            self.clock.now = T0 + t_s
            wall = time.perf_counter()
            if t_victim <= t_tag:
                for c in due:
                    if c.next_report_s <= t_s:
                        await self._report(c, t_s)
            else:
                await self._post_tag(samples[i])
                i += 1
            await self._poll(wall, t_s)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for c in self.cases.values():
            await c.client.close()
        if self.running is not None:
            await self.running.stop()


async def replay(scenario: Scenario, root: Path, links: list[WarnLink] | None = None,
                 hook: list[str] | None = None,
                 progress: Callable[[Replay], None] | None = None) -> Replay:
    """Replays one scenario in `root` (a fresh folder); `links`: the buttons that vibrate."""
    result = await Driver(scenario, root, links or [], hook).run()
    if progress is not None:
        progress(result)
    return result
