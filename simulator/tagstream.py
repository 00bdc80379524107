"""`msa sim tag`: streams one simulated perpetrator tag's reports to a centre over the OsmAnd
protocol (docs/proximity.md), as Traccar Client and commercial trackers send them: a
scenario file's tag, or a straight line at a steady speed.

Time: scenario time s is sent at wall time T0 + s / speedup and stamped so too (1 = real time),
so with a speedup the centre sees the tag move that much faster. A delayed or buffered fix is
sent late, stamped with its earlier fix time, as a real tag's would be. Every report must be
answered 200; anything else stops the stream with TagStreamError."""
from __future__ import annotations

import http.client
import math
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from geographiclib.geodesic import Geodesic

from .errors import TagStreamError
from .scenario import Scenario, TagSample
from .scenario_format import Expect, Gps, Spec, TagSpec

OSMAND_PATH = "/v1/tags/osmand"
TIMEOUT_S = 30.0
LINE_GPS = Gps(accuracy_m=10.0, sigma_m=5.0, tau_s=120.0, white_m=1.0)  # an outdoor tag
LINE_TAG = "line"


def osmand_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of the OsmAnd endpoint under the centre's HTTPS address: the
    address alone, its /v1, or the endpoint itself. ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError("must start with https:// (the centre serves tags over TLS only)")
    if not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected https://HOST[:PORT][/v1]")
    path = parts.path.rstrip("/")
    if path in ("", "/v1"):
        path = "/v1" + OSMAND_PATH[3:]
    if path != OSMAND_PATH:
        raise ValueError(f"expected the centre's address, its /v1 or {OSMAND_PATH}")
    try:
        port = parts.port or 443
    except ValueError:
        raise ValueError("the port must be 1 to 65535") from None
    return parts.hostname, port, path


def straight_line(start: tuple[float, float], end: tuple[float, float], speed_kmh: float,
                  interval_s: int, seed: int) -> Scenario:
    """A scenario of one tag (named LINE_TAG) going from start to end at speed_kmh along the
    geodesic, then holding there one more interval; ValueError for a speed that is not
    positive."""
    if not speed_kmh > 0:
        raise ValueError("the speed must be positive")
    g = Geodesic.WGS84.Inverse(start[0], start[1], end[0], end[1],
                               Geodesic.DISTANCE | Geodesic.AZIMUTH)
    distance, azimuth = float(g["s12"]), math.radians(float(g["azi1"]))
    travel_s = max(distance / (speed_kmh / 3.6), 1.0)
    track = ((0.0, 0.0, 0.0),
             (travel_s, distance * math.sin(azimuth), distance * math.cos(azimuth)))
    tag = TagSpec(LINE_TAG, (), interval_s, track, LINE_GPS, (), (), None, (), (), ())
    duration = (math.floor(travel_s / interval_s) + 2) * interval_s
    return Scenario(Spec(Path("(straight line)"), "straight line", "msa sim tag --from --to",
                         seed, float(duration), start, (), (tag,),
                         Expect({}, {}, 20.0, (), ())))


def with_interval(scenario: Scenario, name: str, interval_s: int) -> Scenario:
    """The scenario with one tag's reporting interval replaced."""
    tags = tuple(replace(t, interval_s=interval_s) if t.name == name else t
                 for t in scenario.tags)
    return Scenario(replace(scenario.spec, tags=tags))


def osmand_params(secret: str, sample: TagSample, fix_time: float) -> dict[str, str]:
    """One report's OsmAnd parameters (the timestamp in milliseconds)."""
    params = {"id": secret, "lat": f"{sample.lat:.7f}", "lon": f"{sample.lon:.7f}",
              "timestamp": str(round(fix_time * 1000)), "accuracy": f"{sample.accuracy_m:.1f}"}
    if sample.battery_pct is not None:
        params["batt"] = f"{sample.battery_pct:.1f}"
    if sample.tamper:
        params["alarm"] = "tampering"
    return params


class OsmandClient:
    """One kept-alive HTTPS connection to the centre's OsmAnd endpoint (reopened once when
    the centre closed it between reports)."""

    def __init__(self, url: str, ca_file: Path | None, method: str = "POST") -> None:
        try:
            self.host, self.port, self.path = osmand_url(url)
        except ValueError as exc:
            raise TagStreamError(f"--url {url}: {exc}", 0) from None
        try:
            self.context = ssl.create_default_context(
                cafile=None if ca_file is None else str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise TagStreamError(f"cannot use the CA file {ca_file}: {exc}", 0) from None
        self.method = method
        self.url = url
        self._conn: http.client.HTTPSConnection | None = None

    def _exchange(self, params: dict[str, str]) -> tuple[int, str]:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port,
                                                     context=self.context, timeout=TIMEOUT_S)
        form = urlencode(params)
        if self.method == "GET":
            self._conn.request("GET", f"{self.path}?{form}")
        else:
            self._conn.request("POST", self.path, body=form.encode("ascii"), headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        resp = self._conn.getresponse()
        return resp.status, resp.read(512).decode("utf-8", "replace")

    def send(self, params: dict[str, str], sent: int) -> None:
        """Delivers one report; TagStreamError for anything but 200."""
        for attempt in (1, 2):
            try:
                status, body = self._exchange(params)
                break
            except ssl.SSLError as exc:
                self.close()
                raise TagStreamError(f"TLS with {self.url} failed ({exc.reason or exc});"
                                     " check --ca-file", sent) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2 or isinstance(exc, (ConnectionRefusedError, TimeoutError)):
                    raise TagStreamError(f"cannot reach {self.url}: {exc}", sent) from None
        if status == 401:
            raise TagStreamError("the centre refused the tag's secret (401): check"
                                 " --secret-file, or whether the tag was retired", sent)
        if status != 200:
            raise TagStreamError(f"the centre answered {status}: {body.strip()[:200]}", sent)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def stream(samples: Sequence[TagSample], secret: str, client: OsmandClient, speedup: float,
           progress: Callable[[int, TagSample, float], None],
           clock: Callable[[], float] = time.time,
           sleep: Callable[[float], None] = time.sleep) -> int:
    """Sends the samples (in the order they reach the centre) at their scenario times mapped
    onto wall time; returns how many were sent. progress(n, sample, fix_time) after each."""
    if not speedup > 0:
        raise TagStreamError("the speedup must be positive", 0)
    ordered = sorted(samples, key=lambda s: (s.sent_s, s.t_s))
    if not ordered:
        return 0
    base = clock() - ordered[0].sent_s / speedup
    sent = 0
    try:
        for sample in ordered:
            wait = base + sample.sent_s / speedup - clock()
            if wait > 0:
                sleep(wait)
            fix_time = base + sample.t_s / speedup
            client.send(osmand_params(secret, sample, fix_time), sent)
            sent += 1
            progress(sent, sample, fix_time)
    finally:
        client.close()
    return sent
