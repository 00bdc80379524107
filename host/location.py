"""Where the host's positions come from: a serial NMEA receiver, gpsd, a configured location,
or the simulator's scripted track. Each is a `LocationSource` whose best() never waits."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import serial

from msa.wire.message import Fix, FixQuality
from .errors import LocationError
from .nmea import UERE_M, UNKNOWN_HDOP, NmeaError, NmeaTracker, parse

Clock = Callable[[], float]
MAX_AGE_S = 10.0  # a fix older than one tracking interval must not be sent as current
WALKING_SPEED_MPS = 1.4
EARTH_RADIUS_M = 6_371_008.8
MAX_LINE = 4096  # NMEA allows 82 characters; far beyond that the stream is noise

# gpsd TPV "status" (3.22) -> fix quality; absent or 1 is a plain GNSS fix.
GPSD_STATUS: dict[int, FixQuality] = {
    2: FixQuality.DGNSS, 3: FixQuality.DGNSS, 4: FixQuality.DGNSS, 5: FixQuality.ESTIMATED,
    6: FixQuality.ESTIMATED, 7: FixQuality.FIXED, 8: FixQuality.SIMULATED,
}


GPSD_TO_68 = 0.62  # gpsd's 95% error estimate -> the 68% radius Fix documents

class _Port(Protocol):
    """What the reader uses of a pyserial port. Every backend serial_for_url returns has these;
    the stubs type the factory as SerialBase, which lacks open() and in_waiting."""

    @property
    def in_waiting(self) -> int: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, size: int = 1, /) -> bytes: ...


class _Latest:
    """The newest fix of a streaming source and when it arrived. Staleness counts from arrival
    by the host's `clock`, not from the fix's own time: a receiver's or a replayed log's clock
    may disagree with the host's, and "nothing heard for max_age_s" is what makes it stale.

    `updated` is set on every change (new fix, fix lost, connected, error); a waiter clears it
    and checks its condition before awaiting it again."""

    def __init__(self, name: str, max_age_s: float, clock: Clock) -> None:
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.name = name
        self.max_age_s = max_age_s
        self.clock = clock
        self.updated = asyncio.Event()
        self.last_error: LocationError | None = None
        self.errors = 0  # garbled input and failed connections, for health reports
        self.bad_lines = 0  # input lines (or reports) refused: counted, skipped, never fatal
        self.connects = 0
        self._fix: Fix | None = None
        self._received_at = 0.0

    def best(self) -> Fix | None:
        if self._fix is None or self.clock() - self._received_at > self.max_age_s:
            return None
        return self._fix

    def _publish(self, fix: Fix) -> None:
        self._fix, self._received_at = fix, self.clock()
        self.updated.set()

    def _lose(self) -> None:
        if self._fix is not None:
            self._fix = None
            self.updated.set()

    def _connected(self) -> None:
        self.connects += 1
        self.updated.set()

    def _fail(self, error: LocationError) -> None:
        self.errors += 1
        self.last_error = error
        self.updated.set()

    def _bad(self, error: LocationError) -> None:
        self.bad_lines += 1
        self._fail(error)


class NmeaSerialSource(_Latest):
    """An NMEA receiver on any pyserial URL (/dev/ttyUSB0, socket://host:port, rfc2217://...).
    pyserial blocks, so one thread reads and hands results to the event loop; a port that goes
    away is reopened with backoff. Garbled sentences are counted in `errors` and skipped."""

    def __init__(self, url: str, baudrate: int = 9600, max_age_s: float = MAX_AGE_S, *,
                 clock: Clock = time.monotonic, uere_m: float = UERE_M,
                 read_timeout_s: float = 0.2, retry_s: tuple[float, float] = (0.1, 5.0)) -> None:
        super().__init__(f"nmea:{url}", max_age_s, clock)
        self.url = url
        self.baudrate = baudrate
        self.uere_m = uere_m
        self.read_timeout_s = read_timeout_s
        self.retry_s = retry_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        # A malformed URL is a configuration error: say so now. A missing device is not (it
        # may be plugged in later), so opening is left to the reader's retry loop.
        try:
            port = cast(_Port, serial.serial_for_url(self.url, baudrate=self.baudrate,
                                                     timeout=self.read_timeout_s,
                                                     do_not_open=True))
        except (ValueError, serial.SerialException) as err:
            raise LocationError(self.name, f"cannot use {self.url!r}: {err}") from err
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True,
                                        name=f"msa-{self.name}")
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            # The reader notices within one read timeout; join off the loop so it never blocks.
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _run(self, port: _Port) -> None:
        # Survives anything: an error of any kind (the port's, a parser's, ours) is counted
        # and the port reopened after a backoff, until stop(). A GPS reader that dies leaves
        # every later alarm without a location.
        delay = self.retry_s[0]
        while not self._stopping.is_set():
            try:
                port.open()
                self._call(self._connected)
                delay = self.retry_s[0]
                self._read(port)
            except (serial.SerialException, OSError) as err:
                self._call(self._fail, LocationError(self.name, f"serial port: {err}"))
            except Exception as err:  # noqa: BLE001 - see above
                self._call(self._fail, LocationError(self.name, f"reader restarted after"
                                                     f" {type(err).__name__}: {err}"))
            finally:
                try:
                    port.close()
                except Exception:  # noqa: BLE001 - closing a broken port may fail too
                    pass
            self._stopping.wait(delay)
            delay = min(delay * 2, self.retry_s[1])

    def _read(self, port: _Port) -> None:
        tracker = NmeaTracker(self.uere_m)  # a half epoch from before a reconnect is void
        pending = bytearray()
        while not self._stopping.is_set():
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue  # silence: the fix goes stale by itself
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = bytearray(rest)
            if len(pending) > MAX_LINE:
                self._call(self._bad, LocationError(self.name, "no line end in 4 KiB of input"))
                pending.clear()
            for line in lines:
                self._line(line.decode("ascii", errors="replace").strip(), tracker)

    def _line(self, text: str, tracker: NmeaTracker) -> None:
        if not text:
            return
        try:
            fix = tracker.feed(parse(text))
        except NmeaError as err:
            self._call(self._bad, err)
            return
        except Exception as err:  # noqa: BLE001 - a line the parser did not foresee
            self._call(self._bad, LocationError(self.name, f"line refused:"
                                                f" {type(err).__name__}"))
            return
        if fix is not None:
            self._call(self._publish, fix)
        elif tracker.lost:
            self._call(self._lose)


def _number(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class GpsdSource(_Latest):
    """gpsd's JSON protocol over TCP: WATCH, then TPV reports become fixes (mode 2/3) or a
    lost fix (mode 0/1); SKY supplies HDOP when a TPV has no error estimate."""

    WATCH = b'?WATCH={"enable":true,"json":true}\n'

    def __init__(self, host: str = "127.0.0.1", port: int = 2947,
                 max_age_s: float = MAX_AGE_S, *, clock: Clock = time.monotonic,
                 uere_m: float = UERE_M, retry_s: tuple[float, float] = (0.1, 10.0),
                 connect_timeout_s: float = 5.0) -> None:
        super().__init__(f"gpsd:{host}:{port}", max_age_s, clock)
        self.host = host
        self.port = port
        self.uere_m = uere_m
        self.retry_s = retry_s
        self.connect_timeout_s = connect_timeout_s
        self.hdop: float | None = None
        self.satellites: int | None = None  # used in the solution, from SKY
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"msa-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        delay = self.retry_s[0]
        while True:
            connects = self.connects
            try:
                await self._session()
            except LocationError as err:
                self._fail(err)
            except Exception as err:  # noqa: BLE001 - never end the reader (see NMEA's)
                self._fail(LocationError(self.name, f"session ended by {type(err).__name__}"))
            # After a session that got through, retry promptly; refusals back off.
            delay = (self.retry_s[0] if self.connects > connects
                     else min(delay * 2, self.retry_s[1]))
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connection, until it fails or gpsd hangs up: always ends in LocationError."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_LINE * 16),
                self.connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as err:
            raise LocationError(self.name, f"cannot reach gpsd: {err!r}") from err
        try:
            writer.write(self.WATCH)
            await writer.drain()
            self._connected()
            while line := await reader.readline():
                self._message(line)
        except (OSError, ValueError) as err:  # ValueError: a line over the reader's limit
            raise LocationError(self.name, f"connection failed: {err!r}") from err
        finally:
            writer.close()
        raise LocationError(self.name, "gpsd closed the connection")

    def _message(self, line: bytes) -> None:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as err:  # RecursionError: absurd nesting
            self._bad(LocationError(self.name, f"not JSON ({type(err).__name__})"))
            return
        if not isinstance(obj, dict):
            return
        if obj.get("class") == "SKY":
            self._sky(obj)
        elif obj.get("class") == "TPV":
            self._tpv(obj)

    def _sky(self, obj: dict[str, Any]) -> None:
        hdop = _number(obj, "hdop")
        if hdop is not None:
            self.hdop = hdop
        used = _number(obj, "uSat")
        sats = obj.get("satellites")
        if used is None and isinstance(sats, list):
            used = sum(1 for s in sats if isinstance(s, dict) and s.get("used") is True)
        self.satellites = None if used is None else int(used)

    def _tpv(self, obj: dict[str, Any]) -> None:
        lat, lon = _number(obj, "lat"), _number(obj, "lon")
        if obj.get("mode") not in (2, 3) or lat is None or lon is None:
            self._lose()
            return
        if not isinstance(obj.get("time"), str):
            return  # a position before gpsd knows the date: the fix's own time is unknown
        try:
            when = datetime.datetime.fromisoformat(obj["time"])
            fix = Fix(lat=lat, lon=lon, accuracy_m=self._accuracy(obj),
                      time=when.replace(tzinfo=when.tzinfo or datetime.timezone.utc).timestamp(),
                      quality=GPSD_STATUS.get(int(_number(obj, "status") or 1),
                                              FixQuality.GNSS),
                      source="gpsd", altitude_m=_number(obj, "altMSL") if "altMSL" in obj
                      else _number(obj, "alt"))
        except ValueError as err:
            # The report itself holds a position: never in an error or a log.
            self._bad(LocationError(self.name, f"bad TPV ({err})"))
            return
        self._publish(fix)

    def _accuracy(self, obj: dict[str, Any]) -> float:
        # gpsd's error estimates are 95% figures; Fix wants the 68% radius. For a circular
        # Gaussian the radius scales with sqrt(-2 ln(1 - p)): 1.51 / 2.45 = 0.62. Without eph
        # the per-axis errors combine radially, and without those the last SKY HDOP is
        # scaled like an NMEA receiver's.
        eph = _number(obj, "eph")
        if eph is not None:
            return eph * GPSD_TO_68
        epx, epy = _number(obj, "epx"), _number(obj, "epy")
        if epx is not None and epy is not None:
            return math.hypot(epx, epy) * GPSD_TO_68
        return (UNKNOWN_HDOP if self.hdop is None else self.hdop) * self.uere_m


class FixedSource:
    """A home gateway's configured location: always there, stamped with the time of asking."""

    def __init__(self, lat: float, lon: float, accuracy_m: float, *,
                 clock: Clock = time.time) -> None:
        self.name = "fixed"
        self.clock = clock
        # Validate once, up front, with the same rules as every Fix.
        self._fix = Fix(lat=lat, lon=lon, accuracy_m=accuracy_m, time=clock(),
                        quality=FixQuality.FIXED, source="fixed")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def best(self) -> Fix | None:
        return dataclasses.replace(self._fix, time=self.clock())


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclasses.dataclass(frozen=True)
class Track:
    """A walk along waypoints (lat, lon) at a constant speed, standing still at the last one.
    Legs are interpolated linearly in degrees: right for the short legs of a street walk
    (none may cross the antimeridian)."""

    waypoints: tuple[tuple[float, float], ...]
    speed_mps: float = WALKING_SPEED_MPS

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError("a track needs at least one waypoint")
        if not self.speed_mps > 0:
            raise ValueError(f"speed must be > 0 m/s, got {self.speed_mps}")
        for lat, lon in self.waypoints:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"waypoint out of range: {lat}, {lon}")

    @functools.cached_property
    def _legs(self) -> tuple[float, ...]:
        return tuple(distance_m(a, b) for a, b in zip(self.waypoints, self.waypoints[1:]))

    @property
    def duration_s(self) -> float:
        return sum(self._legs) / self.speed_mps

    def _locate(self, elapsed_s: float) -> tuple[int, float]:
        """(leg index, fraction along it) after walking for elapsed_s."""
        left = max(0.0, elapsed_s) * self.speed_mps
        for i, length in enumerate(self._legs):
            if left < length:
                return i, left / length
            left -= length
        return len(self._legs) - 1, 1.0

    def position(self, elapsed_s: float) -> tuple[float, float]:
        if len(self.waypoints) == 1:
            return self.waypoints[0]
        i, f = self._locate(elapsed_s)
        (lat1, lon1), (lat2, lon2) = self.waypoints[i], self.waypoints[i + 1]
        return lat1 + f * (lat2 - lat1), lon1 + f * (lon2 - lon1)

    def course_deg(self, elapsed_s: float) -> float:
        """Initial bearing of the current leg, clockwise from true north."""
        if len(self.waypoints) == 1:
            return 0.0
        i, _ = self._locate(elapsed_s)
        lat1, lon1, lat2, lon2 = map(math.radians, (*self.waypoints[i], *self.waypoints[i + 1]))
        y = math.sin(lon2 - lon1) * math.cos(lat2)
        x = (math.cos(lat1) * math.sin(lat2)
             - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1))
        return math.degrees(math.atan2(y, x)) % 360.0

    def speed_at(self, elapsed_s: float) -> float:
        return self.speed_mps if 0 <= elapsed_s < self.duration_s else 0.0


class TrackSource:
    """The simulator's scripted walk as a source. `clock` is injectable so a test can walk two
    hours in no time; the walk starts at `start_time`, or at start() when not given."""

    def __init__(self, track: Track, *, clock: Clock = time.time,
                 start_time: float | None = None, accuracy_m: float = 5.0) -> None:
        self.name = "sim"
        self.track = track
        self.clock = clock
        self.start_time = start_time
        self.accuracy_m = accuracy_m

    async def start(self) -> None:
        if self.start_time is None:
            self.start_time = self.clock()

    async def stop(self) -> None:
        return None

    def best(self) -> Fix | None:
        if self.start_time is None:
            return None
        now = self.clock()
        lat, lon = self.track.position(now - self.start_time)
        return Fix(lat=lat, lon=lon, accuracy_m=self.accuracy_m, time=now,
                   quality=FixQuality.SIMULATED, source="sim")
