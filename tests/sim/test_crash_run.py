"""Real crashes (issue 13): `msa host run` in its own process, SIGKILLed at random instants and
at both crash points, restarted each time, while the virtual board's button is pressed; the
reference centre must count every press exactly once. `msa sim crash --kills 60` is the long
run; this one is short enough for the suite (about 30 s)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from msa.host import crashpoint
from msa.simulator import crash

KILLS = 9  # three at random, three at each crash point


@pytest.mark.timeout(300)
def test_host_killed_at_random_and_at_both_crash_points_loses_and_repeats_no_alarm(
        tmp_path: Path) -> None:
    r = crash.run(KILLS, tmp_path)
    figures = crash.render(r)
    assert r.kills == KILLS, figures
    assert r.random_kills == KILLS // 3, figures
    # Each forced kill came at its point, and left the records in that point's window: an
    # alarm stored but its number unspent (so never acknowledged), or counted at the centre
    # but not delivered in the outbox.
    assert r.forced == {crashpoint.COMMITTED: 3, crashpoint.ACCEPTED: 3}, figures
    assert r.in_window == r.forced, figures
    assert r.presses >= 3, figures
    assert (r.counted, r.duplicates, r.lost, r.undelivered) == (r.presses, 0, 0, 0), figures
    assert r.exactly_once and r.clean_exit, figures


def _reach(point: str, kind: str, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != crashpoint.ENV}
    if crash_at is not None:
        env[crashpoint.ENV] = crash_at
    code = ("from msa.host import crashpoint; "
            f"crashpoint.reached({point!r}, {kind!r}); print('alive')")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode


@pytest.mark.parametrize("point, kind, crash_at, status", [
    (crashpoint.COMMITTED, "alarm", None, 0),  # off unless asked for
    (crashpoint.COMMITTED, "alarm", "", 0),
    (crashpoint.COMMITTED, "alarm", "committed", -signal.SIGKILL),  # any kind
    (crashpoint.COMMITTED, "alarm", "committed:alarm", -signal.SIGKILL),
    (crashpoint.COMMITTED, "heartbeat", "committed:alarm", 0),  # another kind
    (crashpoint.ACCEPTED, "alarm", "committed:alarm", 0),  # another point
    (crashpoint.ACCEPTED, "alarm", "accepted:alarm", -signal.SIGKILL),
    (crashpoint.ACCEPTED, "alarm", "accepted:alarm:x", 0),
])
def test_a_crash_point_kills_only_where_and_for_what_it_is_set(
        point: str, kind: str, crash_at: str | None, status: int) -> None:
    assert _reach(point, kind, crash_at) == status
