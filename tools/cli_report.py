"""`msa centre report`: the supervisor's daily report (centre/report.py) as Markdown or CSV, read
from a centre's state folder while the centre runs; each view is appended to the audit log.
The lead registers the command on the `msa centre` group."""
from __future__ import annotations

import datetime as dt
import os
import re
import time
import zoneinfo
from pathlib import Path

import click

from .dbopt import DATABASE, centre_places
from .errors import ToolError
from .who import cli_actor

_OFFSET = re.compile(r"([+-])([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


def zone(name: str) -> dt.tzinfo:
    """A time zone from "UTC", an IANA name ("Europe/Brussels") or a fixed offset ("+01:00");
    ValueError for anything else."""
    if name.upper() == "UTC":
        return dt.timezone.utc
    fixed = _OFFSET.fullmatch(name)
    if fixed is not None:
        sign = -1 if fixed[1] == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(fixed[2]), minutes=int(fixed[3])))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: give UTC, an IANA name such as"
                         " Europe/Brussels, or an offset such as +01:00") from exc


def _zone(_ctx: click.Context, _param: click.Parameter, value: str) -> dt.tzinfo:
    try:
        return zone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is no date: expected YYYY-MM-DD") from exc


def _write_private(path: Path, text: str) -> None:
    """The report names cases: it is written readable by its owner only (0600)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    except OSError as exc:
        raise ToolError(f"cannot write the report to {path}: {exc.strerror}",
                        "give --out a file in a folder you can write") from exc


@click.command("report")
@click.option("--state-dir", type=click.Path(path_type=Path),
              help="The centre's state folder (that of msa centre run); not needed with"
                   " --database.")
@DATABASE
@click.option("--day", callback=_day, metavar="YYYY-MM-DD",
              help="The local day to report on (default: yesterday in --tz).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md",
              show_default=True, help="Markdown tables or one CSV row per button and tag.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (0600) instead of standard output.")
@click.option("--tz", "tz", default="UTC", show_default=True, callback=_zone,
              help="The zone whose midnights bound the day: UTC, an IANA name or +HH:MM.")
def report(state_dir: Path | None, day: dt.date | None, fmt: str, out: Path | None,
           tz: dt.tzinfo, database: str | None) -> None:
    """The supervisor's daily report: per button and tag, last word, battery and its trend,
    alarms and tests, messages against those expected, and silent periods.

    Example: msa centre report --state-dir /var/lib/msa-centre --day 2026-11-29
    --tz Europe/Brussels --format csv --out 2026-11-29.csv
    """
    from msa.centre.audit import AuditLog
    from msa.centre.core import Centre
    from msa.centre.registry import Registry
    from msa.centre.report import audit_subject, daily_report, to_csv, to_markdown
    from msa.centre.storage import Engine
    from msa.centre.tags import Tags

    paths = centre_places(state_dir, database)
    for area in (paths.registry, paths.records):
        if area.kind is Engine.SQLITE and not Path(area.target).is_file():
            raise ToolError(f"{state_dir} holds no {Path(area.target).name}: it is no"
                            " centre's state folder",
                            "give the --state-dir that msa centre run uses")
    now = time.time()
    if day is None:
        day = dt.datetime.fromtimestamp(now, tz).date() - dt.timedelta(days=1)
    registry = Registry(paths.registry)
    try:
        centre = Centre(paths.records, registry)
        tags = Tags(registry)
        audit = AuditLog(paths.audit)
        try:
            made = daily_report(centre, registry, tags, audit, day, now, tz)
            # Recorded before anything is shown: no view goes unaudited.
            audit.append(cli_actor(), "report.view", audit_subject(day),
                         "cli", {"day": day.isoformat()})
        finally:
            audit.close()
            tags.close()
            centre.close()
    finally:
        registry.close()
    text = to_csv(made) if fmt == "csv" else to_markdown(made)
    if out is None:
        click.echo(text, nl=False)
    else:
        _write_private(out, text)
