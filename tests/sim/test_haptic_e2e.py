"""The host's warning reaches the wearer: `ButtonLink.warn` over Bumble to the unmodified
firmware in MicroPython on the virtual board, whose motor pin plays the pattern, read back from
the board's own transitions."""
from __future__ import annotations

import asyncio
from pathlib import Path

from msa.wire.protocol import Kind, Pattern
from msa.simulator.world import World

# The documented proximity pattern (docs/protocol.md, Haptic patterns; the firmware and host
# tests hold the table to the document).
PROXIMITY_MS = (800, 400, 800, 400, 800, 400, 800)
# A step is never shorter than the table (the firmware's turn() is late, never early), though
# the pin's time is read a little after the firmware's own clock; and the board's loop may run
# late under load: bounds far above the few ms seen.
EARLY_MS = 50
LATE_MS = 250


def test_the_hosts_proximity_warning_plays_its_pattern_on_the_button(tmp_path: Path) -> None:
    async def body(w: World) -> list[tuple[int, int]]:
        host = await w.start()
        assert host is not None
        await host.next_event(kind=Kind.BOOT)
        # A heartbeat (never acknowledged) after the boot notice: the boot's ACK is long done,
        # so the link is quiet when the warning reads the challenge.
        await host.next_event(kind=Kind.HEARTBEAT, timeout=15)
        assert w.board.motor == []
        await host.link.warn(Pattern.PROXIMITY)
        return await asyncio.wait_for(w.board.wait_motor(len(PROXIMITY_MS) + 1), 20)

    async def main() -> list[tuple[int, int]]:
        world = World(tmp_path, heartbeat_s=5)
        try:
            return await asyncio.wait_for(body(world), 60)
        finally:
            await asyncio.wait_for(world.close(), 30)

    played = asyncio.run(main())
    assert [level for _, level in played] == [1, 0] * 4
    took = [b[0] - a[0] for a, b in zip(played, played[1:])]
    for nominal, ms in zip(PROXIMITY_MS, took):
        assert nominal - EARLY_MS <= ms <= nominal + LATE_MS, (PROXIMITY_MS, took)
