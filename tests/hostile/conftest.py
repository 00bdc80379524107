"""Fixtures of the hostile-input suite (issue 12); the kit they use is hostile_kit.py."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_kit import Live  # noqa: E402


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    c = Live(tmp_path / "centre")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if anything logged a traceback (or an aiohttp 500) meanwhile."""
    caplog.set_level(logging.WARNING)
    yield
    # The test's own records: in a fixture's teardown, caplog.records holds the teardown's.
    bad = [r for r in caplog.get_records("call") if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
