"""An alarm while the centre is held by idle and slow clients (issue 12, part 11): the press ->
centre ACK time of a valid alarm through the whole simulated chain, while another process holds
1,000 idle connections (half on the DC-09 receiver, from 32 loopback addresses, half on the
API's TLS port, never starting a handshake) and 20 slow-header clients (TLS, then a header
trickled a byte a second, never ended), each re-opened as soon as the centre closes it.

The open-file soft limit is first lowered to 1,024 (the limit under which 1,100 idle DC-09
connections made a valid alarm time out), so that the centre's own raising of it is measured.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa.simulator.chain import Chain
from msa.simulator.latency import GAP_S, HOLD_MS
from msa.wire.protocol import Kind

IDLE = 1000
SLOW = 20
PEERS = 32  # loopback source addresses of the idle DC-09 connections (16 each at most)
REPORT_S = 0.5
# Presses this far apart span several of the centre's 10 s header and first-message timeouts:
# the alarms meet the attacker's reconnections too, not only connections at rest.
PRESS_EVERY_S = 3.0
CLOSED_LIMIT = 1024


@dataclass
class Held:
    """What the presses measured, and what was held meanwhile."""

    ack_ms: list[float]
    idle: int  # idle connections open when the last press was acknowledged
    slow: int
    reopened: int  # connections the centre closed and the attacker opened again
    limit_before: int
    limit_after: int


async def _idle(host: str, port: int, source: str | None, state: dict[str, int]) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=None if source is None else (source, 0))
        except OSError:
            await asyncio.sleep(0.2)
            continue
        state["idle"] += 1
        with contextlib.suppress(OSError):
            await reader.read()  # until the centre closes it
        state["idle"] -= 1
        state["reopened"] += 1
        writer.close()


async def _slow(host: str, port: int, ca: str, state: dict[str, int]) -> None:
    context = ssl.create_default_context(cafile=ca)
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=context,
                                                           server_hostname="127.0.0.1")
        except (OSError, ssl.SSLError):
            await asyncio.sleep(0.2)
            continue
        state["slow"] += 1
        try:
            writer.write(b"POST /v1/alarms HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            while not reader.at_eof():
                writer.write(b"a")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 1.0)
        except (OSError, ssl.SSLError):
            pass
        state["slow"] -= 1
        state["reopened"] += 1
        writer.close()


def _attacker_main() -> None:
    """The holding clients, in a process of their own: argv api_port dc09_port idle slow ca.
    Prints its counts as a JSON line every REPORT_S."""
    api, dc09_port, idle, slow = (int(a) for a in sys.argv[1:5])
    ca = sys.argv[5]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        state = {"idle": 0, "slow": 0, "reopened": 0}
        tasks = []
        for i in range(idle):
            if dc09_port and i % 2:
                tasks.append(_idle("127.0.0.1", dc09_port, f"127.0.1.{1 + i // 2 % PEERS}",
                                   state))
            else:
                tasks.append(_idle("127.0.0.1", api, None, state))
        tasks += [_slow("127.0.0.1", api, ca, state) for _ in range(slow)]
        running = [asyncio.create_task(t) for t in tasks]
        while True:
            print(json.dumps(state), flush=True)
            await asyncio.sleep(REPORT_S)
            if all(t.done() for t in running):
                return
    asyncio.run(main())


async def _counts(proc: asyncio.subprocess.Process) -> dict[str, int]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise RuntimeError("the holding clients ended")
    counts: dict[str, int] = json.loads(line)
    return counts


async def measure(root: Path, presses: int, idle: int = IDLE, slow: int = SLOW) -> Held:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    closed = min(CLOSED_LIMIT, hard) if hard != resource.RLIM_INFINITY else CLOSED_LIMIT
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, closed), hard))
    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    chain = Chain(root, channels=("https", "sms"), hold_ms=HOLD_MS, heartbeat_s=3600,
                  extra_toml="[tracking]\nwindow_s = 0\n")
    proc: asyncio.subprocess.Process | None = None
    acks: list[float] = []
    try:
        await chain.start()  # start_centre raises the limit again, as `msa centre` does
        after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        await chain.event(Kind.BOOT)
        centre = chain.centre
        assert centre is not None and centre.dc09 is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from msa.bench.hostile_hold import _attacker_main;"
            " _attacker_main()", str(centre.api_port), str(centre.dc09.port), str(idle),
            str(slow), str(centre.tls.ca_cert), stdout=asyncio.subprocess.PIPE)
        deadline = time.monotonic() + 60
        counts = await _counts(proc)
        while counts["idle"] < idle * 0.95 or counts["slow"] < slow:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {counts} of {idle} idle and {slow} slow held")
            counts = await _counts(proc)
        for _ in range(presses):
            timing, _event = await chain.press(HOLD_MS + 30)
            assert timing.acked_at is not None
            acks.append((timing.acked_at - timing.press_at - HOLD_MS / 1000) * 1000)
            await asyncio.sleep(max(GAP_S, PRESS_EVERY_S - (time.time() - timing.press_at))
                                if len(acks) < presses else GAP_S)
        counts = await _drain(proc)
        return Held(acks, counts["idle"], counts["slow"], counts["reopened"], before, after)
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await chain.close()


async def _drain(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The attacker's latest counts (its lines queue up while the presses run)."""
    assert proc.stdout is not None
    counts = await _counts(proc)
    while True:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 0.05)
        except TimeoutError:
            return counts
        if not line:
            return counts
        counts = json.loads(line)
