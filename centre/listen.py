"""Hears what the other nodes of a centre commit to their shared PostgreSQL: each node's records
NOTIFY on one channel in the transaction that commits an alarm, an update or a resolve
(centre/core.py, CHANNEL), and every node LISTENs, so that an operator's page on any node shows
the same live alarms within a network round trip, not at the next poll.

A notification carries only the node that wrote: the page reads the records again, which hold
the truth. A notification lost while the listening connection was down is made good on
reconnecting: the page is told to read again at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import psycopg

from .core import CHANNEL
from .storage import CONNECT_TIMEOUT_S, redact

log = logging.getLogger("msa.centre.listen")

RETRY_S = 1.0  # a lost listening connection is opened again after this long


def _sender(payload: str) -> str | None:
    try:
        found = json.loads(payload)
    except ValueError:
        return None
    return found.get("node") if isinstance(found, dict) else None


async def follow(url: str, node: str, on_change: Callable[[], None],
                 retry_s: float = RETRY_S) -> None:
    """Calls `on_change` whenever another node than `node` commits on CHANNEL, and once on
    every (re)connection; until cancelled. Connection failures are logged and retried."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="msa-centre-listen")
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                on_change()  # whatever was committed while no one listened
                async for note in conn.notifies():
                    if _sender(note.payload) != node:
                        on_change()
            finally:
                await conn.close()
        except psycopg.Error as exc:
            log.warning("listening to %s for other nodes' commits failed, again in %g s: %s",
                        redact(url), retry_s, exc)
        await asyncio.sleep(retry_s)
