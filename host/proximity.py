"""The victim's host in the centre's proximity warnings (issue 14, docs/proximity.md): reports
the victim's position for a case with a moving zone as often as the centre asks, and
long-polls the centre for warnings, each delivered to the victim (host/warn.py) and then
acknowledged with how it was delivered. The last warning id seen and the warnings not yet
acknowledged live in the state folder, so that a restart neither skips nor repeats one.
The bodies are the contract's, built and read by msa.wire.proximity:

    POST /v1/victim/position      {"time", "fix": {...} | null} -> {"report_every_s"}
                                  409: the case has no moving zone, nothing to report
    GET  /v1/warnings?after=N&wait_s=W  -> {"warnings": [...], "report_every_s"}
    POST /v1/warnings/{id}/ack    {"at", "delivery": {"haptic", "hook"}} -> {}
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from msa.common.sqlite import open_wal
from msa.wire import proximity as contract
from msa.wire.errors import WireError
from msa.wire.message import Fix

from .dispatch import LocationSource
from .dispatcher import Clock, RealClock
from .errors import HostError
from .warn import Delivery, Notice, Warner

log = logging.getLogger("msa.host.proximity")

API_ROOT = "/v1"
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 413, 422})


class ProximityError(HostError):
    """The centre could not be asked or told: `what` the request, `status` its HTTP status
    where it answered, `retryable` False when asking again the same way cannot help."""

    def __init__(self, what: str, detail: str, *, status: int | None = None,
                 retryable: bool = True) -> None:
        self.what = what
        self.detail = detail
        self.status = status
        self.retryable = retryable
        super().__init__(f"proximity {what}: {detail}")


class NoMovingZone(ProximityError):
    """409 to a position report: the case has no moving zone, so nothing to report."""


@dataclass(frozen=True)
class ProximitySettings:
    """Where the centre is and how to talk to it; the defaults are the contract's."""

    base_url: str  # the dispatch API's base, like https://centre.example:8443/v1
    token: str = field(repr=False)
    ca_file: str | None = None
    report_position: bool = True
    wait_s: float = contract.MAX_WAIT_S
    report_every_s: float = contract.REPORT_EVERY_S  # until the centre says otherwise
    request_timeout_s: float = 10.0
    retry_first_s: float = 1.0
    retry_max_s: float = 30.0  # as the dispatcher: a warning waits at most this after a fault
    no_zone_retry_s: float = 3600.0  # after a 409, ask again hourly

    def backoff_s(self, failures: int) -> float:
        return min(self.retry_max_s, self.retry_first_s * 2.0 ** min(failures - 1, 30)) * \
            random.uniform(0.8, 1.0)


class WarningStore:
    """The last warning id seen and the warnings not yet acknowledged (SQLite, synchronous
    FULL). New warnings and the new last id are one transaction; an acknowledged warning is
    deleted: the host keeps no history a stalker's software could read."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS seen (one INTEGER PRIMARY KEY CHECK (one = 1),"
        " last_id INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, notice TEXT NOT NULL,"
        " haptic TEXT, hook TEXT)",
    )

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        try:
            self._db = open_wal(self.path, self.SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ProximityError("state", f"{self.path}: {exc}", retryable=False) from exc

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise ProximityError("state", f"{self.path}: {exc}") from exc

    def last_id(self) -> int:
        rows = self._run("SELECT last_id FROM seen")
        return int(rows[0][0]) if rows else 0

    def record(self, notices: Sequence[Notice]) -> list[Notice]:
        """Keeps the warnings newer than the last id seen (a centre that repeats one is not
        believed) and moves the last id past them, atomically. Returns those it kept."""
        last = self.last_id()
        new = sorted((n for n in notices if n.id is not None and n.id > last),
                     key=lambda n: n.id or 0)
        if not new:
            return []
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN IMMEDIATE")
                for n in new:
                    self._db.execute("INSERT OR IGNORE INTO pending (id, notice) VALUES (?, ?)",
                                     (n.id, json.dumps(dataclasses.asdict(n))))
                self._db.execute("INSERT INTO seen (one, last_id) VALUES (1, ?) ON CONFLICT"
                                 " (one) DO UPDATE SET last_id = excluded.last_id",
                                 (new[-1].id,))
        except sqlite3.Error as exc:
            raise ProximityError("state", f"{self.path}: {exc}") from exc
        return new

    def undelivered(self) -> list[Notice]:
        return [Notice(**json.loads(text)) for text, in
                self._run("SELECT notice FROM pending WHERE haptic IS NULL ORDER BY id")]

    def unacknowledged(self) -> list[Delivery]:
        return [Delivery(Notice(**json.loads(text)), haptic, hook) for text, haptic, hook in
                self._run("SELECT notice, haptic, hook FROM pending WHERE haptic IS NOT NULL"
                          " ORDER BY id")]

    def delivered(self, d: Delivery) -> None:
        self._run("UPDATE pending SET haptic = ?, hook = ? WHERE id = ?",
                  (d.haptic, d.hook, d.notice.id))

    def acknowledged(self, warning_id: int) -> None:
        self._run("DELETE FROM pending WHERE id = ?", (warning_id,))

    def close(self) -> None:
        self._db.close()


class ProximityClient:
    """One host's side. Step by step (the replay driver): `report_once(fix)` and
    `poll_once(wait_s)`; as a service: `run()` until `stop()`, then `close()`."""

    def __init__(self, settings: ProximitySettings, warner: Warner, state_dir: Path, *,
                 location: LocationSource | None = None, clock: Clock | None = None) -> None:
        if not settings.base_url.startswith("https://"):
            raise ProximityError("setup", f"{settings.base_url!r} is not an https:// URL",
                                 retryable=False)
        self.settings = settings
        self.warner = warner
        self.location = location
        self.clock = clock or RealClock()
        self.report_every_s = settings.report_every_s
        self.no_moving_zone = False  # the centre's last answer to a report was 409
        try:
            self._ssl = ssl.create_default_context(cafile=settings.ca_file)  # always verified
        except (OSError, ssl.SSLError) as exc:
            raise ProximityError("setup", f"CA file {settings.ca_file}: {exc}",
                                 retryable=False) from exc
        self.store = WarningStore(state_dir / "warnings.db")
        self._base = settings.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()  # the centre changed report_every_s
        self._stopping = asyncio.Event()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4),
                headers={"Authorization": f"Bearer {self.settings.token}"})
        return self._session

    async def _call(self, what: str, method: str, path: str, *, timeout_s: float,
                    body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None) -> Any:
        # The contract's paths start at the API's root; the configured URL already ends there.
        url = self._base + path.removeprefix(API_ROOT)
        try:
            async with self._client().request(
                    method, url, json=body, params=params,
                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status >= 300:
                    text = (await resp.text())[:200]
                    kind = NoMovingZone if resp.status == 409 else ProximityError
                    raise kind(what, f"refused ({resp.status}): {text}", status=resp.status,
                               retryable=resp.status not in _FINAL_STATUSES)
                return await resp.json()
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ProximityError(what, f"TLS certificate not trusted: "
                                 f"{exc.certificate_error}", retryable=False) from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProximityError(what, f"{type(exc).__name__}: {exc}") from exc

    def _follow(self, every: float) -> None:
        if every != self.report_every_s:
            log.info("the centre asks for the victim's position every %g s", every)
            self.report_every_s = every
            self._changed.set()

    # --- step by step ---
    async def report_once(self, fix: Fix | None) -> float:
        """Posts the victim's position (None: the host has no fix now) and returns the
        interval the centre asks for. NoMovingZone for a 409; ProximityError otherwise."""
        victim = None if fix is None else contract.VictimFix(fix.lat, fix.lon, fix.accuracy_m,
                                                            fix.time)
        try:
            answer = await self._call("report", "POST", contract.POSITION_PATH,
                                      body=contract.position_body(self.clock.time(), victim),
                                      timeout_s=self.settings.request_timeout_s)
        except NoMovingZone:
            self.no_moving_zone = True
            raise
        self.no_moving_zone = False
        try:
            every = contract.read_report_every(answer)
        except WireError as exc:
            raise ProximityError("report", str(exc)) from exc
        self._follow(every)
        return every

    async def poll_once(self, wait_s: float) -> list[Delivery]:
        """Delivers what an earlier run left undelivered, asks the centre for warnings newer
        than the last seen (waiting up to `wait_s` for one), records, delivers and
        acknowledges them in id order. Returns the deliveries made."""
        done = await self._flush()
        wait = max(0, min(contract.MAX_WAIT_S, int(wait_s)))
        answer = await self._call("poll", "GET", contract.WARNINGS_PATH,
                                  params={"after": str(self.store.last_id()),
                                          "wait_s": str(wait)},
                                  timeout_s=wait + self.settings.request_timeout_s)
        try:
            warnings, every = contract.read_warnings(answer)
        except WireError as exc:
            raise ProximityError("poll", str(exc)) from exc
        self._follow(every)
        self.store.record([Notice(w.kind, w.at, id=w.id, level=w.level, zone=w.zone,
                                  distance_m=w.distance_m) for w in warnings])
        return done + await self._flush()

    async def _flush(self) -> list[Delivery]:
        done = []
        for notice in self.store.undelivered():
            # Marked as delivered only once done: a crash in between delivers it again
            # after the restart (a warning repeated beats a warning lost).
            d = await self.warner.deliver(notice)
            self.store.delivered(d)
            done.append(d)
        for d in self.store.unacknowledged():
            wid = d.notice.id or 0  # the centre's warnings all have one
            try:
                await self._call("ack", "POST", contract.ACK_PATH.format(id=wid),
                                 body=contract.ack_body(self.clock.time(), d.as_json()),
                                 timeout_s=self.settings.request_timeout_s)
            except ProximityError as exc:
                if exc.retryable:
                    log.warning("warning %d not acknowledged yet: %s", wid, exc.detail)
                    break  # kept: tried again with the next poll
                log.error("warning %d: acknowledgement refused, dropped: %s", wid, exc.detail)
            self.store.acknowledged(wid)
        return done

    # --- as a service ---
    async def run(self) -> None:
        """Reports (if configured) and polls until stop(); errors are logged and retried
        with backoff, never raised."""
        loops = [asyncio.create_task(self._poll_loop(), name="proximity-poll")]
        if self.settings.report_position:
            if self.location is None:
                raise ProximityError("setup", "reporting needs a location source",
                                     retryable=False)
            loops.append(asyncio.create_task(self._report_loop(), name="proximity-report"))
        try:
            await self._stopping.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.store.close()

    async def _poll_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                got = await self.poll_once(self.settings.wait_s)
                failures = 0
                if got or time.monotonic() - started >= 1.0:
                    continue
                pause = self.settings.retry_first_s  # an empty answer at once: never spin
            except ProximityError as exc:
                failures += 1
                pause = self.settings.backoff_s(failures)
                log.warning("polling for warnings failed (again in %.0f s): %s", pause, exc)
            except Exception:  # noqa: BLE001 - a bug must not end the watch for warnings
                failures += 1
                pause = self.settings.backoff_s(failures)
                log.exception("polling for warnings failed (again in %.0f s)", pause)
            await self._first(self.clock.sleep(pause))

    async def _report_loop(self) -> None:
        assert self.location is not None
        failures = 0
        while not self._stopping.is_set():
            start, follow, known = self.clock.time(), False, self.no_moving_zone
            try:
                pause = await self.report_once(self.location.best())
                failures, follow = 0, True
            except NoMovingZone:
                if not known:
                    log.info("the case has no moving zone: not reporting (asking again in"
                             " %g s)", self.settings.no_zone_retry_s)
                failures, pause = 0, self.settings.no_zone_retry_s
            except ProximityError as exc:
                failures += 1
                pause = self.settings.backoff_s(failures)
                log.warning("position not reported (again in %.0f s): %s", pause, exc)
            except Exception:  # noqa: BLE001 - a bug must not end the reports
                failures += 1
                pause = self.settings.backoff_s(failures)
                log.exception("position not reported (again in %.0f s)", pause)
            while not self._stopping.is_set():
                # A poll answer may shorten the interval meanwhile (a pre-alert opened).
                left = start + (self.report_every_s if follow else pause) - self.clock.time()
                if left <= 0:
                    break
                self._changed.clear()
                await self._first(self._changed.wait(), self.clock.sleep(left))

    async def _first(self, *waits: Awaitable[Any]) -> None:
        """Until the first of `waits` or stop()."""
        tasks = [asyncio.ensure_future(w) for w in (*waits, self._stopping.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
