"""Where the command line finds a centre's data: a state folder's SQLite files or a PostgreSQL
database (`--registry` and `--database` take a postgresql:// URL): `msa centre migrate`, the
refusals of what is no place for a centre's data, a password never echoed, backups refused for
a PostgreSQL centre; and, on a real throw-away PostgreSQL, a technician's and an admin's
commands whose reads and writes land in the database and its audit schema."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pg import pg_database, pg_server  # noqa: F401
from staff import cheap  # noqa: F401

from msa.centre.audit import AuditLog
from msa.centre.errors import EvidenceError, SchemaError
from msa.centre.migrations import MIGRATIONS, latest
from msa.centre.storage import place
from msa.tools.cli import cli, main
from msa.tools.errors import ToolError

URL_FORM = "postgresql://USER@HOST:PORT/DBNAME"
PG_REFUSAL = ("a PostgreSQL centre is backed up with PostgreSQL's own tools (pg_dump,"
              " pg_basebackup); msa centre backup covers a state folder's SQLite files")


def msa(*args: str, env: dict[str, str | None] | None = None) -> Result:
    # No MSA_CENTRE_DATABASE from the machine running the tests: each test says its own.
    return CliRunner().invoke(cli, list(args), env={"MSA_CENTRE_DATABASE": None, **(env or {})})


def _migrated(*areas: str) -> list[str]:
    """What migrate prints for a new centre: every migration of each area, in order."""
    return [f"{area}: migrated to version {m.version} ({m.name})"
            for area in areas for m in MIGRATIONS[area]]


def _nothing(*areas: str) -> list[str]:
    return [f"{a}: at version {latest(a)}, nothing to do" for a in areas]


def test_migrate_makes_a_private_state_folder_then_finds_nothing_to_do(tmp_path: Path) -> None:
    state = tmp_path / "new" / "centre"
    first = msa("centre", "migrate", "--state-dir", str(state))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == _migrated("registry", "records", "audit")
    assert first.output.splitlines()[0] == ("registry: migrated to version 1 (cases, buttons,"
                                            " hosts, tags, proximity, accounts, sessions)")
    assert state.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in state.glob("*.db")) == ["audit.db", "records.db",
                                                          "registry.db"]
    again = msa("centre", "migrate", "--state-dir", str(state))
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == _nothing("registry", "records", "audit")


def test_migrate_refuses_a_schema_newer_than_its_own_through_the_error_boundary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "centre"
    assert msa("centre", "migrate", "--state-dir", str(state)).exit_code == 0
    with sqlite3.connect(state / "records.db") as db:  # as a later msa would leave it
        db.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)",
                   (latest("records") + 1,))
    with pytest.raises(SystemExit) as exit_info:
        main(["centre", "migrate", "--state-dir", str(state)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == (f"msa: {state / 'records.db'}: schema version {latest('records') + 1}, this"
                   f" msa needs {latest('records')}: it was migrated by a newer msa: run that"
                   " version (no downgrades)\n")
    with sqlite3.connect(state / "records.db") as db:  # and nothing was changed
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            latest("records") + 1,)


@pytest.mark.parametrize("args, env", [
    ((), {}),
    (("--state-dir", "S", "--database", "postgresql://u@h/db"), {}),
    (("--state-dir", "S"), {"MSA_CENTRE_DATABASE": "postgresql://u@h/db"}),
])
def test_migrate_takes_exactly_one_of_state_dir_and_database(
        tmp_path: Path, args: tuple[str, ...], env: dict[str, str | None]) -> None:
    args = tuple(str(tmp_path / a) if a == "S" else a for a in args)
    out = msa("centre", "migrate", *args, env=env)
    assert out.exit_code == 2
    assert "give --state-dir or --database" in out.output
    assert not (tmp_path / "S").exists()


def test_migrate_into_a_state_folder_that_cannot_be_made_is_a_tool_error(
        tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out = msa("centre", "migrate", "--state-dir", str(tmp_path / "file" / "centre"))
    assert isinstance(out.exception, ToolError)
    assert str(out.exception).startswith(f"cannot make the state folder {tmp_path}/file/centre")


@pytest.mark.parametrize("command", [
    ("case", "add", "--case", "C-1", "--victim", "V"),
    ("case", "show", "--case", "C-1"),
    ("case", "proximity", "--case", "C-1", "--radius-m", "500"),
])
def test_a_registry_that_is_a_folder_is_refused_before_anything_opens(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    out = msa(*command, "--registry", str(tmp_path))
    assert out.exit_code == 2
    assert f"{tmp_path} is a folder: give its registry.db" in out.output
    assert list(tmp_path.iterdir()) == []


def test_a_missing_registry_file_is_named_and_not_made(tmp_path: Path) -> None:
    missing = tmp_path / "registry.db"
    out = msa("case", "show", "--registry", str(missing), "--case", "C-1")
    assert isinstance(out.exception, ToolError)
    assert str(out.exception) == f"no registry at {missing}; check --registry"
    assert not missing.exists()


@pytest.mark.parametrize("bad", ["notaurl", "mysql://u:secret@h/db", "u:secret@h/db",
                                 "msa:secret@db/msa", "mysql://u:secret@h:x/db"])
@pytest.mark.parametrize("command", [("centre", "user", "list"),
                                     ("centre", "migrate"),
                                     ("centre", "report")])
def test_a_database_that_is_no_postgresql_url_is_refused_without_its_password(
        bad: str, command: tuple[str, ...]) -> None:
    out = msa(*command, "--database", bad)
    assert out.exit_code == 2
    assert f"is not a PostgreSQL URL ({URL_FORM})" in out.output
    assert "secret" not in out.output
    from_env = msa(*command, env={"MSA_CENTRE_DATABASE": bad})
    assert from_env.exit_code == 2 and "secret" not in from_env.output


def test_user_commands_need_a_state_folder_or_a_database() -> None:
    out = msa("centre", "user", "list")
    assert out.exit_code == 2
    assert "give --state-dir (the folder of msa centre run) or --database" in out.output


@pytest.mark.parametrize("how", ["option", "environment"])
def test_backup_and_restore_refuse_a_postgresql_centre(tmp_path: Path, how: str) -> None:
    url = "postgresql://u:secret@h/db"
    state = tmp_path / "centre"
    assert msa("centre", "migrate", "--state-dir", str(state)).exit_code == 0
    option = ["--database", url] if how == "option" else []
    env: dict[str, str | None] = {"MSA_CENTRE_DATABASE": url} if how == "environment" else {}
    backup = msa("centre", "backup", "--state-dir", str(state), "--out",
                 str(tmp_path / "c.tar"), *option, env=env)
    assert isinstance(backup.exception, ToolError)
    assert backup.exception.message == PG_REFUSAL
    assert "secret" not in str(backup.exception)
    assert not (tmp_path / "c.tar").exists()
    restore = msa("centre", "restore", "--from", str(tmp_path / "c.tar"), "--state-dir",
                  str(tmp_path / "new"), *option, env=env)
    assert isinstance(restore.exception, ToolError)
    assert restore.exception.message == PG_REFUSAL
    assert not (tmp_path / "new").exists()


def test_a_technician_and_an_admin_work_on_a_postgresql_centre(
        tmp_path: Path, pg_database: str, cheap: None) -> None:
    url = pg_database
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    outputs: list[str] = []

    def run(*args: str) -> Result:
        result = msa(*args)
        outputs.append(result.output + str(result.exception or ""))
        return result

    # Before `msa centre migrate`, a command says what to do (nothing is made behind its back).
    early = run("case", "show", "--registry", url, "--case", "GENT-2026-0147")
    assert isinstance(early.exception, SchemaError)
    assert "run `msa centre migrate` first" in str(early.exception)

    first = run("centre", "migrate", "--database", url)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == _migrated("registry", "records", "audit")
    again = run("centre", "migrate", "--database", url)
    assert again.output.splitlines() == _nothing("registry", "records", "audit")

    added = run("case", "add", "--registry", url, "--case", "GENT-2026-0147", "--victim",
                "Jane Example", "--victim-phone", "+32470000001")
    assert added.exit_code == 0, added.output
    assert added.output == "case GENT-2026-0147: added\n"
    shown = run("case", "show", "--registry", url, "--case", "GENT-2026-0147")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0] == "case GENT-2026-0147: victim Jane Example," \
                                           " +32470000001"
    missing = run("case", "show", "--registry", url, "--case", "NONE-1")
    assert isinstance(missing.exception, ToolError)
    assert "no case 'NONE-1' in postgresql://msa:***@" in str(missing.exception)

    state = tmp_path / "node"
    state.mkdir()
    pw_file = tmp_path / "pw"
    pw_file.write_text("correct horse battery\n")
    user = run("centre", "user", "add", "--database", url, "--state-dir", str(state),
               "--role", "operator", "--password-file", str(pw_file), "olga")
    assert user.exit_code == 0, user.output
    listed = run("centre", "user", "list", "--database", url)
    assert listed.exit_code == 0, listed.output
    assert listed.output == "olga\toperator\n"
    report = run("centre", "report", "--database", url, "--day", "2026-01-05", "--format",
                 "csv")
    assert report.exit_code == 0, report.output
    # An export reads the database and signs with the key in the node's folder (made there).
    export = run("centre", "export", "--database", url, "--state-dir", str(state),
                 "--incident", "INC-000001", "--out", str(tmp_path / "bundle"))
    assert isinstance(export.exception, EvidenceError)
    assert "no such incident in this centre's records" in str(export.exception)
    verified = run("centre", "audit", "verify", "--database", url)
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("audit log intact: 3 entries; head 3 ")

    audit = AuditLog(place(url, "audit"))
    try:
        entries = [(e.action, e.subject, e.source) for e in audit.entries()]
    finally:
        audit.close()
    assert entries == [("case.view", "GENT-2026-0147", "cli"), ("account.add", "olga", "cli"),
                       ("report.view", "report:2026-01-05", "cli")]
    assert not list(state.glob("*.db"))  # the node's folder got none of the data
    assert all(password not in text for text in outputs)
