"""`msa centre backup` and `msa centre restore`: a proven backup of a centre's state folder,
taken while it runs, and its restore into a new folder (the work is in msa.centre.backup).
Registered on the `msa centre` group by tools/cli_centre.py."""
from __future__ import annotations

from pathlib import Path

import click

from .dbopt import DATABASE
from .errors import ToolError
from .who import cli_actor


def _state_folder_only(database: str | None) -> None:
    """Refuses a PostgreSQL centre (--database, or MSA_CENTRE_DATABASE set): its state folder
    holds no data, and a backup of it would pass for one of the centre's."""
    if database is not None:
        raise ToolError("a PostgreSQL centre is backed up with PostgreSQL's own tools"
                        " (pg_dump, pg_basebackup); msa centre backup covers a state folder's"
                        " SQLite files",
                        "back up the database with pg_dump or pg_basebackup (and restore it"
                        " with pg_restore), and the state folder's TLS and signing files"
                        " with it; unset MSA_CENTRE_DATABASE for a SQLite centre")


@click.command("backup")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The centre's state folder (as given to msa centre run); it may be running.")
@click.option("--out", "out_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write (a new name: never overwritten). It holds every"
                   " key and case file: keep it as safe as the state folder.")
@DATABASE
def backup_command(state_dir: Path, out_file: Path, database: str | None) -> None:
    """Back up a centre's databases (SQLite's online backup, while it runs), its TLS and
    signing files, in one file with a manifest of SHA-256 sums and counts.

    Example: msa centre backup --state-dir /var/lib/msa-centre --out /backup/centre-2026-11-30.tar
    """
    from msa.centre.backup import backup

    _state_folder_only(database)
    info = backup(state_dir, out_file, actor=cli_actor(), source="cli",
                  progress=lambda line: click.echo(line))
    m = info.manifest
    click.echo(f"saved {out_file}: {len(m.members)} files; {m.incidents} incidents,"
               f" {m.alarms} accepted alarms, {m.audit_entries} audit entries; audit head"
               f" {m.audit_count} {m.audit_hash} (note it down elsewhere: it anchors the log)")


@click.command("restore")
@click.option("--from", "backup_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A file written by msa centre backup.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new, or empty, folder to restore into (never a live centre's).")
@DATABASE
def restore_command(backup_file: Path, state_dir: Path, database: str | None) -> None:
    """Restore a backup into a new state folder, after checking every byte of it, each
    database's integrity and the audit chain; then run the centre on that folder.

    Example: msa centre restore --from /backup/centre-2026-11-30.tar
    --state-dir /var/lib/msa-centre-restored
    """
    from msa.centre.backup import restore

    _state_folder_only(database)
    info = restore(backup_file, state_dir, actor=cli_actor(), source="cli",
                   progress=lambda line: click.echo(line))
    m = info.manifest
    click.echo(f"restored {state_dir}: {len(m.members)} files; {m.incidents} incidents,"
               f" {m.alarms} accepted alarms, {m.audit_entries} audit entries as backed up"
               f" (audit head {m.audit_count} {m.audit_hash}), then restore entry"
               f" {info.restore_seq}")
