"""The simulated air, reachable from other processes: each TCP connection to the radio server
is a new emulated Bluetooth controller on the air, driven over HCI in H4 framing (what Bumble's
`tcp-client:` transport speaks). It is a USB Bluetooth adapter plugged in next to the virtual
board: `msa bond`, `msa status`, `msa host run` and the rest run their ordinary bleak code in
their own process, on a `Central` opened with `open_central("HOST:PORT", ...)`.

A host that disconnects is taken off the air, its links lost, as when an adapter is unplugged.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from pathlib import Path

from bumble.transport import open_transport
from bumble.transport.common import StreamPacketSink, StreamPacketSource

from .air import Air, SimController
from .central import Central
from .errors import CentralError

log = logging.getLogger("msa.simulator.radio")

IDENTITY_FILE = "sim-radio.json"


class _Adapter(StreamPacketSource):
    """One connected host: H4 packets in, the controller's packets out."""

    def __init__(self, air: Air) -> None:
        super().__init__()
        self.air = air
        self.controller: SimController | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        peer = transport.get_extra_info("peername")
        self.controller = self.air.attach(f"adapter {peer}", self, StreamPacketSink(transport))
        log.info("a host joined the air from %s", peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.controller is not None:
            task = asyncio.get_running_loop().create_task(self.air.detach(self.controller))
            task.add_done_callback(_report)
        self.on_transport_lost()


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("taking a host off the air failed", exc_info=task.exception())


async def serve_radio(air: Air, host: str, port: int) -> asyncio.Server:
    """Listens for hosts; each connection gets its own controller on `air`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Adapter(air), host, port)


def _identity(keys_dir: Path) -> tuple[str, bytes]:
    """This host's static random address and IRK on the simulated air, made once and kept
    with its bonds: the button files its bond under that address, so it must not change."""
    path = keys_dir / IDENTITY_FILE
    try:
        saved = json.loads(path.read_text())
        return str(saved["address"]), bytes.fromhex(saved["irk"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise CentralError(f"{path} is damaged ({exc}); delete it and bond again") from None
    raw = bytearray(secrets.token_bytes(6))
    raw[0] |= 0xC0  # a static random address has its two top bits set
    address = ":".join(f"{b:02X}" for b in raw)
    irk = secrets.token_bytes(16)
    keys_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"address": address, "irk": irk.hex()}, out)
    return address, irk


async def open_central(where: str, keys_dir: Path, name: str = "host") -> Central:
    """A host radio on the air that `msa sim board --radio where` serves, with its identity
    and bonds in `keys_dir`. CentralError if nothing listens there."""
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise CentralError(f"expected HOST:PORT for the simulated radio, got {where!r}")
    address, irk = _identity(keys_dir)
    try:
        transport = await open_transport(f"tcp-client:{host}:{port}")
    except OSError as exc:
        raise CentralError(f"no simulated radio at {where} ({exc.strerror or exc}); start"
                           f" `msa sim board --radio {where}` first") from None
    return Central.over(transport, address, keys_dir, irk=irk, name=name)
