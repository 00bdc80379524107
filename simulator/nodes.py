"""Two centre nodes on one PostgreSQL, a fleet of hosts sending alarms through both, and a
killer: the failover drill of docs/centre.md ("Running two nodes"), run by the tests (at least
20 kills) and by `msa bench --only ingest` (the failover gap).

Each node is a real `msa centre run --database URL` process with a state folder of its own
(the same TLS files: hosts trust one CA). Each host is the host's real HTTPS channel with both
nodes' URLs (host/https.py, host/failover.py: staggered, sticky, within its deadline); it sends
an alarm and then a location update of it, again and again, and sends a message again only when
the channel could not get it acknowledged (as the host's outbox does). The killer SIGKILLs one
node mid-stream, measures how long the hosts that were using it wait for the other node's
acknowledgement, starts the node again, and moves on to the other one.

At the end every message must have been acknowledged, and the shared database must hold each
key exactly once, with exactly one accepted arrival each (a copy that reached a second node is
recorded as a duplicate): check() says what is wrong, if anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from msa.centre.registry import Case, Registry
from msa.centre.hosts import Hosts
from msa.centre.tls import make_tls
from msa.host.errors import ChannelError
from msa.host.https import HttpsChannel
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

from .errors import NodeError

READY_TIMEOUT_S = 60.0  # a node process's start, on a loaded 2-core machine
DEADLINE_S = 2.0  # the HTTPS channel's (the configuration's default)
SETTLE_S = 10.0  # how long after a kill the hosts that used the node may wait, at most


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One `msa centre run` process on the shared database, at a fixed port (a restarted node
    comes back at the same URL)."""

    def __init__(self, name: str, state_dir: Path, database: str) -> None:
        self.name = name
        self.state_dir = state_dir
        self.database = database
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.starts += 1
        log = open(self.state_dir / f"node-{self.starts}.log", "wb")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "msa.tools.cli", "centre", "run",
                 "--state-dir", str(self.state_dir), "--listen", f"127.0.0.1:{self.port}",
                 "--operator-port", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "MSA_CENTRE_DATABASE": self.database})

    async def ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Returns once the node's API takes connections; NodeError if it ended or
        never did."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is None or self.process.poll() is not None:
                raise NodeError(self.name, f"ended while starting: {self.log_tail()}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            if time.monotonic() > deadline:
                raise NodeError(self.name, f"took no connection within {timeout_s:g} s:"
                                f" {self.log_tail()}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, sockets reset by the kernel."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.state_dir / f"node-{self.starts}.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Sender:
    """One host of the fleet: its button's keys, its credentials, what it sent."""

    button_id: int
    keys: hp.ButtonKeys
    centre: hp.CentreKey
    token: str
    seq: int = 0
    sent: list[str] = field(default_factory=list)  # every key, once acknowledged
    acks: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, endpoint)
    retries: int = 0  # sends the channel could not get acknowledged (then sent again)
    last_endpoint: str = ""

    def alarm(self, seq: int) -> Message:
        raw = hp.centre_frame(hp.encode_frame(
            self.keys, self.centre, kind=hp.Kind.ALARM, button_id=self.button_id, boot_id=1,
            seq=seq, gesture=hp.Gesture.HOLD, battery_pct=80, age_ms=200))
        key = Message.event_key(self.button_id, 1, seq)
        return Message(key=key, kind=MessageKind.ALARM, button_id=self.button_id, frame=raw,
                       created_at=time.time(), incident=key)

    @staticmethod
    def update(alarm: Message, n: int) -> Message:
        return Message(key=f"{alarm.key}/{n}", kind=MessageKind.LOCATION,
                       button_id=alarm.button_id, frame=alarm.frame, created_at=time.time(),
                       update_no=n, incident=alarm.key,
                       fix=Fix(51.05 + n / 1e4, 3.72, 8.0, time.time(), FixQuality.GNSS, "gps"))


def provision(database: str, size: int) -> list[Sender]:
    """`size` cases, each with a button and a host, in the shared registry."""
    registry = Registry(database)
    hosts = Hosts(registry)
    senders = []
    try:
        for i in range(size):
            case_ref = f"DRILL-{i:03d}"
            registry.put_case(Case(case_ref, f"Victim {i}"))
            button_id = 0x2000_0000 + i
            master, centre_key = secrets.token_bytes(32), secrets.token_bytes(32)
            registry.register(button_id, centre_key, case_ref)
            issued = hosts.issue(case_ref)
            senders.append(Sender(button_id, hp.ButtonKeys.from_master(master),
                                  hp.CentreKey.from_master(centre_key), issued.token))
    finally:
        hosts.close()
        registry.close()
    return senders


@dataclass(frozen=True)
class Kill:
    node: str
    gaps_s: tuple[float, ...]  # per host that was using the node: kill -> the other's ACK


@dataclass
class Drill:
    """The outcome: the kills and their gaps, what the fleet sent, and the check's findings."""

    kills: list[Kill]
    messages: int
    retries: int
    problems: list[str]

    @property
    def gaps_s(self) -> list[float]:
        return [g for k in self.kills for g in k.gaps_s]

    def summary(self) -> str:
        gaps = self.gaps_s
        worst = [max(k.gaps_s) for k in self.kills if k.gaps_s]
        return (f"{len(self.kills)} kills, {self.messages} messages, {self.retries} sent"
                f" again; kill -> other node's ACK: median {statistics.median(gaps):.3f} s,"
                f" worst host per kill median {statistics.median(worst):.3f} s,"
                f" max {max(gaps):.3f} s" if gaps else "no gap measured")


class Fleet:
    """The hosts, sending until stopped."""

    def __init__(self, senders: Sequence[Sender], nodes: Sequence[Node], ca_file: Path,
                 pause_s: float) -> None:
        self.senders = list(senders)
        self.nodes = list(nodes)
        self.ca_file = ca_file
        self.pause_s = pause_s
        self._stop = asyncio.Event()

    async def _send(self, channel: HttpsChannel, s: Sender, message: Message) -> None:
        while True:
            try:
                receipt = await channel.send(message)
            except ChannelError:
                s.retries += 1  # the outbox keeps it and sends it again
                continue
            s.sent.append(message.key)
            s.acks.append((time.monotonic(), receipt.endpoint))
            s.last_endpoint = receipt.endpoint
            return

    async def _host(self, index: int, s: Sender) -> None:
        # Half the fleet prefers each node, as hosts configured in either order would.
        urls = [n.url for n in self.nodes]
        if index % 2:
            urls.reverse()
        channel = HttpsChannel(base_urls=urls, token=s.token, ca_file=str(self.ca_file),
                               deadline_s=DEADLINE_S)
        try:
            while not self._stop.is_set():
                s.seq += 1
                alarm = s.alarm(s.seq)
                await self._send(channel, s, alarm)
                await self._send(channel, s, Sender.update(alarm, 1))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.pause_s)
        finally:
            await channel.close()

    async def run(self) -> None:
        await asyncio.gather(*(self._host(i, s) for i, s in enumerate(self.senders)))

    def stop(self) -> None:
        self._stop.set()

    def acked(self) -> int:
        return sum(len(s.sent) for s in self.senders)


async def _gaps(fleet: Fleet, victim: Node, users: list[Sender], killed_at: float
                ) -> tuple[float, ...]:
    """For each host that was using `victim`: how long after the kill the other node first
    acknowledged one of its messages."""
    deadline = killed_at + SETTLE_S
    gaps: list[float] = []
    for s in users:
        while True:
            later = [t for t, end in s.acks if t > killed_at and not end.startswith(victim.url)]
            if later:
                gaps.append(later[0] - killed_at)
                break
            if time.monotonic() > deadline:
                raise NodeError("", f"no acknowledgement from the other node {SETTLE_S:g} s"
                                f" after {victim.name} was killed")
            await asyncio.sleep(0.01)
    return tuple(gaps)


async def drill(root: Path, database: str, *, kills: int, hosts: int = 8,
                pause_s: float = 0.05, between_s: float = 0.5) -> Drill:
    """Provisions the fleet in the migrated `database`, starts two nodes, kills one of them
    `kills` times (alternately, each after `between_s` of traffic through both), and checks
    the database against what was acknowledged."""
    senders = provision(database, hosts)
    nodes = [Node(name, root / name, database) for name in ("a", "b")]
    for n in nodes:
        n.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls = make_tls(nodes[0].state_dir / "tls")
    shutil.copytree(nodes[0].state_dir / "tls", nodes[1].state_dir / "tls")
    fleet = Fleet(senders, nodes, tls.ca_cert, pause_s)
    record: list[Kill] = []
    try:
        for n in nodes:
            n.start()
        await asyncio.gather(*(n.ready() for n in nodes))
        running = asyncio.create_task(fleet.run())
        try:
            for i in range(kills):
                victim = nodes[i % 2]
                before = fleet.acked()
                await asyncio.sleep(between_s)
                if fleet.acked() == before:
                    raise NodeError("", f"the fleet got no acknowledgement in {between_s:g} s"
                                    f" before kill {i + 1}")
                users = [s for s in senders if s.last_endpoint.startswith(victim.url)]
                killed_at = time.monotonic()
                victim.kill()
                record.append(Kill(victim.name, await _gaps(fleet, victim, users, killed_at)))
                victim.start()
                await victim.ready()
        finally:
            fleet.stop()
            await running
    finally:
        for n in nodes:
            n.stop()
    problems = check(database, senders)
    return Drill(record, fleet.acked(), sum(s.retries for s in senders), problems)


def check(database: str, senders: Sequence[Sender]) -> list[str]:
    """What the shared database got wrong against what the fleet had acknowledged: a key
    missing (lost), a key with other than one accepted arrival (counted twice or not at all),
    an alarm without its incident or an update without its track point."""
    keys = [k for s in senders for k in s.sent]
    problems = []
    if len(set(keys)) != len(keys):
        problems.append("a key was acknowledged twice to the fleet")
    with psycopg.connect(database) as db:
        stored = {str(r[0]) for r in db.execute(
            "SELECT key FROM records.messages WHERE key = ANY(%s)", (keys,))}
        accepted: dict[str, int] = dict(db.execute(
            "SELECT key, COUNT(*) FROM records.arrivals WHERE verdict = 'accepted'"
            " AND key = ANY(%s) GROUP BY key", (keys,)).fetchall())
        incidents = {str(r[0]) for r in db.execute(
            "SELECT key FROM records.incidents WHERE key = ANY(%s)", (keys,))}
        points = {f"{k}/{n}" for k, n in db.execute(
            "SELECT i.key, t.update_no FROM records.track t JOIN records.incidents i"
            " ON i.id = t.incident WHERE i.key = ANY(%s)", (keys,))}
    lost = [k for k in keys if k not in stored]
    doubled = [k for k in keys if accepted.get(k, 0) != 1]
    alarms = [k for k in keys if "/" not in k]
    updates = [k for k in keys if "/" in k]
    if lost:
        problems.append(f"{len(lost)} acknowledged messages lost, e.g. {lost[:3]}")
    if doubled:
        problems.append(f"{len(doubled)} messages not counted exactly once, e.g."
                        f" {[(k, accepted.get(k, 0)) for k in doubled[:3]]}")
    if missing := [k for k in alarms if k not in incidents]:
        problems.append(f"{len(missing)} alarms without an incident, e.g. {missing[:3]}")
    if missing := [k for k in updates if k not in points]:
        problems.append(f"{len(missing)} updates without a track point, e.g. {missing[:3]}")
    return problems
