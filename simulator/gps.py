"""A simulated GPS receiver: NMEA GGA + RMC along a scripted track, served by TCP on 127.0.0.1
so pyserial's socket:// URL reaches it like a serial port, with faults for tests; and NMEA log
files of a track for gpsfake."""
from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

from msa.host.location import Clock, Track
from msa.host.nmea import KNOT_MPS, checksum

MINUTE_DECIMALS = 6  # ddmm.mmmmmm: 1e-6 minute is under 2 mm, far below any receiver's noise


def format_coordinate(value: float, degree_digits: int, signs: str) -> tuple[str, str]:
    """Signed degrees -> (NMEA ddmm.mmmmmm or dddmm.mmmmmm, hemisphere letter)."""
    scale = 10**MINUTE_DECIMALS
    # Round once, in whole millionths of a minute, so 59.9999999' carries into the degrees.
    degrees, minutes = divmod(round(abs(value) * 60 * scale), 60 * scale)
    text = f"{degrees:0{degree_digits}d}{minutes // scale:02d}.{minutes % scale:0{MINUTE_DECIMALS}d}"
    return text, signs[1] if value < 0 else signs[0]


def format_sentence(body: str, *, garble: bool = False) -> str:
    """'GPGGA,...' -> '$GPGGA,...*hh\\r\\n'; garble=True writes a wrong checksum."""
    return f"${body}*{checksum(body) ^ (0x5A if garble else 0):02X}\r\n"


def _utc(when: float) -> tuple[str, str]:
    """Unix time -> (hhmmss.ss, ddmmyy)."""
    seconds, centis = divmod(round(when * 100), 100)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{moment:%H%M%S}.{centis:02d}", f"{moment:%d%m%y}"


def epoch_sentences(when: float, lat: float, lon: float, *, fix: bool = True,
                    talker: str = "GP", satellites: int = 9, hdop: float = 0.9,
                    altitude_m: float = 48.0, speed_mps: float = 0.0,
                    course_deg: float = 0.0) -> list[str]:
    """The GGA and RMC bodies (no '$', no checksum) of one epoch; without a fix, as a
    receiver that knows the time but not its position sends them."""
    hms, dmy = _utc(when)
    if not fix:
        return [f"{talker}GGA,{hms},,,,,0,00,,,M,,M,,",
                f"{talker}RMC,{hms},V,,,,,,,{dmy},,,N"]
    la, ns = format_coordinate(lat, 2, "NS")
    lo, ew = format_coordinate(lon, 3, "EW")
    return [f"{talker}GGA,{hms},{la},{ns},{lo},{ew},1,{satellites:02d},{hdop:.1f},"
            f"{altitude_m:.1f},M,47.0,M,,",
            f"{talker}RMC,{hms},A,{la},{ns},{lo},{ew},{speed_mps / KNOT_MPS:.2f},"
            f"{course_deg:.1f},{dmy},,,A"]


def track_epoch(track: Track, start_time: float, when: float, *, fix: bool = True,
                talker: str = "GP") -> list[str]:
    """The sentence bodies of one epoch of a walk along `track` begun at `start_time`."""
    elapsed = when - start_time
    lat, lon = track.position(elapsed)
    return epoch_sentences(when, lat, lon, fix=fix, talker=talker,
                           speed_mps=track.speed_at(elapsed),
                           course_deg=track.course_deg(elapsed))


def write_nmea_log(path: Path, track: Track, *, start_time: float, seconds: int,
                   rate_hz: float = 1.0, fix_lost_at_s: float | None = None) -> int:
    """Write `seconds` of the walk as an NMEA log (one GGA + RMC per epoch), the input
    gpsfake replays, with no fix from `fix_lost_at_s` on if given; returns the number of
    epochs written."""
    epochs = int(seconds * rate_hz) + 1
    with path.open("w", newline="") as out:
        out.write("# Name: msa simulated walk\n")  # gpsfake skips '#' comment lines
        for n in range(epochs):
            lost = fix_lost_at_s is not None and n / rate_hz >= fix_lost_at_s
            for body in track_epoch(track, start_time, start_time + n / rate_hz, fix=not lost):
                out.write(format_sentence(body))
    return epochs


class SimulatedGps:
    """A receiver walking `track`, streaming to every client of its TCP port at `rate_hz`.
    Faults, for tests: lose_fix(), go_silent(), garble_next(), drop_connections()."""

    def __init__(self, track: Track, *, rate_hz: float = 1.0, clock: Clock = time.time,
                 start_time: float | None = None, talker: str = "GP",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.track = track
        self.rate_hz = rate_hz
        self.clock = clock
        self.start_time = start_time
        self.talker = talker
        self.host = host
        self.epochs_sent = 0
        self._port = port
        self._fix = True
        self._silent = False
        self._garble = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """What serial_for_url opens to reach this receiver."""
        return f"socket://{self.host}:{self._port}"

    async def start(self) -> None:
        if self.start_time is None:
            self.start_time = self.clock()
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick(), name="msa-sim-gps")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def lose_fix(self, lost: bool = True) -> None:
        """Report no fix (GGA quality 0, RMC status V) until called with False."""
        self._fix = not lost

    def go_silent(self, silent: bool = True) -> None:
        """Send nothing at all until called with False, as a receiver that hung."""
        self._silent = silent

    def garble_next(self, count: int = 1) -> None:
        """Send the next `count` sentences with a wrong checksum."""
        self._garble += count

    async def drop_connections(self) -> None:
        """Close every client connection, as a cable pulled out; the port stays open."""
        clients, self._clients = self._clients, set()
        for writer in clients:
            writer.close()
        for writer in clients:
            try:
                await writer.wait_closed()
            except OSError:
                pass  # the peer went first: it is closed either way

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        # Input is never used; reading only notices when the client goes away.
        try:
            while await reader.read(256):
                pass
        except OSError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _tick(self) -> None:
        assert self.start_time is not None  # set by start()
        while True:
            if not self._silent:
                text = "".join(self._frame(body) for body in
                               track_epoch(self.track, self.start_time, self.clock(),
                                           fix=self._fix, talker=self.talker))
                for writer in list(self._clients):
                    writer.write(text.encode("ascii"))
                self.epochs_sent += 1
            await asyncio.sleep(1.0 / self.rate_hz)  # the receiver's own output rate

    def _frame(self, body: str) -> str:
        if self._garble > 0:
            self._garble -= 1
            return format_sentence(body, garble=True)
        return format_sentence(body)
