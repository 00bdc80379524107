"""How the CLI names where a centre keeps its data: a state folder's SQLite files (the default),
or a PostgreSQL database that several centre nodes share (`--database postgresql://...`, or
`--registry postgresql://...` where a command takes the registry). A password belongs in
~/.pgpass or PGPASSWORD (libpq reads both), not in the URL: a command line is visible to
every user of the machine (the URL's password is never printed back)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from msa.centre.retention import StatePaths

# msa.centre.storage is imported where it is used: it loads the PostgreSQL driver, which
# every `msa` command would otherwise pay for at start.

_URL_HELP = "postgresql://USER@HOST:PORT/DBNAME"


class DatabaseUrl(click.ParamType[str, Any]):
    """A postgresql:// URL."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        from msa.centre.storage import is_database_url

        text = str(value)
        if not is_database_url(text):
            self.fail(f"{_masked(text)!r} is not a PostgreSQL URL ({_URL_HELP})", param, ctx)
        return text


def _masked(text: str) -> str:
    """What the user gave, for an error: whatever comes before the last @ may hold a
    password (`user:pw@host`, with any scheme or none), so it is never shown."""
    head, at, host = text.rpartition("@")
    if not at:
        return text
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}***@{host}" if sep else f"***@{host}"


class RegistryLocation(click.ParamType[Path | str, Any]):
    """The registry's SQLite file (a Path), or the centre's PostgreSQL URL (a str)."""

    name = "FILE|URL"

    def __init__(self, exists: bool = False) -> None:
        self.exists = exists

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path | str:
        from msa.centre.storage import is_database_url

        if isinstance(value, Path):
            return value
        text = str(value)
        if is_database_url(text):
            return text
        path = Path(text)
        if path.is_dir():
            self.fail(f"{text} is a folder: give its registry.db", param, ctx)
        if self.exists and not path.is_file():
            self.fail(f"no registry at {text}", param, ctx)
        return path


DATABASE = click.option(
    "--database", type=DatabaseUrl(), default=None, envvar="MSA_CENTRE_DATABASE",
    help="Keep the centre's data in this PostgreSQL database (shared by its nodes; run `msa"
         f" centre migrate` first) instead of the state folder's files. {_URL_HELP}; the"
         " password in ~/.pgpass. Also from MSA_CENTRE_DATABASE.")


def registry_file(where: Path | str) -> Path | None:
    """The registry's SQLite file, or None where it is the PostgreSQL database."""
    from msa.centre.storage import is_database_url

    return None if is_database_url(str(where)) else Path(where)


def require_registry(where: Path | str) -> None:
    """ToolError for a registry file that does not exist (a database is there to be asked: a
    missing or unmigrated one is the store's own error, naming `msa centre migrate`)."""
    from .errors import ToolError

    file = registry_file(where)
    if file is not None and not file.exists():
        raise ToolError(f"no registry at {file}", "check --registry")


def make_registry_folder(where: Path | str) -> None:
    """The folder of a registry file that is to be made (nothing for a database)."""
    file = registry_file(where)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)


def centre_places(state_dir: Path | None, database: str | None) -> StatePaths:
    """Where a centre's areas are, from `--state-dir` and `--database` (which wins: the state
    folder then keeps only the TLS and signing files). UsageError if neither is given."""
    from msa.centre.retention import StatePaths

    if database is not None:
        return StatePaths.of(state_dir or Path("."), database)
    if state_dir is None:
        raise click.UsageError("give --state-dir (the folder of msa centre run) or --database")
    return StatePaths.of(state_dir)
