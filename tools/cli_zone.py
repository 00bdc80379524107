"""The proximity part of a case file (msa case proximity, zone-add, zone-remove, tag-link): the
court order's alert radius and pre-alert radius, whether the zone moves with the victim, her
fixed zones (home, work, school) as circles or polygons, and a tag linked to a further case
(one offender, two victims). Registered in tools/cli_case.py's group; docs/proximity.md."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from .dbopt import RegistryLocation, require_registry
from .errors import ToolError

if TYPE_CHECKING:
    from msa.centre.proxstore import ProximityStore

T = TypeVar("T")

_REGISTRY = click.option("--registry", "registry_path", required=True, type=RegistryLocation(),
                         help="The centre's registry (STATE_DIR/registry.db of msa centre), or"
                              " its PostgreSQL database (postgresql://USER@HOST:PORT/DBNAME).")
_CASE = click.option("--case", "case_ref", required=True, help="The case reference.")


def _with_store(registry_path: Path | str, action: Callable[[ProximityStore], T]) -> T:
    from msa.centre.proxstore import ProximityStore
    from msa.centre.registry import Registry

    require_registry(registry_path)
    registry = Registry(registry_path)
    try:
        store = ProximityStore(registry)
        try:
            return action(store)
        finally:
            store.close()
    finally:
        registry.close()


def _numbers(text: str, count: int, option: str) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise click.BadParameter(f"expected {count} numbers separated by commas",
                                 param_hint=option)
    return values


@click.command("proximity")
@_REGISTRY
@_CASE
@click.option("--radius-m", type=click.FloatRange(50, 50_000), required=True,
              help="The alert radius R of the court order (metres; Spain's default is 500).")
@click.option("--prealert-m", type=click.FloatRange(50, 100_000), default=None,
              help="The pre-alert radius (default 2R), for the operator only.")
@click.option("--moving/--fixed-only", default=True, show_default=True,
              help="Whether a zone moves with the victim (her host reports her position), or"
                   " only her fixed zones count.")
def case_proximity(registry_path: Path | str, case_ref: str, radius_m: float,
                   prealert_m: float | None, moving: bool) -> None:
    """Set a case's proximity radii (a running centre applies them within 10 s).

    Example: msa case proximity --registry /var/lib/msa-centre/registry.db --case
    GENT-2026-0147 --radius-m 500
    """
    rules = _with_store(registry_path, lambda s: s.set_rules(case_ref, radius_m, prealert_m,
                                                             moving))
    click.echo(f"case {case_ref}: alert within {rules.alert_radius_m:g} m, pre-alert within"
               f" {rules.prealert_radius_m:g} m; "
               + ("a zone moves with the victim" if rules.moving_zone else "fixed zones only"))


@click.command("zone-add")
@_REGISTRY
@_CASE
@click.option("--name", required=True, help="The zone's name: home, work, school, ...")
@click.option("--circle", default=None, metavar="LAT,LON,RADIUS_M",
              help="A circle: its centre and radius (0: a point).")
@click.option("--polygon", default=None, metavar="LAT,LON;LAT,LON;...",
              help="A polygon: 3 to 64 corners, in order, not closed.")
def case_zone_add(registry_path: Path | str, case_ref: str, name: str, circle: str | None,
                  polygon: str | None) -> None:
    """Add a fixed zone to a case: the alert is raised when the tag comes within the case's
    radius of the zone's edge (or inside it).

    Example: msa case zone-add --registry /var/lib/msa-centre/registry.db --case
    GENT-2026-0147 --name home --circle 51.0543,3.7174,30
    """
    from msa.centre.proxstore import parse_shape

    if (circle is None) == (polygon is None):
        raise ToolError("give one of --circle and --polygon", "see msa case zone-add --help")
    if circle is not None:
        lat, lon, radius = _numbers(circle, 3, "--circle")
        text = f'{{"circle": {{"lat": {lat!r}, "lon": {lon!r}, "radius_m": {radius!r}}}}}'
    else:
        assert polygon is not None
        corners = [_numbers(c, 2, "--polygon") for c in polygon.split(";") if c.strip()]
        text = '{"polygon": [' + ", ".join(f"[{a!r}, {b!r}]" for a, b in corners) + "]}"
    try:
        shape = parse_shape(text)
    except ValueError as exc:
        raise ToolError(f"zone {name}: {exc}", "see msa case zone-add --help") from None
    _with_store(registry_path, lambda s: s.add_zone(case_ref, name, shape))
    click.echo(f"case {case_ref}: zone {name} added")


@click.command("zone-remove")
@_REGISTRY
@_CASE
@click.option("--name", required=True, help="The zone to remove.")
def case_zone_remove(registry_path: Path | str, case_ref: str, name: str) -> None:
    """Remove a fixed zone from a case.

    Example: msa case zone-remove --registry /var/lib/msa-centre/registry.db --case
    GENT-2026-0147 --name work
    """
    if not _with_store(registry_path, lambda s: s.remove_zone(case_ref, name)):
        raise ToolError(f"case {case_ref} has no zone {name!r}", "see msa case show")
    click.echo(f"case {case_ref}: zone {name} removed")


@click.command("tag-link")
@_REGISTRY
@click.option("--tag", "tag_id", required=True, help="A tag in service (of another case).")
@_CASE
def case_tag_link(registry_path: Path | str, tag_id: str, case_ref: str) -> None:
    """Watch a tag for a further case too: the same offender, another victim.

    Example: msa case tag-link --registry /var/lib/msa-centre/registry.db --tag TAG-1A2B3C4D
    --case GENT-2026-0211
    """
    _with_store(registry_path, lambda s: s.link(tag_id, case_ref))
    click.echo(f"tag {tag_id}: watched for case {case_ref} too")


def proximity_lines(registry_path: Path | str, case_ref: str) -> list[str]:
    """What `msa case show` prints of a case's proximity rules and zones."""
    from msa.centre.proximity import shape_json

    def read(s: ProximityStore) -> list[str]:
        rules = s.rules(case_ref)
        out = [f"  proximity: alert within {rules.alert_radius_m:g} m, pre-alert within"
               f" {rules.prealert_radius_m:g} m, "
               + ("moving with the victim" if rules.moving_zone else "fixed zones only")]
        out += [f"  zone {name}: {shape_json(shape)}" for name, shape in rules.zones.items()]
        return out
    return _with_store(registry_path, read)


COMMANDS = (case_proximity, case_zone_add, case_zone_remove, case_tag_link)
