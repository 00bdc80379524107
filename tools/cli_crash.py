"""msa sim crash: a thin shell over msa.simulator.crash (registered in tools/cli.py)."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click


@click.command("crash")
@click.option("--kills", default=60, show_default=True, type=click.IntRange(1, 10000),
              help="How many times the host is SIGKILLed (a third at random instants, a"
                   " third at each crash point).")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None,
              help="Seed of the random kill instants and presses (default: a new one,"
                   " printed).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run in this (new or empty) folder and keep it: the host's log and state,"
                   " the centre's records.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sim_crash(kills: int, seed: int | None, keep: Path | None, as_json: bool) -> None:
    """Kill `msa host run` again and again while the simulated button is pressed, restart it
    each time, and check that the centre counted every alarm exactly once. Exits non-zero
    if any alarm was lost or counted twice. About 2.5 s a kill on a 2-core machine.

    Example: msa sim crash --kills 60
    """
    from msa.simulator import crash

    from .errors import ToolError

    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise ToolError(f"{keep} is not empty", "give a new or empty folder to --keep")
    root = keep or Path(tempfile.mkdtemp(prefix="msa-crash-"))
    root.mkdir(parents=True, exist_ok=True)

    def progress(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    try:
        report = crash.run(kills, root, seed, progress)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    click.echo(json.dumps(report.as_json()) if as_json else crash.render(report))
    if not report.exactly_once:
        raise ToolError(f"the centre did not count every alarm exactly once (seed"
                        f" {report.seed})", "run again with --keep DIR and read DIR/host/host.log")
