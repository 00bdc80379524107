"""Benchmark section "dc09": a press's gesture threshold to the alarm receiver's ACK over the
host's SIA DC-09 channel (TCP, AES), with pysiaalarm as the independent receiver.

The chain is the real one (simulator/chain.py): the firmware in MicroPython on a virtual board,
Bumble, the host service with its outbox and dispatcher, the simulated GPS; its only channel is
DC-09 to a pysiaalarm server on loopback, configured as a deployment would (a `[[channel]]`
block with its own account and key file). Tracking is off (window 0): every press opens an
incident of its own, and hundreds of them updating every 10 s would queue behind the presses,
which no single button does.
"""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msa.wire.protocol import Kind
from msa.simulator import latency
from msa.simulator.chain import Chain

from .figures import Better, Figure, Options, median, percentile
from .latency import RADIO_FLOOR

SECTION = "dc09"
TARGET_P99_MS = 50.0
HOLD_MS = latency.HOLD_MS  # the shortest hold the firmware accepts: many presses fit
ACCOUNT = "BEEF0001"  # the DC-09 account the host reports under (pysiaalarm knows only these)
FLOOR = RADIO_FLOOR  # the simulation has no air time and no connection interval


@dataclass
class Samples:
    to_host_ms: list[float] = field(default_factory=list)
    to_ack_ms: list[float] = field(default_factory=list)
    host_to_ack_ms: list[float] = field(default_factory=list)
    channels: set[str] = field(default_factory=set)
    received: list[str] = field(default_factory=list)  # SIA codes pysiaalarm passed on


def _channel_toml(port: int, key_file: Path) -> str:
    return (f'[tracking]\nwindow_s = 0\n\n[[channel]]\ntype = "dc09"\nhost = "127.0.0.1"\n'
            f'port = {port}\ntransport = "tcp"\naccount = "{ACCOUNT}"\n'
            f'key_file = "{key_file}"\ndeadline_s = 2.0\n')


async def measure(root: Path, presses: int) -> Samples:
    from pysiaalarm.account import SIAAccount
    from pysiaalarm.aio.client import SIAClient
    from pysiaalarm.event import SIAEvent
    from pysiaalarm.utils.enums import CommunicationsProtocol

    samples = Samples()
    key = secrets.token_hex(8).upper()  # pysiaalarm's key: 16 hex characters, used as ASCII

    async def on_event(event: SIAEvent) -> None:
        samples.received.append(str(event.code))

    client: Any = SIAClient  # its __new__ picks the TCP subclass: not abstract at run time
    receiver = client("127.0.0.1", 0, [SIAAccount(ACCOUNT, key)], on_event,
                      protocol=CommunicationsProtocol.TCP)
    await receiver.async_start()
    port = int(receiver.server.sockets[0].getsockname()[1])
    root.mkdir(parents=True, exist_ok=True)
    key_file = root / "dc09-pysia.key"
    key_file.write_text(key.encode("ascii").hex() + "\n")
    key_file.chmod(0o600)
    chain = Chain(root / "chain", channels=(), extra_toml=_channel_toml(port, key_file),
                  hold_ms=HOLD_MS, heartbeat_s=3600)
    try:
        await chain.start()
        await chain.event(Kind.BOOT)
        for _ in range(presses):
            timing, _event = await chain.press(HOLD_MS + 30)
            assert timing.host_at is not None and timing.acked_at is not None
            threshold = timing.press_at + HOLD_MS / 1000
            samples.to_host_ms.append((timing.host_at - threshold) * 1000)
            samples.to_ack_ms.append((timing.acked_at - threshold) * 1000)
            samples.host_to_ack_ms.append((timing.acked_at - timing.host_at) * 1000)
            samples.channels.add(timing.channel)
            await asyncio.sleep(latency.GAP_S)
    finally:
        await chain.close()
        await receiver.async_stop()
    return samples


def _figures(s: Samples) -> list[Figure]:
    n = len(s.to_ack_ms)
    how = (f"{n} presses, {HOLD_MS} ms holds; threshold = first edge + hold; ACK = the "
           f"channel's return on pysiaalarm's encrypted ACK; channels used: "
           f"{'+'.join(sorted(s.channels))}; pysiaalarm passed on {len(s.received)} events "
           f"({', '.join(sorted(set(s.received)))})")
    return [
        Figure(SECTION, "threshold -> DC-09 ACK, p99", round(percentile(s.to_ack_ms, 99), 2),
               "ms", TARGET_P99_MS, Better.LOWER, FLOOR, how),
        Figure(SECTION, "threshold -> DC-09 ACK, median", round(median(s.to_ack_ms), 2), "ms",
               note=how),
        Figure(SECTION, "threshold -> DC-09 ACK, max", round(max(s.to_ack_ms), 2), "ms"),
        Figure(SECTION, "threshold -> verified event at the host, p99",
               round(percentile(s.to_host_ms, 99), 2), "ms", floor=FLOOR,
               note="the BLE part: firmware, bridge, Bumble, bleak, frame verification"),
        Figure(SECTION, "host -> DC-09 ACK, p99", round(percentile(s.host_to_ack_ms, 99), 2),
               "ms", note="the host's part: outbox commit, dispatcher, SIA-DCS encoding, AES, "
                          "loopback TCP, pysiaalarm's decryption, parse and ACK"),
        Figure(SECTION, "alarms received by pysiaalarm", float(s.received.count("PA")),
               "alarms", float(n), Better.HIGHER,
               note="SIA-DCS PA events pysiaalarm decrypted, parsed and passed on: one a press"),
    ]


def run(options: Options) -> list[Figure]:
    try:
        import pysiaalarm  # noqa: F401  (a dev dependency: msa[dev])
    except ImportError:
        return [Figure(SECTION, "threshold -> DC-09 ACK, p99", None, "ms", TARGET_P99_MS,
                       Better.LOWER, FLOOR, "pysiaalarm is not installed (pip install msa[dev])")]
    presses = options.count(options.presses)
    samples = asyncio.run(measure(options.root / SECTION, presses))
    return _figures(samples)
