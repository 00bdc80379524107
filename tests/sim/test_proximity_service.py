"""Issue 14 end to end in real time, one run of every real part: a started centre (its tag
ingestion over HTTPS, its rules, its long poll and case record), the host service as
`msa host run` builds it from a configuration with [proximity] and a [warnings] hook (its
channels pointing at that centre), and the unmodified firmware in MicroPython on the virtual
board with a vibration motor, reached over Bumble. A tag's OsmAnd fixes walk into R of the
victim; her host's running long poll (not a step of the test's) hears of it, the button plays
the proximity pattern, the hook reads the warning, and the case record holds the alert and its
delivery."""
from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from geographiclib.geodesic import Geodesic

from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.common.files import write_private
from msa.host import config as host_config
from msa.host.events import ButtonEvent
from msa.host.link import Backends
from msa.host.service import HostService
from msa.host.warn import Delivery
from msa.simulator.bleak_backend import BumbleClient, BumbleScanner
from msa.simulator.central import Central
from msa.simulator.world import BUTTON_ADDRESS, HOST_ADDRESS, World
from msa.wire.proximity import VictimFix
from msa.wire.protocol import Kind

CASE = "E2E-1"
LAT, LON = 51.0543, 3.7174  # the victim, at home (a fixed location source)
G = Geodesic.WGS84
# The documented proximity pattern (docs/protocol.md, "Haptic patterns") and the bounds of
# tests/sim/test_haptic_e2e.py: never early by more than the pin's read lag, late under load.
PROXIMITY_MS = (800, 400, 800, 400, 800, 400, 800)
EARLY_MS = 50
LATE_MS = 250
# From the fix that crosses R to the host's delivery: about 0.1 s here (HTTPS, the rules,
# the poll's wake-up, one GATT write and the hook: 0.08-0.13 s measured); the bound is far
# above that, and far below the 25 s a poll that was not woken would take.
DELIVERED_WITHIN_S = 5.0


def east(metres: float) -> tuple[float, float]:
    g = G.Direct(LAT, LON, 90.0, metres)
    return float(g["lat2"]), float(g["lon2"])


def approach(now: int) -> Iterator[tuple[int, float]]:
    """The tag's last minute, a fix every 10 s (his 10 s interval): a car at 54 km/h coming
    straight at her from 1,150 m; the last fix, at `now`, is 400 m from her (R is 500 m)."""
    for k in range(6):
        yield now - 50 + 10 * k, 1150.0 - 150.0 * k


async def post_fix(centre: RunningCentre, secret: str, fix_time: int, east_m: float) -> None:
    lat, lon = east(east_m)
    context = ssl.create_default_context(cafile=str(centre.tls.ca_cert))
    query = {"id": secret, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
             "timestamp": str(fix_time), "accuracy": "10"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{centre.api_url}/tags/osmand", params=query,
                               ssl=context) as resp:
            assert resp.status == 200, await resp.text()


@pytest.mark.timeout(240)
def test_a_tag_walking_into_r_warns_her_through_the_running_host_and_button(
        tmp_path: Path) -> None:
    out = tmp_path / "hook.json"

    async def main() -> tuple[float, Delivery, list[tuple[int, int]], list[dict[str, object]]]:
        centre = await start_centre(CentreConfig(state_dir=tmp_path / "centre"))
        world: World | None = None
        central: Central | None = None
        service: HostService | None = None
        task: asyncio.Task[None] | None = None
        try:
            reg = centre.centre.registry
            reg.put_case(Case(CASE, "V. Victim", suspect="S. Suspect"))
            key, centre_key = secrets.token_bytes(32), secrets.token_bytes(32)
            button_id = secrets.randbelow(0xFFFFFFFE) + 1
            reg.register(button_id, centre_key, CASE)
            secret = centre.tags.issue(CASE, 10).secret
            token = centre.issue_host(CASE).token

            # The centre's side is watched, not changed: her reports and the host's acks.
            reported, acked = asyncio.Event(), asyncio.Event()
            on_victim, ack = centre.watch.on_victim, centre.watch.ack

            def victim(case_ref: str, fix: VictimFix | None, received_at: float) -> int:
                every = on_victim(case_ref, fix, received_at)
                if fix is not None:
                    reported.set()
                return every

            def acknowledged(case_ref: str, warning_id: int, at: float,
                             delivery: dict[str, str]) -> bool:
                done = ack(case_ref, warning_id, at, delivery)
                acked.set()
                return done
            centre.watch.on_victim = victim  # type: ignore[method-assign]
            centre.watch.ack = acknowledged  # type: ignore[method-assign]

            conf = tmp_path / "host"
            conf.mkdir()
            write_private(conf / "button.key", key.hex() + "\n")
            write_private(conf / "api.token", token + "\n")
            hook = conf / "hook.py"
            hook.write_text("import sys\nopen(sys.argv[1], 'w').write(sys.stdin.read())\n")
            (conf / "msa-host.toml").write_text(
                f'[host]\nstate_dir = "state"\n\n'
                f'[[button]]\nid = "{button_id:#010x}"\naddress = "{BUTTON_ADDRESS}"\n'
                f'key_file = "button.key"\n\n'
                f'[location]\nsource = "fixed"\nlat = {LAT}\nlon = {LON}\naccuracy_m = 5\n\n'
                f'[[channel]]\ntype = "https"\nurl = "{centre.api_url}"\n'
                f'token_file = "api.token"\nca_file = "{centre.tls.ca_cert}"\n\n'
                f'[proximity]\npoll_wait_s = 25\n\n'
                f'[warnings]\nhook = {json.dumps([sys.executable, str(hook), str(out)])}\n')
            config = host_config.load(conf / "msa-host.toml")

            world = World(tmp_path / "sim", key=key, button_id=button_id,
                          address=BUTTON_ADDRESS, centre_key=centre_key, heartbeat_s=5)
            await world.start(with_host=False)
            central = Central(world.air, HOST_ADDRESS, tmp_path / "sim" / "host-bonds")
            await central.start()
            events: asyncio.Queue[ButtonEvent] = asyncio.Queue()
            deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
            service = HostService(config, backends=Backends(BumbleScanner, BumbleClient,
                                                            {"central": central}),
                                  on_event=events.put_nowait, on_warning=deliveries.put_nowait)
            task = asyncio.create_task(service.run())

            async def event(kind: Kind) -> None:
                while (await events.get()).frame.kind != kind:
                    pass
            await asyncio.wait_for(event(Kind.BOOT), 30)
            # A heartbeat after the boot notice: its ACK is long done, the link is quiet.
            await asyncio.wait_for(event(Kind.HEARTBEAT), 15)
            await asyncio.wait_for(reported.wait(), 10)  # her position is at the centre
            assert world.board.motor == [] and deliveries.empty()

            now = int(time.time())
            *before, (crossing_time, crossing_m) = approach(now)
            for fix_time, east_m in before:
                await post_fix(centre, secret, fix_time, east_m)
            so_far = [e["kind"] for e in centre.watch.store.events(CASE)]
            assert "pre-alert" in so_far and "alert" not in so_far  # the operator's only
            crossed = time.monotonic()
            await post_fix(centre, secret, crossing_time, crossing_m)
            delivery = await asyncio.wait_for(deliveries.get(), 30)
            took = time.monotonic() - crossed
            played = await asyncio.wait_for(world.board.wait_motor(len(PROXIMITY_MS) + 1), 20)
            await asyncio.wait_for(acked.wait(), 10)
            return took, delivery, played, centre.watch.store.events(CASE)
        finally:
            if service is not None:
                await service.stop()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            if central is not None:
                await central.close()
            if world is not None:
                await world.close()
            await centre.stop()

    took, delivery, played, record = asyncio.run(main())
    assert took <= DELIVERED_WITHIN_S, took

    alerts = [e for e in record if e["kind"] == "alert"]
    assert [(e["zone"], e["distance_m"] is not None and round(float(str(e["distance_m"])), -1))
            for e in alerts] == [("victim", 400.0)]
    delivered = [e for e in record if e["kind"] == "delivered to the victim"]
    assert [(e["ref"], e["detail"]) for e in delivered] == [
        (alerts[0]["id"], {"haptic": "ok", "hook": "ok"})]

    n = delivery.notice
    assert (n.id, n.kind, n.level, n.zone, n.distance_m) == (alerts[0]["id"], "proximity",
                                                             "alert", "victim", 400)
    assert (delivery.haptic, delivery.hook) == ("ok", "ok")
    assert json.loads(out.read_text()) == {"id": n.id, "kind": "proximity", "level": "alert",
                                           "zone": "victim", "distance_m": 400, "at": n.at,
                                           "button": None}

    assert [level for _, level in played] == [1, 0] * 4
    lengths = [b[0] - a[0] for a, b in zip(played, played[1:])]
    for nominal, ms in zip(PROXIMITY_MS, lengths):
        assert nominal - EARLY_MS <= ms <= nominal + LATE_MS, (PROXIMITY_MS, lengths)
