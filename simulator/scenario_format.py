"""Proximity scenario files (docs/proximity.md, "Scenario files"): reads a TOML file and checks
every field into immutable parts; anything wrong raises ScenarioError naming the file and the
field (e.g. "tags[0].gps.sigma_m"). No default is made up where the format gives none."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ScenarioError
from .scenario_geometry import simple_polygon

MAX_DURATION_S = 7 * 86_400
# Every position within this of the origin: there the flat east/north plane and the geodesic
# distances differ by far less than a centimetre per kilometre (scenario_truth relies on it).
MAX_EXTENT_M = 50_000.0
MAX_RADIUS_M = 50_000.0
MAX_ACCURACY_M = 10_000.0  # as the centre accepts (wire/tag.py)
DEFAULT_ALERT_RADIUS_M = 500.0  # issue 14: the default exclusion zone
DEFAULT_ALERT_WITHIN_S = 20.0  # issue 14: p95 from the true crossing to the victim's warning
VICTIM_ZONE = "victim"  # the moving zone's name in the operator's view: no fixed zone takes it
# Tag supervision warnings of the operator (centre/tags.py), for [expect] warnings.
TAG_WARNINGS = frozenset({"tag silent", "tag low battery", "tag tampered"})

Waypoint = tuple[float, float, float]  # t_s, east_m, north_m
Window = tuple[float, float]  # from_s, to_s (the end excluded)


@dataclass(frozen=True)
class Gps:
    """A receiver's error: Gauss-Markov per axis (sigma_m, tau_s) plus white noise (white_m),
    and the accuracy it reports (the 68 % radius)."""

    accuracy_m: float
    sigma_m: float
    tau_s: float
    white_m: float


@dataclass(frozen=True)
class Zone:
    """A fixed zone: exactly one of a circle (east_m, north_m, radius_m) or a polygon."""

    name: str
    circle: tuple[float, float, float] | None = None
    polygon: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class Victim:
    case: str
    alert_radius_m: float
    prealert_radius_m: float
    moving_zone: bool
    track: tuple[Waypoint, ...]
    gps: Gps
    no_fix: tuple[Window, ...]
    zones: tuple[Zone, ...]


@dataclass(frozen=True)
class Jump:
    """The tag's fix nearest at_s is displaced once by (east_m, north_m)."""

    at_s: float
    east_m: float
    north_m: float


@dataclass(frozen=True)
class Delay:
    """Fixes taken in [from_s, to_s) reach the centre delay_s after their fix time."""

    from_s: float
    to_s: float
    delay_s: float


@dataclass(frozen=True)
class TagSpec:
    name: str
    cases: tuple[str, ...]
    interval_s: int
    track: tuple[Waypoint, ...]
    gps: Gps
    jumps: tuple[Jump, ...]
    silent: tuple[Window, ...]
    tamper_at_s: float | None
    battery: tuple[tuple[float, float], ...]  # (t_s, percent) points; empty: not reported
    delayed: tuple[Delay, ...]
    buffered: tuple[Window, ...]  # fixes held in the tag and uploaded together at to_s


@dataclass(frozen=True)
class Expect:
    alerts: dict[str, int]
    prealerts: dict[str, tuple[int, int]]
    alert_within_s: float
    flags: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    path: Path
    title: str
    about: str
    seed: int
    duration_s: float
    origin: tuple[float, float]
    victims: tuple[Victim, ...]
    tags: tuple[TagSpec, ...]
    expect: Expect


class _Reader:
    """Checks one file's values; every failure names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.duration_s = 0.0

    def fail(self, field: str, detail: str) -> ScenarioError:
        return ScenarioError(str(self.path), field, detail)

    def table(self, value: object, field: str, required: set[str],
              optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, "must be a table")
        for name in sorted(required - set(value)):
            raise self.fail(f"{field}.{name}" if field else name, "missing")
        for name in sorted(set(value) - required - optional):
            raise self.fail(f"{field}.{name}" if field else name, "unknown field")
        return value

    def number(self, value: object, field: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, "must be a number")
        if not (math.isfinite(value) and low <= value <= high):
            raise self.fail(field, f"must be from {low:g} to {high:g}")
        return float(value)

    def integer(self, value: object, field: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, "must be a whole number")
        if not low <= value <= high:
            raise self.fail(field, f"must be from {low} to {high}")
        return value

    def text(self, value: object, field: str, max_len: int = 4000) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "must be a non-empty string")
        if len(value) > max_len:
            raise self.fail(field, f"at most {max_len} characters")
        return value

    def name(self, value: object, field: str) -> str:
        text = self.text(value, field, 40)
        if not all(c.isalnum() or c in "-_" for c in text):
            raise self.fail(field, "letters, digits, '-' and '_' only")
        return text

    def array(self, value: object, field: str, min_len: int = 0) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(field, "must be an array")
        if len(value) < min_len:
            raise self.fail(field, f"needs at least {min_len} item{'s' * (min_len != 1)}")
        return value

    def time(self, value: object, field: str) -> float:
        return self.number(value, field, 0.0, self.duration_s)

    def metres(self, value: object, field: str) -> float:
        return self.number(value, field, -MAX_EXTENT_M, MAX_EXTENT_M)

    def track(self, value: object, field: str) -> tuple[Waypoint, ...]:
        points: list[Waypoint] = []
        for i, raw in enumerate(self.array(value, field, 1)):
            where = f"{field}[{i}]"
            if not isinstance(raw, list) or len(raw) != 3:
                raise self.fail(where, "must be [t_s, east_m, north_m]")
            # A waypoint may lie beyond duration_s: the route goes on, the scenario ends.
            t = self.number(raw[0], where + "[0]", 0.0, MAX_DURATION_S)
            e, n = self.metres(raw[1], where + "[1]"), self.metres(raw[2], where + "[2]")
            if math.hypot(e, n) > MAX_EXTENT_M:
                raise self.fail(where, f"more than {MAX_EXTENT_M:g} m from the origin")
            if not points and t != 0:
                raise self.fail(where + "[0]", "the first waypoint is at 0 s")
            if points and t <= points[-1][0]:
                raise self.fail(where + "[0]", "waypoint times must increase")
            points.append((t, e, n))
        return tuple(points)

    def windows(self, value: object, field: str) -> tuple[Window, ...]:
        out: list[Window] = []
        for i, raw in enumerate(self.array(value, field)):
            where = f"{field}[{i}]"
            if not isinstance(raw, list) or len(raw) != 2:
                raise self.fail(where, "must be [from_s, to_s]")
            a, b = self.time(raw[0], where + "[0]"), self.time(raw[1], where + "[1]")
            if b <= a:
                raise self.fail(where, "must end after it begins")
            if out and a < out[-1][1]:
                raise self.fail(where, "windows must be in order and must not overlap")
            out.append((a, b))
        return tuple(out)

    def gps(self, value: object, field: str) -> Gps:
        g = self.table(value, field, {"accuracy_m", "sigma_m", "tau_s"}, {"white_m"})
        sigma = self.number(g["sigma_m"], field + ".sigma_m", 0.0, 5_000.0)
        return Gps(self.number(g["accuracy_m"], field + ".accuracy_m", 0.1, MAX_ACCURACY_M),
                   sigma, self.number(g["tau_s"], field + ".tau_s", 1.0, 86_400.0),
                   self.number(g.get("white_m", sigma / 5), field + ".white_m", 0.0, 1_000.0))

    def zone(self, value: object, field: str) -> Zone:
        z = self.table(value, field, {"name"}, {"circle", "polygon"})
        name = self.name(z["name"], field + ".name")
        if name == VICTIM_ZONE:
            raise self.fail(field + ".name", f"{VICTIM_ZONE!r} is the moving zone's name")
        if ("circle" in z) == ("polygon" in z):
            raise self.fail(field, "needs exactly one of circle or polygon")
        if "circle" in z:
            c = self.array(z["circle"], field + ".circle")
            if len(c) != 3:
                raise self.fail(field + ".circle", "must be [east_m, north_m, radius_m]")
            return Zone(name, circle=(self.metres(c[0], field + ".circle[0]"),
                                      self.metres(c[1], field + ".circle[1]"),
                                      self.number(c[2], field + ".circle[2]", 1.0,
                                                  MAX_RADIUS_M)))
        points: list[tuple[float, float]] = []
        for i, p in enumerate(self.array(z["polygon"], field + ".polygon", 3)):
            if not isinstance(p, list) or len(p) != 2:
                raise self.fail(f"{field}.polygon[{i}]", "must be [east_m, north_m]")
            points.append((self.metres(p[0], f"{field}.polygon[{i}][0]"),
                           self.metres(p[1], f"{field}.polygon[{i}][1]")))
        if not simple_polygon(points):
            raise self.fail(field + ".polygon", "must enclose an area and not cross itself")
        return Zone(name, polygon=tuple(points))

    def victim(self, value: object, field: str) -> Victim:
        v = self.table(value, field, {"case"}, {"alert_radius_m", "prealert_radius_m",
                                                "moving_zone", "track", "gps", "no_fix",
                                                "zones"})
        case = self.name(v["case"], field + ".case")
        radius = self.number(v.get("alert_radius_m", DEFAULT_ALERT_RADIUS_M),
                             field + ".alert_radius_m", 10.0, MAX_RADIUS_M)
        prealert = self.number(v.get("prealert_radius_m", 2 * radius),
                               field + ".prealert_radius_m", 10.0, 2 * MAX_RADIUS_M)
        if prealert <= radius:
            raise self.fail(field + ".prealert_radius_m", "must be larger than alert_radius_m")
        moving = v.get("moving_zone", True)
        if not isinstance(moving, bool):
            raise self.fail(field + ".moving_zone", "must be true or false")
        if moving:
            for need in ("track", "gps"):
                if need not in v:
                    raise self.fail(f"{field}.{need}", "missing (needed for a moving zone)")
        zones = tuple(self.zone(z, f"{field}.zones[{i}]")
                      for i, z in enumerate(self.array(v.get("zones", []), field + ".zones")))
        if len({z.name for z in zones}) != len(zones):
            raise self.fail(field + ".zones", "each zone name only once")
        if not moving and not zones:
            raise self.fail(field + ".zones", "a case without a moving zone needs a fixed zone")
        track = self.track(v["track"], field + ".track") if "track" in v else ((0.0, 0.0, 0.0),)
        gps = self.gps(v["gps"], field + ".gps") if "gps" in v else Gps(10.0, 5.0, 120.0, 1.0)
        return Victim(case, radius, prealert, moving, track, gps,
                      self.windows(v.get("no_fix", []), field + ".no_fix"), zones)

    def tag(self, value: object, field: str, cases: set[str]) -> TagSpec:
        t = self.table(value, field, {"name", "cases", "interval_s", "track", "gps"},
                       {"jumps", "silent", "tamper_at_s", "battery", "delayed", "buffered"})
        linked = [self.name(c, f"{field}.cases[{i}]")
                  for i, c in enumerate(self.array(t["cases"], field + ".cases", 1))]
        for c in linked:
            if c not in cases:
                raise self.fail(field + ".cases", f"no victim has case {c!r}")
        if len(set(linked)) != len(linked):
            raise self.fail(field + ".cases", "each case only once")
        silent = self.windows(t.get("silent", []), field + ".silent")
        jumps: list[Jump] = []
        for i, raw in enumerate(self.array(t.get("jumps", []), field + ".jumps")):
            where = f"{field}.jumps[{i}]"
            j = self.table(raw, where, {"at_s", "east_m", "north_m"}, set())
            jump = Jump(self.time(j["at_s"], where + ".at_s"),
                        self.metres(j["east_m"], where + ".east_m"),
                        self.metres(j["north_m"], where + ".north_m"))
            if any(a <= jump.at_s < b for a, b in silent):
                raise self.fail(where + ".at_s", "falls in a silent window: no fix to displace")
            if jumps and jump.at_s <= jumps[-1].at_s:
                raise self.fail(where + ".at_s", "jumps must be in time order")
            jumps.append(jump)
        battery: list[tuple[float, float]] = []
        for i, raw in enumerate(self.array(t.get("battery", []), field + ".battery")):
            where = f"{field}.battery[{i}]"
            if not isinstance(raw, list) or len(raw) != 2:
                raise self.fail(where, "must be [t_s, percent]")
            point = (self.time(raw[0], where + "[0]"), self.number(raw[1], where + "[1]",
                                                                   0.0, 100.0))
            if battery and point[0] <= battery[-1][0]:
                raise self.fail(where + "[0]", "times must increase")
            battery.append(point)
        delayed: list[Delay] = []
        for i, raw in enumerate(self.array(t.get("delayed", []), field + ".delayed")):
            where = f"{field}.delayed[{i}]"
            if not isinstance(raw, list) or len(raw) != 3:
                raise self.fail(where, "must be [from_s, to_s, delay_s]")
            window = self.windows([raw[:2]], where)[0]
            if delayed and window[0] < delayed[-1].to_s:
                raise self.fail(where, "windows must be in order and must not overlap")
            delayed.append(Delay(*window, self.number(raw[2], where + "[2]", 0.001, 86_400.0)))
        buffered = self.windows(t.get("buffered", []), field + ".buffered")
        for a, b in buffered:
            if any(d.from_s < b and a < d.to_s for d in delayed):
                raise self.fail(field + ".buffered", "overlaps a delayed window")
        tamper = t.get("tamper_at_s")
        return TagSpec(self.name(t["name"], field + ".name"), tuple(linked),
                       self.integer(t["interval_s"], field + ".interval_s", 1, 3600),
                       self.track(t["track"], field + ".track"), self.gps(t["gps"], field + ".gps"),
                       tuple(jumps), silent,
                       None if tamper is None else self.time(tamper, field + ".tamper_at_s"),
                       tuple(battery), tuple(delayed), buffered)

    def expect(self, value: object, cases: list[str]) -> Expect:
        e = self.table(value, "expect", {"alerts"},
                       {"prealerts", "alert_within_s", "flags", "warnings"})
        alerts_raw = self.table(e["alerts"], "expect.alerts", set(cases), set())
        alerts = {c: self.integer(alerts_raw[c], f"expect.alerts.{c}", 0, 10_000) for c in cases}
        prealerts: dict[str, tuple[int, int]] = {}
        raw = self.table(e.get("prealerts", {}), "expect.prealerts", set(), set(cases))
        for c, pair in raw.items():
            where = f"expect.prealerts.{c}"
            if not isinstance(pair, list) or len(pair) != 2:
                raise self.fail(where, "must be [min, max]")
            low = self.integer(pair[0], where + "[0]", 0, 10_000)
            prealerts[c] = (low, self.integer(pair[1], where + "[1]", low, 10_000))
        flags = tuple(self.text(f, f"expect.flags[{i}]", 60)
                      for i, f in enumerate(self.array(e.get("flags", []), "expect.flags")))
        warnings = tuple(self.text(w, f"expect.warnings[{i}]", 60)
                         for i, w in enumerate(self.array(e.get("warnings", []),
                                                          "expect.warnings")))
        for i, w in enumerate(warnings):
            if w not in TAG_WARNINGS:
                raise self.fail(f"expect.warnings[{i}]",
                                f"one of {', '.join(sorted(TAG_WARNINGS))}")
        return Expect(alerts, prealerts,
                      self.number(e.get("alert_within_s", DEFAULT_ALERT_WITHIN_S),
                                  "expect.alert_within_s", 0.001, 86_400.0), flags, warnings)


def parse(data: dict[str, Any], path: Path) -> Spec:
    """Checks a parsed scenario document."""
    r = _Reader(path)
    top = r.table(data, "", {"title", "about", "seed", "duration_s", "origin", "victims",
                             "tags", "expect"}, set())
    title = r.text(top["title"], "title", 120)
    about = r.text(top["about"], "about")
    seed = r.integer(top["seed"], "seed", 0, 2 ** 63 - 1)
    r.duration_s = r.number(top["duration_s"], "duration_s", 1.0, MAX_DURATION_S)
    origin = r.array(top["origin"], "origin")
    if len(origin) != 2:
        raise r.fail("origin", "must be [lat, lon]")
    lat = r.number(origin[0], "origin[0]", -80.0, 80.0)  # no polar scenarios: the plane holds
    lon = r.number(origin[1], "origin[1]", -180.0, 180.0)
    victims = tuple(r.victim(v, f"victims[{i}]")
                    for i, v in enumerate(r.array(top["victims"], "victims", 1)))
    cases = [v.case for v in victims]
    if len(set(cases)) != len(cases):
        raise r.fail("victims", "each case only once")
    tags = tuple(r.tag(t, f"tags[{i}]", set(cases))
                 for i, t in enumerate(r.array(top["tags"], "tags", 1)))
    names = [t.name for t in tags] + cases
    if len(set(names)) != len(names):
        raise r.fail("tags", "each tag name only once, and none a victim's case name")
    return Spec(path, title, about, seed, r.duration_s, (lat, lon), victims, tags,
                r.expect(top["expect"], cases))


def read(path: Path) -> Spec:
    """Reads and checks one scenario file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ScenarioError(str(path), "file", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(str(path), "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), "toml", str(exc)) from None
    return parse(data, path)

