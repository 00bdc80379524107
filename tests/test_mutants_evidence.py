"""Exact values the audit log, the evidence check and the centre's read side promise, where
mutation testing found a change that no other test noticed (docs/testing.md lists them): the
audit log's limits, refusals and verdicts with their seq and reason, pruning at its edges, each
evidence check's own finding on a bundle changed (and re-signed) in one way, and the records'
reads field by field. Real AuditLog, Centre and Registry on tmp_path, real bundles."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msa.centre.audit import (DETAIL_MAX, FIELD_MAX, GENESIS, PRUNE_ACTION, AuditLog,
                              canonical_detail, entry_hash)
from msa.centre.errors import AuditError

T = 1_700_000_000.0


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(tmp_path / "audit.db")
    yield audit
    audit.close()


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(f"op{i}", "case.view", f"CASE-{i % 2}", "10.0.0.7", {"i": i}, at=T + i)


def _raw(log: AuditLog, sql: str, args: tuple[Any, ...] = ()) -> None:
    # What someone holding the file would do: another connection, no AuditLog involved.
    db = sqlite3.connect(log.path, isolation_level=None)
    db.execute(sql, args)
    db.close()


# --- audit: what append() takes ---------------------------------------------------------------
