"""The silent call end to end (issue 16), one real run: a press on the simulated button, the
host service with its sms channel's voice block, the simulated modem's voice line, and the
reference centre. The centre learns of the call's answer, of its drop and of the redial, and
resolving the incident makes the host hang up."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from msa.simulator.chain import VOICE_NUMBER, Chain
from msa.wire.protocol import Kind

WAIT_S = 60.0  # each step takes about a second; the redial comes after redial_first_s (5 s)


async def _call_state(c: Chain, want: dict[str, Any]) -> dict[str, Any]:
    """The incident's call state at the centre once it has every item of `want` (waiting on
    the centre's change count, which moves with every committed message)."""
    assert c.centre is not None
    changes = c.centre.changes
    while True:
        seen = changes.count
        incident = c.centre.centre.incidents(include_resolved=True)[0]
        call = incident.get("call")
        if isinstance(call, dict) and all(call.get(k) == v for k, v in want.items()):
            return {"incident": incident["incident"], **call}
        await changes.wait(seen, 5.0)


def test_the_call_is_answered_dropped_redialled_and_hung_up_on_resolve(tmp_path: Path) -> None:
    async def body(c: Chain) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
        assert c.centre is not None and c.modem is not None
        _, event = await c.press(2300)
        assert event is not None
        first = await _call_state(c, {"event": "answered", "attempt": 1})
        call = c.modem.voice.calls[0]
        assert call.number == VOICE_NUMBER and call.answered.is_set()
        c.modem.voice.drop_call("Network out of order")
        dropped = await _call_state(c, {"event": "ended", "attempt": 1})
        again = await _call_state(c, {"event": "answered", "attempt": 2})
        assert c.centre.centre.resolve(str(again["incident"]))
        # The host learns of the resolve with its next tracking update, and hangs up.
        second = c.modem.voice.calls[-1]
        await asyncio.wait_for(second.ended.wait(), WAIT_S)
        return first, dropped, again, second

    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
        c = Chain(tmp_path, voice=True, extra_toml="[tracking]\ninterval_s = 1\n")
        try:
            await c.start()
            await c.event(Kind.BOOT)
            return await asyncio.wait_for(body(c), 4 * WAIT_S)
        finally:
            await c.close()
    first, dropped, again, second = asyncio.run(main())
    assert first["incident"] == dropped["incident"] == again["incident"]
    assert "Network out of order" in str(dropped["cause"])
    assert again["events"] > dropped["events"] > first["events"] >= 3
    assert second.ended_by == "host"  # hung up by the host, not by the line
