"""Flat geometry of scenario files (east/north metres): point to segment and to polygon
distances, inside tests and crossing edges, for checking zones and screening the ground truth
(scenario_format.py, scenario_truth.py)."""
from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]


def to_segment(p: Point, a: Point, b: Point) -> float:
    """Distance from p to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy)
                                                / length2))
    return math.hypot(p[0] - a[0] - f * dx, p[1] - a[1] - f * dy)


def inside(p: Point, polygon: Sequence[Point]) -> bool:
    """Whether p is inside the polygon (even-odd rule)."""
    within = False
    for i in range(len(polygon)):
        (x1, y1), (x2, y2) = polygon[i - 1], polygon[i]
        if (y1 > p[1]) != (y2 > p[1]) and p[0] < x1 + (p[1] - y1) * (x2 - x1) / (y2 - y1):
            within = not within
    return within


def to_polygon(p: Point, polygon: Sequence[Point]) -> float:
    """Distance from p to a polygon's boundary, 0 inside."""
    if inside(p, polygon):
        return 0.0
    return min(to_segment(p, polygon[i - 1], polygon[i]) for i in range(len(polygon)))


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def crosses(p: Point, q: Point, r: Point, s: Point) -> bool:
    """Whether the segments p-q and r-s cross (touching at an end point does not count)."""
    d1, d2, d3, d4 = _cross(r, s, p), _cross(r, s, q), _cross(p, q, r), _cross(p, q, s)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0) and 0 not in (d1, d2, d3, d4)


def simple_polygon(points: Sequence[Point]) -> bool:
    """An area of at least 1 m², no corner twice and no two edges crossing."""
    n = len(points)
    area = sum(_cross((0.0, 0.0), points[i], points[(i + 1) % n]) for i in range(n)) / 2
    if abs(area) < 1.0 or len(set(points)) != n:
        return False
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if not (i == 0 and j == n - 1) and crosses(*edges[i], *edges[j]):
                return False
    return True
