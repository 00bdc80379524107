"""The stranger of docs/simulator.md's threat model, on the simulated air against the
unmodified firmware: he pairs "Just Works" (the real stacks let him, and call the link bonded),
holds the connection and tries again, replays what he can, and scans to recognise or follow
the button. The alarm must still get out, the host's bond must survive, and nothing the button
shows must name it or link two of its addresses."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bumble import hci
from bumble.smp import AddressResolver

from msa.host.events import AlarmEvent
from msa.wire.protocol import Kind
from msa.simulator.central import Central
from msa.simulator.peripheral import NIMBLE_DEFAULT_IRK, SEC_OUR_IRK, SEC_PEER
from msa.simulator.stranger import Stranger as StrangerLoop
from msa.simulator.stranger import air_address
from msa.simulator.world import World, hold_edges
from test_scenarios import scenario as run_scenario

STRANGER = "C0:00:00:00:00:66"
HOLD_MS = 2100


def scenario(tmp_path: Path, body: Any, timeout: float = 90, **config: Any) -> Any:
    return run_scenario(tmp_path, body, timeout, **config)


def _air_address(w: World) -> hci.Address:
    return air_address(w.board)


def Stranger(w: World) -> StrangerLoop:  # noqa: N802 - reads as the class it builds
    return StrangerLoop(Central(w.air, STRANGER, None, name="stranger"), lambda: air_address(w.board))


def test_a_just_works_stranger_holding_on_cannot_silence_the_alarm(tmp_path: Path) -> None:
    """The host is away while the stranger pairs and holds on, again and again; the host comes
    back and the victim presses: the alarm reaches the host, the stranger never got a frame."""
    async def body(w: World) -> tuple[float, int, int, int]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await host.stop()  # out of range for a while
        async with Stranger(w) as stranger:
            while stranger.paired < 2:  # he is in, paired, and was dropped once already
                await asyncio.sleep(0.1)
            back = await w.add_host()
            await asyncio.wait_for(back.link.connected.wait(), 20)
            pressed = time.monotonic()
            await w.board.press(hold_edges(HOLD_MS))
            alarm = await back.next_event(kind=Kind.ALARM, timeout=20)
            took = time.monotonic() - pressed - HOLD_MS / 1000
            assert isinstance(alarm, AlarmEvent)
        return took, stranger.connections, stranger.paired, stranger.dropped
    took, connections, paired, dropped = scenario(tmp_path, body)
    assert paired >= 2 and dropped >= 1 and connections >= 2
    assert took < 5.0  # typically ~0.05 s: the stranger's link costs the host nothing


def test_a_stranger_holding_on_does_not_stop_the_bursts(tmp_path: Path) -> None:
    """With no host near, the button's alarm bursts go on while a stranger holds a link."""
    async def body(w: World) -> list[bytes]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await host.stop()
        scanner = Central(w.air, "C0:00:00:00:00:77", None, name="scanner")
        bursts: asyncio.Queue[bytes] = asyncio.Queue()

        def heard(sighting: Any) -> None:
            data = bytes(sighting.advertisement.data_bytes)
            if data[:4] == b"\x1e\xff\xff\xff":
                bursts.put_nowait(data)
        async with Stranger(w) as stranger:
            while stranger.paired < 1:
                await asyncio.sleep(0.1)
            await scanner.listen(object(), heard)
            await w.board.press(hold_edges(HOLD_MS))
            got = [await asyncio.wait_for(bursts.get(), 10)]
        await scanner.close()
        return got
    bursts = scenario(tmp_path, body)
    assert len(bursts[0]) == 31  # a legacy advert's whole room


def _peer_keys(w: World) -> list[bytes]:
    import store
    from bonds import Bonds

    bonds = Bonds(store.Store(str(w.board.flash)))
    return [bytes(k) for t, k, _ in bonds._items if t == SEC_PEER]


def test_a_strangers_pairings_never_evict_the_hosts_bond(tmp_path: Path) -> None:
    """Once the host has bonded and proved the key, the stranger pairs again and again (each
    pairing "Just Works"); none is kept, and the host comes back on its own bond."""
    async def body(w: World) -> tuple[list[bytes], list[bytes], int, Any]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await host.stop()
        kept = _peer_keys(w)
        async with Stranger(w) as stranger:
            while stranger.paired < 3:
                await asyncio.sleep(0.1)
        after = _peer_keys(w)
        back = await w.add_host()
        await w.board.press(hold_edges(HOLD_MS))
        alarm = await back.next_event(kind=Kind.ALARM, timeout=20)
        return kept, after, stranger.paired, alarm
    kept, after, paired, alarm = scenario(tmp_path, body)
    assert paired >= 3 and len(kept) == 1 and after == kept
    assert isinstance(alarm, AlarmEvent)


def _button_irk(w: World) -> bytes:
    import store
    from bonds import Bonds

    irk = Bonds(store.Store(str(w.board.flash))).get(SEC_OUR_IRK, 0, b"irk")
    assert irk is not None and len(irk) == 16
    return bytes(irk)


def test_the_private_address_is_made_with_the_buttons_own_irk_not_nimbles(
        tmp_path: Path) -> None:
    async def body(w: World) -> tuple[hci.Address, bytes]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        await w.board.power_cycle()  # bonded now: the next boot advertises privately
        await host.next_event(kind=Kind.BOOT, timeout=20)
        return _air_address(w), _button_irk(w)
    address, irk = scenario(tmp_path, body)
    identity = hci.Address("C0:00:00:00:00:01")
    assert address.is_resolvable
    assert AddressResolver([(irk, identity)]).resolve(address) == identity
    assert AddressResolver([(NIMBLE_DEFAULT_IRK, identity)]).resolve(address) is None


def test_what_a_scanner_sees_is_exactly_the_documented_bytes_and_links_nothing(
        tmp_path: Path) -> None:
    """Every advert, idle or burst, before and after bonding, across reboots: only the
    Flags structure or one sealed burst (docs/protocol.md, Advertising); after bonding a
    resolvable private address, a new one at every stack start; no field in common between
    two addresses but the Flags every phone sends too."""
    async def body(w: World) -> list[tuple[str, bytes]]:
        heard: list[tuple[str, bytes]] = []
        scanner = Central(w.air, "C0:00:00:00:00:77", None, name="scanner")

        def on_sighting(sighting: Any) -> None:
            heard.append((str(sighting.address), bytes(sighting.advertisement.data_bytes)))
        await w.start(with_host=False)
        await scanner.listen(object(), on_sighting)
        await asyncio.sleep(1.0)  # idle adverts of an unbonded button
        host = await w.add_host()
        await host.next_event(kind=Kind.BOOT)
        await host.stop()
        for _ in range(2):  # bonded now: each boot advertises under a new private address
            await w.board.power_cycle()
            await asyncio.sleep(1.0)
            await w.board.press(hold_edges(HOLD_MS))  # nobody near: the alarm bursts
            before = len(heard)
            while not any(d[:4] == b"\x1e\xff\xff\xff" for _, d in heard[before:]):
                await asyncio.sleep(0.1)
        await scanner.close()
        return heard
    heard = scenario(tmp_path, body, timeout=120)
    burst_payloads = [d[4:] for _, d in heard if d[:4] == b"\x1e\xff\xff\xff"]
    for _, data in heard:
        assert data == b"\x02\x01\x06" or (data[:4] == b"\x1e\xff\xff\xff" and len(data) == 31)
    identity = "C0:00:00:00:00:01"
    private = sorted({a.split("/")[0] for a, _ in heard} - {identity + "/P", identity})
    assert len(private) >= 2  # two boots, two addresses
    for address in private:
        assert hci.Address(address).is_resolvable
    # Bursts of different frames share nothing: each is an IV and a ciphertext.
    assert len(set(burst_payloads)) >= 2
    ivs = {p[:4] for p in burst_payloads}
    assert len(ivs) == len(set(burst_payloads))
