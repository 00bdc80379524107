"""Location sources: the scripted track and fixed location, stale fixes, NMEA over socket://
from the simulated receiver (fix loss, garbled sentences, reconnection), gpsd's JSON from a
scripted server, and real gpsd started by gpsfake replaying the simulator's NMEA log."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from msa.wire.message import Fix, FixQuality
from msa.host.errors import LocationError
from msa.host.location import (FixedSource, GpsdSource, NmeaSerialSource, Track, TrackSource,
                               distance_m)
from msa.host.nmea import NmeaError
from msa.simulator.gps import SimulatedGps, write_nmea_log

T = TypeVar("T")
WALK = Track(((52.5200, 13.4050), (52.5210, 13.4070), (52.5225, 13.4040), (52.5230, 13.4100)))
MAY_1_2024 = 1714564800.0
TIMEOUT_S = 10.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)
    return asyncio.run(bounded())


async def until(source: Any, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """Wait, woken by the source's `updated` event, until condition() holds."""
    async with asyncio.timeout(timeout):
        while True:
            source.updated.clear()
            if condition():
                return
            await source.updated.wait()


def on_walk(fix: Fix, start_time: float, track: Track = WALK) -> bool:
    lat, lon = track.position(fix.time - start_time)
    return abs(fix.lat - lat) <= 1e-6 and abs(fix.lon - lon) <= 1e-6


# --- scripted track and fixed location -------------------------------------------------------

def test_track_source_walks_two_hours_in_no_time() -> None:
    clock = FakeClock(MAY_1_2024)
    source = TrackSource(WALK, clock=clock)
    assert source.best() is None  # not started
    run(source.start())
    previous = source.best()
    assert previous is not None and (previous.lat, previous.lon) == WALK.waypoints[0]
    for _ in range(2 * 3600 // 10):  # an alarm's 2 h of updates, one every 10 s
        clock.now += 10
        fix = source.best()
        assert fix is not None and fix.time == clock.now
        assert fix.quality is FixQuality.SIMULATED and fix.source == "sim"
        assert distance_m((previous.lat, previous.lon), (fix.lat, fix.lon)) <= 10 * 1.4 + 0.05
        previous = fix
    assert (previous.lat, previous.lon) == pytest.approx(WALK.waypoints[-1])
    assert WALK.duration_s < 2 * 3600  # so the walk really ended and it stands still


def test_track_positions_pass_every_waypoint() -> None:
    elapsed = 0.0
    for i, waypoint in enumerate(WALK.waypoints):
        assert WALK.position(elapsed) == pytest.approx(waypoint, abs=1e-9)
        if i + 1 < len(WALK.waypoints):
            elapsed += distance_m(waypoint, WALK.waypoints[i + 1]) / WALK.speed_mps


@pytest.mark.parametrize("waypoints,speed", [((), 1.4), (((0.0, 0.0),), 0.0),
                                             (((91.0, 0.0),), 1.4)])
def test_bad_tracks_are_refused(waypoints: tuple[tuple[float, float], ...],
                                speed: float) -> None:
    with pytest.raises(ValueError):
        Track(waypoints, speed)


def test_fixed_source_is_stamped_now() -> None:
    clock = FakeClock(MAY_1_2024)
    source = FixedSource(48.1372, 11.5756, 25.0, clock=clock)
    clock.now += 3600
    fix = source.best()
    assert fix == Fix(48.1372, 11.5756, 25.0, MAY_1_2024 + 3600, FixQuality.FIXED, "fixed")
    with pytest.raises(ValueError):
        FixedSource(48.0, 200.0, 25.0)


# --- NMEA over socket:// from the simulated receiver -------------------------------------------

def test_a_malformed_url_fails_at_start() -> None:
    with pytest.raises(LocationError) as err:
        run(NmeaSerialSource("nosuch://127.0.0.1:1").start())
    assert err.value.source == "nmea:nosuch://127.0.0.1:1"


def test_an_unreachable_port_is_reported_not_raised() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"socket://127.0.0.1:{probe.getsockname()[1]}"

    async def go() -> None:
        source = NmeaSerialSource(url, retry_s=(0.01, 0.05))
        await source.start()
        try:
            await until(source, lambda: source.errors >= 2)
            assert isinstance(source.last_error, LocationError) and source.best() is None
        finally:
            await source.stop()
    run(go())


async def _receiver(clock: Callable[[], float] = time.monotonic,
                    max_age_s: float = 10.0) -> tuple[SimulatedGps, NmeaSerialSource]:
    gps = SimulatedGps(WALK, rate_hz=20)
    await gps.start()
    source = NmeaSerialSource(gps.url, max_age_s=max_age_s, retry_s=(0.02, 0.2), clock=clock)
    await source.start()
    return gps, source


def test_fixes_follow_the_simulated_walk() -> None:
    async def go() -> None:
        gps, source = await _receiver()
        try:
            seen: list[Fix] = []

            def three_fixes() -> bool:
                fix = source.best()
                if fix is not None and fix not in seen:
                    seen.append(fix)
                return len(seen) >= 3
            await until(source, three_fixes)
            assert gps.start_time is not None
            for fix in seen:
                assert fix.source == "nmea" and fix.quality is FixQuality.GNSS
                assert fix.accuracy_m == pytest.approx(0.9 * 5.0) and fix.altitude_m == 48.0
                assert on_walk(fix, gps.start_time)
            assert seen[-1].time > seen[0].time
        finally:
            await source.stop()
            await gps.stop()
    run(go())


def test_fix_loss_is_seen_at_once_and_the_fix_comes_back() -> None:
    async def go() -> None:
        gps, source = await _receiver()
        try:
            await until(source, lambda: source.best() is not None)
            gps.lose_fix()
            await until(source, lambda: source.best() is None)
            gps.lose_fix(False)
            await until(source, lambda: source.best() is not None)
        finally:
            await source.stop()
            await gps.stop()
    run(go())


def test_garbled_sentences_are_skipped() -> None:
    async def go() -> None:
        gps, source = await _receiver()
        try:
            await until(source, lambda: source.best() is not None)
            gps.garble_next(3)
            await until(source, lambda: source.errors >= 3)
            assert isinstance(source.last_error, NmeaError)
            assert source.last_error.reason == "checksum"
            before = source.best()
            await until(source, lambda: source.best() not in (None, before))
        finally:
            await source.stop()
            await gps.stop()
    run(go())


def test_a_silent_receiver_goes_stale_after_max_age() -> None:
    async def go() -> None:
        clock = FakeClock()
        gps, source = await _receiver(clock, max_age_s=3.0)
        try:
            await until(source, lambda: source.best() is not None)
            gps.go_silent()
            clock.now += 2.9
            assert source.best() is not None  # younger than max_age_s: still current
            clock.now += 0.2
            assert source.best() is None  # nothing heard for 3.1 s: stale
            gps.go_silent(False)
            await until(source, lambda: source.best() is not None)
        finally:
            await source.stop()
            await gps.stop()
    run(go())


def test_the_source_reconnects_after_the_connection_drops() -> None:
    async def go() -> None:
        gps, source = await _receiver()
        try:
            await until(source, lambda: source.best() is not None and source.connects == 1)
            await gps.drop_connections()
            await until(source, lambda: source.connects >= 2)
            assert isinstance(source.last_error, LocationError)
            assert "socket disconnected" in source.last_error.detail
            after = source.best()
            await until(source, lambda: source.best() not in (None, after))
        finally:
            await source.stop()
            await gps.stop()
    run(go())


# --- gpsd's JSON protocol from a scripted server -----------------------------------------------

TPV = {"class": "TPV", "device": "/dev/ttyACM0", "mode": 3, "time": "2024-05-01T12:00:05.000Z",
       "lat": 52.5201, "lon": 13.4052, "altMSL": 41.5, "eph": 7.5}


async def _scripted_gpsd(lines: list[bytes]) -> tuple[asyncio.Server, list[bytes]]:
    """A server that checks for the WATCH command, then sends `lines` and hangs up."""
    commands: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands.append(await reader.readline())
        writer.write(b'{"class":"VERSION","release":"3.22","proto_major":3}\n' + b"".join(lines))
        await writer.drain()
        writer.close()
    return await asyncio.start_server(serve, "127.0.0.1", 0), commands


def _j(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


@pytest.mark.parametrize("tpv,sky,accuracy", [
    ({}, None, 7.5 * 0.62),  # gpsd's 95% estimate as the 68% radius
    ({"eph": None, "epx": 3.0, "epy": 4.0}, None, 5.0 * 0.62),
    ({"eph": None}, {"class": "SKY", "hdop": 1.5, "uSat": 7}, 1.5 * 5.0),
])
def test_gpsd_tpv_becomes_a_fix(tpv: dict[str, Any], sky: dict[str, Any] | None,
                                accuracy: float) -> None:
    report = {k: v for k, v in {**TPV, **tpv}.items() if v is not None}

    async def go() -> None:
        lines = ([_j(**sky)] if sky else []) + [b"not json\n", _j(**report)]
        server, commands = await _scripted_gpsd(lines)
        source = GpsdSource(port=server.sockets[0].getsockname()[1], clock=FakeClock())
        await source.start()
        try:
            await until(source, lambda: source.best() is not None)
            assert commands[0] == b'?WATCH={"enable":true,"json":true}\n'
            assert source.best() == Fix(52.5201, 13.4052, accuracy, MAY_1_2024 + 5,
                                        FixQuality.GNSS, "gpsd", 41.5)
            assert source.errors >= 1 and "not JSON" in str(source.last_error)
            if sky:
                assert source.satellites == 7
        finally:
            await source.stop()
            server.close()
    run(go())


def test_gpsd_mode_1_loses_the_fix_and_the_source_reconnects() -> None:
    async def go() -> None:
        release = asyncio.Event()  # the test says when the fix is lost

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(_j(**TPV))
            await writer.drain()
            await release.wait()
            writer.write(_j(**{"class": "TPV", "mode": 1}))
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        source = GpsdSource(port=server.sockets[0].getsockname()[1], clock=FakeClock(),
                            retry_s=(0.01, 0.05))
        await source.start()
        try:
            await until(source, lambda: source.best() is not None)
            release.set()
            await until(source, lambda: source.best() is None)
            await until(source, lambda: source.connects >= 2)  # gpsd hung up: back again
            assert "closed the connection" in str(source.last_error)
        finally:
            await source.stop()
            server.close()
    run(go())


# --- real gpsd, started by gpsfake --------------------------------------------------------------

def _gpsfake_or_skip() -> str:
    """gpsfake's path, or a skip with the reason (a failure under CI: tests/conftest.py)."""
    path = shutil.which("gpsfake", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    reason = None
    if path is None:
        reason = "gpsfake is not installed (Debian gpsd + gpsd-clients)"
    else:
        # gpsfake runs with the interpreter on its #! line and needs that one's `gps` module.
        interpreter = Path(path).read_text(errors="replace").splitlines()[0][2:].split()
        check = subprocess.run([*interpreter, "-c", "import gps.fake"], env=_clean_env(),
                               capture_output=True)
        if check.returncode != 0:
            reason = f"gpsfake's {interpreter[0]} lacks the gps module (Debian python3-gps)"
    if reason is None:
        assert path is not None
        return path
    pytest.skip(f"{reason}; `python3 bootstrap.py test` installs it when run as root")


def _clean_env() -> dict[str, str]:
    # Our venv must not leak into the system python3 that runs gpsfake.
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gpsfake(tmp_path: Path) -> Iterator[Callable[[Path], int]]:
    """Starts gpsfake (its own gpsd on a free 127.0.0.1 port) replaying a log; returns the port."""
    path = _gpsfake_or_skip()
    procs: list[subprocess.Popen[bytes]] = []

    def start(log: Path) -> int:
        port = _free_port()
        # -1: play the log once; -c: 50 ms between sentences; gpsd starts reading when the
        # first client connects, and is gpsfake's own child, not the system service.
        procs.append(subprocess.Popen(
            [path, "-q", "-1", "-c", "0.05", "-P", str(port), str(log)],
            env=dict(_clean_env(), TMPDIR=str(tmp_path)), cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        return port
    yield start
    for proc in procs:  # gpsfake and its gpsd share the session started for them
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    continue
        proc.wait()


def test_gpsd_reports_the_replayed_walk(gpsfake: Callable[[Path], int],
                                        tmp_path: Path) -> None:
    log = tmp_path / "walk.nmea"
    epochs = write_nmea_log(log, WALK, start_time=MAY_1_2024, seconds=30)
    port = gpsfake(log)

    async def go() -> None:
        source = GpsdSource(port=port, clock=FakeClock(), retry_s=(0.05, 0.5))
        await source.start()
        seen: list[Fix] = []

        def last_epoch() -> bool:
            fix = source.best()
            if fix is not None and fix not in seen:
                seen.append(fix)
            return fix is not None and fix.time == MAY_1_2024 + epochs - 1
        try:
            await until(source, last_epoch, timeout=30)
        finally:
            await source.stop()
        for fix in seen:
            assert fix.source == "gpsd" and fix.quality is FixQuality.GNSS
            assert on_walk(fix, MAY_1_2024)
        # gpsd's first report of a cycle may carry RMC's 2D position alone; by the end it has
        # GGA's altitude and its own error estimate (eph) too.
        assert len(seen) >= 3
        assert seen[-1].altitude_m == 48.0 and 0 < seen[-1].accuracy_m < 50
    run(go())


def test_gpsd_reports_the_fix_lost(gpsfake: Callable[[Path], int], tmp_path: Path) -> None:
    log = tmp_path / "lost.nmea"
    write_nmea_log(log, WALK, start_time=MAY_1_2024, seconds=30, fix_lost_at_s=20)
    port = gpsfake(log)

    async def go() -> None:
        # A frozen clock: nothing goes stale, so None below can only mean a lost fix.
        source = GpsdSource(port=port, clock=FakeClock(), retry_s=(0.05, 0.5))
        await source.start()
        try:
            await until(source, lambda: source.best() is not None, timeout=30)
            fix = source.best()
            assert fix is not None and fix.time < MAY_1_2024 + 20 and on_walk(fix, MAY_1_2024)
            await until(source, lambda: source.best() is None, timeout=30)
        finally:
            await source.stop()
    run(go())
