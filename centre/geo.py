"""Distances for the proximity rules: geodesic on the WGS84 ellipsoid (geographiclib), from a
point to a point, a circle or a polygon, and a cheap spherical screen that lets the rules skip
the geodesic for pairs that are certainly far apart. Pure functions, no state.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84
_DISTANCE_AZIMUTH = Geodesic.DISTANCE | Geodesic.AZIMUTH
_MEAN_RADIUS_M = 6_371_008.8
# A spherical distance differs from the geodesic by less than 0.6 % (the ellipsoid's flattening
# is 0.34 %); the screen takes 1 % and 10 m off before it calls a pair far.
SCREEN_FACTOR = 0.99
SCREEN_SLACK_M = 10.0


@dataclass(frozen=True)
class Circle:
    """A fixed zone's circle: its centre and radius (a radius of 0 is a point)."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class Polygon:
    """A fixed zone's polygon: at least 3 corners (lat, lon), not closed (the last corner joins
    the first), edges short enough (kilometres) that a straight edge on the local plane is the
    edge meant."""

    corners: tuple[tuple[float, float], ...]


Shape = Circle | Polygon


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The geodesic distance in metres (WGS84)."""
    return float(_WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"])


def spherical_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine on the mean sphere: within 0.6 % of geodesic_m, a tenth of its cost."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * _MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _around(lat: float, lon: float, corners: Sequence[tuple[float, float]]
            ) -> list[tuple[float, float]]:
    """The corners on the azimuthal equidistant plane centred on (lat, lon): each at its
    geodesic distance and azimuth from the centre, so distances from the centre are exact."""
    out = []
    for clat, clon in corners:
        g = _WGS84.Inverse(lat, lon, clat, clon, _DISTANCE_AZIMUTH)
        azimuth = math.radians(float(g["azi1"]))
        out.append((float(g["s12"]) * math.sin(azimuth), float(g["s12"]) * math.cos(azimuth)))
    return out


def _segment_m(ax: float, ay: float, bx: float, by: float) -> float:
    """Distance from the origin to the segment a-b on the plane."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy)


def _inside(points: Sequence[tuple[float, float]]) -> bool:
    """Whether the origin is inside the polygon (crossings of the ray towards +x)."""
    inside = False
    for (ax, ay), (bx, by) in zip(points, [*points[1:], points[0]]):
        if (ay > 0) != (by > 0) and ax + (0 - ay) * (bx - ax) / (by - ay) > 0:
            inside = not inside
    return inside


def to_shape_m(lat: float, lon: float, shape: Shape) -> float:
    """Distance in metres from a point to a zone's shape: 0 inside it, else to its edge."""
    if isinstance(shape, Circle):
        return max(0.0, geodesic_m(lat, lon, shape.lat, shape.lon) - shape.radius_m)
    points = _around(lat, lon, shape.corners)
    if _inside(points):
        return 0.0
    return min(_segment_m(*a, *b) for a, b in zip(points, [*points[1:], points[0]]))


def screen_to_shape_m(lat: float, lon: float, shape: Shape) -> float:
    """A lower bound of to_shape_m, cheap: the pair is certainly at least this far apart."""
    if isinstance(shape, Circle):
        d = spherical_m(lat, lon, shape.lat, shape.lon) - shape.radius_m
    else:
        # The nearest corner bounds the distance to the polygon from above, not below; the
        # polygon's span (its corners' greatest distance from the first) makes it a bound.
        first = shape.corners[0]
        span = max(spherical_m(*first, *c) for c in shape.corners)
        d = spherical_m(lat, lon, *first) - span
    return max(0.0, d * SCREEN_FACTOR - SCREEN_SLACK_M)


def screen_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """A lower bound of geodesic_m, cheap."""
    return max(0.0, spherical_m(lat1, lon1, lat2, lon2) * SCREEN_FACTOR - SCREEN_SLACK_M)


def local_m(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """(east, north) metres of a point near (lat0, lon0) on the local tangent plane, for the
    motion checks (seconds and hundreds of metres, where the plane's error is centimetres)."""
    north = math.radians(lat - lat0) * _MEAN_RADIUS_M
    dlon = (lon - lon0 + 540.0) % 360.0 - 180.0
    east = math.radians(dlon) * _MEAN_RADIUS_M * math.cos(math.radians((lat + lat0) / 2))
    return east, north
