"""The ground truth of a proximity scenario: true positions (east/north metres of the origin
mapped to latitude and longitude by geodesics from the origin) and when a tag's true track
comes within a radius of a zone, with geodesic distances (geographiclib, WGS84).

Searching a 24 h file at 1 s with geodesics alone would take minutes, so the flat east/north
plane screens first: within MAX_EXTENT_M of the origin it agrees with the geodesic distance to
well under a metre, so wherever the flat distance is more than BAND_M from the radius it
decides, and only near the radius do the geodesics decide. Between waypoints the tracks are
straight, so a stretch where both parties stand still is skipped, and a stretch whose closest
approach stays outside the radius by more than the band cannot enter it."""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from geographiclib.geodesic import Geodesic

from .scenario_format import Waypoint, Zone
from .scenario_geometry import Point, crosses, inside, to_polygon, to_segment

_WGS84 = Geodesic.WGS84
BAND_M = 5.0  # the flat plane's error is far below this within 50 km (tests/test_scenarios.py)
STEP_S = 1.0  # sampling of a stretch that may cross
RESOLUTION_S = 0.001  # a crossing's time, found by bisection
LatLon = tuple[float, float]


class Plane:
    """East/north metres of `origin` <-> latitude/longitude: a point's metres are its
    geodesic distance and azimuth from the origin (the azimuthal equidistant mapping)."""

    CACHE_SIZE = 4096  # standing parties and zone corners are placed once, not at every fix

    def __init__(self, origin: LatLon) -> None:
        self.origin = origin
        self._cache: dict[Point, LatLon] = {}

    def latlon(self, east_m: float, north_m: float) -> LatLon:
        found = self._cache.get((east_m, north_m))
        if found is not None:
            return found
        if east_m == 0 and north_m == 0:
            return self.origin
        r = _WGS84.Direct(self.origin[0], self.origin[1],
                          math.degrees(math.atan2(east_m, north_m)), math.hypot(east_m, north_m),
                          Geodesic.LATITUDE | Geodesic.LONGITUDE)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[(east_m, north_m)] = out = (float(r["lat2"]), float(r["lon2"]))
        return out

    def offset(self, at: LatLon, east_m: float, north_m: float) -> LatLon:
        """A point displaced by a receiver's error (metres to tens of metres) east and north
        of it, on the ellipsoid's local radii of curvature. Its east and north are the point's
        own, which away from the origin turn from the plane's by the meridians' convergence
        (0.2° at 20 km): immaterial for random error, and a Direct call saved at every fix."""
        lat = math.radians(at[0])
        e2 = _WGS84.f * (2 - _WGS84.f)
        w = math.sqrt(1 - e2 * math.sin(lat) ** 2)
        meridian = _WGS84.a * (1 - e2) / w ** 3
        normal = _WGS84.a / w
        return (at[0] + math.degrees(north_m / meridian),
                at[1] + math.degrees(east_m / (normal * math.cos(lat))))


def distance_m(a: LatLon, b: LatLon) -> float:
    """The geodesic distance between two points."""
    return float(_WGS84.Inverse(a[0], a[1], b[0], b[1], Geodesic.DISTANCE)["s12"])


def position(track: Sequence[Waypoint], t_s: float) -> Point:
    """Where a track is at t_s: straight between waypoints, the last one held."""
    i = bisect_right([w[0] for w in track], t_s) - 1
    if i < 0:
        return track[0][1], track[0][2]
    if i >= len(track) - 1:
        return track[-1][1], track[-1][2]
    (t0, e0, n0), (t1, e1, n1) = track[i], track[i + 1]
    f = (t_s - t0) / (t1 - t0)
    return e0 + f * (e1 - e0), n0 + f * (n1 - n0)


@dataclass(frozen=True)
class Target:
    """What a tag must keep away from: the victim (zone "victim", the victim's track) or a
    fixed zone; `flat` and `geodesic` give the tag's distance to it (0 inside a zone)."""

    zone: str
    victim_track: tuple[Waypoint, ...] | None
    shape: Zone | None
    plane: Plane

    def flat(self, tag: Point, t_s: float) -> float:
        if self.victim_track is not None:
            v = position(self.victim_track, t_s)
            return math.hypot(tag[0] - v[0], tag[1] - v[1])
        assert self.shape is not None
        if self.shape.circle is not None:
            e, n, r = self.shape.circle
            return max(0.0, math.hypot(tag[0] - e, tag[1] - n) - r)
        assert self.shape.polygon is not None
        return to_polygon(tag, self.shape.polygon)

    def geodesic(self, tag: Point, t_s: float) -> float:
        at = self.plane.latlon(*tag)
        if self.victim_track is not None:
            return distance_m(at, self.plane.latlon(*position(self.victim_track, t_s)))
        assert self.shape is not None
        if self.shape.circle is not None:
            e, n, r = self.shape.circle
            return max(0.0, distance_m(at, self.plane.latlon(e, n)) - r)
        assert self.shape.polygon is not None
        # Each corner placed by its geodesic distance and azimuth from the tag (the tag at
        # the centre of an azimuthal equidistant plane): exact to the corners.
        corners = []
        for e, n in self.shape.polygon:
            c = self.plane.latlon(e, n)
            g = _WGS84.Inverse(at[0], at[1], c[0], c[1], Geodesic.DISTANCE | Geodesic.AZIMUTH)
            s, azi = float(g["s12"]), math.radians(float(g["azi1"]))
            corners.append((s * math.sin(azi), s * math.cos(azi)))
        return to_polygon((0.0, 0.0), corners)

    def closest_flat(self, tag_a: Point, tag_b: Point, t_a: float, t_b: float) -> float:
        """A lower bound of the flat distance while the tag moves straight from tag_a (t_a)
        to tag_b (t_b) and the victim straight too."""
        if self.shape is not None and self.shape.polygon is not None:
            poly = self.shape.polygon
            if inside(tag_a, poly) or any(
                    crosses(tag_a, tag_b, poly[i - 1], poly[i]) for i in range(len(poly))):
                return 0.0
            return min(min(to_segment(tag_a, poly[i - 1], poly[i]),
                           to_segment(tag_b, poly[i - 1], poly[i]),
                           to_segment(poly[i], tag_a, tag_b)) for i in range(len(poly)))
        centre_a, centre_b, r = self._centres(t_a, t_b)
        ra = (tag_a[0] - centre_a[0], tag_a[1] - centre_a[1])
        rb = (tag_b[0] - centre_b[0], tag_b[1] - centre_b[1])
        return max(0.0, to_segment((0.0, 0.0), ra, rb) - r)

    def _centres(self, t_a: float, t_b: float) -> tuple[Point, Point, float]:
        if self.victim_track is not None:
            return position(self.victim_track, t_a), position(self.victim_track, t_b), 0.0
        assert self.shape is not None and self.shape.circle is not None
        e, n, r = self.shape.circle
        return (e, n), (e, n), r

    def closest_time(self, tag_a: Point, tag_b: Point, t_a: float, t_b: float) -> float | None:
        """When the tag is closest to a point target on this stretch (None for a polygon)."""
        if self.shape is not None and self.shape.polygon is not None:
            return None
        centre_a, centre_b, _ = self._centres(t_a, t_b)
        ra = (tag_a[0] - centre_a[0], tag_a[1] - centre_a[1])
        d = (tag_b[0] - centre_b[0] - ra[0], tag_b[1] - centre_b[1] - ra[1])
        dd = d[0] * d[0] + d[1] * d[1]
        if dd == 0:
            return None
        f = max(0.0, min(1.0, -(ra[0] * d[0] + ra[1] * d[1]) / dd))
        return t_a + f * (t_b - t_a)


def inside_intervals(tag_track: Sequence[Waypoint], target: Target, radius_m: float,
                     duration_s: float) -> list[tuple[float, float | None]]:
    """The stretches [start, end) when the tag's true position is within radius_m of the
    target (end None: still within at the end). A tag within it at 0 s enters at 0 s."""
    def within(t: float) -> bool:
        tag = position(tag_track, t)
        d = target.flat(tag, t)
        if abs(d - radius_m) > BAND_M:
            return d <= radius_m
        return target.geodesic(tag, t) <= radius_m

    def edge(t_old: float, t_new: float, now: bool) -> float:
        while t_new - t_old > RESOLUTION_S:
            mid = (t_old + t_new) / 2
            if within(mid) == now:
                t_new = mid
            else:
                t_old = mid
        return t_new

    breaks = {0.0, duration_s} | {w[0] for w in tag_track if w[0] < duration_s}
    if target.victim_track is not None:
        breaks |= {w[0] for w in target.victim_track if w[0] < duration_s}
    times = sorted(breaks)
    state = within(0.0)
    out: list[tuple[float, float | None]] = []
    start: float | None = 0.0 if state else None
    for a, b in zip(times, times[1:]):
        tag_a, tag_b = position(tag_track, a), position(tag_track, b)
        vic = target.victim_track
        if tag_a == tag_b and (vic is None or position(vic, a) == position(vic, b)):
            continue  # nobody moves: nothing changes on this stretch
        if not state and target.closest_flat(tag_a, tag_b, a, b) > radius_m + BAND_M:
            continue
        steps = max(1, math.ceil((b - a) / STEP_S))
        samples = {a + (b - a) * k / steps for k in range(1, steps + 1)}
        closest = target.closest_time(tag_a, tag_b, a, b)
        if closest is not None and a < closest < b:
            samples.add(closest)  # a grazing pass shorter than a step is not missed
        previous = a
        for t in sorted(samples):
            now = within(t)
            if now != state:
                at = edge(previous, t, now)
                if now:
                    start = at
                else:
                    assert start is not None
                    out.append((start, at))
                    start = None
                state = now
            previous = t
    if start is not None:
        out.append((start, None))
    return out


def episodes(near: list[tuple[float, float | None]],
             clear: list[tuple[float, float | None]]) -> list[float]:
    """The first entry into `near` within each stretch of `clear` (a wider radius): an alert
    that stays open until the tag is beyond the clearing radius is raised once per such
    stretch."""
    out: list[float] = []
    for c_start, c_end in clear:
        for start, _ in near:
            if start >= c_start and (c_end is None or start < c_end):
                out.append(start)
                break
    return out


def series(points: Sequence[tuple[float, float]], t_s: float) -> float:
    """A piecewise-linear value (battery) at t_s, the ends held."""
    i = bisect_right([p[0] for p in points], t_s) - 1
    if i < 0:
        return points[0][1]
    if i >= len(points) - 1:
        return points[-1][1]
    (t0, v0), (t1, v1) = points[i], points[i + 1]
    return v0 + (v1 - v0) * (t_s - t0) / (t1 - t0)

