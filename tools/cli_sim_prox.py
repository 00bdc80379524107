"""msa sim proximity: a thin shell over msa.simulator.proxrun (registered in tools/cli.py)."""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import click

from .errors import ToolError


@click.command("proximity")
@click.option("--scenarios", "folder", type=click.Path(file_okay=False, exists=True,
                                                       path_type=Path), default=None,
              help="A folder of scenario files (*.toml, docs/proximity.md). Default: the 38+"
                   " shipped with msa.")
@click.option("--button/--no-button", default=True, show_default=True,
              help="Warn through the simulated button (the firmware in MicroPython over"
                   " Bumble) and check its motor; --no-button is faster.")
@click.option("--hook", default=None, metavar="PROGRAM",
              help="A notification hook the hosts run with each warning as JSON on stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sim_proximity(folder: Path | None, button: bool, hook: str | None, as_json: bool) -> None:
    """Replay proximity scenarios through the real centre (its rules and tag ingestion over
    HTTPS), the victims' hosts and the button, and print each outcome against what its file
    expects. Exits non-zero if any scenario did not go as expected.

    Example: msa sim proximity --scenarios simulator/scenarios --no-button
    """
    from msa.simulator import proxrun
    from msa.simulator.scenario import shipped

    scenarios = proxrun.load_set(folder or shipped())
    root = Path(tempfile.mkdtemp(prefix="msa-proximity-"))

    def progress(o: proxrun.Outcome) -> None:
        if not as_json:
            click.echo(proxrun.row(o))

    try:
        with click.progressbar(length=len(scenarios), label="scenarios",
                               file=sys.stderr) as bar:
            def step(o: proxrun.Outcome) -> None:
                progress(o)
                bar.update(1)
            outcomes = asyncio.run(proxrun.run_set(scenarios, root, button,
                                                   [hook] if hook else None, step))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = proxrun.figures_of(outcomes)
    if as_json:
        click.echo(json.dumps({"figures": figures.__dict__, "scenarios": [
            {"name": o.verdict.name, "title": o.verdict.title, "passed": o.verdict.passed,
             "expected": o.verdict.expected, "got": o.verdict.got,
             "problems": o.verdict.problems, "latencies_s": o.verdict.latencies_s,
             "haptic_verified": o.haptic_checked} for o in outcomes]}))
    else:
        click.echo(proxrun.summary(figures))
    failed = [o.verdict.name for o in outcomes if not o.verdict.passed]
    if failed:
        raise ToolError(f"{len(failed)} scenario(s) did not go as expected: {', '.join(failed)}",
                        "read each one's lines marked FAIL above")
