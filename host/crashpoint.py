"""Crash points for the crash run only (`msa sim crash`, tests/sim/test_crash_run.py): a host
started with MSA_CRASH_AT=<point>[:<kind>] in its environment SIGKILLs itself when it reaches
that point (for a message of that kind), so that the two narrowest windows of the outbox's
at-least-once delivery are hit on purpose, not only when a random kill happens to land there.

Without the variable (always, in service) reached() does nothing. It gives no one a power they
lack: whoever sets a process's environment can kill the process anyway.
"""
from __future__ import annotations

import os
import signal

ENV = "MSA_CRASH_AT"
# The event is committed to the outbox; its number is not spent and the button not acknowledged.
COMMITTED = "committed"
# The centre acknowledged a message; its receipt is not yet committed to the outbox.
ACCEPTED = "accepted"
POINTS = (COMMITTED, ACCEPTED)


def reached(point: str, kind: str) -> None:
    """Dies at once, as by `kill -9`, if MSA_CRASH_AT names this point (and kind)."""
    wanted = os.environ.get(ENV)
    if wanted and wanted in (point, f"{point}:{kind}"):
        os.kill(os.getpid(), signal.SIGKILL)
