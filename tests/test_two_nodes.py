"""Two centre nodes on one PostgreSQL (issue 17): a simulated fleet sends alarms and updates
through both while one node after the other is SIGKILLed mid-stream, at least 20 times
(simulator/nodes.py). Every acknowledged message is in the shared records, counted exactly
once; the hosts that were using a killed node get the other node's acknowledgement within
the channel's deadline."""
from __future__ import annotations

import asyncio
from pathlib import Path

from msa.centre.migrations import migrate_all
from msa.simulator.nodes import DEADLINE_S, drill

from pg import pg_database, pg_server  # noqa: F401

KILLS = 20


def test_twenty_kills_lose_nothing_and_count_nothing_twice(tmp_path: Path,
                                                           pg_database: str) -> None:
    migrate_all(pg_database)
    result = asyncio.run(asyncio.wait_for(drill(tmp_path, pg_database, kills=KILLS), 600))
    print(result.summary())
    assert result.problems == []
    assert len(result.kills) == KILLS and all(k.gaps_s for k in result.kills)
    assert result.messages > 40 * KILLS  # traffic ran through every kill
    # Each host waits at most its channel's deadline for the other node (plus slack for a
    # loaded machine): inside the 5 s SMS fallback.
    assert max(result.gaps_s) < DEADLINE_S + 1.5
