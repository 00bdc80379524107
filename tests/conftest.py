"""pytest setup: firmware tests in tests/firmware run under CPython and, as twins, under the
real MicroPython interpreter; a failure under either interpreter fails the suite."""
from __future__ import annotations

import ast
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
