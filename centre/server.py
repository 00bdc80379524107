"""Runs a reference centre: its records and registry, the dispatch API over TLS, the DC-09
receiver (only when given an address), the SMS inbox, and the operator's page on loopback. Used
by `msa centre`, the simulated demo and the end-to-end tests alike.

Every host has credentials of its own (centre/hosts.py, issued by `msa case issue` or
issue_host()): the API token and the DC-09 account and key it presents are good for its own
case's buttons only. There is no centre-wide token or key, and no plain DC-09 account.

Every listener's address is logged and kept on RunningCentre (`listeners`) so that `msa
centre` prints each one: nothing listens quietly. The state folder is 0700 and its databases
0600 (they hold every button's key and the case files).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from msa.wire.dc09 import Dc09Message
from msa.wire.message import Fix, FixQuality

from .accounts import Accounts
from .audit import AuditLog
from .authweb import Workplace
from .caseweb import CaseDesk
from .core import Centre, Inbound, Verdict
from .dc09 import Dc09Server
from .errors import CentreConfigError, CentreError
from .hosts import Hosts, Issued
from .listen import follow
from .proxstore import RETENTION_S, ProximityStore
from .pushweb import Changes
from .notes import Notes
from .ratelog import Throttle
from .registry import Registry
from .retention import Retention, StatePaths, run_retention
from .sessions import Sessions
from .sms import GHOST_TTL_S, MAX_GHOSTS, SmsInbox
from .tags import Tags
from .tagweb import add_tag_routes
from .tls import TlsFiles, make_tls
from .victimweb import add_victim_routes
from .watch import ProximityWatch
from .web import make_api_app, make_operator_app

log = logging.getLogger("msa.centre.server")
_throttled = Throttle(log)


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refuses (a NUL or a line break in a header, a bad
    request line) with a traceback at ERROR, though it answers 400: hostile input, not a fault
    of ours. Such a record becomes one rate-limited warning naming the error's class only (the
    offending bytes may hold a token); every other record passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            _throttled.warning("malformed-http", "malformed HTTP request refused (%s)",
                               type(exc).__name__)
            return False
        return True


# The logger of the centre's HTTP servers (aiohttp's request handlers log through it).
HTTP_LOG = logging.getLogger("msa.centre.http")
HTTP_LOG.addFilter(_MalformedRequests())

# A connection to the API or the operator's page must finish its TLS handshake, and then its
# request's headers, within this long (slow-header and idle clients hold a socket each).
HEADER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CentreConfig:
    """Where the centre keeps its files and listens. Port 0 picks a free port."""

    state_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 0
    operator_port: int = 0  # always on 127.0.0.1: the page shows case files
    tls: TlsFiles | None = None  # None: a private CA and certificate in state_dir/tls
    dc09_port: int | None = None  # None: no DC-09 receiver (its keys are the hosts' own)
    dc09_host: str = "127.0.0.1"
    ghost_ttl_s: float = GHOST_TTL_S  # how long an unknown number's SMS ghost call is shown
    max_ghosts: int = MAX_GHOSTS  # unknown numbers' ghost calls kept at most
    retention_s: float = RETENTION_S  # victim positions outside an alarm are kept this long
    clock: Callable[[], float] = time.time  # the proximity rules' (a replay's is virtual)
    retention: Retention | None = None  # tags, tracks, audit (None: all kept; docs/centre.md)
    # None: the state folder's SQLite files. A postgresql:// URL: that database, which other
    # nodes may share (migrated first: `msa centre migrate`); TLS and keys stay in state_dir.
    database: str | None = None


def raise_open_files() -> int:
    """Raises the open-file soft limit to the hard limit (each connection holds one; 1,024 ran
    out under 1,100 idle DC-09 connections). Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays %d: %s", soft, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def private_folder(path: Path) -> Path:
    """A folder only its owner may enter (0700), made if missing and tightened if not."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def dc09_inbound(m: Dc09Message, received_at: float) -> Inbound:
    """A DC-09 event as the centre's message (the position rides in X/Y and our "a");
    ValueError for a position no Fix may hold."""
    fix = None
    if m.lat is not None and m.lon is not None:
        fix = Fix(lat=m.lat, lon=m.lon, accuracy_m=m.accuracy_m or 0.0,
                  time=m.timestamp.timestamp() if m.timestamp else received_at,
                  quality=FixQuality.GNSS, source="dc09", altitude_m=m.alt)
    return Inbound.keyed("dc09", m.key, m.kind, m.frame, fix, received_at, m.update_no)


class RunningCentre:
    """A started centre; `await stop()` when done. Ports are the real ones bound."""

    def __init__(self, centre: Centre, tls: TlsFiles, sms: SmsInbox,
                 retention_s: float = RETENTION_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.centre = centre
        self.tls = tls
        self.hosts = Hosts(centre.registry)
        self.tags = Tags(centre.registry)  # perpetrator tags: their positions and supervision
        centre.warning_sources.append(self.tags.warnings)
        self.watch = ProximityWatch(ProximityStore(centre.registry, retention_s), clock)
        self.api_port = 0
        self.operator_port = 0
        self._runners: list[tuple[web.AppRunner, asyncio.Server]] = []
        self.listeners: list[str] = []  # "what: address" of every listener, for the operator
        self.dc09: Dc09Server | None = None
        self._hung: asyncio.Server | None = None
        self.sms = sms  # fed by whatever receives the centre's SMS (a modem)
        self.audit = AuditLog(centre.registry.place.sibling("audit"))
        # Who may use the operator page, and what they did there (issue 15).
        self.work = Workplace(Accounts(centre.registry), Sessions(centre.registry), self.audit,
                              secrets.token_urlsafe(24))
        self.notes = Notes(centre.place)
        self.desk = CaseDesk(centre, centre.registry, self.notes, self.audit, self.watch.store,
                             self.tags)
        self.changed = asyncio.Event()  # set whenever the centre accepts something
        # Moves whenever the operator's page may show something new (centre/pushweb.py).
        self.changes = Changes()
        self.retention_task: asyncio.Task[None] | None = None
        self.follow_task: asyncio.Task[None] | None = None  # other nodes' commits (PostgreSQL)
        centre.listeners.append(lambda _kind, _data: self.on_change())
        self.watch.on_change = self.changes.bump
        sms.on_change = self.changes.bump

    def on_change(self) -> None:
        """The records changed (on this node, or on another of a shared database)."""
        self.changed.set()
        self.changes.bump()

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}/v1"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}/"

    async def _serve(self, app: web.Application, host: str, port: int,
                     tls: bool) -> int:
        # No access log: it would hold ids. aiohttp's keep-alive timer also runs from the
        # connection's start, so a client that never completes its headers is closed after it.
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=HEADER_TIMEOUT_S,
                               logger=HTTP_LOG)
        await runner.setup()
        context = self.tls.server_context() if tls else None
        factory = runner.server
        assert factory is not None  # set by setup()
        server = await asyncio.get_running_loop().create_server(
            factory, host, port, ssl=context,
            ssl_handshake_timeout=HEADER_TIMEOUT_S if tls else None, backlog=512)
        self._runners.append((runner, server))
        return int(server.sockets[0].getsockname()[1])

    async def _close(self, runner: web.AppRunner, server: asyncio.Server) -> None:
        server.close()
        await runner.cleanup()
        await server.wait_closed()

    async def stop_api(self) -> None:
        """Takes the dispatch API off the network (fault injection: the IP channel is down)."""
        if self._runners:
            await self._close(*self._runners.pop(0))

    async def hang_api(self) -> None:
        """Fault injection: the API's address accepts connections and never answers (a
        black-holed route or a hung server), so a host learns of it only by its deadline."""
        await self.stop_api()
        held: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # kept open, never written to
        self._hung = await asyncio.start_server(hold, "127.0.0.1", self.api_port)

    def issue_host(self, case_ref: str, name: str | None = None) -> Issued:
        """New credentials for a host of a registered case (as `msa case issue`)."""
        return self.hosts.issue(case_ref, name)

    async def on_dc09(self, m: Dc09Message) -> bool:
        """ACK what is counted (also again), DUH what will never verify: a plain message, an
        account not in service, or a button that is not the account's host's own."""
        try:
            inbound = dc09_inbound(m, time.time())
        except ValueError:
            return False  # a position no Fix may hold: the same bytes never will
        found = self.hosts.by_account(m.account)
        if not m.encrypted or found is None or not self.hosts.may_send(found[0],
                                                                        inbound.button_id):
            _throttled.warning("dc09-foreign", "DC-09 account %s refused for button %#010x"
                               " (plain, not in service, or not its host's button)",
                               m.account, inbound.button_id)
            return False
        result = await self.centre.submit(inbound)
        return result.verdict is not Verdict.REJECTED

    async def stop(self) -> None:
        for task in (self.retention_task, self.follow_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._hung is not None:
            self._hung.close()
        if self.dc09 is not None:
            await self.dc09.close()
            self.dc09 = None
        self.watch.close()  # parked long polls end first: the servers wait for their handlers
        self.changes.close()  # and the pages' event streams
        for runner, server in reversed(self._runners):
            await self._close(runner, server)
        self._runners.clear()
        self.centre.close()
        self.work.accounts.close()
        self.work.sessions.close()
        self.audit.close()
        self.notes.close()
        self.hosts.close()
        self.tags.close()
        self.watch.store.close()
        self.centre.registry.close()


async def start_centre(config: CentreConfig) -> RunningCentre:
    """Opens the records and starts every listener; CentreConfigError for a setting out of
    range."""
    if config.ghost_ttl_s <= 0 or config.max_ghosts < 1:
        raise CentreConfigError("ghost calls", "the time shown must be positive and at least"
                                " one kept")
    if not config.retention_s > 0:
        raise CentreConfigError("retention", "victim positions must be kept a while (> 0 s)")
    raise_open_files()
    private_folder(config.state_dir)
    paths = StatePaths.of(config.state_dir, config.database)
    registry = Registry(paths.registry)
    try:
        centre = Centre(paths.records, registry)
    except BaseException:
        registry.close()
        raise
    running = RunningCentre(centre, config.tls or make_tls(config.state_dir / "tls"),
                            SmsInbox(centre, config.ghost_ttl_s, config.max_ghosts),
                            config.retention_s, config.clock)
    try:
        api = make_api_app(centre, running.hosts)
        add_tag_routes(api, running.tags, config.clock, running.watch.on_tag)
        add_victim_routes(api, running.watch)
        running.api_port = await running._serve(api, config.api_host, config.api_port,
                                                tls=True)
        running.listeners.append(f"dispatch API (HTTPS): {config.api_host}:{running.api_port}")
        running.operator_port = await running._serve(
            make_operator_app(centre, running.work, running.desk, running.sms.ghost_calls,
                              proximity=running.watch.views,
                              on_proximity_ack=running.watch.operator_ack,
                              changes=running.changes), "127.0.0.1",
            config.operator_port, tls=False)
        running.listeners.append(f"operator's page (HTTP): 127.0.0.1:{running.operator_port}")
        if config.dc09_port is not None:
            running.dc09 = Dc09Server(key_for=running.hosts.dc09_key,
                                      on_message=running.on_dc09, host=config.dc09_host,
                                      port=config.dc09_port)
            await running.dc09.start()
            running.listeners.append(f"DC-09 receiver (TCP and UDP, AES, each host's key):"
                                     f" {config.dc09_host}:{running.dc09.port}")
    except (OSError, CentreError) as exc:
        await running.stop()
        if isinstance(exc, OSError):
            raise CentreConfigError("listen", f"cannot listen: {exc}") from exc
        raise
    # Pruned at start, then hourly, off the loop (centre/retention.py).
    running.retention_task = asyncio.create_task(run_retention(
        paths, dataclasses.replace(
            config.retention or Retention(), victim_positions_s=config.retention_s),
        config.clock))
    if config.database is not None:
        # Another node's alarm shows on this node's page as soon as it is committed.
        running.follow_task = asyncio.create_task(follow(
            config.database, centre.node, running.on_change))
    for line in running.listeners:
        log.info("centre listening: %s", line)
    return running
