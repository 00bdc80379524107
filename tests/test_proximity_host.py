"""The victim's host in proximity warnings (host/proximity.py, host/warn.py), over TLS with its
bearer token, against `ContractCentre`: the centre's three endpoints for the host exactly as
msa.wire.proximity reads and builds them. It is a test double, standing in until a test can
raise a warning in the real centre through a tag; `serving()` is the one place to swap it.

Time is a ManualClock: the reporter's pauses are read off its sleepers and ended by jumping to
them, so intervals are asserted exactly and nothing waits in real time but the network."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from msa.centre.tls import make_tls
from msa.host.errors import HostError, LinkError
from msa.host.link import ButtonTarget
from msa.host.proximity import NoMovingZone, ProximityClient, ProximityError, ProximitySettings
from msa.host.warn import Delivery, Hook, Warner
from msa.wire import proximity as contract
from msa.wire.message import Fix, FixQuality
from msa.wire.protocol import ButtonKeys, Pattern

T = TypeVar("T")
TOKEN = "h" * 43
T0 = 1_800_000_000.0
KEYS = ButtonKeys.from_master(bytes(range(32)))
HERE = Path(__file__).parent


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


class ContractCentre:
    """The centre's endpoints for the victim's host (a test double, see the module text)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.url = ""
        self.ca_file = ""
        self.report_every_s = contract.REPORT_EVERY_S
        self.moving_zone = True
        self.fail_status: int | None = None  # answer position reports with this
        self.ack_status: int | None = None  # answer acknowledgements with this
        self.repeat_old = False  # a faulty centre: answers every warning, whatever `after`
        self.warnings: list[contract.Warning] = []
        self.bodies: list[Any] = []  # position reports as sent
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
        self.bodies.append(body)
        try:
            self.positions.append(contract.read_position(body, self.clock.time()))
        except contract.ProximityError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if not self.moving_zone:
            raise web.HTTPConflict(text="no moving zone")
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
        if self.ack_status is not None:
            return web.Response(status=self.ack_status, text="not now")
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
async def serving(tmp_path: Path, clock: ManualClock) -> AsyncIterator[ContractCentre]:
    centre = ContractCentre(clock)
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
    simulated button's own WARN path is the firmware's tests' (tests/firmware)."""

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


def client(centre: ContractCentre, state: Path, links: list[FakeLink] | None = None,
           hook: Hook | None = None, fix: Fix | None = None, **kw: Any) -> ProximityClient:
    state.mkdir(exist_ok=True)
    settings = ProximitySettings(base_url=centre.url, token=kw.pop("token", TOKEN),
                                 ca_file=kw.pop("ca_file", centre.ca_file), **kw)
    warner = Warner(links if links is not None else [FakeLink()], hook)
    return ProximityClient(settings, warner, state, location=StillSource(fix),
                           clock=centre.clock)


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    """A real small Python program as a hook; its argv."""
    p = tmp_path / name
    p.write_text("import json, os, sys, time\n" + body)
    return [sys.executable, str(p)]


# --- the victim's position ---------------------------------------------------------------


def test_each_report_says_the_interval_the_centre_asked_for(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            c = client(centre, tmp_path / "state")
            fix = Fix(51.0543, 3.7174, 8.0, T0 - 2, FixQuality.GNSS, "nmea", altitude_m=12.0)
            try:
                assert await c.report_once(fix) == 30 and c.report_every_s == 30
                centre.report_every_s = contract.REPORT_FAST_S  # a pre-alert opened
                assert await c.report_once(None) == 10 and c.report_every_s == 10
            finally:
                await c.close()
            # The fix as it was taken (with its own time), and nothing else of it; then null.
            assert centre.bodies == [
                {"time": T0, "fix": {"lat": 51.0543, "lon": 3.7174, "accuracy_m": 8.0,
                                     "time": T0 - 2}},
                {"time": T0, "fix": None}]
    run(body)


def test_the_reporter_waits_as_long_as_the_last_answer_says(tmp_path: Path) -> None:
    """30 s, then 10 s while the centre says so; and a poll's answer of 10 s shortens a
    30 s wait already begun (the pre-alert opened between two reports)."""
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            c = client(centre, tmp_path / "state", wait_s=25)
            task = asyncio.create_task(c.run())
            try:
                await until(centre.changed, lambda: len(centre.positions) == 1)
                await clock.sleeper_at(T0 + 30)
                centre.report_every_s = 10
                clock.jump(T0 + 30)
                await until(centre.changed, lambda: len(centre.positions) == 2)
                await clock.sleeper_at(T0 + 40)
                centre.report_every_s = 30
                clock.jump(T0 + 40)
                await until(centre.changed, lambda: len(centre.positions) == 3)
                await clock.sleeper_at(T0 + 70)
                centre.report_every_s = 10
                centre.add()  # the poll's answer carries 10
                await clock.sleeper_at(T0 + 50)
                clock.jump(await clock.first_sleeper())
                await until(centre.changed, lambda: len(centre.positions) == 4)
            finally:
                await c.stop()
                await task
                await c.close()
            assert [t - T0 for t, _ in centre.positions] == [0, 30, 40, 50]
            assert all(fix is None for _, fix in centre.positions)  # the source had none
    run(body)


def test_no_moving_zone_stops_the_reports_and_asks_again_hourly(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            centre.moving_zone = False
            c = client(centre, tmp_path / "state")
            with pytest.raises(NoMovingZone) as err:
                await c.report_once(None)
            assert err.value.status == 409 and c.no_moving_zone
            task = asyncio.create_task(c.run())
            try:
                await until(centre.changed, lambda: len(centre.positions) == 2)
                assert await clock.first_sleeper() == T0 + 3600  # nothing sooner
                centre.moving_zone = True
                clock.jump(T0 + 3600)
                await until(centre.changed, lambda: len(centre.positions) == 3)
                await clock.sleeper_at(T0 + 3600 + 30)
                assert not c.no_moving_zone
            finally:
                await c.stop()
                await task
                await c.close()
    run(body)


def test_failed_reports_back_off_and_the_service_carries_on(tmp_path: Path) -> None:
    async def body() -> list[float]:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
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
                await c.stop()
                await task
                await c.close()
            assert not task.exception()
            return pauses
    pauses = run(body)
    for n, pause in enumerate(pauses):
        assert 0.8 * 2 ** n - 1e-9 <= pause <= 2 ** n + 1e-9, pauses


@pytest.mark.parametrize("case, retryable, words", [
    ("wrong token", False, "401"),
    ("untrusted CA", False, "TLS certificate not trusted"),
    ("centre down", True, "Cannot connect"),
    ("bad answer", True, "report_every_s"),
    ("server error", True, "503"),
])
def test_report_errors_are_the_hosts_own_and_say_what_went_wrong(
        tmp_path: Path, case: str, retryable: bool, words: str) -> None:
    async def body() -> ProximityError:
        kw: dict[str, Any] = {}
        if case == "wrong token":
            kw["token"] = "guess"
        elif case == "untrusted CA":
            kw["ca_file"] = str(make_tls(tmp_path / "other").ca_cert)
        async with serving(tmp_path, ManualClock()) as centre:
            centre.report_every_s = 0 if case == "bad answer" else centre.report_every_s
            centre.fail_status = 503 if case == "server error" else None
            c = client(centre, tmp_path / "state", **kw)
            try:
                if case != "centre down":
                    with pytest.raises(ProximityError) as err:
                        await c.report_once(None)
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


# --- warnings ----------------------------------------------------------------------------


@pytest.mark.parametrize("repeat_old", [False, True], ids=["centre", "faulty centre"])
def test_each_warning_is_delivered_once_across_a_restart(tmp_path: Path,
                                                         repeat_old: bool) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            centre.repeat_old = repeat_old
            centre.add(340)
            centre.add(120, "home")
            link = FakeLink()
            c = client(centre, tmp_path / "state", [link])
            got = await c.poll_once(0)
            assert [d.notice.id for d in got] == [1, 2]
            assert await c.poll_once(0) == []  # nothing new: nothing again
            await c.close()
            centre.add(90)
            c = client(centre, tmp_path / "state", [link])  # the host restarted
            try:
                got = await c.poll_once(0)
                assert [d.notice.id for d in got] == [3] and await c.poll_once(0) == []
            finally:
                await c.close()
            assert centre.polls == [0, 2, 2, 3]  # the last id seen survived the restart
            assert link.patterns == [Pattern.PROXIMITY] * 3
            assert centre.acks == {i: [{"haptic": "ok", "hook": "none"}] for i in (1, 2, 3)}
            n = got[0].notice
            assert (n.kind, n.level, n.zone, n.distance_m) == ("proximity", "alert", "victim",
                                                                90)
    run(body)


def test_a_warning_cut_off_mid_delivery_is_delivered_after_the_restart(tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            centre.add()
            stuck = FakeLink()
            stuck.hold = asyncio.Event()  # the haptic never ends: the host dies meanwhile
            c = client(centre, tmp_path / "state", [stuck])
            poll = asyncio.create_task(c.poll_once(0))
            await asyncio.wait_for(stuck.entered.wait(), 10)
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            await c.close()
            assert centre.acks == {}
            link = FakeLink()
            c = client(centre, tmp_path / "state", [link])
            try:
                got = await c.poll_once(0)
            finally:
                await c.close()
            assert [d.notice.id for d in got] == [1] and link.patterns == [Pattern.PROXIMITY]
            assert centre.polls == [0, 1] and list(centre.acks) == [1]
    run(body)


def test_an_unacknowledged_delivery_is_acknowledged_later_not_delivered_again(
        tmp_path: Path) -> None:
    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            centre.add()
            centre.ack_status = 503
            link = FakeLink(connected=False)
            c = client(centre, tmp_path / "state", [link])
            assert [d.haptic for d in await c.poll_once(0)] == ["not connected"]
            await c.close()
            centre.ack_status = None
            link.connected.set()
            c = client(centre, tmp_path / "state", [link])
            try:
                assert await c.poll_once(0) == []
            finally:
                await c.close()
            assert link.patterns == []  # not played again once the button came back
            assert centre.acks == {1: [{"haptic": "not connected", "hook": "none"}]}
    run(body)


def test_the_hook_reads_the_warning_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    argv = script(tmp_path, "hook.py", "open(sys.argv[1], 'w').write(sys.stdin.read())\n")

    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            centre.add(340)
            c = client(centre, tmp_path / "state", hook=Hook([*argv, str(out)]))
            try:
                got = await c.poll_once(0)
            finally:
                await c.close()
            assert [(d.haptic, d.hook) for d in got] == [("ok", "ok")]
            assert centre.acks[1] == [{"haptic": "ok", "hook": "ok"}]
    run(body)
    assert json.loads(out.read_text()) == {"id": 1, "kind": "proximity", "level": "alert",
                                           "zone": "victim", "distance_m": 340, "at": T0,
                                           "button": None}


def test_a_failing_or_hanging_hook_is_reported_and_holds_up_nothing(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    argv = script(tmp_path, "hook.py", f"""
w = json.loads(sys.stdin.read())
if w["id"] == 1:
    sys.exit(3)
if w["id"] == 2:  # hangs, and so does a program it started
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open({str(pids)!r}, "w").write(str(child.pid))
    time.sleep(600)
""")

    async def body() -> None:
        clock = ManualClock()
        async with serving(tmp_path, clock) as centre:
            for _ in range(3):
                centre.add()
            c = client(centre, tmp_path / "state", hook=Hook(argv, timeout_s=1.0))
            try:
                got = await c.poll_once(0)
            finally:
                await c.close()
            assert [d.hook for d in got] == ["failed: exit status 3",
                                             "failed: no exit within 1 s", "ok"]
            assert {i: a[0]["hook"] for i, a in centre.acks.items()} == {
                1: "failed: exit status 3", 2: "failed: no exit within 1 s", 3: "ok"}
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
