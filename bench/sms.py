"""SMS fallback: press to SMS submitted (the modem's +CMGS answer) with the IP channel dead,
two ways: the centre's address refuses connections (the host knows at once) and it accepts
but never answers (the host knows only at the HTTPS channel's deadline). The ghost call must
leave within 5 s of the press in both."""
from __future__ import annotations

import asyncio

from msa.simulator import latency

from .figures import Figure, Options, median

SECTION = "sms"
PRESSES = {"refused": 50, "hung": 5}
TARGET_MS = 5000.0
# The hung case cannot beat the HTTPS deadline the simulated host is configured with.
HUNG_FLOOR = "the HTTPS channel's deadline, 2 s (configurable, 0.5-60 s)"
REFUSED_FLOOR = "one TCP connection refusal, then the modem's AT+CMGS exchange"


def run(options: Options) -> list[Figure]:
    out: list[Figure] = []
    for fault, full in PRESSES.items():
        presses = options.count(full)
        floor = HUNG_FLOOR if fault == "hung" else REFUSED_FLOOR
        what = ("API refuses connections" if fault == "refused"
                else "API accepts, never answers")
        # Without and with the silent call (issue 16): the call shares the SMS's modem and
        # must not move the SMS.
        medians = {}
        for voice in (False, True):
            root = options.root / f"sms-{fault}{'-call' if voice else ''}"
            root.mkdir(parents=True, exist_ok=True)
            d = asyncio.run(latency.measure_dispatch(presses, root, ip_fault=fault,
                                                     tracking=False, voice=voice))
            if d.channel != "sms":  # an IP acknowledgement would measure something else
                raise RuntimeError(f"the alarms went via {d.channel}, not SMS alone")
            acks = d.to_ack.samples_ms
            medians[voice] = median(acks)
            with_call = ", the silent call on" if voice else ""
            out += [
                Figure(SECTION, f"threshold -> SMS submitted, {what}{with_call}, median"
                       f" ({presses} presses)", median(acks), "ms", floor=floor,
                       note=f"channel {d.channel}"),
                Figure(SECTION, f"threshold -> SMS submitted, {what}{with_call}, max",
                       max(acks), "ms", target=TARGET_MS, floor=floor),
            ]
        out.append(Figure(SECTION, f"SMS with the call ÷ without, {what}, medians",
                          medians[True] / medians[False], "×", None, floor="",
                          note="the call's AT commands share the modem's one port"))
    return out
