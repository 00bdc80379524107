"""End to end, each a real run: firmware in MicroPython, Bumble, the host service with its
outbox and channels, the simulated GPS and GSM modem, and the reference centre."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from msa.wire import aml
from msa.wire.protocol import Kind
from msa.simulator.chain import Chain

T = TypeVar("T")


def run(tmp_path: Path, body: Callable[[Chain], Awaitable[T]], timeout: float = 90,
        **chain: Any) -> T:
    async def main() -> T:
        c = Chain(tmp_path, **chain)
        try:
            await c.start()
            await c.event(Kind.BOOT)
            return await asyncio.wait_for(body(c), timeout)
        finally:
            await c.close()
    return asyncio.run(main())


def test_press_reaches_the_centre_with_case_file_and_location_then_tracking(
        tmp_path: Path) -> None:
    async def body(c: Chain) -> dict[str, Any]:
        timing, event = await c.press(2300)
        assert event is not None and c.centre is not None
        # Two tracking updates follow (every second here) before the operator resolves it.
        while True:
            await c.centre.changed.wait()
            c.centre.changed.clear()
            incident = c.centre.centre.incidents()[0]
            if len(incident["track"]) >= 3:
                break
        assert c.centre.centre.resolve(str(incident["incident"]))
        return incident
    incident = run(tmp_path, body, extra_toml="[tracking]\ninterval_s = 1\n")
    assert incident["test"] is False and incident["channel"] == "https"
    assert incident["case"]["case_ref"] == "DEMO-2026-001"  # type: ignore[index]
    track = incident["track"]
    assert isinstance(track, list) and [p["update_no"] for p in track[:3]] == [0, 1, 2]
    assert all(abs(p["lat"] - 51.055) < 0.01 and p["accuracy_m"] < 50 for p in track)


def test_ip_channel_down_sends_the_ghost_call_sms_within_the_deadline(tmp_path: Path) -> None:
    async def body(c: Chain) -> tuple[float, str, dict[str, Any]]:
        assert c.centre is not None and c.modem is not None
        await c.centre.stop_api()  # no data connection to the centre
        timing, event = await c.press(2200)
        assert event is not None and timing.acked_at is not None
        first = await asyncio.wait_for(c.modem.deliveries.get(), 5)
        incident = c.centre.centre.incidents()[0]
        return timing.acked_at - (timing.press_at + 2.0), first.text, incident
    after_threshold_s, aml_body, incident = run(tmp_path, body)
    assert after_threshold_s <= 5.0  # the SMS was out within the ghost-call deadline
    report = aml.parse(aml_body)
    assert report.lat is not None and abs(report.lat - 51.0544) < 0.01
    assert incident["channel"] == "sms" and incident["test"] is False
    assert incident["track"][0]["source"] == "aml"  # type: ignore[index]


def test_alarm_goes_out_at_once_without_a_fix_and_the_location_follows(tmp_path: Path) -> None:
    async def body(c: Chain) -> tuple[list[Any], float]:
        assert c.gps is not None and c.centre is not None
        c.gps.lose_fix()
        # Wait until the host's source knows the fix is gone (stale after max_age_s).
        while c.host is not None and c.host.location.best() is not None:
            await asyncio.sleep(0.2)
        started = time.time()
        timing, event = await c.press(2200)
        assert timing.acked_at is not None
        acked_after = timing.acked_at - started
        assert c.centre.centre.incidents()[0]["track"] == []  # sent with "no fix"
        c.gps.lose_fix(False)
        while not c.centre.centre.incidents()[0]["track"]:
            await c.centre.changed.wait()
            c.centre.changed.clear()
        return list(c.centre.centre.incidents()[0]["track"]), acked_after  # type: ignore[arg-type]
    track, acked_after = run(tmp_path, body, extra_toml="[tracking]\ninterval_s = 1\n")
    assert acked_after < 3.0  # the hold, plus milliseconds: no waiting for a fix
    assert track[0]["update_no"] >= 1 and abs(track[0]["lat"] - 51.055) < 0.01


def test_dc09_channel_carries_the_alarm_and_its_location_to_the_centre(tmp_path: Path) -> None:
    async def body(c: Chain) -> tuple[str, dict[str, Any]]:
        timing, event = await c.press(2200)
        assert c.centre is not None and event is not None
        return timing.channel, c.centre.centre.incidents()[0]
    channel, incident = run(tmp_path, body, channels=("dc09", "https", "sms"))
    assert channel == "dc09" and incident["channel"] == "dc09"
    fix = incident["track"][0]  # type: ignore[index]
    assert abs(fix["lat"] - 51.0544) < 0.01 and 0 < fix["accuracy_m"] < 50
    assert incident["case"]["case_ref"] == "DEMO-2026-001"  # type: ignore[index]


def test_modem_congestion_is_retried_until_the_ghost_call_goes_out(tmp_path: Path) -> None:
    async def body(c: Chain) -> tuple[str, list[str]]:
        assert c.centre is not None and c.modem is not None
        await c.centre.stop_api()
        c.modem.fail_next_send(42)  # +CMS ERROR: 42, congestion: worth another try
        timing, event = await c.press(2200)
        assert event is not None
        key = f"{event.frame.button_id:08x}-{event.frame.boot_id}-{event.frame.seq}"
        assert c.host is not None
        status = c.host.outbox.status(key)
        assert status is not None and status[2] >= 1  # one failed try before the receipt
        texts = [c.modem.deliveries.get_nowait().text for _ in range(c.modem.deliveries.qsize())]
        return timing.channel, texts
    channel, texts = run(tmp_path, body)
    assert channel == "sms" and texts[-1].startswith("MSA1 A ")
    assert texts[-2].startswith('A"ML=1;')


def test_demo_with_a_deployments_own_configuration_simulates_only_the_button(
        tmp_path: Path) -> None:
    """The configured centre, GPS and modem are used as they are; nothing of the demo's own
    is started."""
    import os
    import secrets

    from msa.centre.registry import Case
    from msa.centre.server import CentreConfig, start_centre
    from msa.simulator import demo
    from msa.simulator.chain import WALK
    from msa.simulator.gps import SimulatedGps

    async def body() -> tuple[demo.DemoResult, int, int]:
        centre = await start_centre(CentreConfig(state_dir=tmp_path / "deployed"))
        gps = SimulatedGps(WALK)
        await gps.start()
        try:
            key, bid = secrets.token_bytes(32), 0x5EC0DE01
            centre_key = secrets.token_bytes(32)  # K_c: the centre's, not in the host's files
            centre.centre.registry.put_case(Case("REAL-1", "victim"))
            centre.centre.registry.register(bid, centre_key, "REAL-1")
            token = centre.issue_host("REAL-1").token
            for name, text in (("button.key", key.hex()), ("token", token)):
                (tmp_path / name).write_text(text)
                os.chmod(tmp_path / name, 0o600)
            conf = tmp_path / "deployment.toml"
            conf.write_text(
                f'[host]\nstate_dir = "state"\n[[button]]\nid = {bid}\n'
                f'address = "C0:00:00:00:00:07"\nkey_file = "button.key"\n'
                f'[location]\nsource = "nmea"\nurl = "{gps.url}"\n'
                f'[[channel]]\ntype = "https"\nurl = "{centre.api_url}"\n'
                f'token_file = "token"\nca_file = "{centre.tls.ca_cert}"\n')
            result = await demo.run_async(tmp_path / "demo", 2200, conf, 0.0, centre_key)
            return (result, centre.centre.count(), len(centre.centre.incidents()[0]["track"]))
        finally:
            await gps.stop()
            await centre.stop()
    result, counted, fixes = asyncio.run(body())
    a = result.alarm
    assert a is not None and a.channel == "https" and a.incident == "INC-000001"
    assert a.button_id == "5ec0de01" and a.counted_at_centre is None  # not the demo's centre
    assert counted >= 2 and fixes == 1  # the boot notice and the alarm, with its location
