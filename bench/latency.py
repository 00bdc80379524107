"""Press latency through the whole simulated chain over HTTPS: from the gesture threshold (the
moment the hold becomes an alarm) to the verified event at the host, and to the centre's
acknowledgement. The firmware runs in MicroPython, the radio is Bumble, the host is the real
`HostService`, the centre the reference one over TLS.

The simulation has no air time and no connection interval: a real radio adds at least one
connection interval (the notification waits for the next connection event).
"""
from __future__ import annotations

import asyncio

from msa.simulator import latency

from .figures import Figure, Options, median, percentile

SECTION = "latency"
PRESSES = 500
TARGET_P99_MS = 50.0
# The firmware cannot ask for a connection interval (MicroPython's bluetooth module has no
# connection-parameter request), so the central chooses it.
RADIO_FLOOR = ("+ 1 connection interval on a real radio: 7.5 ms at the least; BlueZ's"
               " default is 30-50 ms")


def figures_for(section: str, what: str, d: latency.DispatchLatency) -> list[Figure]:
    """Median and p99 to the host and to the acknowledgement, from one run's samples."""
    host, ack = d.to_host.samples_ms, d.to_ack.samples_ms
    n = f"{d.presses} presses"
    return [
        Figure(section, f"threshold -> verified event at host, median ({n})", median(host),
               "ms", floor=RADIO_FLOOR),
        Figure(section, "threshold -> verified event at host, p99", percentile(host, 99), "ms",
               floor=RADIO_FLOOR),
        Figure(section, f"threshold -> centre ACK over {what}, median", median(ack), "ms",
               floor=RADIO_FLOOR),
        Figure(section, f"threshold -> centre ACK over {what}, p99", percentile(ack, 99), "ms",
               target=TARGET_P99_MS, floor=RADIO_FLOOR,
               note="software time only; the simulation models no air time"),
        Figure(section, f"threshold -> centre ACK over {what}, max", max(ack), "ms"),
    ]


def run(options: Options) -> list[Figure]:
    presses = options.count(PRESSES)
    root = options.root / "latency"
    root.mkdir(parents=True, exist_ok=True)
    d = asyncio.run(latency.measure_dispatch(presses, root, channels=("https", "sms"),
                                                     tracking=False))
    return figures_for(SECTION, "HTTPS", d)
