"""Runs a reference centre: its records and registry, the dispatch API over TLS, the DC-09
receiver, the SMS inbox, and the operator's page on loopback. Used by `msa centre`, the
simulated demo and the end-to-end tests alike.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from msa.host.dc09 import Dc09Message
from msa.host.dispatch import Fix, FixQuality

from .core import Centre, Inbound, Verdict
from .dc09 import Dc09Server
from .registry import Registry
from .sms import SmsInbox
from .tls import TlsFiles, make_tls
from .web import make_api_app, make_operator_app

log = logging.getLogger("msa.centre.server")


@dataclass(frozen=True)
class CentreConfig:
    """Where the centre keeps its files and listens. Port 0 picks a free port."""

    state_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 0
    operator_port: int = 0  # always on 127.0.0.1: the page shows case files
    tokens: tuple[str, ...] = field(default=())
    tls: TlsFiles | None = None  # None: a private CA and certificate in state_dir/tls
    dc09_port: int | None = 0  # None: no DC-09 receiver
    dc09_key: bytes | None = field(default=None, repr=False)  # AES key shared with the hosts


def dc09_inbound(m: Dc09Message, received_at: float) -> Inbound:
    """A DC-09 event as the centre's message (the position rides in X/Y and our "a")."""
    fix = None
    if m.lat is not None and m.lon is not None:
        fix = Fix(lat=m.lat, lon=m.lon, accuracy_m=m.accuracy_m or 0.0,
                  time=m.timestamp.timestamp() if m.timestamp else received_at,
                  quality=FixQuality.GNSS, source="dc09", altitude_m=m.alt)
    return Inbound.keyed("dc09", m.key, m.kind, m.frame, fix, received_at)


class RunningCentre:
    """A started centre; `await stop()` when done. Ports are the real ones bound."""

    def __init__(self, centre: Centre, tls: TlsFiles, tokens: tuple[str, ...]) -> None:
        self.centre = centre
        self.tls = tls
        self.tokens = tokens
        self.api_port = 0
        self.operator_port = 0
        self._runners: list[web.AppRunner] = []
        self.dc09: Dc09Server | None = None
        self._hung: asyncio.Server | None = None
        self.sms = SmsInbox(centre)  # fed by whatever receives the centre's SMS (a modem)
        self.changed = asyncio.Event()  # set whenever the centre accepts something
        centre.listeners.append(lambda _kind, _data: self.changed.set())

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}/v1"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}/"

    async def _serve(self, app: web.Application, host: str, port: int,
                     tls: bool) -> int:
        runner = web.AppRunner(app, access_log=None)  # no access log: it would hold ids
        await runner.setup()
        site = web.TCPSite(runner, host, port,
                           ssl_context=self.tls.server_context() if tls else None)
        await site.start()
        self._runners.append(runner)
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop_api(self) -> None:
        """Takes the dispatch API off the network (fault injection: the IP channel is down)."""
        if self._runners:
            await self._runners.pop(0).cleanup()

    async def hang_api(self) -> None:
        """Fault injection: the API's address accepts connections and never answers (a
        black-holed route or a hung server), so a host learns of it only by its deadline."""
        await self.stop_api()
        held: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # kept open, never written to
        self._hung = await asyncio.start_server(hold, "127.0.0.1", self.api_port)

    async def on_dc09(self, m: Dc09Message) -> bool:
        """ACK what is counted (also again), DUH what will never verify."""
        result = await self.centre.submit(dc09_inbound(m, time.time()))
        return result.verdict is not Verdict.REJECTED

    async def stop(self) -> None:
        if self._hung is not None:
            self._hung.close()
        if self.dc09 is not None:
            await self.dc09.close()
            self.dc09 = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self.centre.close()
        self.centre.registry.close()


async def start_centre(config: CentreConfig) -> RunningCentre:
    """Opens the records and starts every listener."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(config.state_dir / "registry.db")
    centre = Centre(config.state_dir / "records.db", registry)
    tls = config.tls or make_tls(config.state_dir / "tls")
    tokens = config.tokens or (secrets.token_urlsafe(24),)
    running = RunningCentre(centre, tls, tokens)
    running.api_port = await running._serve(make_api_app(centre, tokens), config.api_host,
                                            config.api_port, tls=True)
    running.operator_port = await running._serve(make_operator_app(centre, running.sms.ghost_calls), "127.0.0.1",
                                                 config.operator_port, tls=False)
    if config.dc09_port is not None:
        key = config.dc09_key
        running.dc09 = Dc09Server(key_for=lambda _account: key, on_message=running.on_dc09,
                                  host=config.api_host, port=config.dc09_port)
        await running.dc09.start()
    log.info("centre up: API on %s:%d, operator page on 127.0.0.1:%d", config.api_host,
             running.api_port, running.operator_port)
    return running
