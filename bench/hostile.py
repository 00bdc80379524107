"""Hostile input on every receiver (issue 12, part 11): valid messages mutated (bench/
hostile_inputs.py, from a fixed seed) and thrown at a running reference centre - the HTTPS API,
DC-09 over TCP and over UDP, the SMS inbox (MSA1 and AML texts) - and at the host's NMEA
parser. Per receiver: inputs tried, inputs wrongly accepted (anything stored, or a position out
of range, that no genuine message brought), tracebacks (an ERROR or a traceback logged, an
exception out of a receiver, a 5xx), and whether the receiver still serves a genuine message
afterwards. Then the press -> ACK time of an alarm under held connections (hostile_hold.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from msa.host.nmea import NmeaError, NmeaTracker, parse
from msa.wire import aml, dc09
from msa.wire import protocol as hp
from msa.wire.api import body
from msa.wire.message import Message, MessageKind
from msa.wire.msa1 import render_msa1

from . import hostile_hold
from .figures import Better, Figure, Options, median
from .hostile_inputs import (NMEA_LINES, mutate_bytes, mutate_text, nmea_checksummed,
                             random_body_mutation, random_ops, random_text, reframe)
from .hostile_target import BID, HOST_PHONE, Target, fix

SECTION = "hostile"
INPUTS = {"HTTPS": 1000, "DC-09 TCP": 1000, "DC-09 UDP": 1000, "SMS inbox": 2000,
          "AML": 1000, "NMEA": 5000}
PRESSES = 9
TARGET_ACK_MS = 1000.0  # issue 12: a valid alarm under held connections, on this machine


@dataclass
class Tally:
    tried: int = 0
    wrong: int = 0
    tracebacks: int = 0
    serves: bool = False


class _Errors(logging.Handler):
    """Counts what would be a traceback in the centre's log: ERROR and above, or exc_info."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.count += 1


@contextmanager
def _counting(tally: Tally) -> Iterator[None]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        tally.tracebacks += handler.count


def _wrong(target: Target, before: set[str]) -> int:
    """Messages stored since `before` (each input changes a message already counted, so any
    new key is one no genuine message brought)."""
    return len(target.stored() - before)


def _https(t: Target, rng: random.Random, n: int, tally: Tally) -> None:
    genuine = [body(t.alarm(1)), body(t.update(1, 1))]
    paths = ["/alarms", f"/alarms/{Message.event_key(BID, 1, 1)}/locations"]
    before = t.stored()
    for _ in range(n):
        which = rng.randrange(2)
        status = t.post(paths[which], random_body_mutation(rng, genuine[which],
                                                           Message.event_key(BID, 1, 1)))
        tally.tried += 1
        tally.tracebacks += status >= 500 or status == 0
    tally.wrong = _wrong(t, before)
    tally.serves = t.post("/alarms", json.dumps(body(t.alarm(101)))) == 201


def _dc09(t: Target, rng: random.Random, n: int, tally: Tally, udp: bool) -> None:
    before = t.stored()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    assert t.running.dc09 is not None
    address = ("127.0.0.1", t.running.dc09.port)
    for i in range(n):
        # A counted alarm, encrypted, or one never counted, plain (no account is plain), and
        # now and then one of them as it is.
        plain = rng.random() < 0.3
        raw = t.dc09_event(t.alarm(60) if plain else t.alarm(1), plain=plain)
        if rng.random() < 0.9:
            raw = mutate_bytes(raw, random_ops(rng))
        if rng.random() < 0.5:
            raw = reframe(raw)
        tally.tried += 1
        if udp:
            sock.sendto(raw[:4096], address)
            if i % 32 == 31:
                with _silence():
                    while sock.recv(4096):
                        pass
        else:
            t.dc09_tcp(raw[:4000].replace(b"\r", b"") + b"\r")
    tally.wrong = _wrong(t, before)
    genuine = t.dc09_event(t.alarm(102 + udp))
    if udp:
        with _silence():
            while sock.recv(4096):  # what the last mutations got
                pass
        sock.settimeout(10)
        sock.sendto(genuine, address)
        answer = sock.recv(4096)
    else:
        answer = t.dc09_tcp(genuine)
    sock.close()
    reply = dc09.decode(answer, lambda _a: t.aes)
    tally.serves = isinstance(reply, dc09.Dc09Reply) and reply.token is dc09.Token.ACK


@contextmanager
def _silence() -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        pass


def _sms(t: Target, rng: random.Random, n: int, tally: Tally) -> None:
    key = Message.event_key(BID, 1, 1)
    texts = [render_msa1(MessageKind.ALARM, key, t.frame(hp.Kind.ALARM, 1)),
             render_msa1(MessageKind.LOCATION, f"{key}/1", t.frame(hp.Kind.ALARM, 1))]
    # A genuine alarm never counted, from senders that are not its host: a replay by SMS.
    replay = render_msa1(MessageKind.ALARM, Message.event_key(BID, 1, 70),
                         t.frame(hp.Kind.ALARM, 70))
    before = t.stored()
    for _ in range(n):
        if rng.random() < 0.1:
            text, sender = replay, rng.choice(["+32470000043", "", HOST_PHONE + "0",
                                               random_text(rng, 20)])
            text = text if rng.random() < 0.5 else mutate_text(
                text, rng.randrange(200), rng.randrange(9), random_text(rng))
        else:
            text = mutate_text(rng.choice(texts), rng.randrange(200), rng.randrange(9),
                               random_text(rng))
            sender = HOST_PHONE if rng.random() < 0.5 else random_text(rng, 20)
        tally.tried += 1
        try:
            t.sms(sender, text)
        except Exception:  # noqa: BLE001 - a receiver that raises is what is counted
            tally.tracebacks += 1
    tally.wrong = _wrong(t, before)
    got = t.sms(HOST_PHONE, render_msa1(MessageKind.ALARM, Message.event_key(BID, 1, 104),
                                        t.frame(hp.Kind.ALARM, 104)))
    tally.serves = got is not None and got.verdict.value == "accepted"


def _aml(t: Target, rng: random.Random, n: int, tally: Tally) -> None:
    genuine = aml.build(fix(), now=time.time())
    before = t.stored()
    for i in range(n):
        tally.tried += 1
        try:
            t.sms(f"+3249{i:07d}", mutate_text(genuine, rng.randrange(300), rng.randrange(9),
                                               random_text(rng)))
        except Exception:  # noqa: BLE001 - a receiver that raises is what is counted
            tally.tracebacks += 1
    ghosts = t.do(t.running.sms.ghost_calls)
    out_of_range = [g for g in ghosts if g.fix is not None and not (
        math.isfinite(g.fix.accuracy_m) and -90 <= g.fix.lat <= 90
        and -180 <= g.fix.lon <= 180)]
    unknown = [g for g in ghosts if g.case_ref is None]
    tally.wrong = _wrong(t, before) + len(out_of_range) + max(
        0, len(unknown) - t.running.sms.max_ghosts)
    t.sms("+32490000000", genuine)
    fresh = [g for g in t.do(t.running.sms.ghost_calls) if g.sender == "+32490000000"]
    tally.serves = len(fresh) == 1 and fresh[0].fix is not None and \
        abs(fresh[0].fix.lat - 51.05) < 1e-4 and t.state_is_strict_json()


def _nmea(rng: random.Random, n: int, tally: Tally) -> None:
    tracker = NmeaTracker()
    for _ in range(n):
        i = rng.randrange(2)
        mutated = mutate_text(NMEA_LINES[i], rng.randrange(80), rng.randrange(7),
                              random_text(rng))
        tally.tried += 1
        for sentence in (nmea_checksummed(mutated), nmea_checksummed(NMEA_LINES[1 - i])):
            try:
                fix = tracker.feed(parse(sentence))
            except NmeaError:
                continue
            except Exception:  # noqa: BLE001 - the parser must only ever raise NmeaError
                tally.tracebacks += 1
                continue
            if fix is not None and not (math.isfinite(fix.accuracy_m)
                                        and 0 < fix.accuracy_m <= 500
                                        and -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180):
                tally.wrong += 1
    fix = None
    for line in NMEA_LINES:  # the same tracker, after all of it
        fix = tracker.feed(parse(nmea_checksummed(line))) or fix
    tally.serves = fix is not None and abs(fix.lat - 48.1173) < 1e-3


def receivers(root: Path, options: Options) -> dict[str, Tally]:
    rng = random.Random(options.seed + 12)
    tallies = {name: Tally() for name in INPUTS}
    target = Target(root / "centre")
    try:
        seeded = (target.post("/alarms", json.dumps(body(target.alarm(1)))),
                  target.post(f"/alarms/{Message.event_key(BID, 1, 1)}/locations",
                              json.dumps(body(target.update(1, 1)))))
        if seeded != (201, 200):
            raise RuntimeError(f"the centre refused the genuine alarm it was seeded with:"
                               f" {seeded}")
        runs: dict[str, Callable[[Tally], None]] = {
            "HTTPS": lambda t: _https(target, rng, options.count(INPUTS["HTTPS"]), t),
            "DC-09 TCP": lambda t: _dc09(target, rng, options.count(INPUTS["DC-09 TCP"]), t,
                                         udp=False),
            "DC-09 UDP": lambda t: _dc09(target, rng, options.count(INPUTS["DC-09 UDP"]), t,
                                         udp=True),
            "SMS inbox": lambda t: _sms(target, rng, options.count(INPUTS["SMS inbox"]), t),
            "AML": lambda t: _aml(target, rng, options.count(INPUTS["AML"]), t),
            "NMEA": lambda t: _nmea(rng, options.count(INPUTS["NMEA"]), t),
        }
        for name, run_one in runs.items():
            with _counting(tallies[name]):
                run_one(tallies[name])
        still = target.state_is_strict_json()
        for name in INPUTS:
            if name != "NMEA":
                tallies[name].serves = tallies[name].serves and still
    finally:
        target.close()
    return tallies


def run(options: Options) -> list[Figure]:
    tallies = receivers(options.root, options)
    while_held = Tally()
    with _counting(while_held):  # e.g. accept() failing for want of file descriptors
        held = asyncio.run(hostile_hold.measure(
            options.root / "held", options.count(PRESSES), options.count(hostile_hold.IDLE),
            options.count(hostile_hold.SLOW)))
    out: list[Figure] = []
    for name, t in tallies.items():
        where = "the host's GPS reader" if name == "NMEA" else "the centre"
        out += [
            Figure(SECTION, f"{name}: inputs tried", t.tried, "inputs",
                   note="valid messages mutated, fixed seed"),
            Figure(SECTION, f"{name}: wrongly accepted", t.wrong, "inputs", 0.0, Better.LOWER,
                   note="stored, or a position out of range, that no genuine message brought"),
            Figure(SECTION, f"{name}: tracebacks", t.tracebacks, "", 0.0, Better.LOWER,
                   note="ERROR or traceback logged, exception out of the receiver, or a 5xx"),
            Figure(SECTION, f"{name}: still serves (1 = yes)", float(t.serves), "", 1.0,
                   Better.HIGHER, note=f"a genuine message afterwards, through {where}"),
        ]
    conditions = (f"{held.idle:,} idle connections and {held.slow} slow-header clients held"
                  f" ({held.reopened:,} re-opened after the centre closed them)")
    out += [
        Figure(SECTION, "press -> centre ACK under held connections, median",
               median(held.ack_ms), "ms", note=f"{len(held.ack_ms)} presses over HTTPS;"
               f" {conditions}"),
        Figure(SECTION, "press -> centre ACK under held connections, max", max(held.ack_ms),
               "ms", TARGET_ACK_MS, Better.LOWER, note="from the gesture threshold; the"
               " simulation models no air time"),
        Figure(SECTION, "tracebacks while held", while_held.tracebacks, "", 0.0, Better.LOWER,
               note="ERROR or traceback logged by the chain and the centre meanwhile"),
        Figure(SECTION, "open-file limit of the centre", float(held.limit_after), "files",
               note=f"lowered to {held.limit_before:,} before the start; start_centre raises"
                    " the soft limit to the hard one"),
    ]
    return out
