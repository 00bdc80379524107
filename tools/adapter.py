"""Which Bluetooth adapter the host's bleak code runs on, from the configuration's
`[host] adapter`: the platform's default, a named BlueZ adapter, or the simulator's radio that
`msa sim board --radio HOST:PORT` serves (practice and tests). The simulator is imported only
for the last, so a deployed host never loads it."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from msa.host.config import HostConfig
from msa.host.link import Backends

SIM_PREFIX = "sim:"
# The simulated radio's identity and bonds, beside the host's other state.
SIM_RADIO_DIR = "sim-radio"


@contextlib.asynccontextmanager
async def backends_for(config: HostConfig) -> AsyncIterator[Backends | None]:
    """The bleak backends for `config`, open for the duration of the block."""
    adapter = config.adapter
    if adapter is None:
        yield None
        return
    if not adapter.startswith(SIM_PREFIX):
        yield Backends(None, None, {"bluez": {"adapter": adapter}})
        return
    from msa.simulator.bleak_backend import BumbleClient, BumbleScanner
    from msa.simulator.radio import open_central

    central = await open_central(adapter[len(SIM_PREFIX):], config.state_dir / SIM_RADIO_DIR)
    try:
        yield Backends(BumbleScanner, BumbleClient, {"central": central})
    finally:
        await central.close()
