"""`msa centre backup` and `msa centre restore`: a proven backup of a centre's state folder,
taken while it runs, and its restore into a new folder (the work is in msa.centre.backup).
Registered on the `msa centre` group by tools/cli_centre.py."""
from __future__ import annotations

from pathlib import Path

import click

from .who import cli_actor


@click.command("backup")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The centre's state folder (as given to msa centre run); it may be running.")
@click.option("--out", "out_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write (a new name: never overwritten). It holds every"
                   " key and case file: keep it as safe as the state folder.")
def backup_command(state_dir: Path, out_file: Path) -> None:
    """Back up a centre's databases (SQLite's online backup, while it runs), its TLS and
    signing files, in one file with a manifest of SHA-256 sums and counts.

    Example: msa centre backup --state-dir /var/lib/msa-centre --out /backup/centre-2026-11-30.tar
    """
    from msa.centre.backup import backup

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
def restore_command(backup_file: Path, state_dir: Path) -> None:
    """Restore a backup into a new state folder, after checking every byte of it, each
    database's integrity and the audit chain; then run the centre on that folder.

    Example: msa centre restore --from /backup/centre-2026-11-30.tar
    --state-dir /var/lib/msa-centre-restored
    """
    from msa.centre.backup import restore

    info = restore(backup_file, state_dir, actor=cli_actor(), source="cli",
                   progress=lambda line: click.echo(line))
    m = info.manifest
    click.echo(f"restored {state_dir}: {len(m.members)} files; {m.incidents} incidents,"
               f" {m.alarms} accepted alarms, {m.audit_entries} audit entries as backed up"
               f" (audit head {m.audit_count} {m.audit_hash}), then restore entry"
               f" {info.restore_seq}")
