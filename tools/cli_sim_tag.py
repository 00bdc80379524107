"""msa sim tag: a thin shell over msa.simulator.tagstream (registered in tools/cli.py)."""
from __future__ import annotations

import math
from pathlib import Path

import click

from .errors import ToolError


def _point(text: str, option: str) -> tuple[float, float]:
    lat, _, lon = text.partition(",")
    try:
        point = (float(lat), float(lon))
    except ValueError:
        point = (math.nan, math.nan)  # refused below, with the same message
    if not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
        raise click.BadParameter("expected LAT,LON in degrees, e.g. 51.0543,3.7174",
                                 param_hint=option)
    return point


@click.command("tag")
@click.option("--url", required=True, help="The centre's dispatch API, e.g."
              " https://127.0.0.1:8443 (the OsmAnd path /v1/tags/osmand is added).")
@click.option("--secret-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The tag's secret as `msa case tag-add --token-out` wrote it (mode 0600).")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="CA certificate of the centre's TLS (default: the system's).")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A scenario file (docs/proximity.md); with --tag.")
@click.option("--tag", "tag_name", default=None, help="The scenario's tag to stream.")
@click.option("--from", "start", default=None, metavar="LAT,LON",
              help="Straight line: where the tag starts.")
@click.option("--to", "end", default=None, metavar="LAT,LON",
              help="Straight line: where it goes (and then stays one interval).")
@click.option("--speed-kmh", type=click.FloatRange(0.1, 250), default=None,
              help="Straight line: its speed.")
@click.option("--interval-s", type=click.IntRange(1, 3600), default=None,
              help="Seconds between fixes (default: the scenario tag's, or 10).")
@click.option("--speedup", type=click.FloatRange(0.01, 1e6), default=1.0, show_default=True,
              help="Scenario seconds per wall second (1 = real time).")
@click.option("--count", type=click.IntRange(1), default=None,
              help="Stop after this many reports (default: all of them).")
@click.option("--method", type=click.Choice(["POST", "GET"]), default="POST",
              show_default=True, help="POST sends a form body; GET puts the report (and the"
              " secret) in the query string.")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True,
              help="Straight line: seed of its GPS error.")
@click.option("--quiet", is_flag=True, help="No line per report.")
def sim_tag(url: str, secret_file: Path, ca_file: Path | None, scenario_path: Path | None,
            tag_name: str | None, start: str | None, end: str | None,
            speed_kmh: float | None, interval_s: int | None, speedup: float,
            count: int | None, method: str, seed: int, quiet: bool) -> None:
    """Stream a simulated perpetrator tag's positions to a centre over the OsmAnd protocol:
    a scenario file's tag (noise, jumps, silence, tamper, battery and delays as the file
    says), or a straight line. Each report is shown as it is accepted.

    Example: msa sim tag --url https://127.0.0.1:8443 --secret-file tag.secret --ca-file
    STATE/tls/ca.pem --from 51.07,3.72 --to 51.0543,3.7174 --speed-kmh 5 --speedup 10
    """
    from msa.host.config import read_secret
    from msa.simulator import scenario as scenarios
    from msa.simulator import tagstream
    from msa.wire.tag import TAG_SECRET

    line = (start, end, speed_kmh)
    if scenario_path is not None:
        if any(x is not None for x in line):
            raise click.UsageError("give either --scenario and --tag, or --from, --to and"
                                   " --speed-kmh, not both")
        if tag_name is None:
            raise click.UsageError("--scenario needs --tag NAME (one of the file's tags)")
        chosen = scenarios.load(scenario_path)
        chosen.tag(tag_name)  # ScenarioError naming the file if it has no such tag
        if interval_s is not None:
            chosen = tagstream.with_interval(chosen, tag_name, interval_s)
    else:
        if start is None or end is None or speed_kmh is None or tag_name is not None:
            raise click.UsageError("give either --scenario and --tag, or --from, --to and"
                                   " --speed-kmh")
        tag_name = tagstream.LINE_TAG
        chosen = tagstream.straight_line(_point(start, "--from"), _point(end, "--to"),
                                         speed_kmh, interval_s or 10, seed)
    secret = read_secret("--secret-file", secret_file.name, secret_file.parent,
                         str(secret_file))
    if not TAG_SECRET.fullmatch(secret):
        raise ToolError(f"{secret_file} does not hold a tag secret",
                        "give the file `msa case tag-add --token-out` wrote")
    samples = chosen.tag_samples(tag_name)
    samples.sort(key=lambda s: (s.sent_s, s.t_s))
    samples = samples[:count] if count is not None else samples
    client = tagstream.OsmandClient(url, ca_file, method)

    def progress(n: int, s: scenarios.TagSample, fix_time: float) -> None:
        if quiet:
            return
        extra = "".join((f"  batt {s.battery_pct:g} %" if s.battery_pct is not None else "",
                         "  TAMPER" if s.tamper else "", "  (jump)" if s.jumped else "",
                         f"  (sent {s.sent_s - s.t_s:.0f} s late)" if s.sent_s > s.t_s else ""))
        click.echo(f"{n}/{len(samples)}  t={s.t_s:.0f} s  {s.lat:.6f},{s.lon:.6f}"
                   f"  ±{s.accuracy_m:g} m{extra}", err=True)

    sent = tagstream.stream(samples, secret, client, speedup, progress)
    click.echo(f"sent {sent} report{'' if sent == 1 else 's'} of tag {tag_name!r} to"
               f" {client.host}:{client.port}{client.path}")
