"""The crash run (`msa sim crash`, issue 13): `msa host run` in a process of its own, keeping a
virtual board (the unmodified firmware in MicroPython, reached over the simulated radio as a USB
adapter would be) and reporting to the reference centre over HTTPS, is SIGKILLed again and
again and started again each time, while a finger presses the button now and then. A third of
the kills come at random instants; the others are forced through the host's crash points
(host/crashpoint.py): where the outbox has committed an alarm that the button has not had
acknowledged, and where the centre has accepted an alarm whose receipt the host has not
stored. At the end the centre must have counted every press exactly once (as many alarms as
presses, and every alarm the host stored), and the host must hold nothing undelivered or
unacknowledged.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.host import crashpoint
from msa.host.sequence import decide
from msa.wire.message import MessageKind

from .errors import SimError
from .host_process import HostProcess, write_config
from .radio import serve_radio
from .world import World, hold_edges

HOLD_MS = 300  # the button's alarm threshold here: quick presses (config allows 100 and up)
PRESS_MS = 450  # each press holds this long, well past the threshold
PRESS_GAP_S = (1.2, 3.5)  # a pause of this many seconds (uniform) before each press
# Presses not yet counted at the centre, at most: the button keeps 16 unacknowledged events
# and makes room by dropping one once full, which a long run of kills must not provoke.
MAX_PENDING = 4
KILL_AFTER_S = (0.2, 6.0)  # a random kill comes this long (uniform) after the host starts,
AFTER_PRESS_SHARE = 0.5  # or, this often, this long after the next press starts:
KILL_AFTER_PRESS_S = (HOLD_MS / 1000, HOLD_MS / 1000 + 0.6)
FORCED_EVERY = 3  # of every three kills: one at each crash point, one at random
FORCED_TIMEOUT_S = 90.0  # a forced host that is still alive by then never reached its point
SETTLE_TIMEOUT_S = 60.0  # after the last kill, for every alarm to reach the centre (~2 s)
CASE = Case("CRASH-RUN-0001", victim="(crash run) A. Victim")


class CrashRunError(SimError):
    """The run could not go on (a forced point never reached, a host dying by itself)."""

    def __init__(self, what: str, log_tail: str = "") -> None:
        self.what = what
        self.log_tail = log_tail
        super().__init__(what + (f"\nhost log:\n{log_tail}" if log_tail else ""))


@dataclass
class CrashReport:
    """What the run did and what the centre counted."""

    seed: int
    kills: int = 0
    random_kills: int = 0
    random_linked: int = 0  # random kills that came while the host held the button's link
    random_after_press: int = 0  # random kills timed from a press rather than the host's start
    forced: dict[str, int] = field(default_factory=lambda: dict.fromkeys(crashpoint.POINTS, 0))
    # Forced kills after which the host's and the centre's records showed the window hit.
    in_window: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(crashpoint.POINTS, 0))
    presses: int = 0
    counted: int = 0  # alarms the centre counted
    duplicates: int = 0  # alarms at the centre beyond the presses
    lost: int = 0  # presses without an alarm at the centre
    not_at_centre: int = 0  # alarms the host stored (delivered or not) the centre never counted
    undelivered: int = 0  # alarms the host's outbox still holds undelivered at the end
    # Alarms whose sequence number the host has not spent at the end: never acknowledged to
    # the button, which would keep them (and its queue full) for good.
    unacknowledged: int = 0
    match_error_ms: float = 0.0  # the largest difference, n-th press to n-th alarm's instant
    seconds: float = 0.0
    clean_exit: bool = False  # the last host stopped on SIGINT with status 0

    @property
    def exactly_once(self) -> bool:
        return (self.counted == self.presses and self.duplicates == 0 and self.lost == 0
                and self.undelivered == 0 and self.unacknowledged == 0
                and self.not_at_centre == 0)

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "kills": self.kills, "random_kills": self.random_kills,
                "random_kills_while_linked": self.random_linked,
                "random_kills_just_after_a_press": self.random_after_press,
                "forced_kills": dict(self.forced), "forced_in_window": dict(self.in_window),
                "presses": self.presses, "counted_at_centre": self.counted,
                "duplicates": self.duplicates, "lost": self.lost,
                "undelivered_at_host": self.undelivered,
                "unacknowledged_at_host": self.unacknowledged,
                "stored_at_host_not_at_centre": self.not_at_centre,
                "match_error_ms": round(self.match_error_ms, 1),
                "seconds": round(self.seconds, 1), "clean_exit": self.clean_exit,
                "exactly_once": self.exactly_once}


def render(r: CrashReport) -> str:
    forced = ", ".join(f"{r.forced[p]} at {p!r} ({r.in_window[p]} seen in the window)"
                       for p in crashpoint.POINTS)
    return "\n".join((
        f"kills: {r.kills} (random {r.random_kills}: {r.random_after_press} timed from a press,"
        f" {r.random_linked} while the host held the button's link; forced {forced})",
        f"alarms pressed: {r.presses}",
        f"alarms counted at the centre: {r.counted}",
        f"duplicates: {r.duplicates}",
        f"lost: {r.lost}",
        f"undelivered at the host: {r.undelivered}",
        f"not acknowledged to the button: {r.unacknowledged}",
        f"stored at the host, not counted at the centre: {r.not_at_centre}",
        f"press to its alarm's instant at the centre, largest difference:"
        f" {r.match_error_ms:.0f} ms",
        f"time: {r.seconds:.0f} s (seed {r.seed})",
        "exactly once: " + ("yes" if r.exactly_once else "NO"),
    ))


@contextlib.contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)  # never makes a missing one
    try:
        yield db
    finally:
        db.close()


def _seq(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


class _Run:
    def __init__(self, root: Path, kills: int, seed: int,
                 progress: Callable[[str], None]) -> None:
        self.root = root
        self.kills = kills
        self.rng = random.Random(seed)
        self.progress = progress
        self.report = CrashReport(seed=seed)
        self.press_at: list[float] = []  # when each press began, wall clock
        self.button_id = secrets.randbelow(0xFFFFFFFE) + 1
        self.state = root / "host" / "state"
        self.log = root / "host" / "host.log"
        self.centre: RunningCentre | None = None
        self.world: World | None = None
        self.config = Path()
        self.pressing = True
        self.pressed = asyncio.Event()  # set as a press starts

    def counted(self, kind: MessageKind = MessageKind.ALARM) -> int:
        assert self.centre is not None
        return self.centre.centre.count(kind)

    async def until(self, what: str, done: Callable[[], bool], timeout_s: float,
                    host: HostProcess) -> None:
        """Waits for the centre to change until done() holds (or the host ends, or time)."""
        assert self.centre is not None
        deadline = time.monotonic() + timeout_s
        while not done():
            if not host.alive:
                raise CrashRunError(f"the host ended by itself waiting for {what}",
                                    host.tail())
            left = deadline - time.monotonic()
            if left <= 0:
                raise CrashRunError(f"no {what} within {timeout_s:.0f} s", host.tail())
            self.centre.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                # The outbox changes without the centre hearing of it: look again now and then.
                await asyncio.wait_for(self.centre.changed.wait(), min(left, 0.5))

    def linked(self) -> bool:
        """Whether the button has a connection on the air (only the host makes one)."""
        assert self.world is not None
        return bool(self.world.air.find(self.world.board.address).le_connections)

    async def presser(self) -> None:
        """The finger: a press now and then, whatever the host is doing."""
        assert self.world is not None
        board = self.world.board
        while self.pressing:
            await asyncio.sleep(self.rng.uniform(*PRESS_GAP_S))
            if not self.pressing or len(self.press_at) - self.counted() >= MAX_PENDING:
                continue
            self.press_at.append(time.time())
            self.pressed.set()
            await board.press(hold_edges(PRESS_MS))
            await board.finger.idle()

    def _alarms_at_host(self) -> list[tuple[str, float | None]]:
        with _db(self.state / "outbox.db") as db:
            return [(str(k), None if d is None else float(d)) for k, d in db.execute(
                "SELECT key, delivered_at FROM messages WHERE kind = ?",
                (MessageKind.ALARM.value,))]

    def _alarms_at_centre(self) -> list[tuple[str, float | None]]:
        with _db(self.root / "centre" / "records.db") as db:
            return [(str(k), None if p is None else float(p)) for k, p in db.execute(
                "SELECT key, pressed_at FROM incidents WHERE test = 0")]

    def _in_window(self, point: str) -> bool:
        """Whether a forced kill left the records as its point says: an alarm stored with
        its number unspent (so unacknowledged), or counted at the centre but undelivered."""
        host = self._alarms_at_host()
        if point == crashpoint.ACCEPTED:
            centre = {k for k, _ in self._alarms_at_centre()}
            return any(d is None and k in centre for k, d in host)
        return bool(self._unspent(host))

    def _unspent(self, alarms: list[tuple[str, float | None]]) -> list[str]:
        """The alarms whose sequence numbers the host's receiver has not spent: stored, but
        not yet acknowledged to the button (sequence.py spends a number before the ack)."""
        with _db(self.state / "receiver.db") as db:
            row = db.execute("SELECT high, gaps FROM seq_state WHERE button_id = ?",
                             (self.button_id,)).fetchone()
        high, gaps = (0, []) if row is None else (
            int(row[0]), [(int(a), int(b)) for a, b in json.loads(row[1])])
        return [k for k, _ in alarms if decide(high, gaps, _seq(k))[0].accepted]

    async def cycle(self, n: int, host: HostProcess) -> None:
        r = self.report
        if host.crash_at is None:
            after_press = self.rng.random() < AFTER_PRESS_SHARE
            if after_press:
                # While the alarm goes through: the link, the receiver, the outbox, the ack,
                # the delivery (the threshold is HOLD_MS after the press starts).
                self.pressed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.pressed.wait(), FORCED_TIMEOUT_S)
                await asyncio.sleep(self.rng.uniform(*KILL_AFTER_PRESS_S))
            else:
                await asyncio.sleep(self.rng.uniform(*KILL_AFTER_S))
            if not host.alive:
                raise CrashRunError("the host ended by itself", host.tail())
            linked = self.linked()
            status = await host.kill()
            r.random_kills += 1
            r.random_linked += linked
            r.random_after_press += after_press
        else:
            assert host.proc is not None
            try:
                status = await asyncio.wait_for(host.proc.wait(), FORCED_TIMEOUT_S)
            except asyncio.TimeoutError:
                await host.kill()
                raise CrashRunError(f"{crashpoint.ENV}={host.crash_at}: not reached within"
                                    f" {FORCED_TIMEOUT_S:.0f} s", host.tail()) from None
            point = host.crash_at.split(":", 1)[0]
            r.forced[point] += 1
            r.in_window[point] += self._in_window(point)
        if status != -signal.SIGKILL:
            raise CrashRunError(f"the host ended with status {status}, not by SIGKILL",
                                host.tail())
        r.kills += 1
        self.progress(f"kill {r.kills}/{self.kills} ({host.crash_at or 'random'}):"
                      f" {len(self.press_at)} pressed, {self.counted()} counted")

    def plan(self, n: int) -> str | None:
        """The crash point of the n-th host (0: the first), None for a random kill."""
        k = n % FORCED_EVERY
        if n == 0 or k == 0:
            return None
        return f"{crashpoint.POINTS[k - 1]}:{MessageKind.ALARM.value}"

    async def run(self) -> CrashReport:
        began = time.monotonic()
        key = secrets.token_bytes(32)
        self.centre = centre = await start_centre(CentreConfig(state_dir=self.root / "centre"))
        server: asyncio.Server | None = None
        presser: asyncio.Task[None] | None = None
        host: HostProcess | None = None
        try:
            centre.centre.registry.put_case(CASE)
            centre_key = secrets.token_bytes(32)
            centre.centre.registry.register(self.button_id, centre_key, CASE.case_ref)
            self.world = World(self.root / "sim", key=key, button_id=self.button_id,
                               centre_key=centre_key, hold_ms=HOLD_MS)
            await self.world.start(with_host=False)
            server = await serve_radio(self.world.air, "127.0.0.1", 0)
            port = int(server.sockets[0].getsockname()[1])
            token = centre.issue_host(CASE.case_ref).token
            self.config = write_config(self.root / "host", centre, token, port, self.button_id,
                                       key, self.world.board.address)
            host = HostProcess(self.config, self.log, None)
            await host.start()
            # Bonded and in service before the first kill: the button's boot notice is in.
            await self.until("boot notice at the centre",
                             lambda: self.counted(MessageKind.BOOT) > 0, 60, host)
            presser = asyncio.create_task(self.presser())
            for n in range(self.kills):
                await self.cycle(n, host)
                host = HostProcess(self.config, self.log,
                                   self.plan(n + 1) if n + 1 < self.kills else None)
                await host.start()
            self.pressing = False
            await presser
            self.progress(f"{self.kills} kills done; waiting for the centre to count"
                          f" {len(self.press_at)} alarms")
            with contextlib.suppress(CrashRunError):  # what did not arrive counts as lost
                await self.until("alarm count at the centre", self.settled, SETTLE_TIMEOUT_S,
                                 host)
            self.report.clean_exit = await host.interrupt() == 0
            self.tally()
        finally:
            self.pressing = False
            if presser is not None and not presser.done():
                presser.cancel()
                await asyncio.gather(presser, return_exceptions=True)
            if host is not None and host.alive:
                await host.kill()
            if server is not None:
                server.close()
            if self.world is not None:
                await self.world.close()
            await centre.stop()
        self.report.seconds = time.monotonic() - began
        return self.report

    def settled(self) -> bool:
        alarms = self._alarms_at_host()
        return (self.counted() >= len(self.press_at) and all(d is not None for _, d in alarms)
                and not self._unspent(alarms))

    def tally(self) -> None:
        """Counts at both ends. The centre counts a key once (its primary key), and a key is
        made from the button's sequence number, one per press: so a press counted twice
        shows as more alarms than presses, and a lost one as fewer, or as a key the host
        has as delivered that the centre never counted."""
        r = self.report
        r.presses = len(self.press_at)
        r.counted = self.counted()
        at_host = self._alarms_at_host()
        at_centre = sorted(self._alarms_at_centre(), key=lambda a: _seq(a[0]))
        r.undelivered = sum(d is None for _, d in at_host)
        r.unacknowledged = len(self._unspent(at_host))
        r.not_at_centre = len({k for k, _ in at_host} - {k for k, _ in at_centre})
        r.duplicates = max(0, r.counted - r.presses)
        r.lost = max(0, r.presses - r.counted)
        # The n-th alarm is the n-th press: how far apart the instants are (for the reader;
        # the simulated board can feel a press late when its process is kept waiting).
        r.match_error_ms = max((abs(p - t) * 1000 for (_, p), t in
                                zip(at_centre, sorted(self.press_at)) if p is not None),
                               default=0.0)


def run(kills: int, root: Path, seed: int | None = None,
        progress: Callable[[str], None] = lambda _line: None) -> CrashReport:
    """One crash run in `root` (an empty folder); see the module's docstring."""
    if kills < 1:
        raise CrashRunError(f"kills must be at least 1, not {kills}")
    seed = secrets.randbelow(2 ** 32) if seed is None else seed
    return asyncio.run(_Run(root, kills, seed, progress).run())
