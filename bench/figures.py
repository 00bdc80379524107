"""What a benchmark section reports: figures with their target and physical floor, the options
every section gets, and how a report is rendered for people (a table) and machines (JSON)."""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class Better(str, Enum):
    """Which direction meets a target."""

    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True)
class Figure:
    """One measured or modelled number.

    `target` is the figure the product must reach (None: reported for scale only); `floor`
    is the physical or protocol limit that no software can beat, in words with its number
    ("one connection interval, 7.5 ms"), or "" when there is none worth stating.
    """

    section: str
    name: str
    value: float | None
    unit: str
    target: float | None = None
    better: Better = Better.LOWER
    floor: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the value reaches the target; None without a target or a value."""
        if self.target is None or self.value is None:
            return None
        if self.better is Better.LOWER:
            return self.value <= self.target
        return self.value >= self.target

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["better"] = self.better.value
        out["met"] = self.met
        return out


@dataclass(frozen=True)
class Options:
    """What every section is given.

    `scale` is 1.0 for the real benchmark; tests pass a small scale so a section runs in
    seconds (press counts, frame counts and run counts shrink with it, never below 1).
    `runs` is how many times a noisy measurement is repeated (medians of the runs).
    """

    root: Path
    scale: float = 1.0
    runs: int = 3
    presses: int = 500
    seed: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def count(self, full: int) -> int:
        """`full` scaled down for a quick run, at least 1."""
        return max(1, round(full * self.scale))


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, int(len(ordered) * q / 100 + 0.999999) - 1))
    return ordered[rank]


def rate(n: int, fn: Callable[[int], object]) -> float:
    """How many calls a second `fn(0)` ... `fn(n - 1)` took, one after the other."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 10 else f"{value:.1f} {unit}"


def _value(figure: Figure) -> str:
    shown = _number(figure.value, figure.unit)
    if figure.target is not None and figure.value is not None \
            and figure.value != figure.target \
            and shown == _number(figure.target, figure.unit):
        # Rounded, value and target would look equal: show the digits that tell them apart.
        return f"{figure.value:.6g} {figure.unit}"
    return shown


def _floor(figure: Figure, previous: Figure | None) -> str:
    """The floor, or a mark that it is the row above's (the tables repeat a section's)."""
    if previous is not None and figure.floor and figure.floor == previous.floor \
            and figure.section == previous.section:
        return "(as above)"
    return figure.floor


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    sign = "≤" if figure.better is Better.LOWER else "≥"
    verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
    return f"{sign} {figure.target:,g} {figure.unit} {verdict}".rstrip()


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table, one section after another, as `msa bench` prints it."""
    rows = [("figure", "value", "target", "floor")]
    section = None
    previous: Figure | None = None
    lines: list[str] = []
    for f in figures:
        if f.section != section:
            section = f.section
            rows.append((f"[{section}]", "", "", ""))
        rows.append((f.name, _value(f), _target(f), _floor(f, previous)))
        previous = f
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(line.rstrip() for line in lines)


def to_json(figures: Sequence[Figure], meta: dict[str, Any]) -> str:
    return json.dumps({"meta": meta, "figures": [f.as_dict() for f in figures]}, indent=2,
                      ensure_ascii=False)


def markdown(figures: Sequence[Figure]) -> str:
    """The same table in Markdown, for docs/performance.md."""
    lines = ["| section | figure | value | target | floor |", "|---|---|---|---|---|"]
    previous: Figure | None = None
    for f in figures:
        cells = (f.section, f.name, _value(f), _target(f), _floor(f, previous))
        previous = f
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
