"""The load for the centre-ingest benchmark: a provisioned fleet of buttons, its traffic as a
real stream has it, and a driver that feeds a stream to the centre through the code its
receivers call and checks every verdict and stored row against what was sent.

A "fleet minute" is one heartbeat per button plus alarms, tracking updates, low batteries,
boots, re-sent duplicates and forged tags (MIX), shuffled so that every update comes after its
alarm and every duplicate after its original. Frames are the wire format (wire/protocol.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from msa.centre.core import Centre, Inbound, Verdict
from msa.centre.registry import Case, Registry
from msa.wire.message import Fix, FixQuality, Message, MessageKind
from msa.wire.protocol import ButtonKeys, CentreKey, Gesture, Kind, centre_frame, encode_frame

# Per fleet minute, besides each button's heartbeat: shares of the fleet (at least one each).
MIX = {"alarm": 0.01, "location": 0.04, "low_battery": 0.005, "boot": 0.005,
       "duplicate": 0.03, "bad": 0.01}
EXPECTED = {"duplicate": Verdict.DUPLICATE, "bad": Verdict.REJECTED}  # the rest: ACCEPTED
_KINDS = {MessageKind.HEARTBEAT: Kind.HEARTBEAT, MessageKind.ALARM: Kind.ALARM,
          MessageKind.LOW_BATTERY: Kind.LOW_BATTERY, MessageKind.BOOT: Kind.BOOT}


@dataclass(frozen=True)
class Item:
    """One message of a stream and what it is (a MIX name or "heartbeat")."""

    category: str
    message: Inbound


class Fleet:
    """Provisioned buttons: ids, keys, and each one's next sequence number (boot 1)."""

    def __init__(self, registry: Path | str, keys: dict[int, tuple[ButtonKeys, CentreKey]]
                 ) -> None:
        self.registry = registry
        self.keys = keys
        self.ids = sorted(keys)
        self._seq = dict.fromkeys(keys, 0)

    def message(self, button_id: int, kind: MessageKind, now: float,
                fix: Fix | None = None) -> Inbound:
        seq = self._seq[button_id] = self._seq[button_id] + 1
        frame = centre_frame(encode_frame(
            *self.keys[button_id], kind=_KINDS[kind], button_id=button_id, boot_id=1, seq=seq,
            age_ms=40, gesture=Gesture.HOLD if kind is MessageKind.ALARM else Gesture.NONE,
            battery_pct=9 if kind is MessageKind.LOW_BATTERY else 80))
        key = Message.event_key(button_id, 1, seq)
        return Inbound("https", key, kind, button_id, frame, fix=fix, received_at=now,
                       incident=key if kind is MessageKind.ALARM else "",
                       pressed_at=now - 2.0 if kind is MessageKind.ALARM else None)

    def forged(self, button_id: int, now: float) -> Inbound:
        """A heartbeat whose tag has one bit flipped (line damage or a forger)."""
        m = self.message(button_id, MessageKind.HEARTBEAT, now)
        return replace(m, frame=m.frame[:-1] + bytes([m.frame[-1] ^ 1]))


def build_fleet(folder: Path, size: int, rng: random.Random,
                database: str | None = None) -> Fleet:
    """A registry with `size` cases, one button each, provisioned in one transaction: in
    `folder`'s registry.db, or in the (migrated) PostgreSQL `database`."""
    folder.mkdir(parents=True, exist_ok=True)
    where: Path | str = folder / "registry.db" if database is None else database
    registry = Registry(where)
    keys: dict[int, tuple[ButtonKeys, CentreKey]] = {}
    with registry.transaction():
        for button_id in rng.sample(range(1, 2 ** 32), size):
            master, centre_master = rng.randbytes(32), rng.randbytes(32)
            case = f"C-{button_id:08x}"
            registry.put_case(Case(case, "V. Victim", "+32470000000", "S. Suspect",
                                   measures=("restraining order, 500 m",)))
            registry.register(button_id, centre_master, case)
            keys[button_id] = (ButtonKeys.from_master(master),
                               CentreKey.from_master(centre_master))
    registry.close()
    return Fleet(where, keys)


def fix(rng: random.Random, now: float) -> Fix:
    return Fix(lat=51.05 + rng.uniform(-0.1, 0.1), lon=3.72 + rng.uniform(-0.1, 0.1),
               accuracy_m=rng.uniform(3.0, 30.0), time=now - 1.0, quality=FixQuality.GNSS,
               source="nmea")


def fleet_minute(fleet: Fleet, rng: random.Random, now: float,
                 buttons: Sequence[int] = ()) -> list[Item]:
    """One minute of traffic from the fleet (or some of its `buttons`), see MIX, shuffled."""
    ids = list(buttons or fleet.ids)

    def share(name: str) -> int:
        return max(1, round(len(ids) * MIX[name]))

    timed = [(rng.random(), Item("heartbeat", fleet.message(b, MessageKind.HEARTBEAT, now)))
             for b in ids]
    alarms = [(rng.random(), fleet.message(b, MessageKind.ALARM, now, fix(rng, now)))
              for b in rng.sample(ids, share("alarm"))]
    timed += [(t, Item("alarm", m)) for t, m in alarms]
    for kind in (MessageKind.LOW_BATTERY, MessageKind.BOOT):
        timed += [(rng.random(), Item(kind.value, fleet.message(b, kind, now)))
                  for b in rng.sample(ids, share(kind.value))]
    updates: dict[str, int] = {}
    for _ in range(share("location")):
        t, alarm = rng.choice(alarms)
        u = updates[alarm.key] = updates.get(alarm.key, 0) + 1
        timed.append((rng.uniform(t, 1.0), Item("location", replace(
            alarm, key=f"{alarm.key}/{u}", kind=MessageKind.LOCATION, fix=fix(rng, now),
            update_no=u, pressed_at=None))))
    originals = list(timed)
    for _ in range(share("duplicate")):
        t, item = rng.choice(originals)
        timed.append((rng.uniform(t, 1.0), Item("duplicate", item.message)))
    timed += [(rng.random(), Item("bad", fleet.forged(b, now)))
              for b in rng.choices(ids, k=share("bad"))]
    timed.sort(key=lambda pair: pair[0])  # stable: an original stays before its equal-time copy
    return [item for _, item in timed]


@dataclass
class Tally:
    """What a stream did: verdicts as the stream expects them, per-frame latency by category."""

    sent: int = 0
    seconds: float = 0.0
    stored: int = 0  # rows the centre's records gained
    verdicts: dict[Verdict, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)  # keys with a verdict the stream did not expect
    latency: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def drive(centre: Centre, items: Sequence[Item], in_flight: int = 0) -> Tally:
    """Feeds a stream to the centre as its receivers do: `in_flight` senders at once through
    Centre.submit (what the HTTPS and DC-09 receivers call; messages staged in one turn of the
    loop share a commit), or with 0 one at a time through Centre.ingest (the SMS inbox)."""
    clock = time.perf_counter
    before = centre.count()
    verdicts: list[Verdict] = [Verdict.REJECTED] * len(items)
    times = [0.0] * len(items)

    async def sender(todo: Iterator[int]) -> None:
        for i in todo:
            t0 = clock()
            verdicts[i] = (await centre.submit(items[i].message)).verdict
            times[i] = clock() - t0

    start = clock()
    if in_flight:
        async def senders() -> None:
            todo = iter(range(len(items)))
            await asyncio.gather(*(sender(todo) for _ in range(in_flight)))
        asyncio.run(senders())
    else:
        for i, item in enumerate(items):
            t0 = clock()
            verdicts[i] = centre.ingest(item.message).verdict
            times[i] = clock() - t0
    tally = Tally(sent=len(items), seconds=clock() - start, stored=centre.count() - before)
    for item, verdict, took in zip(items, verdicts, times):
        tally.verdicts[verdict] = tally.verdicts.get(verdict, 0) + 1
        tally.latency.setdefault(item.category, []).append(took)
        if verdict is not EXPECTED.get(item.category, Verdict.ACCEPTED):
            tally.wrong.append(f"{item.category} {item.message.key}: {verdict.value}")
    if tally.wrong or tally.stored != tally.verdicts.get(Verdict.ACCEPTED, 0):
        raise RuntimeError(f"the centre miscounted: {tally.stored} rows stored for "
                           f"{tally.verdicts}; unexpected: {tally.wrong[:5]}")
    return tally


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Rejections are logged (that cost counts) but not printed."""
    logger = logging.getLogger("msa.centre")
    handler, propagate = logging.NullHandler(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
