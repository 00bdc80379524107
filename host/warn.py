"""Tells the victim of a warning, discreetly: a haptic pattern on every connected button (one
pattern per kind of warning, so one signal never means two things) and a notification hook,
a program the deployment chooses, run with the warning as JSON on its stdin. Also raises the
host's own warnings: a low battery reported by a button, a button out of reach for too long,
and the test path's.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bleak.exc import BleakError

from msa.wire.protocol import Pattern

from .errors import LinkError
from .events import ButtonEvent, LowBatteryEvent, TestEvent
from .link import ButtonTarget

log = logging.getLogger("msa.host.warn")

PROXIMITY, LOW_BATTERY, LINK_LOST, TEST = "proximity", "low battery", "link lost", "test"
PATTERNS: dict[str, Pattern] = {
    PROXIMITY: Pattern.PROXIMITY, LOW_BATTERY: Pattern.LOW_BATTERY,
    LINK_LOST: Pattern.LINK_LOST, TEST: Pattern.TEST,
}
HAPTIC_TIMEOUT_S = 10.0  # a command on a live link takes well under a second
OK, NONE, NOT_CONNECTED = "ok", "none", "not connected"
MAX_WHY = 120  # the contract's longest reason in "failed: <why>"
CHALLENGE_TRIES, CHALLENGE_PAUSE_S = 5, 0.2


@dataclass(frozen=True)
class Notice:
    """One warning for the victim: the centre's (with its id) or the host's own (id None).
    It never holds a position: what it says goes to the hook and, as a result, to the case
    record, and a stalker's software on the host may read both."""

    kind: str
    at: float  # Unix time the warning was raised
    id: int | None = None
    level: str | None = None  # the centre's "alert" (pre-alerts never reach a host)
    zone: str | None = None  # "victim" for the moving zone, else the fixed zone's name
    distance_m: int | None = None  # rounded by the centre to 10 m
    button_id: int | None = None  # the button a host-local warning is about

    def as_json(self) -> dict[str, Any]:
        """What the hook reads on stdin."""
        return {"id": self.id, "kind": self.kind, "level": self.level, "zone": self.zone,
                "distance_m": self.distance_m, "at": self.at,
                "button": None if self.button_id is None else f"{self.button_id:08x}"}


@dataclass(frozen=True)
class Delivery:
    """How one notice reached the victim (the centre's ack body): `haptic` "ok" (a button took
    the command) | "not connected" (no button is) | "failed: <why>"; `hook` "ok" | "none" (no
    hook configured) | "failed: <why>"."""

    notice: Notice
    haptic: str
    hook: str

    def as_json(self) -> dict[str, str]:
        return {"haptic": self.haptic, "hook": self.hook}


class WarnLink(Protocol):
    """What the warner uses of a ButtonLink."""

    @property
    def target(self) -> ButtonTarget: ...

    @property
    def connected(self) -> asyncio.Event: ...

    async def warn(self, pattern: Pattern) -> None: ...


class Hook:
    """The deployment's notification program: `argv` run without a shell, the notice as one
    line of JSON on stdin, done when it exits 0 within `timeout_s`. A program that hangs is
    killed with everything it started (its own session), so it never holds up the next one."""

    def __init__(self, argv: Sequence[str] | None = None, timeout_s: float = 10.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.argv = tuple(argv or ())
        self.timeout_s = timeout_s

    async def run(self, notice: Notice) -> str:
        if not self.argv:
            return NONE
        data = json.dumps(notice.as_json()).encode() + b"\n"
        try:
            # stdout is not read: nothing the hook prints reaches the host's logs.
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        except OSError as exc:
            return failed(f"cannot start {self.argv[0]}: {exc.strerror or exc}")
        try:
            # communicate() ignores a hook that exits without reading its stdin.
            await asyncio.wait_for(proc.communicate(data), self.timeout_s)
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            return failed(f"no exit within {self.timeout_s:g} s")
        except BaseException:
            _kill(proc)  # cancelled (the host is stopping): leave nothing running
            raise
        if proc.returncode != 0:
            code = proc.returncode or 0
            return failed(f"killed by signal {-code}" if code < 0 else f"exit status {code}")
        return OK


def failed(why: str) -> str:
    """A failure as the contract takes it: printable ASCII, at most MAX_WHY characters."""
    text = "".join(c if " " <= c <= "~" else "?" for c in why)[:MAX_WHY]
    return f"failed: {text or '?'}"


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


class Warner:
    """Delivers notices: `deliver()` for the centre's, `on_event()` for the buttons' events,
    `run()` watches the links for one lost longer than `link_lost_after_s`. `on_delivery`,
    if given, hears every delivery (tests, the replay driver)."""

    def __init__(self, links: Sequence[WarnLink], hook: Hook | None = None, *,
                 link_lost_after_s: float = 120.0, haptic_timeout_s: float = HAPTIC_TIMEOUT_S,
                 clock: Callable[[], float] = time.time,
                 on_delivery: Callable[[Delivery], None] | None = None) -> None:
        if link_lost_after_s <= 0:
            raise ValueError(f"link_lost_after_s must be > 0, got {link_lost_after_s}")
        self.links = tuple(links)
        self.hook = hook or Hook()
        self.link_lost_after_s = link_lost_after_s
        self.haptic_timeout_s = haptic_timeout_s
        self._clock = clock
        self._on_delivery = on_delivery
        # One command at a time on a link: each reads the button's challenge first, and two
        # interleaved would spend each other's.
        self._haptic_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Delivery]] = set()
        self._stopping = asyncio.Event()

    async def deliver(self, notice: Notice) -> Delivery:
        """Haptic and hook side by side; never raises for a failed delivery (it says so)."""
        haptic, hook = await asyncio.gather(self._haptic(notice), self.hook.run(notice))
        delivery = Delivery(notice, haptic, hook)
        log.info("warning %s (%s) delivered: haptic %s, hook %s",
                 "local" if notice.id is None else notice.id, notice.kind, haptic, hook)
        if self._on_delivery is not None:
            self._on_delivery(delivery)
        return delivery

    async def _haptic(self, notice: Notice) -> str:
        pattern = PATTERNS.get(notice.kind)
        if pattern is None:
            return failed(f"no pattern for kind {notice.kind!r}")  # never a wrong one
        links = [link for link in self.links if link.connected.is_set()]
        if not links:
            return NOT_CONNECTED
        async with self._haptic_lock:
            results = [await self._one(link, pattern) for link in links]
        if OK in results:
            return OK
        return results[0]

    async def _one(self, link: WarnLink, pattern: Pattern) -> str:
        who = f"button {link.target.button_id:08x}"
        tries = CHALLENGE_TRIES
        while True:
            tries -= 1
            try:
                await asyncio.wait_for(link.warn(pattern), self.haptic_timeout_s)
                return OK
            except LinkError as exc:
                # Just after another command the button's challenge still reads as that
                # one's until its loop puts a fresh one back: a moment later it works.
                if "challenge" in exc.detail and tries > 0:
                    await asyncio.sleep(CHALLENGE_PAUSE_S)
                    continue
                return failed(f"{who}: {exc.detail}")
            except TimeoutError:
                return failed(f"{who} did not answer within {self.haptic_timeout_s:g} s")
            except (BleakError, OSError) as exc:
                return failed(f"{who}: {exc or type(exc).__name__}")

    def raise_local(self, kind: str, button_id: int | None = None) -> asyncio.Task[Delivery]:
        """A host-local notice, delivered aside (the caller never waits on a button)."""
        task = asyncio.create_task(self.deliver(Notice(kind, self._clock(),
                                                       button_id=button_id)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on_event(self, event: ButtonEvent) -> None:
        """A verified button event: a low battery and a test alarm warn the victim too."""
        if isinstance(event, LowBatteryEvent):
            self.raise_local(LOW_BATTERY, event.button_id)
        elif isinstance(event, TestEvent):
            self.raise_local(TEST, event.button_id)

    async def run(self) -> None:
        """Watches the links until stop(): a button not connected for `link_lost_after_s`
        (from the start, or from when its link dropped) raises "link lost" once, and again
        only after it was back. The links keep no history, so they are looked at often."""
        check_s = min(1.0, self.link_lost_after_s / 4)
        lost_since: dict[int, float] = {}  # counted from the first check that saw it gone:
        told: set[int] = set()  # a warning up to check_s late, never early
        try:
            while not self._stopping.is_set():
                now = self._clock()
                for link in self.links:
                    key = id(link)
                    if link.connected.is_set():
                        lost_since.pop(key, None)
                        told.discard(key)
                        continue
                    since = lost_since.setdefault(key, now)
                    if key not in told and now - since >= self.link_lost_after_s:
                        told.add(key)
                        log.warning("button %08x out of reach for %.0f s",
                                    link.target.button_id, now - since)
                        self.raise_local(LINK_LOST, link.target.button_id)
                try:
                    await asyncio.wait_for(self._stopping.wait(), check_s)
                except TimeoutError:
                    pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        self._stopping.set()
