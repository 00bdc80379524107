"""Runs a reference centre: its records and registry, the dispatch API over TLS, the DC-09
receiver, the SMS inbox, and the operator's page on loopback. Used by `msa centre`, the
simulated demo and the end-to-end tests alike.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .core import Centre
from .registry import Registry
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


class RunningCentre:
    """A started centre; `await stop()` when done. Ports are the real ones bound."""

    def __init__(self, centre: Centre, tls: TlsFiles, tokens: tuple[str, ...]) -> None:
        self.centre = centre
        self.tls = tls
        self.tokens = tokens
        self.api_port = 0
        self.operator_port = 0
        self._runners: list[web.AppRunner] = []
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

    async def stop(self) -> None:
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
    running.operator_port = await running._serve(make_operator_app(centre), "127.0.0.1",
                                                 config.operator_port, tls=False)
    log.info("centre up: API on %s:%d, operator page on 127.0.0.1:%d", config.api_host,
             running.api_port, running.operator_port)
    return running
