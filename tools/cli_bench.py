"""msa bench: a thin shell over msa.bench (registered in tools/cli.py)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="Print the table in Markdown (as in docs/performance.md).")
@click.option("--only", "only", multiple=True, metavar="SECTION",
              help="Run only this section (repeatable): latency, dc09, sms, tracking, ingest,"
                   " hostile, firmware, battery, host, proximity.")
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.001, 10),
              help="Shrink (or grow) the press, frame and run counts; 1 is the real benchmark.")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20),
              help="Repetitions of the noisy measurements (medians of the runs).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the JSON report to this file.")
def bench(as_json: bool, as_markdown: bool, only: tuple[str, ...], scale: float, runs: int,
          out: Path | None) -> None:
    """Measure latency, SMS fallback, tracking cadence, centre ingest, hostile input,
    firmware footprint, battery life and host footprint; print each figure beside its
    target and its floor.
    Takes about 13 minutes at --scale 1 on a 2-core machine (docs/performance.md).

    Example: msa bench --only latency --only sms --scale 0.2
    """
    from msa.bench import figures, runner

    from .errors import ToolError

    names = list(only) or list(runner.SECTIONS)
    unknown = sorted(set(names) - set(runner.SECTIONS))
    if unknown:
        raise click.BadParameter(f"unknown section(s) {', '.join(unknown)}; known:"
                                 f" {', '.join(runner.SECTIONS)}", param_hint="--only")

    def started(name: str) -> None:
        if not as_json:
            click.echo(f"running {name} ...", err=True)

    options = figures.Options(root=Path("."), scale=scale, runs=runs)
    results = runner.run_sections(names, options, started)
    found = [f for r in results for f in r.figures]
    info = runner.meta(results, options)
    report = figures.to_json(found, info)
    if out is not None:
        out.write_text(report + "\n")
    if as_json:
        click.echo(report)
    elif as_markdown:
        click.echo(figures.markdown(found))
    else:
        click.echo(f"msa bench, {info['date_utc']} UTC, {info['machine']}, commit"
                   f" {info['commit'] or '?'}, scale {scale}")
        click.echo(figures.table(found))
        click.echo("section times: " + ", ".join(f"{k} {v:.0f} s"
                                                 for k, v in info["seconds"].items()))
    failed = [f"{r.name} ({r.error})" for r in results if r.error]
    if failed:
        raise ToolError("benchmark section(s) failed: " + "; ".join(failed),
                        "the other figures above are valid")
