"""The main job: a bouncy hold on a simulated button (firmware in MicroPython, Bumble radio)
becomes an alarm at the reference centre, with the case file and the victim's location, over
the host's real dispatch path; then prints what the operator sees, or one JSON object."""
from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from msa.wire.message import MessageKind
from msa.host.events import ButtonEvent
from msa.wire.protocol import Kind

from .chain import Chain, Timing


@dataclass(frozen=True)
class Dispatched:
    """The alarm as the centre recorded it."""

    incident: str
    button_id: str
    boot_id: int
    seq: int
    kind: str
    gesture: str
    battery_pct: int | None
    location: dict[str, Any] | None  # lat, lon, accuracy_m, fix age at dispatch
    channel: str
    case_ref: str | None
    case: dict[str, Any] | None
    counted_at_centre: int | None  # None: a deployment's own centre was used


@dataclass(frozen=True)
class DemoResult:
    hold_ms: int
    threshold_ms: int
    alarm: Dispatched | None
    press_to_host_ms: float | None
    press_to_centre_ack_ms: float | None
    threshold_to_centre_ack_ms: float | None
    operator_url: str | None
    # The silent call as the centre recorded it: its latest event ("answered"), attempt,
    # cause; None when no call event reached the centre (or a deployment's own centre).
    call: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _ms(a: float | None, b: float) -> float | None:
    return None if a is None else round((a - b) * 1000, 1)


Lingering = Callable[[str, str, str], None]  # operator page's URL, login name, password
CALL_WAIT_S = 15.0  # for the silent call to be answered (the simulated centre: about 1 s)


async def run_async(root: Path, hold_ms: int, config: Path | None,
                    linger_s: float, centre_key: bytes | None = None,
                    on_linger: Lingering | None = None) -> DemoResult:
    """The demo in a running loop, with its files under `root`. With a deployment's own
    `config`, `centre_key` is the K_c its centre registered for the button. Before lingering,
    `on_linger` is told where the operator's page is and an operator login made for this run
    (its centre, and the account, end with the demo)."""
    chain = Chain(root, config_path=config, centre_key=centre_key, voice=config is None)
    threshold_ms = 2000
    try:
        await chain.start()
        await chain.event(Kind.BOOT)
        timing, event = await chain.press(hold_ms)
        if event is None:
            return DemoResult(hold_ms, threshold_ms, None, None, None, None, None)
        alarm = _recorded(chain, event, timing)
        result = DemoResult(hold_ms, threshold_ms, alarm, _ms(timing.host_at, timing.press_at),
                            _ms(timing.acked_at, timing.press_at),
                            _ms(timing.acked_at, timing.press_at + threshold_ms / 1000),
                            chain.centre.operator_url if chain.centre else None,
                            await _answered_call(chain, alarm.incident))
        if linger_s > 0:
            if chain.centre is not None and on_linger is not None:
                password = secrets.token_urlsafe(12)
                chain.centre.work.accounts.add("demo", "operator", password)
                on_linger(chain.centre.operator_url, "demo", password)
            await asyncio.sleep(linger_s)  # a person is looking at the operator's page
        return result
    finally:
        await chain.close()


async def _answered_call(chain: Chain, incident: str, wait_s: float = CALL_WAIT_S
                         ) -> dict[str, Any] | None:
    """The incident's call state at our own centre once the silent call is answered (as the
    operator's page shows it), or as it is after `wait_s`; None with a deployment's centre."""
    if chain.centre is None:
        return None
    changes = chain.centre.changes
    loop = asyncio.get_running_loop()
    ends = loop.time() + wait_s
    while True:
        seen = changes.count
        call = next((i.get("call") for i in chain.centre.centre.incidents(include_resolved=True)
                     if i["incident"] == incident), None)
        if (isinstance(call, dict) and call.get("event") == "answered") or \
                loop.time() >= ends:
            return call if isinstance(call, dict) else None
        await changes.wait(seen, ends - loop.time())


def _recorded(chain: Chain, event: ButtonEvent, timing: Timing) -> Dispatched:
    """The alarm as the centre recorded it; with a deployment's own centre, what its
    acknowledgement said (its records are the centre's, not ours to read)."""
    f = event.frame
    key = f"{f.button_id:08x}-{f.boot_id}-{f.seq}"
    result = Dispatched(incident=timing.reference, button_id=f"{f.button_id:08x}",
                        boot_id=f.boot_id, seq=f.seq, kind=f.kind.name, gesture=f.gesture.name,
                        battery_pct=f.battery_pct, location=None, channel=timing.channel,
                        case_ref=None, case=None, counted_at_centre=None)
    if chain.centre is None:
        return result
    centre = chain.centre.centre
    inc = next(i for i in centre.incidents(include_resolved=True) if i["key"] == key)
    track = inc["track"]
    first = track[0] if isinstance(track, list) and track else None
    location = None
    if isinstance(first, dict):
        location = {"lat": first["lat"], "lon": first["lon"], "accuracy_m": first["accuracy_m"],
                    "fix_age_s": round(float(first["received_at"]) - float(first["fix_time"]),
                                       1)}
    case = inc["case"] if isinstance(inc["case"], dict) else None
    return replace(result, incident=str(inc["incident"]), location=location,
                   case_ref=None if case is None else str(case["case_ref"]), case=case,
                   counted_at_centre=centre.count(MessageKind.ALARM))


def run(hold_ms: int = 2500, config: Path | None = None, linger_s: float = 0.0,
        centre_key: bytes | None = None, on_linger: Lingering | None = None) -> DemoResult:
    with tempfile.TemporaryDirectory(prefix="msa-demo-") as tmp:
        return asyncio.run(run_async(Path(tmp), hold_ms, config, linger_s, centre_key,
                                     on_linger))


def render(r: DemoResult) -> str:
    """What the operator sees, in a few lines."""
    head = [f"msa demo: a bouncy {r.hold_ms} ms hold on a simulated button (firmware in"
            " MicroPython, Bumble radio) -> host -> reference centre"]
    a = r.alarm
    if a is None:
        return "\n".join(head + ["  no alarm: the press ended before the"
                                 f" {r.threshold_ms} ms threshold (as intended)"])
    lines = head + [f"  {a.incident}  STALKING ALARM  button {a.button_id}  seq {a.seq}"
                    f"  battery {a.battery_pct if a.battery_pct is not None else '?'}%"
                    f"  via {a.channel}"]
    if a.case:
        c = a.case
        lines += [f"  case {c['case_ref']}: victim {c['victim']} {c['victim_phone']}",
                  f"  suspect {c['suspect']} ({c['suspect_notes']})"
                  + ("  WEAPONS FEARED" if c.get("weapons") else ""),
                  "  measures: " + "; ".join(c["measures"])]
    if a.counted_at_centre is None:
        lines.append(f"  acknowledged by the configured centre as {a.incident or '(no reference)'};"
                     " its own records hold the case file and location")
    elif a.location:
        loc = a.location
        lines.append(f"  location {loc['lat']:.5f}, {loc['lon']:.5f} ±{loc['accuracy_m']:.0f} m"
                     " (then every 10 s)")
    else:
        lines.append("  location: no fix at dispatch (updates follow when there is one)")
    if r.call is not None:
        cause = f" ({r.call['cause']})" if r.call.get("cause") else ""
        lines.append(f"  silent call to the centre's voice line: {r.call['event']}{cause},"
                     f" attempt {r.call['attempt']} (the victim's side stays silent)")
    lines.append(f"  press -> host {r.press_to_host_ms} ms, press -> centre ACK"
                 f" {r.press_to_centre_ack_ms} ms (threshold -> ACK"
                 f" {r.threshold_to_centre_ack_ms} ms)")
    return "\n".join(lines)
