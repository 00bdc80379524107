"""A real, throw-away PostgreSQL for the tests and the benchmarks: Debian's initdb makes a
cluster in a temp folder, `postgres` serves it on a free port of 127.0.0.1 (and a unix socket in
that folder), each user gets a fresh empty database, and `pg_ctl stop -m fast` ends it,
removing the folder. tests/pg.py makes pytest fixtures of it; `msa bench` starts one for the
centre's PostgreSQL figures. `python3 bootstrap.py test` installs Debian's postgresql when it
is missing (bootstrap.py finds the programs the way postgresql_bin() does here).
"""
from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "msa"
# PostgreSQL refuses to run as root; as root (CI) the cluster belongs to this user, whom
# Debian's postgresql package makes.
RUN_AS = "postgres"
# On the busy 2-core machine a start takes 1.6-3.3 s (initdb nearly all of it), a fast stop
# about 0.25 s; the deadlines are far above both.
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 60.0
_BIND_ATTEMPTS = 5  # another process may take the free port before postgres binds it
# Small, for a test server; fsync stays on (its default): tests may claim durability.
SETTINGS = {"listen_addresses": "127.0.0.1", "max_connections": "100",
            "shared_buffers": "16MB"}


POSTGRESQL_LIB = Path("/usr/lib/postgresql")  # Debian: one folder per major version
POSTGRESQL_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def postgresql_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres of one PostgreSQL version: initdb's own
    folder when it is on PATH (through symlinks), else Debian's newest major version."""
    on_path = shutil.which("initdb")
    folders = [Path(on_path).resolve().parent] if on_path else []
    versions = POSTGRESQL_LIB.glob("*/bin") if POSTGRESQL_LIB.is_dir() else ()
    # Debian names the folders by major version ("15", "16"): newest first, numerically.
    folders += sorted(versions, key=lambda p: [int(x) for x in p.parent.name.split(".")
                                               if x.isdigit()], reverse=True)
    for folder in folders:
        if all(os.access(folder / name, os.X_OK) for name in POSTGRESQL_PROGRAMS):
            return folder
    return None


class PostgresError(RuntimeError):
    """The throw-away server could not be made, started or stopped; `log` is the tail of its
    output (initdb's, pg_ctl's or the server's)."""

    def __init__(self, what: str, log: str = "") -> None:
        super().__init__(f"{what}\n{log}" if log else what)
        self.what = what
        self.log = log


class PostgresUnavailable(PostgresError):
    """This machine cannot run the server at all (program or user missing): tests skip."""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... of whoever runs the tests must not steer the throw-away server.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    """One running cluster. `process` is the postmaster (for tests that watch or end it);
    `dsn` connects as the superuser to the maintenance database "postgres"."""

    def __init__(self, *, bin_dir: Path, folder: Path, port: int, password: str,
                 process: subprocess.Popen[bytes], owner: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = port
        self.process = process
        self._password = password
        self._owner = owner
        self._names = itertools.count(1)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> tuple[str, str]:
        """Create an empty database with a name no other test uses: (name, dsn)."""
        name = f"msa_{next(self._names)}_{secrets.token_hex(4)}"
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name, self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop it, ending any connection a test left open."""
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    def log_tail(self) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"))
        except OSError as err:
            return f"(no log: {err})"

    def stop(self) -> None:
        """Fast shutdown (open connections are ended), then the folder is removed. Raises
        PostgresError if the server did not end cleanly; a second stop does nothing."""
        if not self.folder.exists():
            return
        try:
            problem = ""
            if self.process.poll() is None:
                proc = _run(self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", "fast",
                            "-w", "-t", str(int(STOP_DEADLINE_S)), owner=self._owner,
                            cwd=self.folder)
                if proc.returncode != 0:
                    problem = f"pg_ctl stop failed (exit {proc.returncode}): {proc.stdout}"
                    self.process.kill()
            try:
                code = self.process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
                problem = problem or "the server outlived pg_ctl stop"
            if not problem and code != 0:
                problem = f"the server exited with {code}"
            log = self.log_tail() if problem else ""
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        if problem:
            raise PostgresError(problem, log)


def _run(*args: str | Path, owner: pwd.struct_passwd | None,
         cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=START_DEADLINE_S, user=_uid(owner), group=_gid(owner),
                          extra_groups=None if owner is None else [])


def _uid(owner: pwd.struct_passwd | None) -> int | None:
    return None if owner is None else owner.pw_uid


def _gid(owner: pwd.struct_passwd | None) -> int | None:
    return None if owner is None else owner.pw_gid


def _owner() -> pwd.struct_passwd | None:
    """Who runs the server: None for "this process's user", the postgres user under root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PostgresUnavailable(f"running as root, and PostgreSQL refuses root: it needs the"
                                  f" user {RUN_AS!r} (Debian's postgresql package makes it)"
                                  ) from None


def start_server() -> PostgresServer:
    """initdb a cluster in a new temp folder and start it; returns once it accepts
    connections. Raises PostgresUnavailable when this machine cannot run PostgreSQL."""
    bin_dir = postgresql_bin()
    if bin_dir is None:
        raise PostgresUnavailable("PostgreSQL's initdb, pg_ctl and postgres are not installed"
                                  " (Debian postgresql)")
    owner = _owner()
    folder = Path(tempfile.mkdtemp(prefix="msa-pg-"))
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        password = secrets.token_urlsafe(24)
        pwfile = folder / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        # Password (SCRAM) over TCP, as a real deployment; the socket folder is the owner's alone.
        # --no-sync skips only initdb's own flush to disk (about a third of its time): the
        # cluster is thrown away, and the running server keeps fsync on.
        init = _run(bin_dir / "initdb", "-D", folder / "data", "-U", SUPERUSER,
                    f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                    "-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync", owner=owner,
                    cwd=folder)
        pwfile.unlink()
        if init.returncode != 0:
            raise PostgresError(f"initdb failed (exit {init.returncode})", _tail(init.stdout))
        for _ in range(_BIND_ATTEMPTS):
            server = _launch(bin_dir, folder, password, owner)
            if server is not None:
                return server
        raise PostgresError(f"no free port on 127.0.0.1 after {_BIND_ATTEMPTS} tries")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _launch(bin_dir: Path, folder: Path, password: str,
            owner: pwd.struct_passwd | None) -> PostgresServer | None:
    """Start postgres on a free port and wait until it takes a connection: the server, or
    None if another process took the port first."""
    port = _free_port()
    settings = {**SETTINGS, "port": str(port), "unix_socket_directories": str(folder)}
    args = [str(bin_dir / "postgres"), "-D", str(folder / "data")]
    for key, value in settings.items():
        args += ["-c", f"{key}={value}"]
    with open(folder / "postgres.log", "wb") as log:  # this try's output only
        process = subprocess.Popen(args, cwd=folder, env=_clean_env(), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, user=_uid(owner),
                                   group=_gid(owner),
                                   extra_groups=None if owner is None else [])
    server = PostgresServer(bin_dir=bin_dir, folder=folder, port=port, password=password,
                            process=process, owner=owner)
    try:
        code = _wait_ready(server)
    except BaseException:  # a deadline or an interrupt: no server may outlive its folder
        process.kill()
        process.wait()
        raise
    if code is None:
        return server
    log_text = server.log_tail()
    if "could not bind" in log_text or "Address already in use" in log_text:
        return None
    raise PostgresError(f"postgres exited with {code} while starting", log_text)


def _wait_ready(server: PostgresServer) -> int | None:
    """None once the server takes a connection, or its exit code if it ended first."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            psycopg.connect(server.dsn, connect_timeout=5).close()
            return None
        except psycopg.OperationalError as err:
            last = err
        # The pause between tries is a wait on the process itself: its exit ends it at once.
        try:
            return server.process.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise PostgresError(f"postgres took no connection within"
                                    f" {START_DEADLINE_S:.0f} s ({last})",
                                    server.log_tail()) from None


