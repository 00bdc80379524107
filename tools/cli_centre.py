"""`msa centre`: run the reference dispatch centre, and look after it: operator accounts
(`user`), the audit trail (`audit verify`), evidence (`export`, `key`), backups (`backup`,
`restore`) and the supervisor's daily report (`report`). Thin: the work is in msa.centre."""
from __future__ import annotations

from pathlib import Path

import click

from .dbopt import DATABASE, centre_places
from .errors import ToolError
from .who import cli_actor


def _address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:8443", param_hint=option)
    return host.strip("[]"), int(port)


# For the commands that only read and write the centre's data: the state folder is not
# needed where --database names where that data is.
STATE_DIR = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                         help="The centre's state folder (as given to msa centre run); not"
                              " needed with --database.")


@click.group()
def centre() -> None:
    """The reference dispatch centre: run it, and manage its accounts, audit and records
    (docs/centre.md).

    Example: msa centre run --state-dir /var/lib/msa-centre; msa centre user add --state-dir
    /var/lib/msa-centre --role operator olga
    """


@centre.command("run")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the registry, records and TLS files live (made 0700).")
@click.option("--listen", default="127.0.0.1:8443", show_default=True,
              help="HOST:PORT of the dispatch API (TLS).")
@click.option("--operator-port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the operator's page, on 127.0.0.1 only.")
@click.option("--dc09-listen", default=None, metavar="HOST:PORT",
              help="Also receive SIA DC-09 (TCP and UDP) here, encrypted with each host's own"
                   " key (msa case issue). Without it no DC-09 receiver runs.")
@click.option("--ghost-call-ttl", default=600.0, show_default=True,
              type=click.FloatRange(1, 86400), metavar="SECONDS",
              help="How long an SMS ghost call from an unknown number is shown.")
@click.option("--ghost-calls-kept", default=100, show_default=True,
              type=click.IntRange(1, 100_000),
              help="Ghost calls from unknown numbers kept at most (the oldest go first).")
@click.option("--victim-retention-h", default=24.0, show_default=True,
              type=click.FloatRange(0.1, 24 * 365), metavar="HOURS",
              help="How long victims' positions outside an alert are kept (docs/proximity.md).")
@click.option("--tag-retention-days", default=None, metavar="DAYS",
              type=click.FloatRange(0, min_open=True),
              help="Prune perpetrator-tag positions older than this (default: kept).")
@click.option("--track-retention-days", default=None, metavar="DAYS",
              type=click.FloatRange(0, min_open=True),
              help="Prune the tracks of incidents resolved longer ago (default: kept).")
@click.option("--audit-retention-days", default=None, metavar="DAYS",
              type=click.FloatRange(365),
              help="Prune audit entries older than this, at least 365 (default: kept).")
@DATABASE
def centre_run(state_dir: Path, listen: str, operator_port: int, dc09_listen: str | None,
               ghost_call_ttl: float, ghost_calls_kept: int, victim_retention_h: float,
               tag_retention_days: float | None, track_retention_days: float | None,
               audit_retention_days: float | None, database: str | None) -> None:
    """Run the reference dispatch centre: API for hosts, operator's page, until Ctrl-C.
    Every listener's address is printed at start. Each host authenticates with the
    credentials `msa case issue` gave it, good for its own case's buttons only.

    Example: msa centre run --state-dir /var/lib/msa-centre --listen 0.0.0.0:8443
    --dc09-listen 0.0.0.0:5000
    """
    import asyncio

    from msa.centre.retention import DAY_S, Retention
    from msa.centre.server import CentreConfig, start_centre
    from msa.centre.storage import redact

    def days(value: float | None) -> float | None:
        return None if value is None else value * DAY_S
    retention = Retention(victim_retention_h * 3600, days(tag_retention_days),
                          days(track_retention_days), days(audit_retention_days))

    api_host, api_port = _address(listen, "--listen")
    dc09_host, dc09_port = "127.0.0.1", None
    if dc09_listen is not None:
        dc09_host, port = _address(dc09_listen, "--dc09-listen")
        dc09_port = port

    async def serve() -> None:
        running = await start_centre(CentreConfig(
            state_dir, api_host, api_port, operator_port, dc09_port=dc09_port,
            dc09_host=dc09_host, ghost_ttl_s=ghost_call_ttl, max_ghosts=ghost_calls_kept,
            retention_s=victim_retention_h * 3600, retention=retention, database=database))
        registry = state_dir / "registry.db" if database is None else redact(database)
        for line in running.listeners:
            click.echo(f"listening: {line}")
        click.echo(f"dispatch API: {running.api_url} (CA: {running.tls.ca_cert}; each host"
                   f" its own token: msa case issue --registry {registry})")
        click.echo(f"operator's page: {running.operator_url}")
        if running.dc09 is None:
            click.echo("DC-09 receiver: off (give --dc09-listen)")
        try:
            await asyncio.Event().wait()
        finally:
            await running.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        click.echo("stopped")




def _password(password_file: Path | None, name: str) -> str:
    """A new password: from a file's first line (for scripts: never an option, which would
    land in the shell's history and the process list), else asked twice without echo."""
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ToolError(f"cannot read the password file {password_file}",
                            f"give a readable UTF-8 file ({exc.__class__.__name__})") from None
        if not lines or not lines[0]:
            raise ToolError(f"the password file {password_file} is empty",
                            "put the password on its first line")
        return lines[0]
    text: str = click.prompt(f"password for {name}", hide_input=True,
                             confirmation_prompt=True)
    return text


class _Desk:
    """The centre's accounts and audit log (its state folder's or its database's), opened
    for one command."""

    def __init__(self, state_dir: Path | None, database: str | None) -> None:
        from msa.centre.accounts import Accounts
        from msa.centre.audit import AuditLog
        from msa.centre.registry import Registry
        from msa.centre.sessions import Sessions
        from msa.centre.storage import Engine

        paths = centre_places(state_dir, database)
        if paths.registry.kind is Engine.SQLITE and not Path(paths.registry.target).exists():
            raise ToolError(f"no centre in {state_dir}",
                            "give the --state-dir of msa centre run (it makes the folder)")
        self.registry = Registry(paths.registry)
        self.accounts = Accounts(self.registry)
        self.sessions = Sessions(self.registry)
        self.audit = AuditLog(paths.audit)

    def record(self, action: str, subject: str, detail: dict[str, object] | None = None
               ) -> None:
        self.audit.append(cli_actor(), action, subject, "cli", detail)

    def close(self) -> None:
        for part in (self.audit, self.sessions, self.accounts, self.registry):
            part.close()


@centre.group()
def user() -> None:
    """Operator accounts: operators (live alarms and cases), supervisors (also the daily
    report) and administrators (accounts only). Every change is audited."""


_PASSWORD_FILE = click.option("--password-file", type=click.Path(dir_okay=False, exists=True,
                                                                  path_type=Path),
                              help="Read the password from this file's first line (else it"
                                   " is asked for).")


@user.command("add")
@STATE_DIR
@DATABASE
@click.argument("name")
@click.option("--role", required=True,
              type=click.Choice(["operator", "supervisor", "administrator"]))
@_PASSWORD_FILE
def user_add(state_dir: Path | None, name: str, role: str, password_file: Path | None,
             database: str | None) -> None:
    """Add an account. Example: msa centre user add --state-dir DIR --role operator alice"""
    desk = _Desk(state_dir, database)
    try:
        desk.accounts.validate(name, role)
        if desk.accounts.get(name) is not None:
            raise ToolError(f"an account named {name!r} is in service already",
                            "choose another name, or remove that one first")
        password = _password(password_file, name)
        desk.accounts.validate(password=password)
        desk.record("account.add", name, {"role": role})
        desk.accounts.add(name, role, password)
    finally:
        desk.close()
    click.echo(f"added {name} ({role})")


@user.command("remove")
@STATE_DIR
@DATABASE
@click.argument("name")
def user_remove(state_dir: Path | None, name: str, database: str | None) -> None:
    """Take an account out of service (its sessions end at their next request)."""
    desk = _Desk(state_dir, database)
    try:
        account = desk.accounts.get(name)
        if account is None:
            raise ToolError(f"no account named {name!r} in service", "msa centre user list")
        desk.record("account.remove", account.name)
        desk.accounts.remove(account.name)
        desk.sessions.end_all(account.name)
        left = "" if _admins(desk) else (
            " (no administrator is left: add one with --role administrator)")
    finally:
        desk.close()
    click.echo(f"removed {account.name}{left}")


def _admins(desk: _Desk) -> int:
    return sum(a.role.value == "administrator" for a in desk.accounts.all())


@user.command("passwd")
@STATE_DIR
@DATABASE
@click.argument("name")
@_PASSWORD_FILE
def user_passwd(state_dir: Path | None, name: str, password_file: Path | None,
                database: str | None) -> None:
    """Give an account a new password (its sessions end)."""
    desk = _Desk(state_dir, database)
    try:
        account = desk.accounts.get(name)
        if account is None:
            raise ToolError(f"no account named {name!r} in service", "msa centre user list")
        password = _password(password_file, account.name)
        desk.accounts.validate(password=password)
        desk.record("account.passwd", account.name)
        desk.accounts.set_password(account.name, password)
        desk.sessions.end_all(account.name)
    finally:
        desk.close()
    click.echo(f"new password for {account.name}")


@user.command("role")
@STATE_DIR
@DATABASE
@click.argument("name")
@click.argument("role", type=click.Choice(["operator", "supervisor", "administrator"]))
def user_role(state_dir: Path | None, name: str, role: str, database: str | None) -> None:
    """Give an account another role (its sessions end)."""
    desk = _Desk(state_dir, database)
    try:
        account = desk.accounts.get(name)
        if account is None:
            raise ToolError(f"no account named {name!r} in service", "msa centre user list")
        desk.record("account.role", account.name, {"role": role})
        desk.accounts.set_role(account.name, role)
        desk.sessions.end_all(account.name)
    finally:
        desk.close()
    click.echo(f"{account.name} is now {role}")


@user.command("list")
@STATE_DIR
@DATABASE
def user_list(state_dir: Path | None, database: str | None) -> None:
    """The accounts in service (names and roles; never a password or hash)."""
    desk = _Desk(state_dir, database)
    try:
        for account in desk.accounts.all():
            click.echo(f"{account.name}\t{account.role.value}")
    finally:
        desk.close()


@centre.group("audit")
def audit_group() -> None:
    """The audit trail: who viewed, resolved, noted, exported or changed what."""


@audit_group.command("verify")
@STATE_DIR
@DATABASE
def audit_verify(state_dir: Path | None, database: str | None) -> None:
    """Check the audit log's hash chain; exits 1 if an entry was altered, removed or added.
    Prints the head (entries, last hash): keep it elsewhere to detect a rewritten log."""
    from msa.centre.audit import AuditLog
    from msa.centre.storage import Engine

    path = centre_places(state_dir, database).audit
    if path.kind is Engine.SQLITE and not Path(path.target).exists():
        raise ToolError(f"no audit log at {path}", "give the --state-dir of msa centre run")
    log = AuditLog(path)
    try:
        result = log.verify()
        count, digest = log.head()
    finally:
        log.close()
    if not result.ok:
        raise ToolError(f"the audit log does not verify: {result.reason} (at entry"
                        f" {result.first_bad_seq})",
                        "restore the log from a backup and find out who changed it")
    click.echo(f"audit log intact: {result.entries} entries; head {count} {digest.hex()}")


@centre.command("migrate")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The state folder of a SQLite centre (made 0700 if missing).")
@DATABASE
def centre_migrate(state_dir: Path | None, database: str | None) -> None:
    """Bring the centre's data (registry, records, audit) to this msa's schema, printing
    what each area got. A PostgreSQL centre needs it before its nodes start, after every
    upgrade of msa (nodes refuse another version's schema); a state folder's files are
    migrated when the centre opens them, so there it is optional. Safe to run again, and
    from two nodes at once.

    Example: msa centre migrate --database postgresql://msa@db.example:5432/msa
    """
    from msa.centre.migrations import latest, migrate_all
    from msa.centre.server import private_folder

    if (state_dir is None) == (database is None):
        raise click.UsageError("give --state-dir or --database (also from"
                               " MSA_CENTRE_DATABASE): one of them")
    where: Path | str
    if database is None:
        assert state_dir is not None
        try:
            private_folder(state_dir)
        except OSError as exc:
            raise ToolError(f"cannot make the state folder {state_dir}: {exc.strerror}",
                            "give a folder you may write, or a path where one can be made"
                            ) from None
        where = state_dir / "registry.db"
    else:
        where = database
    for area, applied in migrate_all(where).items():
        if not applied:
            click.echo(f"{area}: at version {latest(area)}, nothing to do")
        for m in applied:
            click.echo(f"{area}: migrated to version {m.version} ({m.name})")


# The centre's other commands, each in a module of its own (issue 15).
from .cli_backup import backup_command, restore_command  # noqa: E402
from .cli_evidence import export, key  # noqa: E402
from .cli_report import report  # noqa: E402

for _command in (export, key, backup_command, restore_command, report):
    centre.add_command(_command)
