"""Proximity scenarios for the replay (`msa sim proximity`, docs/proximity.md "Scenario
files"): a checked scenario file (scenario_format.py), the timeline of what its tags and
victims' hosts report, deterministic from its seed, and its ground truth (scenario_truth.py).

Receiver error, per party and axis: a first-order Gauss-Markov process (std sigma_m, time
constant tau_s, stepped every tau_s / 30 (1 to 10 s) and interpolated between, which keeps
98 % of its std between steps) plus white noise (std white_m)
drawn afresh for each fix; the reported accuracy scatters around accuracy_m (x e^(0.25 z)),
as a phone's estimate does. The same seed gives the same timeline, whatever is asked first."""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

from .errors import ScenarioError
from .scenario_format import (VICTIM_ZONE, Expect, Gps, Spec, TagSpec, Victim, Waypoint,
                              read)
from .scenario_truth import Plane, Target, episodes, inside_intervals, position, series

VICTIM_REPORT_S = 30  # the victim's host reports every 30 s outside a pre-alert (issue 14)
ACCURACY_SCATTER = 0.25  # the reported accuracy's log-normal spread
STEPS_PER_TAU = 30  # the Gauss-Markov process is stepped every tau_s / 30, from 1 to 10 s


@dataclass(frozen=True)
class TagSample:
    """One report of a tag: fixed at t_s, reaching the centre at sent_s (later than t_s only
    in a delayed or buffered window). `jumped` marks a fix displaced by a stated jump."""

    t_s: float
    tag: str
    lat: float
    lon: float
    accuracy_m: float
    battery_pct: float | None
    tamper: bool
    sent_s: float
    jumped: bool = False


@dataclass(frozen=True)
class VictimSample:
    """One report of a victim's host at t_s: (lat, lon, accuracy_m), or None without a fix."""

    t_s: float
    case: str
    fix: tuple[float, float, float] | None


@dataclass(frozen=True)
class Crossing:
    """A tag's true track coming within a radius of a zone ("victim" or a fixed zone's name)."""

    t_s: float
    tag: str
    zone: str


@dataclass(frozen=True)
class Interval:
    """A stretch when a tag's true track is within a radius of a zone (end None: to the end)."""

    tag: str
    zone: str
    start_s: float
    end_s: float | None


class _Noise:
    """One party's receiver error, deterministic from (seed, party)."""

    def __init__(self, seed: int, party: str, gps: Gps, duration_s: float) -> None:
        self.key = f"msa-scenario:{seed}:{party}"
        self.gps = gps
        rng = random.Random(self.key)
        self.grid_s = min(10.0, max(1.0, gps.tau_s / STEPS_PER_TAU))
        phi = math.exp(-self.grid_s / gps.tau_s)
        step = gps.sigma_m * math.sqrt(1 - phi * phi)
        n = math.ceil(duration_s / self.grid_s) + 2
        self.axes: list[list[float]] = []
        for _ in range(2):
            x = rng.gauss(0.0, gps.sigma_m)  # the process starts in its stationary state
            values = [x]
            for _ in range(n - 1):
                x = phi * x + rng.gauss(0.0, step)
                values.append(x)
            self.axes.append(values)

    def _normals(self, t_s: float) -> tuple[float, float, float]:
        digest = hashlib.blake2b(f"{self.key}:{round(t_s * 1000)}".encode(),
                                 digest_size=32).digest()
        u = [(int.from_bytes(digest[i:i + 8], "big") + 0.5) / 2 ** 64 for i in (0, 8, 16, 24)]
        r1, r2 = math.sqrt(-2 * math.log(u[0])), math.sqrt(-2 * math.log(u[2]))
        return (r1 * math.cos(2 * math.pi * u[1]), r1 * math.sin(2 * math.pi * u[1]),
                r2 * math.cos(2 * math.pi * u[3]))

    def error(self, t_s: float) -> tuple[float, float, float]:
        """(east_m, north_m, reported accuracy_m) at t_s."""
        i = min(int(t_s // self.grid_s), len(self.axes[0]) - 2)
        f = t_s / self.grid_s - i
        z_e, z_n, z_a = self._normals(t_s)
        east = self.axes[0][i] + f * (self.axes[0][i + 1] - self.axes[0][i])
        north = self.axes[1][i] + f * (self.axes[1][i + 1] - self.axes[1][i])
        accuracy = round(self.gps.accuracy_m * math.exp(ACCURACY_SCATTER * z_a), 1)
        return (east + self.gps.white_m * z_e, north + self.gps.white_m * z_n,
                max(0.1, accuracy))


def _within(windows: tuple[tuple[float, float], ...], t_s: float) -> bool:
    return any(a <= t_s < b for a, b in windows)


class Scenario:
    """A checked scenario file: its fields (as the file gives them), the timeline of reports
    and the ground truth."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.path: Path = spec.path
        self.title = spec.title
        self.about = spec.about
        self.seed = spec.seed
        self.duration_s = spec.duration_s
        self.origin = spec.origin
        self.victims: tuple[Victim, ...] = spec.victims
        self.tags: tuple[TagSpec, ...] = spec.tags
        self.expect: Expect = spec.expect
        self.plane = Plane(spec.origin)
        self._noise: dict[str, _Noise] = {}

    def __repr__(self) -> str:
        return f"Scenario({self.path.name!r}, {self.title!r})"

    def victim(self, case: str) -> Victim:
        for v in self.victims:
            if v.case == case:
                return v
        raise ScenarioError(str(self.path), "case", f"no victim has case {case!r}")

    def tag(self, name: str) -> TagSpec:
        for t in self.tags:
            if t.name == name:
                return t
        raise ScenarioError(str(self.path), "tag", f"no tag named {name!r}")

    def _party(self, party: str) -> tuple[tuple[Waypoint, ...], Gps]:
        for v in self.victims:
            if v.case == party:
                return v.track, v.gps
        t = self.tag(party)
        return t.track, t.gps

    def _error(self, party: str, t_s: float) -> tuple[float, float, float]:
        if party not in self._noise:
            self._noise[party] = _Noise(self.seed, party, self._party(party)[1],
                                        self.duration_s)
        return self._noise[party].error(t_s)

    def true_position(self, party: str, t_s: float) -> tuple[float, float]:
        """Where a tag (by name) or a victim (by case) truly is at t_s: (lat, lon)."""
        return self.plane.latlon(*position(self._party(party)[0], t_s))

    def _fix(self, party: str, t_s: float, shift: tuple[float, float] = (0.0, 0.0)
             ) -> tuple[float, float, float]:
        e, n = position(self._party(party)[0], t_s)
        de, dn, accuracy = self._error(party, t_s)
        if shift != (0.0, 0.0):  # a jump of hundreds of metres: placed by its geodesic
            lat, lon = self.plane.latlon(e + de + shift[0], n + dn + shift[1])
        else:
            lat, lon = self.plane.offset(self.plane.latlon(e, n), de, dn)
        return round(lat, 7), round(lon, 7), accuracy

    def victim_fix(self, case: str, t_s: float) -> tuple[float, float, float] | None:
        """What the victim's host would report at t_s (any time, e.g. every 10 s during a
        pre-alert): (lat, lon, accuracy_m), or None inside a no_fix window."""
        if _within(self.victim(case).no_fix, t_s):
            return None
        return self._fix(case, t_s)

    def tag_times(self, name: str) -> list[float]:
        """When the tag takes a fix: every interval from 0 s, except in its silent windows."""
        tag = self.tag(name)
        count = math.ceil(self.duration_s / tag.interval_s)
        return [float(k * tag.interval_s) for k in range(count)
                if not _within(tag.silent, k * tag.interval_s)]

    def tag_samples(self, name: str) -> list[TagSample]:
        """The tag's reports in fix-time order (jumps, battery, tamper and delays applied)."""
        tag = self.tag(name)
        times = self.tag_times(name)
        shifts: dict[float, tuple[float, float]] = {}
        for jump in tag.jumps:
            if times:
                nearest = min(times, key=lambda t: (abs(t - jump.at_s), t))
                shifts[nearest] = (jump.east_m, jump.north_m)
        out = []
        for t in times:
            lat, lon, accuracy = self._fix(name, t, shifts.get(t, (0.0, 0.0)))
            battery = None if not tag.battery else round(series(tag.battery, t), 1)
            sent = t
            for d in tag.delayed:
                if d.from_s <= t < d.to_s:
                    sent = t + d.delay_s
            for a, b in tag.buffered:
                if a <= t < b:
                    sent = b
            out.append(TagSample(t, name, lat, lon, accuracy, battery,
                                 tag.tamper_at_s is not None and t >= tag.tamper_at_s, sent,
                                 t in shifts))
        return out

    def victim_samples(self, case: str) -> list[VictimSample]:
        """The host's reports every VICTIM_REPORT_S (none for a case without a moving zone:
        its host has nothing to report)."""
        if not self.victim(case).moving_zone:
            return []
        count = math.ceil(self.duration_s / VICTIM_REPORT_S)
        return [VictimSample(float(k * VICTIM_REPORT_S), case,
                             self.victim_fix(case, k * VICTIM_REPORT_S)) for k in range(count)]

    def timeline(self) -> list[TagSample | VictimSample]:
        """Every report of the scenario in the order they reach the centre (a tag's by
        sent_s); at the same moment victims first, then by name and fix time."""
        items: list[TagSample | VictimSample] = []
        for v in self.victims:
            items.extend(self.victim_samples(v.case))
        for t in self.tags:
            items.extend(self.tag_samples(t.name))

        def key(s: TagSample | VictimSample) -> tuple[float, int, str, float]:
            if isinstance(s, TagSample):
                return s.sent_s, 1, s.tag, s.t_s
            return s.t_s, 0, s.case, s.t_s
        return sorted(items, key=key)

    def targets(self, case: str) -> list[Target]:
        """The case's zones: the victim (if a moving zone) and each fixed zone."""
        victim = self.victim(case)
        out = [Target(VICTIM_ZONE, victim.track, None, self.plane)] if victim.moving_zone else []
        return out + [Target(z.name, None, z, self.plane) for z in victim.zones]

    def true_intervals(self, case: str, radius_m: float) -> list[Interval]:
        """When each of the case's tags is truly within radius_m of each of its zones (the
        victim's true position for a moving zone; a fixed zone's edge, 0 inside)."""
        out = []
        for tag in self.tags:
            if case not in tag.cases:
                continue
            for target in self.targets(case):
                out += [Interval(tag.name, target.zone, a, b) for a, b in
                        inside_intervals(tag.track, target, radius_m, self.duration_s)]
        return sorted(out, key=lambda i: (i.start_s, i.tag, i.zone))

    def crossings(self, case: str, radius_m: float) -> list[Crossing]:
        """Each time a tag's true track goes from beyond radius_m of a zone to within it."""
        return [Crossing(i.start_s, i.tag, i.zone) for i in self.true_intervals(case, radius_m)]

    def true_crossings(self, case: str, radius_m: float) -> list[float]:
        """The times of crossings(case, radius_m), sorted (one per tag and zone crossed)."""
        return [c.t_s for c in self.crossings(case, radius_m)]

    def true_episodes(self, case: str, radius_m: float, clear_m: float) -> list[Crossing]:
        """The crossings of radius_m that a correct alert would raise when it clears only
        beyond radius_m + clear_m: the first crossing after each time the tag was that far."""
        near = self.true_intervals(case, radius_m)
        far = self.true_intervals(case, radius_m + clear_m)
        out = []
        for tag in {i.tag for i in far}:
            for target in {i.zone for i in far if i.tag == tag}:
                starts = episodes(
                    [(i.start_s, i.end_s) for i in near if (i.tag, i.zone) == (tag, target)],
                    [(i.start_s, i.end_s) for i in far if (i.tag, i.zone) == (tag, target)])
                out += [Crossing(t, tag, target) for t in starts]
        return sorted(out, key=lambda c: (c.t_s, c.tag, c.zone))


def load(path: Path | str) -> Scenario:
    """Reads and checks one scenario file (ScenarioError names the file and the field)."""
    return Scenario(read(Path(path)))


def load_dir(folder: Path | str) -> list[Scenario]:
    """Every *.toml scenario of a folder, sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScenarioError(str(folder), "folder", "not a folder")
    return [load(p) for p in sorted(folder.glob("*.toml"), key=lambda p: p.name)]


def shipped() -> Path:
    """The folder of scenarios shipped with msa."""
    return Path(__file__).resolve().parent / "scenarios"
