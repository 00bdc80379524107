"""Centre ingest: how many frames a second the reference centre verifies, dedupes and stores
(SQLite, WAL), through the code its receivers call, with what bounds it measured beside it
(docs/performance.md, "ingest").

A fleet of provisioned buttons (cases, keys) lives in a real registry on disk; its traffic comes
from ingest_load. Figures are medians of `options.runs` runs; every stream's verdicts and stored
rows are checked against what was sent, so no figure comes from a centre that got one wrong.
The HTTPS figures post from another process (this module's _client_main).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from msa.centre.core import Centre, Verdict
from msa.centre.dc09 import Dc09Server
from msa.centre.registry import Registry
from msa.centre.server import CentreConfig, dc09_inbound, start_centre
from msa.centre.tls import TlsFiles
from msa.wire import dc09
from msa.wire.message import Message, MessageKind
from msa.wire.api import body
from msa.wire.protocol import verify_centre
from msa.common.sqlite import open_wal

from . import ingest_pg
from .figures import Better, Figure, Options, median, percentile, rate
from .ingest_load import MIX, Fleet, Item, Tally, build_fleet, drive, fix, fleet_minute, quiet

SECTION = "ingest"
TARGET = 5000.0  # frames/s (issue 6)
FLEET = 100_000  # buttons at scale 1
FLEET_RATE = 1700.0  # 100,000 buttons heartbeating each minute: 1,667/s, "about 1,700"
HTTPS_CONNECTIONS = 32
IN_FLIGHT = 32  # messages at once, as from that many hosts


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """One full TLS handshake, both ends in memory (no sockets, no session resumption)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ends = [(client.wrap_bio(c_in, c_out, server_hostname="localhost"), c_out, s_in),
            (server.wrap_bio(s_in, s_out, server_side=True), s_out, c_in)]
    done = [False, False]
    while True:
        moved = False
        for i, (end, out, peer) in enumerate(ends):
            if not done[i]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
                    done[i] = True
            data = out.read()
            moved = moved or bool(data)
            peer.write(data)
        if all(done) and not moved:
            return


def floors(root: Path, fleet: Fleet, options: Options, tls: TlsFiles) -> dict[str, float]:
    """Each per-frame cost alone, as the most frames a second it would allow."""
    rng = random.Random(options.seed + 7)
    ids = rng.choices(fleet.ids, k=options.count(20_000))
    frames = [(fleet.keys[b][1], fleet.message(b, MessageKind.HEARTBEAT, 0.0).frame) for b in ids]
    registry = Registry(fleet.registry)
    out = {"tag": rate(len(frames), lambda i: verify_centre(frames[i][1], frames[i][0])),
           "lookup": rate(len(ids), lambda i: registry.key(ids[i]))}
    registry.close()
    for sync, n in (("NORMAL", options.count(5000)), ("FULL", options.count(1000))):
        path = root / f"commit-{sync}.db"
        db = open_wal(str(path), ("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY,"
                                  " v BLOB NOT NULL)",), sync)

        def commit(i: int) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (v) VALUES (?)", (b"x" * 64,))
            db.execute("COMMIT")
        out[sync] = rate(n, commit)
        db.close()
    fd = os.open(root / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(i: int) -> None:
        os.write(fd, bytes(4096))
        os.fsync(fd)
    try:
        out["fsync"] = rate(options.count(1000), append)
    finally:
        os.close(fd)
    server, client = tls.server_context(), ssl.create_default_context(cafile=str(tls.ca_cert))
    out["tls"] = rate(options.count(300), lambda i: _handshake(server, client))
    aes, b = bytes(16), ids[0]
    raw = dc09.encode(dc09.Dc09Message(seq=1, account=dc09.account_for(b),
                                       kind=MessageKind.HEARTBEAT, key=f"{b:08x}-1-1",
                                       frame=frames[0][1], timestamp=dc09.stamp(time.time())), aes)
    ack = dc09.Dc09Reply(token=dc09.Token.ACK, seq=1, account=dc09.account_for(b),
                         receiver=None, line="0", timestamp=dc09.stamp(time.time()))
    out["dc09 codec"] = rate(options.count(5000), lambda i: (dc09.decode(raw, lambda _a: aes),
                                                               dc09.encode(ack, aes)))
    return out


def _client_main() -> None:
    """The HTTPS load generator, run in its own process (so the centre has a core to itself):
    argv: url ca_file bodies_file connections close(0/1); each line of the bodies file is
    route, the sending host's token and the body. Prints elapsed and statuses."""
    url, ca, path, conns, close = sys.argv[1:6]
    lines = [line.split(b"\t", 2) for line in Path(path).read_bytes().splitlines()]

    async def post_all() -> dict[str, Any]:
        import aiohttp
        todo = iter(lines)
        statuses: dict[str, int] = {}
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca),
                                         limit=int(conns), force_close=close == "1")
        async with aiohttp.ClientSession(connector=connector, headers={
                "Content-Type": "application/json"}) as s:
            async def worker() -> None:
                for route, token, payload in todo:
                    async with s.post(url + route.decode(), data=payload, headers={
                            "Authorization": f"Bearer {token.decode()}"}) as resp:
                        await resp.read()
                        statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(int(conns))))
            return {"elapsed": time.perf_counter() - start, "statuses": statuses}
    print(json.dumps(asyncio.run(post_all())))


async def _https(folder: Path, fleet: Fleet, n: int, close: bool, rng: random.Random,
                 ) -> tuple[float, float]:
    """Heartbeats posted to /v1/events by another process, each by its button's own host
    (its case's token, issued for the run): (frames/s, server CPU s/frame)."""
    running = await start_centre(CentreConfig(state_dir=folder, dc09_port=None))
    try:
        chosen = rng.choices(fleet.ids, k=n)
        run = rng.randbytes(4).hex()
        with running.hosts.transaction():
            tokens = {b: running.issue_host(f"C-{b:08x}", f"bench-{run}-{b:08x}").token
                      for b in set(chosen)}
        path = folder / "bodies.txt"
        with path.open("w") as out:
            for b in chosen:
                m = fleet.message(b, MessageKind.HEARTBEAT, time.time())
                out.write(f"/events\t{tokens[b]}\t" + json.dumps(body(Message(
                    m.key, m.kind, b, m.frame, time.time()))) + "\n")
        before, cpu = running.centre.count(), time.process_time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from msa.bench.ingest import _client_main; _client_main()",
            running.api_url, str(running.tls.ca_cert), str(path),
            str(HTTPS_CONNECTIONS), "1" if close else "0", stdout=asyncio.subprocess.PIPE)
        out_bytes, _ = await proc.communicate()
        cpu = time.process_time() - cpu
        result = json.loads(out_bytes)
        stored = running.centre.count() - before
        if proc.returncode != 0 or result["statuses"] != {"200": n} or stored != n:
            raise RuntimeError(f"HTTPS run: {result['statuses']}, {stored} of {n} stored")
        return n / float(result["elapsed"]), cpu / n
    finally:
        await running.stop()


async def _dc09(centre: Centre, fleet: Fleet, n: int, rng: random.Random) -> float:
    """SIA-DCS heartbeats (AES-128) through the receiver's answer(): CRC, decryption, parsing,
    the timestamp window, then Centre.ingest, as the TCP and UDP listeners call it."""
    aes = rng.randbytes(16)

    async def on_message(m: dc09.Dc09Message) -> bool:  # as RunningCentre.on_dc09
        result = await centre.submit(dc09_inbound(m, time.time()))
        return result.verdict is not Verdict.REJECTED
    server = Dc09Server(key_for=lambda _account: aes, on_message=on_message)
    raws = []
    for i, b in enumerate(rng.choices(fleet.ids, k=n)):
        m = fleet.message(b, MessageKind.HEARTBEAT, 0.0)
        raws.append(dc09.encode(dc09.Dc09Message(
            seq=i % dc09.SEQ_MAX + 1, account=dc09.account_for(b), kind=m.kind, key=m.key,
            frame=m.frame, timestamp=dc09.stamp(time.time())), aes))
    replies: list[bytes] = []

    async def sender(todo: Iterator[bytes]) -> None:
        for raw in todo:
            replies.append(await server.answer(raw))
    start = time.perf_counter()
    todo = iter(raws)
    await asyncio.gather(*(sender(todo) for _ in range(IN_FLIGHT)))
    rate = n / (time.perf_counter() - start)
    acks = sum(1 for r in replies if getattr(dc09.decode(r, lambda _a: aes), "token", None)
               is dc09.Token.ACK)
    if acks != n:
        raise RuntimeError(f"DC-09 run: {acks} ACKs for {n} events")
    return rate


def _prefill(path: Path, total: int) -> int:
    """Tops the centre's messages up to `total` rows (older heartbeats): a centre that has run
    a while. Returns how many rows it holds."""
    db = open_wal(str(path), ())
    try:
        have = int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO messages (key, kind, button_id, channel, received_at)"
                       " VALUES (?, 'heartbeat', ?, 'https', 0)",
                       ((f"{j + 1:08x}-0-{j}", j + 1) for j in range(have, total)))
        db.execute("COMMIT")
        return max(have, total)
    finally:
        db.close()


def _spread(samples: Sequence[float], unit: str = "/s") -> str:
    if len(samples) < 2:
        return "one run"
    low, high, mid = min(samples), max(samples), median(samples)
    digits = ",.0f" if mid >= 100 else ".3g"
    return (f"median of {len(samples)} runs, {low:{digits}}–{high:{digits}}{unit}"
            f" (±{(high - low) / 2 / mid:.0%})")


def _streams(centre: Centre, fleet: Fleet, options: Options, rng: random.Random,
             add: Callable[[str, float], None]) -> Tally:
    """One run on a warm centre: the mix from a sample of the fleet at full speed and with one
    message in flight, then one kind at a time. Returns the full-speed mixed stream."""
    def sample(full: int) -> list[int]:
        return rng.sample(fleet.ids, min(len(fleet.ids), options.count(full)))

    mixed = drive(centre, fleet_minute(fleet, rng, time.time(), sample(30_000)), IN_FLIGHT)
    add("mixed", mixed.rate)
    alone = drive(centre, fleet_minute(fleet, rng, time.time(), sample(20_000)), 1)
    add("mixed 1", alone.rate)
    for category in ("heartbeat", "alarm"):
        add(f"p99 {category}", percentile(alone.latency[category], 99) * 1000)
        for took in alone.latency[category]:  # pooled over the runs: alarms are few per run
            add(f"latency {category}", took * 1000)
        add(f"p99 {category} busy", percentile(mixed.latency[category], 99) * 1000)

    def beats(ids: Sequence[int]) -> list[Item]:
        return [Item("heartbeat", fleet.message(b, MessageKind.HEARTBEAT, time.time()))
                for b in ids]

    def alarms(ids: Sequence[int]) -> list[Item]:
        return [Item("alarm", fleet.message(b, MessageKind.ALARM, time.time(),
                                            fix(rng, time.time()))) for b in ids]
    first = beats(sample(20_000))
    add("heartbeats", drive(centre, first, IN_FLIGHT).rate)
    add("heartbeats 1", drive(centre, beats(sample(5000))).rate)
    add("alarms", drive(centre, alarms(sample(5000)), IN_FLIGHT).rate)
    add("alarms 1", drive(centre, alarms(sample(1000))).rate)
    add("duplicates", drive(centre, [Item("duplicate", i.message) for i in rng.choices(
        first, k=options.count(10_000))], IN_FLIGHT).rate)
    add("bad", drive(centre, [Item("bad", fleet.forged(b, time.time()))
                              for b in sample(5000)], IN_FLIGHT).rate)
    return mixed


def run(options: Options) -> list[Figure]:
    root = options.root / SECTION
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(options.seed)
    fleet = build_fleet(root / "centre", options.count(FLEET), rng)
    s: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        s.setdefault(name, []).append(value)

    with quiet():
        registry = Registry(fleet.registry)
        centre = Centre(root / "records.db", registry)
        cold = drive(centre, fleet_minute(fleet, rng, time.time()), IN_FLIGHT)
        minute = cold
        for _ in range(options.runs):
            minute = _streams(centre, fleet, options, rng, add)
        for _ in range(options.runs):  # the same warm centre: keys derived, pages cached
            add("dc09", asyncio.run(_dc09(centre, fleet, options.count(5000), rng)))
        centre.close()
        held = _prefill(root / "records.db", options.count(1_000_000))
        centre = Centre(root / "records.db", registry)
        for _ in range(options.runs):
            add("history", drive(centre, [Item("heartbeat", fleet.message(
                b, MessageKind.HEARTBEAT, time.time())) for b in rng.sample(
                fleet.ids, min(len(fleet.ids), options.count(10_000)))], IN_FLIGHT).rate)
        centre.close()
        registry.close()
        for _ in range(options.runs):
            for close, n in ((False, options.count(4000)), (True, options.count(1000))):
                rate, cpu = asyncio.run(_https(root / "centre", fleet, n, close, rng))
                add(f"https {close}", rate)
                add(f"https cpu {close}", cpu)
        tls = TlsFiles(*(root / "centre" / "tls" / name
                         for name in ("ca.pem", "centre.pem", "centre-key.pem")))
        for _ in range(options.runs):
            for name, value in floors(root, fleet, options, tls).items():
                add(name, value)
    return _figures({k: median(v) for k, v in s.items()}, s, fleet, cold, minute, held) + \
        ingest_pg.run(options)  # the same on PostgreSQL, and two nodes' failover (issue 17)


def _figures(f: dict[str, float], s: dict[str, list[float]], fleet: Fleet, cold: Tally,
             minute: Tally, held: int) -> list[Figure]:
    per_frame = (f"tag check {f['tag']:,.0f}/s, key lookup {f['lookup']:,.0f}/s, WAL commit"
                 f" {f['NORMAL']:,.0f}/s (NORMAL) or {f['FULL']:,.0f}/s (FULL, an fsync)")
    synced = f"one fsync per commit: SQLite FULL commit {f['FULL']:,.0f}/s"
    mix = ", ".join(f"{k} {v:.1%}" for k, v in MIX.items())
    at_once = f"{IN_FLIGHT} in flight (Centre.submit, group commit)"

    def rate(key: str, name: str, floor: str = per_frame, note: str = "") -> Figure:
        return Figure(SECTION, name, f[key], "frames/s", TARGET, Better.HIGHER, floor,
                      (note + "; " if note else "") + _spread(s[key]))

    def floor(key: str, name: str, unit: str, note: str) -> Figure:
        return Figure(SECTION, name, f[key], unit, None, Better.HIGHER, "",
                      note + "; " + _spread(s[key]))

    def latency(key: str, floor: str) -> Figure:
        pooled = percentile(s[f"latency {key}"], 99)
        return Figure(SECTION, f"ingest latency p99, {key}", pooled, "ms", None,
                      Better.LOWER, floor, "one message in flight, in a mixed stream;"
                      f" pooled over the runs, each run's p99 "
                      + _spread(s[f"p99 {key}"], " ms") + f"; {f[f'p99 {key} busy']:.3g} ms"
                      f" with {IN_FLIGHT} in flight at full speed (it waits for its batch)")

    https_cpu = {c: f[f"https cpu {c}"] * 1e6 for c in (False, True)}
    return [
        rate("mixed", "mixed stream", note=f"{len(minute.latency['heartbeat']):,} of the"
             f" {len(fleet.ids):,} buttons: a heartbeat each plus {mix}; {minute.sent:,} frames,"
             f" {minute.stored:,} stored; {at_once};"
             f" {f['mixed'] / FLEET_RATE:.1f}× the fleet's {FLEET_RATE:,.0f}/s"),
        rate("mixed 1", "mixed, one message in flight", note="Centre.submit; each message"
             " its own commit, an fsync for all but heartbeats"),
        rate("heartbeats", "heartbeats", note=at_once),
        rate("heartbeats 1", "heartbeats, one at a time", note="Centre.ingest, a commit each"),
        rate("alarms", "alarms (each opens an incident)", note=at_once, floor=per_frame),
        rate("alarms 1", "alarms, one at a time", floor=synced,
             note="Centre.ingest: each alarm synced to disk before it returns"),
        rate("duplicates", "duplicates (acknowledged again, not stored)", note=at_once),
        rate("bad", "forged tags (rejected, logged)", floor=f"tag check {f['tag']:,.0f}/s"),
        Figure(SECTION, "mixed, the fleet's first minute after a start", cold.rate, "frames/s",
               TARGET, Better.HIGHER, per_frame + "; each button's keys derived once",
               f"all {len(fleet.ids):,} buttons; {cold.sent:,} frames, {cold.stored:,} stored;"
               f" {at_once}; one run"),
        rate("history", f"heartbeats, {held:,} messages on record",
             note="the dedupe index outgrows SQLite's page cache"),
        Figure(SECTION, "fleet headroom (mixed stream ÷ 1,700/s)", f["mixed"] / FLEET_RATE, "×", 1.0,
               Better.HIGHER, "", "100,000 buttons heartbeating each minute ≈ 1,700 frames/s"),
        latency("heartbeat", f"one WAL commit (NORMAL) {1000 / f['NORMAL']:.3f} ms"),
        latency("alarm", f"one WAL commit with fsync (FULL) {1000 / f['FULL']:.3f} ms"),
        rate("dc09", "DC-09 receiver, in process (AES-128)", note="CRC, AES, SIA-DCS parsing"
             f" and the timestamp window, then Centre.submit; {IN_FLIGHT} in flight; no sockets",
             floor=f"DC-09 codec alone (decode the event, encode the ACK)"
                   f" {f['dc09 codec']:,.0f}/s, plus one ingest each"),
        rate("https False", f"HTTPS end to end, {HTTPS_CONNECTIONS} kept-alive TLS connections",
             floor=f"server CPU {https_cpu[False]:.0f} µs/frame (aiohttp, JSON, TLS records)",
             note="heartbeats; client in another process, on the other core"),
        rate("https True", "HTTPS end to end, a TLS handshake per frame",
             floor=f"TLS handshake {f['tls']:,.0f}/s (both ends); server CPU"
                   f" {https_cpu[True]:.0f} µs/frame",
             note="what a heartbeat a minute apart gets: aiohttp's client keeps an idle"
                  " connection 15 s"),
        Figure(SECTION, "fleet headroom over HTTPS, a handshake per frame",
               f["https True"] / FLEET_RATE, "×", 1.0, Better.HIGHER, "",
               "100,000 hosts, each a new TLS connection a minute"),
        floor("tag", "floor: HMAC-SHA256 centre tag check (verify_centre)", "frames/s", "decode included"),
        floor("lookup", "floor: registry key lookup", "lookups/s",
              "read each frame so a retire in another process counts at once"),
        floor("NORMAL", "floor: SQLite commit, WAL, synchronous=NORMAL", "commits/s",
              "one row per transaction; no fsync (the WAL is synced at checkpoints)"),
        floor("FULL", "floor: SQLite commit, WAL, synchronous=FULL", "commits/s",
              "one fsync of the WAL per commit"),
        floor("fsync", "floor: fsync of a 4 KiB append", "fsyncs/s", "this machine's disk"),
        floor("tls", "floor: TLS handshake, both ends in memory", "handshakes/s",
              "P-256 certificate, no resumption"),
        floor("dc09 codec", "floor: DC-09 codec, event decoded and ACK encoded", "events/s",
              "AES-128, CRC, timestamp parse and format (wire/dc09.py)"),
    ]
