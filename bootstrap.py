#!/usr/bin/env python3
"""Sets up the project's own virtual environment with pinned packages, then runs a job in it.

Usage: python3 bootstrap.py demo [ARGS...]   the main job (the simulated press-to-host chain)
       python3 bootstrap.py test [ARGS...]   the whole test suite, build checks included

Only Python 3.11+ and pip are needed; everything else comes from PyPI, pinned in
pyproject.toml and requirements/constraints.txt. The environment is rebuilt when either changes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "msa-installed.sha256"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
# The firmware is type-checked against the official ESP32-C3 stubs; they shadow stdlib names
# (hashlib, struct, ...) so they live in their own folder, never on the host's import path.
STUBS_DIR = VENV / "mpstubs"
STUBS = "micropython-esp32-esp32-generic-c3-stubs==1.29.0.post1"


def _python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def _fingerprint() -> str:
    digest = hashlib.sha256(STUBS.encode())
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def ensure_env() -> Path:
    """Create .venv and install the pinned project into it, unless it is already current."""
    if sys.version_info < (3, 11):
        sys.exit("msa: Python 3.11 or newer is needed; run this script with python3.11")
    want = _fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == want and _python().exists():
        return _python()
    print("msa: setting up .venv with pinned dependencies (first run takes a minute)", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = (_python(), "-m", "pip", "--disable-pip-version-check", "-q")
    _run(*pip, "install", "-c", CONSTRAINTS, "-e", f"{ROOT}[dev]")
    _run(*pip, "install", "--no-deps", "--target", STUBS_DIR, STUBS,
         "micropython-stdlib-stubs==1.29.0.post2")
    STAMP.write_text(want + "\n")
    return _python()


# --- system programs some tests drive (test job only) --------------------------------------
# tests/test_location.py replays NMEA through real gpsd with gpsfake, from Debian's gpsd and
# gpsd-clients (which bring python3-gps for the system python3 that runs gpsfake; gpsfake
# starts its own gpsd on a private port, so the system gpsd service is never used).
# tests/test_operator_page.py renders the centre's operator page in Debian's headless Chromium.
# tests/pg.py runs a throw-away PostgreSQL cluster with initdb, pg_ctl and postgres from
# Debian's postgresql (its system cluster and service are never used).
# Those tests skip with a reason where the program is missing; under CI a program that cannot
# be installed fails the run here, and any skip fails the test (tests/conftest.py).
SYSTEM_PROGRAMS = {"gpsfake": ("gpsd", "gpsd-clients"), "chromium": ("chromium",),
                   "postgresql": ("postgresql",)}
# Debian keeps PostgreSQL's server programs off PATH, in /usr/lib/postgresql/<major>/bin.
POSTGRESQL_LIB = Path("/usr/lib/postgresql")
POSTGRESQL_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def under_ci() -> bool:
    """CI is set, and not to "", "0" or "false" (any case): the same rule as tests/conftest.py."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


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


def missing_programs() -> list[str]:
    return [name for name in SYSTEM_PROGRAMS
            if (postgresql_bin() if name == "postgresql" else shutil.which(name)) is None]


def ensure_system_programs() -> None:
    """Install the Debian packages of missing programs when this is root with apt-get;
    otherwise say in one line which tests will be skipped."""
    missing = missing_programs()
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(f"msa: {', '.join(missing)} missing and not installable here (needs root and"
              " apt-get); the tests that use them will be skipped", flush=True)
        return
    packages = [p for name in missing for p in SYSTEM_PROGRAMS[name]]
    print(f"msa: installing {' '.join(packages)} from Debian for the tests", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (("update", "-qq"),
                 ("install", "-y", "-qq", "--no-install-recommends", *packages)):
        proc = subprocess.run([apt, *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            print(f"msa: apt-get {args[0]} failed ({why}); the tests that use"
                  f" {', '.join(missing)} will be skipped", flush=True)
            return


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    python = ensure_env()
    job, rest = argv[0], argv[1:]
    if job == "demo":
        cmd = [str(python), "-m", "msa.tools.cli", "sim", "demo", *rest]
    else:
        ensure_system_programs()
        still = missing_programs()
        if still and under_ci():
            print(f"msa: CI needs {', '.join(still)} (Debian "
                  f"{' '.join(p for name in still for p in SYSTEM_PROGRAMS[name])}) and could not"
                  " install it; CI runs every test, so this run fails", file=sys.stderr,
                  flush=True)
            return 1
        # Four workers on two cores: the simulator's tests mostly wait on real time (a whole
        # run uses about 3 CPU-minutes in 7), so they overlap well (pytest-xdist).
        workers = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) \
            else ["-n", "4"]
        cmd = [str(python), "-m", "pytest", *workers, *rest]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
