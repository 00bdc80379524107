"""Mutation testing of the modules the safety claims rest on, with mutmut, outside the work tree.

Run: .venv/bin/python -m msa.tools.mutate [--jobs N] [--workdir DIR] [TARGET ...]
(docs/testing.md says what the scores mean). It is not part of CI: all targets take long.

Why a staging tree: mutmut names each mutant after the file's path (src/msa/host/receiver.py
becomes msa.host.receiver) and only switches a mutant on where the importing module has that
very name. The repository maps folders to `msa.*` with package-dir, and the firmware tests
import firmware modules by their bare name (`import frame`), so neither matches a path here.
Each target therefore gets its own folder in which the packages sit where their names say
(src/msa/host/...), a firmware module sits as src/frame.py, and mutmut runs there. The work
tree is only read.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError
from .mutation_targets import TARGETS, Target

ROOT = Path(__file__).resolve().parent.parent


class MutationError(ToolError):
    """A mutation run could not be set up or did not finish."""

    def __init__(self, target: str, message: str, hint: str = "") -> None:
        self.target = target
        super().__init__(f"{target}: {message}", hint)


@dataclass(frozen=True)
class Score:
    """How one target's mutants fared."""

    target: str
    killed: int       # a selected test failed (or timed out: the mutant hung a test)
    survived: int     # every selected test passed
    no_tests: int     # no selected test ever called the mutated function
    other: int        # suspicious, segfault, not checked
    sql_case: int     # of the survivors: only the case of an SQL string changed (equivalent)
    survivors: tuple[str, ...]  # every mutant not killed, SQL-case ones included

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.no_tests + self.other

    @property
    def percent(self) -> float:
        """Killed among the mutants that can be killed at all (SQL-case ones cannot)."""
        killable = self.total - self.sql_case
        return 100.0 * self.killed / killable if killable else 100.0


# SQLite reads keywords and identifiers in any case, so a mutant that only upper- or
# lower-cases an SQL string behaves exactly as the original, unless it changes a quoted
# literal ('open' is not 'OPEN'): those are left to the tests.
_SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|BEGIN|COMMIT|ROLLBACK|"
                       r"PRAGMA|FROM|WHERE|VALUES|CONFLICT|EXCLUDED|INTEGER|TEXT|REAL|BLOB|"
                       r"PRIMARY|COALESCE|ORDER|LIMIT|AND|NULL|SET|INTO|TABLE|INDEX|DEFAULT|"
                       r"EXISTS|IS NOT|IS|MAX|MIN|COUNT)\b")  # upper case, as this code has it


_STRING = re.compile(r'"[^"]*"')
_QUOTED = re.compile(r"'[^']*'")  # an SQL string literal: its case matters
# A line of an upsert's "DO UPDATE SET a = excluded.a, ...": SQL without an upper-case keyword.
_UPSERT = re.compile(r"\bexcluded\.\w+")


def sql_case_only(diff: str) -> bool:
    """True for a mutant diff that only changes the letter case of SQL string literals."""
    def code(line: str) -> str:
        return line[1:].split("  # pragma: no mutate")[0]

    removed = [code(ln) for ln in diff.splitlines() if ln.startswith("-")
               and not ln.startswith("---")]
    added = [code(ln) for ln in diff.splitlines() if ln.startswith("+")
             and not ln.startswith("+++")]
    if len(removed) != len(added) or not removed:
        return False
    for r, a in zip(removed, added):
        old, new = _STRING.findall(r), _STRING.findall(a)
        changed = [(o, n) for o, n in zip(old, new) if o != n]
        if (len(old) != len(new) or not changed or _STRING.sub('""', r) != _STRING.sub('""', a)
                or not all(o.lower() == n.lower() and (_SQL_WORD.search(o) or _UPSERT.search(o))
                           and _QUOTED.findall(o) == _QUOTED.findall(n) for o, n in changed)):
            return False
    return True


def _package_dirs(root: Path) -> dict[str, str]:
    """pyproject's package-dir: installed name ("msa.host") -> folder ("host")."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    dirs: dict[str, str] = data["tool"]["setuptools"]["package-dir"]
    return dirs


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "mutants", ".pytest_cache")}


_LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
_LOGGERS = frozenset({"log", "_throttled"})  # a module's logger, and the centre's rate limiter
_NO_MUTATE = "  # pragma: no mutate (a log call: tests assert on values, never on log text)"


def _log_calls(source: str) -> list[tuple[int, int]]:
    """(first, last) line of each `log.<level>(...)` statement (or `_throttled.<level>`)."""
    spans: list[tuple[int, int]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Expr):
            continue
        call = node.value
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id in _LOGGERS
                and call.func.attr in _LOG_LEVELS):
            spans.append((node.lineno, node.end_lineno or node.lineno))
    return spans


def exclude_log_calls(path: Path) -> int:
    """Marks the log calls in a staged file so that mutmut leaves them alone: what they print
    is never asserted on, by rule. A call over several lines is first joined onto one (mutmut
    reads a pragma per line); only layout and comments change, never what the module does.
    Returns how many calls were marked."""
    source = path.read_text()
    lines = source.split("\n")
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    awkward = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    awkward |= {n for t in tokens if t.type == tokenize.STRING and t.end[0] > t.start[0]
                for n in range(t.start[0], t.end[0] + 1)}
    spans = sorted(_log_calls(source), reverse=True)
    for first, last in spans:
        if awkward & set(range(first, last + 1)):
            continue  # a comment or a multi-line string inside: left as it is, mutated
        joined = lines[first - 1].rstrip() + "".join(
            " " + lines[n - 1].strip() for n in range(first + 1, last + 1))
        lines[first - 1:last] = [joined + _NO_MUTATE]
    path.write_text("\n".join(lines))
    return len(spans)


def stage(target: Target, where: Path, root: Path = ROOT) -> None:
    """Lays out a folder for mutmut in which module names match file paths, from the source
    tree at root."""
    if where.exists():
        shutil.rmtree(where)
    src = where / "src"
    (src / "msa").mkdir(parents=True)
    # A regular package shadows the editable install's `msa`, so every msa.* import resolves
    # in the staged (and mutated) copy.
    (src / "msa" / "__init__.py").write_text('"""msa, staged for mutation testing."""\n')
    for name, folder in _package_dirs(root).items():
        shutil.copytree(root / folder, src / Path(*name.split(".")), ignore=_ignore)
    also_copy = ["tests", "docs", "board"]
    if target.firmware:
        # Bare firmware modules (`import frame`) come from src/; there is no firmware/ folder
        # for tests/conftest.py to put ahead of it.
        for module in (root / "firmware").glob("*.py"):
            shutil.copy2(module, src / module.name)
        mutated = f"src/{Path(target.path).name}"
    else:
        also_copy.append("firmware")
        mutated = f"src/msa/{target.path}"
    for name in also_copy:
        shutil.copytree(root / name, where / name, ignore=_ignore)
    exclude_log_calls(where / mutated)
    missing = [t for t in target.tests if not (root / t.split("::")[0]).exists()]
    if missing:
        raise MutationError(target.name, f"test files not found: {', '.join(missing)}",
                            "fix TARGETS in tools/mutation_targets.py")
    config = {
        "source_paths": ["src"],
        "only_mutate": [mutated],
        "also_copy": also_copy,
        "pytest_add_cli_args": ["-m", "not micropython", "-p", "no:cacheprovider"],
        "pytest_add_cli_args_test_selection": list(target.tests) + [
            arg for test in target.deselect for arg in ("--deselect", test)],
        "use_git_change_detection": False,
        # A mutant that makes a test spin is cut off after 2 x 2x (mutmut's default: 2 x 15x)
        # the CPU time its tests took unmutated: it counts as killed either way.
        "timeout_multiplier": 2.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    (where / "pyproject.toml").write_text((root / "pyproject.toml").read_text()
                                          + "\n".join(lines) + "\n")


def _mutmut(where: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MUTANT_UNDER_TEST"}
    cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", *args]
    if log is None:
        return subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True)
    with log.open("w") as out:
        return subprocess.run(cmd, cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT,
                              text=True)


def _diff(where: Path, key: str) -> str:
    return _mutmut(where, "show", key).stdout


def _import_time_functions(source: str, package: Sequence[str] = ()) -> set[str]:
    """Functions that run while modules are imported: those the module calls at its top
    level (a table built at import time), and those used as decorators in it or in any of
    `package`'s sources (a decorator runs when the module it decorates is imported)."""
    names: set[str] = set()
    for stmt in ast.parse(source).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        names |= {node.func.id for node in ast.walk(stmt)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    for text in (source, *package):
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for decorator in node.decorator_list:
                    call = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if isinstance(call, ast.Name):
                        names.add(call.id)
    return names


def _applied(target: Target, where: Path, rel: str, key: str) -> bool:
    """Whether a test fails with the mutant written into the staged source itself (for code
    that runs at import time, which mutmut's switch cannot reach: its workers fork from a
    process that imported the module already). Results are kept in applied.json."""
    cache_path = where / "applied.json"
    cache: dict[str, bool] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    if key not in cache:
        source = where / rel
        original = source.read_text()
        try:
            _mutmut(where, "apply", key)
            selection = list(target.tests) + [a for t in target.deselect
                                              for a in ("--deselect", t)]
            env = {**os.environ, "PYTHONPATH": str(where / "src")}
            env.pop("MUTANT_UNDER_TEST", None)
            try:
                proc = subprocess.run(
                    ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q",
                     "-p", "no:cacheprovider", "-m", "not micropython", *selection],
                    cwd=where, env=env, capture_output=True, text=True, timeout=600)
                cache[key] = proc.returncode in (1, 2, 3)  # failed, or broke the import
            except subprocess.TimeoutExpired:
                cache[key] = True  # the mutant hung the tests: they noticed
        finally:
            source.write_text(original)
        cache_path.write_text(json.dumps(cache, indent=1) + "\n")
    return cache[key]


def score(target: Target, where: Path) -> Score:
    """Reads mutmut's verdicts for the target's file, and writes survivors.txt: the diff of
    every mutant not killed, SQL-case ones marked as such. A survivor in a function that runs
    at import time is tried again written into the source (see _applied)."""
    rel = f"src/{Path(target.path).name}" if target.firmware else f"src/msa/{target.path}"
    if not (where / "mutants" / (rel + ".meta")).exists():
        raise MutationError(target.name, f"no mutmut results for {rel}",
                            f"read {where / 'mutmut.log'}")
    # `mutmut results --all true` prints "    <mutant>: <status>" for every mutant.
    listing = _mutmut(where, "results", "--all", "true").stdout
    verdicts = dict(line.strip().rsplit(": ", 1) for line in listing.splitlines()
                    if ": " in line and line.startswith("    "))
    at_import = _import_time_functions(
        (where / rel).read_text(),
        [p.read_text() for p in (where / rel).parent.glob("*.py") if p != where / rel])
    counts = {"killed": 0, "survived": 0, "no_tests": 0, "other": 0, "sql_case": 0}
    survivors: list[str] = []
    with (where / "survivors.txt").open("w") as out:
        for key, status in sorted(verdicts.items()):
            function = key.rsplit(".", 1)[-1].split("__mutmut_")[0]
            if (status == "survived" and function.removeprefix("x_") in at_import
                    and _applied(target, where, rel, key)):
                status = "killed"
            if status in ("killed", "timeout"):
                counts["killed"] += 1
                continue
            counts[{"survived": "survived", "no tests": "no_tests"}.get(status, "other")] += 1
            survivors.append(key)
            diff = _diff(where, key)
            if status == "survived" and sql_case_only(diff):
                counts["sql_case"] += 1
                out.write("[equivalent: SQL case] ")
            elif function.removeprefix("x_") in at_import:
                out.write("[import time: survived when written into the source] ")
            out.write(diff + "\n")
    return Score(target.name, survivors=tuple(survivors), **counts)


def run(target: Target, workdir: Path, jobs: int, root: Path = ROOT) -> Score:
    """Stages, runs mutmut, scores; writes score.json and survivors.txt beside the log."""
    where = workdir / target.name.replace("/", "_")
    stage(target, where, root)
    proc = _mutmut(where, "run", "--max-children", str(jobs), log=where / "mutmut.log")
    if proc.returncode != 0:
        raise MutationError(target.name, f"mutmut exited with {proc.returncode}",
                            f"read {where / 'mutmut.log'}")
    result = score(target, where)
    (where / "score.json").write_text(json.dumps(
        {"target": result.target, "mutants": result.total, "killed": result.killed,
         "survived": result.survived, "no_tests": result.no_tests, "other": result.other,
         "sql_case": result.sql_case, "score": round(result.percent, 1)}) + "\n")
    return result


def table(scores: list[Score]) -> str:
    rows = ["| module | mutants | killed | survived | of which SQL case | no tests | score |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {s.target}.py | {s.total} | {s.killed} | {s.survived} | {s.sql_case} | "
             f"{s.no_tests + s.other} | {s.percent:.1f}% |" for s in scores]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msa.tools.mutate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="e.g. host/receiver firmware/frame (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel mutants (default 2)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "msa-mutate",
                        help="where the staged copies and logs go (default: %(default)s)")
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="the source tree to copy (default: this checkout, %(default)s)")
    parser.add_argument("--list", action="store_true", help="print the targets and exit")
    parser.add_argument("--report", action="store_true",
                        help="score the last run in --workdir again, without running mutmut")
    args = parser.parse_args(argv)
    known = {t.name: t for t in TARGETS}
    if args.list:
        for t in TARGETS:
            print(f"{t.name:<22} {' '.join(t.tests)}")
        return 0
    unknown = [name for name in args.targets if name not in known]
    if unknown:
        print(f"msa: unknown target {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [known[name] for name in args.targets] or list(TARGETS)
    if importlib.util.find_spec("mutmut") is None:
        print("msa: mutmut is not installed in this environment; run python3 bootstrap.py test"
              " once (the dev extra pins it), then this command with .venv/bin/python",
              file=sys.stderr)
        return 2
    scores: list[Score] = []
    failed = False
    for target in chosen:
        if not args.report:
            print(f"{target.name}: running", flush=True)
        try:
            if args.report:
                s = score(target, args.workdir / target.name.replace("/", "_"))
            else:
                s = run(target, args.workdir, args.jobs, args.source.resolve())
        except ToolError as e:
            print(f"msa: {e}", file=sys.stderr)
            failed = True
            continue
        scores.append(s)
        print(f"{target.name}: {s.killed}/{s.total} killed ({s.percent:.1f}%), "
              f"unkilled listed in {args.workdir / target.name.replace('/', '_')}/survivors.txt",
              flush=True)
    print(table(scores))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
