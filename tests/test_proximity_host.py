"""The victim's host in proximity warnings (host/proximity.py, host/warn.py), over TLS with its
bearer token, against the real centre (msa.centre.server.start_centre, in the test's own loop):
its reports are read and answered by the centre's code, its warnings are alerts the centre's
rules raised from a tag's OsmAnd fixes over HTTPS, its acknowledgements land in the case record
(`ProximityStore.events`). Two spies watch the real centre without changing it: the position
bodies as the centre read them, and the `after` of each long poll.

`FaultyCentre` is a fault-injecting centre, kept only for what a correct centre cannot be made
to do: answer 503, answer a malformed body, or repeat warnings the host has already seen.

Time is a ManualClock, shared by the host and the centre's rules: the reporter's pauses are
read off its sleepers and ended by jumping to them, so intervals are asserted exactly and
nothing waits in real time but the network."""
from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from geographiclib.geodesic import Geodesic

from msa.centre import victimweb
from msa.centre.geo import Circle
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.centre.tls import make_tls
from msa.host.dispatch import LocationSource
from msa.host.errors import HostError
from msa.host.link import ButtonTarget
from msa.host.proximity import NoMovingZone, ProximityClient, ProximityError, ProximitySettings
from msa.host.warn import Hook, Warner
from msa.wire import proximity as contract
from msa.wire.message import Fix, FixQuality
from msa.wire.protocol import ButtonKeys, Pattern

T = TypeVar("T")
TOKEN = "h" * 43
T0 = 1_800_000_000.0
KEYS = ButtonKeys.from_master(bytes(range(32)))
CASE = "C-V"
LAT, LON = 51.0543, 3.7174
G = Geodesic.WGS84


def run(body: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), timeout)
    return asyncio.run(main())


async def until(event: asyncio.Event, ready: Callable[[], bool], timeout: float = 10) -> None:
    """Waits for `ready()`, re-checking whenever `event` is set."""
    async with asyncio.timeout(timeout):
        while True:
            event.clear()
            if ready():
                return
            await event.wait()


def at(east_m: float) -> tuple[float, float]:
    """The point `east_m` along the geodesic heading east from (LAT, LON) (west if < 0)."""
    g = G.Direct(LAT, LON, 90.0, east_m)
    return float(g["lat2"]), float(g["lon2"])


class ManualClock:
    """Time that moves only when the test jumps it; sleepers wait for their deadline."""

    def __init__(self) -> None:
        self.now = T0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.changed = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self.sleepers.append(entry)
        self.changed.set()
        try:
            await entry[1]
        finally:
            self.sleepers.remove(entry)
            self.changed.set()

    async def sleeper_at(self, deadline: float) -> None:
        """Until someone sleeps until exactly `deadline` (seconds from T0 are compared)."""
        try:
            await until(self.changed, lambda: any(abs(d - deadline) < 1e-6 and not f.done()
                                                  for d, f in self.sleepers))
        except TimeoutError:
            raise AssertionError(f"no sleeper until T0+{deadline - T0:g}; there are "
                                 f"{[d - T0 for d, _ in self.sleepers]}") from None

    async def first_sleeper(self) -> float:
        """The earliest deadline of those still asleep."""
        def asleep() -> list[float]:
            return [d for d, fut in self.sleepers if not fut.done()]
        await until(self.changed, lambda: bool(asleep()))
        return min(asleep())

    def jump(self, to: float) -> None:
        self.now = to
        for deadline, fut in self.sleepers:
            if deadline <= to and not fut.done():
                fut.set_result(None)


class RealCentre:
    """A started centre with one case, its suspect's tag (10 s) and a host token for the case;
    `bodies`, `positions` and `polls` are what the spies saw the centre read."""

    def __init__(self, running: RunningCentre, clock: ManualClock,
                 like: RealCentre | None = None) -> None:
        self.running = running
        self.clock = clock
        self.store = running.watch.store
        self.url, self.ca_file = running.api_url, str(running.tls.ca_cert)
        if like is None:
            running.centre.registry.put_case(Case(CASE, "V. Victim", suspect="S. Suspect"))
            self.secret = running.tags.issue(CASE, 10).secret
            self.token = running.issue_host(CASE).token
        else:  # the same centre restarted: its records and credentials are on disk
            self.secret, self.token = like.secret, like.token
        self.bodies: list[Any] = []  # position reports, as the centre read them
        self.positions: list[tuple[float, contract.VictimFix | None]] = []  # (its clock, fix)
        self.polls: list[int] = []  # each long poll's `after`
        self.changed = asyncio.Event()  # a report or a poll arrived
        self._ssl = ssl.create_default_context(cafile=self.ca_file)

    def spy(self) -> Callable[[], None]:
        """Starts the spies; returns what ends them."""
        read, wait = victimweb.read_position, self.running.watch.wait_warnings

        def reading(obj: object, now: float) -> tuple[float, contract.VictimFix | None]:
            self.bodies.append(obj)
            got = read(obj, now)
            self.positions.append((now, got[1]))
            self.changed.set()
            return got

        async def waiting(case_ref: str, after: int, wait_s: float) -> list[contract.Warning]:
            self.polls.append(after)
            self.changed.set()
            return await wait(case_ref, after, wait_s)

        victimweb.read_position = reading  # type: ignore[assignment]
        self.running.watch.wait_warnings = waiting  # type: ignore[method-assign]

        def end() -> None:
            victimweb.read_position = read
        return end

    def rules(self, moving_zone: bool = True, **zones: float) -> None:
        """The case's rules (R 500 m, 2R) and fixed zones: name=east_m, circles of 25 m."""
        self.store.set_rules(CASE, 500.0, None, moving_zone=moving_zone)
        for name, east_m in zones.items():
            self.store.add_zone(CASE, name, Circle(*at(east_m), 25.0))
        self.running.watch._rules.clear()  # its 10 s cache, skipped

    async def tag_at(self, east_m: float, accuracy_m: float = 3.0) -> None:
        """One OsmAnd fix of the tag over HTTPS, taken now (the shared clock)."""
        lat, lon = at(east_m)
        query = {"id": self.secret, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
                 "timestamp": str(int(self.clock.now)), "accuracy": f"{accuracy_m:g}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.url}/tags/osmand", params=query,
                                   ssl=self._ssl) as resp:
                assert resp.status == 200, await resp.text()

    def record(self) -> list[dict[str, object]]:
        return self.store.events(CASE)

    def alerts(self) -> list[tuple[int, str, object]]:
        """(id, zone, distance) of every alert in the case record."""
        return [(int(str(e["id"])), str(e["zone"]), e["distance_m"]) for e in self.record()
                if e["kind"] == "alert"]

    def changes(self) -> list[str]:
        """The levels raised and cleared, in order."""
        return [str(e["kind"]) for e in self.record() if e["kind"] in (
            "pre-alert", "pre-alert cleared", "alert", "alert cleared")]

    def delivered(self) -> dict[int, list[Any]]:
        """Each alert's deliveries to the victim, as the host acknowledged them."""
        out: dict[int, list[Any]] = {}
        for e in self.record():
            if e["kind"] == "delivered to the victim":
                out.setdefault(int(str(e["ref"])), []).append(e["detail"])
        return out


@asynccontextmanager
async def centre_at(root: Path, clock: ManualClock, port: int = 0,
                    like: RealCentre | None = None) -> AsyncIterator[RealCentre]:
    running = await start_centre(CentreConfig(state_dir=root, api_port=port,
                                              clock=clock.time))
    end = None
    try:
        centre = RealCentre(running, clock, like)
        end = centre.spy()
        yield centre
    finally:
        if end is not None:
            end()
        await running.stop()


class FaultyCentre:
    """A fault-injecting centre: the three endpoints for the victim's host as msa.wire.proximity
    reads and builds them, answering as a correct centre never would when told to (see the
    module text)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.url = ""
        self.ca_file = ""
        self.token = TOKEN
        self.report_every_s = contract.REPORT_EVERY_S  # 0: a malformed answer
        self.fail_status: int | None = None  # answer position reports with this
        self.repeat_old = False  # answers every warning, whatever `after`
        self.warnings: list[contract.Warning] = []
        self.positions: list[tuple[float, contract.VictimFix | None]] = []
        self.polls: list[int] = []  # each poll's `after`
        self.acks: dict[int, list[dict[str, str]]] = {}
        self.changed = asyncio.Event()  # something arrived
        self.closing = False
        self._new = asyncio.Event()

    def add(self, distance_m: int = 340, zone: str = "victim") -> int:
        ident = len(self.warnings) + 1
        self.warnings.append(contract.Warning(ident, "proximity", "alert", zone, distance_m,
                                              self.clock.time()))
        self._new.set()
        return ident

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized(text="bad token")
        try:
            if self.fail_status is not None and request.path == contract.POSITION_PATH:
                return web.Response(status=self.fail_status, text="not now")
            return await handler(request)
        finally:
            self.changed.set()

    async def _position(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.positions.append(contract.read_position(body, self.clock.time()))
        except contract.ProximityError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"report_every_s": self.report_every_s})

    async def _warnings(self, request: web.Request) -> web.Response:
        after, wait_s = int(request.query["after"]), int(request.query["wait_s"])
        assert 0 <= wait_s <= contract.MAX_WAIT_S
        self.polls.append(after)
        self.changed.set()
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            found = [w for w in self.warnings if self.repeat_old or w.id > after]
            left = deadline - asyncio.get_running_loop().time()
            if found or left <= 0 or self.closing:
                return web.json_response(contract.warnings_body(found, self.report_every_s))
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def _ack(self, request: web.Request) -> web.Response:
        ident = int(request.match_info["id"])
        _at, delivery = contract.read_ack(await request.json(), self.clock.time())
        if not any(w.id == ident for w in self.warnings):
            raise web.HTTPNotFound(text="no such warning")
        self.acks.setdefault(ident, []).append(delivery)
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post(contract.POSITION_PATH, self._position)
        app.router.add_get(contract.WARNINGS_PATH, self._warnings)
        app.router.add_post(contract.ACK_PATH, self._ack)
        return app


@asynccontextmanager
async def faulty(tmp_path: Path, clock: ManualClock) -> AsyncIterator[FaultyCentre]:
    centre = FaultyCentre(clock)
    tls = make_tls(tmp_path / "tls")
    runner = web.AppRunner(centre.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
    await site.start()
    port = runner.addresses[0][1]
    centre.url, centre.ca_file = f"https://127.0.0.1:{port}/v1", str(tls.ca_cert)
    try:
        yield centre
    finally:
        centre.closing = True  # long polls end now, not at their wait_s
        centre._new.set()
        await runner.cleanup()


class FakeLink:
    """ButtonLink-shaped (target, connected, warn): the patterns it was asked to play. The
    simulated button's own WARN path is the firmware's tests' and tests/sim's."""

    def __init__(self, button_id: int = 0x0A0B0C0D, connected: bool = True) -> None:
        self.target = ButtonTarget(button_id, "C0:00:00:00:00:01", KEYS)
        self.connected = asyncio.Event()
        if connected:
            self.connected.set()
        self.patterns: list[Pattern] = []
        self.errors: list[Exception] = []  # raised by the next calls, in order
        self.entered = asyncio.Event()
        self.hold: asyncio.Event | None = None  # warn() waits for it

    async def warn(self, pattern: Pattern) -> None:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.errors:
            raise self.errors.pop(0)
        self.patterns.append(pattern)


class StillSource:
    name = "test"

    def __init__(self, fix: Fix | None) -> None:
        self.fix = fix

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def best(self) -> Fix | None:
        return self.fix


class WalkingSource(StillSource):
    """The victim `east_m` along the test's line, fixed (3 m) whenever asked."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(None)
        self.clock = clock
        self.east_m = 0.0

    def best(self) -> Fix | None:
        return Fix(*at(self.east_m), 3.0, self.clock.time(), FixQuality.GNSS, "test")


def victim_fix(east_m: float = 0.0, accuracy_m: float = 8.0) -> Fix:
    return Fix(*at(east_m), accuracy_m, T0, FixQuality.GNSS, "test")


def client(centre: RealCentre | FaultyCentre, state: Path, links: list[FakeLink] | None = None,
           hook: Hook | None = None, location: LocationSource | None = None,
           **kw: Any) -> ProximityClient:
    state.mkdir(exist_ok=True)
    settings = ProximitySettings(base_url=centre.url, token=kw.pop("token", centre.token),
                                 ca_file=kw.pop("ca_file", centre.ca_file), **kw)
    warner = Warner(links if links is not None else [FakeLink()], hook)
    return ProximityClient(settings, warner, state, location=location or StillSource(None),
                           clock=centre.clock)


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    """A real small Python program as a hook; its argv."""
    p = tmp_path / name
    p.write_text("import json, os, sys, time\n" + body)
    return [sys.executable, str(p)]


async def stopped(c: ProximityClient, task: asyncio.Task[None]) -> None:
    await c.stop()
    await task
    await c.close()


# --- the victim's position ---------------------------------------------------------------


def test_each_report_says_the_interval_the_centre_asked_for(tmp_path: Path) -> None:
    async def body() -> None:
        async with centre_at(tmp_path / "centre", ManualClock()) as centre:
            c = client(centre, tmp_path / "state")
            fix = Fix(LAT, LON, 8.0, T0 - 2, FixQuality.GNSS, "nmea", altitude_m=12.0)
            try:
                assert await c.report_once(fix) == 30 and c.report_every_s == 30
                await centre.tag_at(950.0)  # between R and 2R: a pre-alert opens
                assert await c.report_once(None) == 10 and c.report_every_s == 10
            finally:
                await c.close()
            # The fix as it was taken (with its own time), and nothing else of it; then null.
            assert centre.bodies == [
                {"time": T0, "fix": {"lat": LAT, "lon": LON, "accuracy_m": 8.0,
                                     "time": T0 - 2}},
                {"time": T0, "fix": None}]
            assert centre.store.victim_positions(CASE) == [
                {"received_at": T0, "fix_time": T0 - 2, "lat": LAT, "lon": LON,
                 "accuracy_m": 8.0}]
            assert centre.changes() == ["pre-alert"]
    run(body)


def test_the_reporter_waits_as_long_as_the_last_answer_says(tmp_path: Path) -> None:
    """30 s, then 10 s while a pre-alert is open, 30 s once it cleared; and a poll's answer of
    10 s (an alert) shortens a 30 s wait already begun."""
    async def body() -> None:
        clock = ManualClock()
        async with centre_at(tmp_path / "centre", clock) as centre:
            victim = WalkingSource(clock)
            c = client(centre, tmp_path / "state", location=victim, wait_s=25)
            task = asyncio.create_task(c.run())
            try:
                await until(centre.changed, lambda: len(centre.positions) == 1)
                await clock.sleeper_at(T0 + 30)
                await centre.tag_at(960.0)  # inside 2R of her: a pre-alert
                victim.east_m = -60.0
                clock.jump(T0 + 30)
                await until(centre.changed, lambda: len(centre.positions) == 2)
                await clock.sleeper_at(T0 + 40)
                victim.east_m = -160.0  # she walks on: 1,120 m, the pre-alert clears
                clock.jump(T0 + 40)
                await until(centre.changed, lambda: len(centre.positions) == 3)
                await clock.sleeper_at(T0 + 70)
                await centre.tag_at(250.0)  # 410 m from her: an alert wakes the poll
                await clock.sleeper_at(T0 + 50)
                clock.jump(await clock.first_sleeper())
                await until(centre.changed, lambda: len(centre.positions) == 4)
            finally:
                await stopped(c, task)
            assert [t - T0 for t, _ in centre.positions] == [0, 30, 40, 50]
            assert [fix.time - T0 if fix else None for _, fix in centre.positions] == [
                0, 30, 40, 50]  # the source's fix, taken when asked
            assert centre.changes() == ["pre-alert", "pre-alert cleared", "alert"]
    run(body)


def test_no_moving_zone_stops_the_reports_and_asks_again_hourly(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with centre_at(tmp_path / "centre", clock) as centre:
            centre.rules(moving_zone=False, home=0.0)
            c = client(centre, tmp_path / "state", location=WalkingSource(clock))
            with pytest.raises(NoMovingZone) as err:
                await c.report_once(None)
            assert err.value.status == 409 and c.no_moving_zone
            task = asyncio.create_task(c.run())
            try:
                await until(centre.changed, lambda: len(centre.positions) == 2)
                assert await clock.first_sleeper() == T0 + 3600  # nothing sooner
                centre.rules(moving_zone=True)
                clock.jump(T0 + 3600)
                await until(centre.changed, lambda: len(centre.positions) == 3)
                await clock.sleeper_at(T0 + 3600 + 30)
                assert not c.no_moving_zone
            finally:
                await stopped(c, task)
            # Only the report the centre took was kept.
            assert [p["received_at"] for p in centre.store.victim_positions(CASE)] == [
                T0 + 3600]
    run(body)


def test_failed_reports_back_off_and_the_service_carries_on(tmp_path: Path) -> None:
    async def body() -> list[float]:
        clock = ManualClock()
        async with faulty(tmp_path, clock) as centre:
            centre.fail_status = 503
            c = client(centre, tmp_path / "state", report_position=True)
            task = asyncio.create_task(c.run())
            pauses = []
            try:
                for _ in range(5):
                    started = clock.now
                    deadline = await clock.first_sleeper()
                    pauses.append(deadline - started)
                    clock.jump(deadline)
                centre.fail_status = None
                await until(centre.changed, lambda: len(centre.positions) >= 1)
                await clock.sleeper_at(clock.now + 30)  # back to the centre's interval
            finally:
                await stopped(c, task)
            assert not task.exception()
            return pauses
    pauses = run(body)
    for n, pause in enumerate(pauses):
        assert 0.8 * 2 ** n - 1e-9 <= pause <= 2 ** n + 1e-9, pauses


@pytest.mark.parametrize("case, retryable, words", [
    ("wrong token", False, "401"),
    ("untrusted CA", False, "TLS certificate not trusted"),
    ("centre down", True, "Cannot connect"),
])
def test_report_errors_are_the_hosts_own_and_say_what_went_wrong(
        tmp_path: Path, case: str, retryable: bool, words: str) -> None:
    async def body() -> ProximityError:
        kw: dict[str, Any] = {}
        if case == "wrong token":
            kw["token"] = "guess"
        elif case == "untrusted CA":
            kw["ca_file"] = str(make_tls(tmp_path / "other").ca_cert)
        async with centre_at(tmp_path / "centre", ManualClock()) as centre:
            c = client(centre, tmp_path / "state", **kw)
            try:
                if case != "centre down":
                    with pytest.raises(ProximityError) as err:
                        await c.report_once(None)
                    assert centre.bodies == []  # refused before anything was read
                    return err.value
            except BaseException:
                await c.close()
                raise
        try:  # the centre is gone now
            with pytest.raises(ProximityError) as err:
                await c.report_once(None)
            return err.value
        finally:
            await c.close()
    err = run(body)
    assert isinstance(err, HostError) and err.retryable is retryable and words in str(err)


@pytest.mark.parametrize("case, words", [("bad answer", "report_every_s"),
                                         ("server error", "503")])
def test_a_faulty_centres_answers_are_retried(tmp_path: Path, case: str, words: str) -> None:
    async def body() -> ProximityError:
        async with faulty(tmp_path, ManualClock()) as centre:
            centre.report_every_s = 0 if case == "bad answer" else centre.report_every_s
            centre.fail_status = 503 if case == "server error" else None
            c = client(centre, tmp_path / "state")
            try:
                with pytest.raises(ProximityError) as err:
                    await c.report_once(None)
                return err.value
            finally:
                await c.close()
    err = run(body)
    assert isinstance(err, HostError) and err.retryable and words in str(err)


# --- warnings ----------------------------------------------------------------------------


def test_each_warning_is_delivered_once_across_a_restart(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with centre_at(tmp_path / "centre", clock) as centre:
            centre.rules(home=100.0, work=1800.0)
            link = FakeLink()
            c = client(centre, tmp_path / "state", [link])
            await c.report_once(victim_fix(0.0))
            await centre.tag_at(200.0)  # near her and her home: two alerts
            got = await c.poll_once(0)
            first = centre.alerts()
            assert [(i, z) for i, z, _ in first] == [(d.notice.id, d.notice.zone) for d in got]
            assert [z for _, z, _ in first] == ["victim", "home"]
            assert await c.poll_once(0) == []  # nothing new: nothing again
            await c.close()
            clock.jump(T0 + 60)
            await centre.tag_at(1400.0)  # away from both, 370 m from her work: a third
            c = client(centre, tmp_path / "state", [link])  # the host restarted
            try:
                got = await c.poll_once(0)
                assert await c.poll_once(0) == []
            finally:
                await c.close()
            ids = [i for i, _, _ in centre.alerts()]
            assert len(ids) == 3 and [d.notice.id for d in got] == ids[2:]
            assert centre.polls == [0, ids[1], ids[1], ids[2]]  # the last id seen survived
            assert link.patterns == [Pattern.PROXIMITY] * 3
            assert centre.delivered() == {i: [{"haptic": "ok", "hook": "none"}] for i in ids}
            n = got[0].notice
            assert (n.kind, n.level, n.zone, n.distance_m, n.at) == (
                "proximity", "alert", "work", 370, T0 + 60)
    run(body)


def test_a_centre_repeating_old_warnings_is_not_believed(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with faulty(tmp_path, clock) as centre:
            centre.repeat_old = True
            centre.add(340)
            centre.add(120, "home")
            link = FakeLink()
            c = client(centre, tmp_path / "state", [link])
            got = await c.poll_once(0)
            assert [d.notice.id for d in got] == [1, 2]
            assert await c.poll_once(0) == []  # the same again: nothing again
            await c.close()
            centre.add(90)
            c = client(centre, tmp_path / "state", [link])  # the host restarted
            try:
                got = await c.poll_once(0)
                assert [d.notice.id for d in got] == [3] and await c.poll_once(0) == []
            finally:
                await c.close()
            assert centre.polls == [0, 2, 2, 3]
            assert link.patterns == [Pattern.PROXIMITY] * 3
            assert centre.acks == {i: [{"haptic": "ok", "hook": "none"}] for i in (1, 2, 3)}
    run(body)


def test_a_warning_cut_off_mid_delivery_is_delivered_after_the_restart(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with centre_at(tmp_path / "centre", clock) as centre:
            centre.rules(moving_zone=False, home=0.0)
            await centre.tag_at(300.0)
            [(ident, _, _)] = centre.alerts()
            stuck = FakeLink()
            stuck.hold = asyncio.Event()  # the haptic never ends: the host dies meanwhile
            c = client(centre, tmp_path / "state", [stuck])
            poll = asyncio.create_task(c.poll_once(0))
            await asyncio.wait_for(stuck.entered.wait(), 10)
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            await c.close()
            assert centre.delivered() == {}
            link = FakeLink()
            c = client(centre, tmp_path / "state", [link])
            try:
                got = await c.poll_once(0)
            finally:
                await c.close()
            assert [d.notice.id for d in got] == [ident] and link.patterns == [Pattern.PROXIMITY]
            assert centre.polls == [0, ident]
            assert centre.delivered() == {ident: [{"haptic": "ok", "hook": "none"}]}
    run(body)


def test_an_unacknowledged_delivery_is_acknowledged_later_not_delivered_again(
        tmp_path: Path) -> None:
    """The centre goes down between the warning and its acknowledgement, and comes back."""
    async def body() -> None:
        clock = ManualClock()
        link = FakeLink()
        link.hold = asyncio.Event()
        async with centre_at(tmp_path / "centre", clock) as centre:
            centre.rules(moving_zone=False, home=0.0)
            await centre.tag_at(300.0)
            [(ident, _, _)] = centre.alerts()
            c = client(centre, tmp_path / "state", [link])
            poll = asyncio.create_task(c.poll_once(0))
            await asyncio.wait_for(link.entered.wait(), 10)
            port = centre.running.api_port
        link.hold.set()  # played once the centre had stopped: the ack cannot go
        try:
            assert [d.haptic for d in await poll] == ["ok"]
            assert [d.notice.id for d in c.store.unacknowledged()] == [ident]
        finally:
            await c.close()
        async with centre_at(tmp_path / "centre", clock, port, like=centre) as again:
            assert again.delivered() == {}
            c = client(again, tmp_path / "state", [link])
            try:
                assert await c.poll_once(0) == []
            finally:
                await c.close()
            assert link.patterns == [Pattern.PROXIMITY]  # not played again
            assert again.delivered() == {ident: [{"haptic": "ok", "hook": "none"}]}
    run(body)


def test_the_hook_reads_the_warning_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    argv = script(tmp_path, "hook.py", "open(sys.argv[1], 'w').write(sys.stdin.read())\n")

    async def body() -> int:
        async with centre_at(tmp_path / "centre", ManualClock()) as centre:
            c = client(centre, tmp_path / "state", hook=Hook([*argv, str(out)]))
            try:
                await c.report_once(victim_fix(0.0))
                await centre.tag_at(340.0)
                got = await c.poll_once(0)
            finally:
                await c.close()
            [(ident, _, _)] = centre.alerts()
            assert [(d.haptic, d.hook) for d in got] == [("ok", "ok")]
            assert centre.delivered() == {ident: [{"haptic": "ok", "hook": "ok"}]}
            return ident
    ident = run(body)
    assert json.loads(out.read_text()) == {"id": ident, "kind": "proximity", "level": "alert",
                                           "zone": "victim", "distance_m": 340, "at": T0,
                                           "button": None}


def test_a_failing_or_hanging_hook_is_reported_and_holds_up_nothing(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    argv = script(tmp_path, "hook.py", f"""
w = json.loads(sys.stdin.read())
if w["zone"] == "home":
    sys.exit(3)
if w["zone"] == "school":  # hangs, and so does a program it started
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open({str(pids)!r}, "w").write(str(child.pid))
    time.sleep(600)
""")

    async def body() -> None:
        async with centre_at(tmp_path / "centre", ManualClock()) as centre:
            centre.rules(moving_zone=False, home=0.0, school=100.0, work=200.0)
            await centre.tag_at(100.0)  # in or near all three: three alerts
            c = client(centre, tmp_path / "state", hook=Hook(argv, timeout_s=1.0))
            try:
                got = await c.poll_once(0)
            finally:
                await c.close()
            assert [z for _, z, _ in centre.alerts()] == ["home", "school", "work"]
            assert [d.hook for d in got] == ["failed: exit status 3",
                                             "failed: no exit within 1 s", "ok"]
            assert [[a["hook"] for a in acks] for acks in centre.delivered().values()] == [
                ["failed: exit status 3"], ["failed: no exit within 1 s"], ["ok"]]
    run(body)
    child = int(pids.read_text())
    assert _gone(child), "the hook's own child outlived it"


def _gone(pid: int) -> bool:
    """Dead or a zombie (killed, not yet reaped by its new parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_hook_that_cannot_start_or_reads_nothing(tmp_path: Path) -> None:
    quiet = script(tmp_path, "quiet.py", "sys.exit(0)\n")  # never reads stdin

    async def body() -> list[str]:
        from msa.host.warn import Notice
        n = Notice("proximity", T0, id=1, level="alert", zone="victim", distance_m=10)
        return [await Hook([str(tmp_path / "missing")]).run(n), await Hook(quiet).run(n),
                await Hook().run(n)]
    missing, quiet_result, none = run(body)
    assert missing.startswith("failed: cannot start") and "No such file" in missing
    assert (quiet_result, none) == ("ok", "none")


def test_a_stopping_centre_answers_the_parked_long_poll_at_once(tmp_path: Path) -> None:
    """A centre going down ends the polls it holds (empty) rather than holding its own
    shutdown for up to their 25 s; the host just polls again."""
    async def body() -> tuple[list[Any], float]:
        async with centre_at(tmp_path / "centre", ManualClock()) as centre:
            c = client(centre, tmp_path / "state")
            poll = asyncio.create_task(c.poll_once(contract.MAX_WAIT_S))
            await until(centre.changed, lambda: len(centre.polls) == 1)
            started = asyncio.get_running_loop().time()
        try:
            return await poll, asyncio.get_running_loop().time() - started
        finally:
            await c.close()
    got, took = run(body)
    assert got == [] and took < 5.0, took  # milliseconds, against 25 s without it
