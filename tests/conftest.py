"""pytest setup: firmware tests in tests/firmware run under CPython and, as twins, under the
real MicroPython interpreter; a failure under either interpreter fails the suite. Under CI no
test may skip (a skip fails), and the long real-time tests get their longer deadlines."""
from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "firmware"), str(HERE.parent / "board"),
                str(HERE / "firmware"), str(HERE / "firmware" / "cpy")]

from mpy import MicroPythonError, Worker  # noqa: E402

_WORKER: Worker | None = None


def mp_worker() -> Worker:
    """The session's MicroPython worker."""
    global _WORKER
    if _WORKER is None:
        _WORKER = Worker()
    return _WORKER


@pytest.fixture(scope="session")
def mp() -> Iterator[Worker]:
    """The session's MicroPython worker, for tests that compare both interpreters."""
    yield mp_worker()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _WORKER is not None:
        _WORKER.close()


class MicroPythonItem(pytest.Item):
    """One firmware test function, run inside MicroPython."""

    def __init__(self, *, module: str, function: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.function = function
        self.add_marker(pytest.mark.micropython)

    def runtest(self) -> None:
        mp_worker().call(self.module, self.function)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, MicroPythonError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.name}"


class MicroPythonFile(pytest.File):
    """Lists a firmware test module's test_* functions without importing it."""

    def collect(self) -> Iterator[MicroPythonItem]:
        tree = ast.parse(self.path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield MicroPythonItem.from_parent(self, name=f"{node.name}[micropython]",
                                                  module=self.path.stem, function=node.name)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if (file_path.suffix == ".py" and file_path.name.startswith("test_")
            and file_path.parent == HERE / "firmware"):
        return MicroPythonFile.from_parent(parent, path=file_path)
    return None


# --- a CI that cannot go quietly green -----------------------------------------------------

# Tests that run real processes in real time (the simulated button, the benchmark sections)
# take up to ~35 s on a 2-core machine: they get this deadline instead of pyproject's 120 s.
LONG_TIMEOUTS_S = {HERE / "sim": 600, HERE / "test_bench_": 600}


def under_ci() -> bool:
    """CI is set, and not to "", "0" or "false" (any case)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        where = str(item.path)
        for prefix, seconds in LONG_TIMEOUTS_S.items():
            if where.startswith(str(prefix)):
                item.add_marker(pytest.mark.timeout(seconds))
                break


def _fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (report.skipped and under_ci()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI (CI={os.environ.get('CI')!r}), where every test "
                       f"must run: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())  # type: ignore[attr-defined]
