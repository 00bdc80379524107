"""A host channel with several centre nodes (issue 17, host side): the configuration's `urls`
and `receivers`, and failover within the channel's one deadline against two REAL centres that
share a registry, a TLS CA and the host's credentials (B starts from a copy of A's state).
The two do not share records (that is the PostgreSQL part): where a test needs B to know an
incident A opened, it tells B directly, as the shared database will."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msa.centre.hosts import Issued
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.host import config
from msa.host.dc09_channel import Dc09Channel, Dc09Receivers
from msa.host.dispatch import SEND_BUDGET_S
from msa.host.errors import ChannelError, ConfigError
from msa.host.failover import Failover
from msa.host.https import HttpsChannel, Refused
from msa.host.service import CHANNEL_FACTORIES
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

T = TypeVar("T")
KEYS = hp.ButtonKeys.from_master(secrets.token_bytes(32))
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0A0B0C0D
DEADLINE_S = 2.0  # the configuration's default


def run(body: Callable[[], Awaitable[T]], timeout: float = 90) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), timeout)
    return asyncio.run(main())


@dataclass
class Pair:
    a: RunningCentre
    b: RunningCentre
    issued: Issued  # the host's credentials, valid on both

    def https(self, *nodes: RunningCentre, deadline_s: float = DEADLINE_S) -> HttpsChannel:
        return HttpsChannel(base_urls=[n.api_url for n in nodes], token=self.issued.token,
                            ca_file=str(self.a.tls.ca_cert), deadline_s=deadline_s)

    def dc09(self, receivers: list[tuple[str, int]], transport: str = "tcp") -> Dc09Receivers:
        return Dc09Receivers(receivers=receivers, key=self.issued.dc09_key,
                             account=self.issued.host.dc09_account, receiver="1", line="1",
                             transport=transport, deadline_s=DEADLINE_S)

    async def stop(self) -> None:
        for node in (self.a, self.b):
            await node.stop()


async def two_nodes(root: Path) -> Pair:
    """Centre A with the case, the button and the host's credentials; stopped, its state
    folder copied for B, and both started again (new ports, same CA, registry and token)."""
    a = await start_centre(CentreConfig(state_dir=root / "a", dc09_port=0))
    a.centre.registry.put_case(Case("C-1", "V. Victim", "+32470000001", "S. Suspect"))
    a.centre.registry.register(BID, CENTRE_KEY, "C-1")
    issued = a.issue_host("C-1")
    await a.stop()
    shutil.copytree(root / "a", root / "b")
    a = await start_centre(CentreConfig(state_dir=root / "a", dc09_port=0))
    b = await start_centre(CentreConfig(state_dir=root / "b", dc09_port=0))
    return Pair(a, b, issued)


def alarm(seq: int) -> Message:
    raw = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.ALARM, button_id=BID,
                                          boot_id=1, seq=seq, gesture=hp.Gesture.HOLD,
                                          battery_pct=77, age_ms=300))
    key = Message.event_key(BID, 1, seq)
    return Message(key=key, kind=MessageKind.ALARM, button_id=BID, frame=raw,
                   created_at=time.time(), incident=key)


def update(of: Message, n: int) -> Message:
    """The n-th location update of an alarm's incident, as the host's tracker makes it."""
    return Message(key=f"{of.key}/{n}", kind=MessageKind.LOCATION, button_id=BID,
                   frame=of.frame, created_at=time.time(), update_no=n, incident=of.key,
                   fix=Fix(51.05 + n / 1000, 3.71, 8.0, time.time(), FixQuality.GNSS, "gps"))


def free_port() -> int:
    """A port nobody listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def timed(channel: HttpsChannel | Dc09Receivers, message: Message) -> tuple[str, float]:
    start = time.monotonic()
    receipt = await channel.send(message)
    return receipt.endpoint, time.monotonic() - start


# --- HTTPS against two real nodes -----------------------------------------------------------

def test_both_up_every_alarm_goes_to_the_preferred_node(tmp_path: Path) -> None:
    async def body() -> tuple[list[str], int, int, Pair]:
        p = await two_nodes(tmp_path)
        ch = p.https(p.a, p.b)
        try:
            ends = [(await ch.send(alarm(seq))).endpoint for seq in range(1, 6)]
            return ends, p.a.centre.count(), p.b.centre.count(), p
        finally:
            await ch.close()
            await p.stop()
    ends, on_a, on_b, p = run(body)
    assert ends == [p.a.api_url] * 5 and (on_a, on_b) == (5, 0)


@pytest.mark.parametrize("fault", ["stop_api", "hang_api"])
def test_a_node_lost_mid_stream_every_message_is_acked_by_the_other(
        tmp_path: Path, fault: str) -> None:
    """A's API refuses connections (stopped), or accepts and never answers (hung), after the
    fifth alarm: each later alarm is acknowledged by B inside the one deadline."""
    async def body() -> tuple[list[tuple[str, float]], int, int, Pair, tuple[str, ...]]:
        p = await two_nodes(tmp_path)
        ch = p.https(p.a, p.b)
        try:
            acks = [await timed(ch, alarm(seq)) for seq in range(1, 6)]
            await getattr(p.a, fault)()
            acks += [await timed(ch, alarm(seq)) for seq in range(6, 26)]
            return acks, p.a.centre.count(), p.b.centre.count(), p, ch.base_urls
        finally:
            await ch.close()
            await p.stop()
    acks, on_a, on_b, p, order = run(body)
    after = [took for _, took in acks[5:]]
    print(f"\n{fault}: per message after the fault: median {statistics.median(after):.3f} s,"
          f" max {max(after):.3f} s, first {after[0]:.3f} s (deadline {DEADLINE_S} s)")
    assert [end for end, _ in acks] == [p.a.api_url] * 5 + [p.b.api_url] * 20
    assert (on_a, on_b) == (5, 20)
    assert max(after) < DEADLINE_S
    assert order == (p.b.api_url, p.a.api_url)  # sticky: B first now, A kept to try later
    if fault == "hang_api":
        # The first alarm after the hang waited its stagger on A before B was tried beside
        # it; the later ones go to B first and do not wait at all.
        assert after[0] >= DEADLINE_S / 2 * 0.9 and statistics.median(after[1:]) < 0.5


def test_a_dead_node_is_tried_again_when_the_preferred_one_fails(tmp_path: Path) -> None:
    """A goes down: B answers and goes first. Then B goes down too: A is still in the list and
    is tried again (here it fails too, and the error names both)."""
    async def body() -> tuple[str, tuple[str, ...], ChannelError, Pair]:
        p = await two_nodes(tmp_path)
        ch = p.https(p.a, p.b)
        try:
            await p.a.stop_api()
            answered = (await ch.send(alarm(1))).endpoint
            order = ch.base_urls
            await p.b.stop_api()
            with pytest.raises(ChannelError) as err:
                await ch.send(alarm(2))
            return answered, order, err.value, p
        finally:
            await ch.close()
            await p.stop()
    answered, order, err, p = run(body)
    assert answered == p.b.api_url and order == (p.b.api_url, p.a.api_url)
    assert err.retryable and "every address failed" in str(err)
    assert f"{p.b.api_url}: " in str(err) and f"{p.a.api_url}: " in str(err)


def test_location_updates_after_failover_reach_b_by_the_incident_key(tmp_path: Path) -> None:
    """B opened another incident first, so the alarm is INC-000001 on A and INC-000002 on B:
    addressed to B by A's reference, the update would land on the wrong incident (B refuses
    it: the body names another)."""
    async def body() -> tuple[list[Any], list[dict[str, object]], Pair]:
        p = await two_nodes(tmp_path)
        ch = p.https(p.a, p.b)
        direct_b = p.https(p.b)  # stands in for the shared records: B learns of the alarm
        try:
            await direct_b.send(alarm(1))  # B's INC-000001: an incident A never saw
            first = alarm(2)
            on_a = await ch.send(first)
            on_b = await direct_b.send(first)
            moved = await ch.send(update(first, 1))
            await p.a.stop_api()
            after = [await ch.send(update(first, n)) for n in (2, 3)]
            got = [on_a.reference, on_b.reference, moved.endpoint, moved.reference,
                   [(r.endpoint, r.reference) for r in after]]
            return got, p.b.centre.incidents(), p
        finally:
            await ch.close()
            await direct_b.close()
            await p.stop()
    got, incidents, p = run(body)
    assert got[:4] == ["INC-000001", "INC-000002", p.a.api_url, "INC-000001"]
    assert got[4] == [(p.b.api_url, "INC-000002")] * 2
    track = next(i["track"] for i in incidents if i["incident"] == "INC-000002")
    assert [round(float(f["lat"]), 3) for f in track] == [51.052, 51.053]  # type: ignore


def test_a_final_refusal_from_a_node_is_final(tmp_path: Path) -> None:
    """A no longer takes the host's token (401); B still would, but a refusal is an answer
    about the message, not a failure of the node, so B is not tried to make it count."""
    async def body() -> tuple[ChannelError, int, int]:
        p = await two_nodes(tmp_path)
        assert p.a.hosts.revoke(p.issued.host.name)
        ch = p.https(p.a, p.b)
        try:
            with pytest.raises(ChannelError) as err:
                await ch.send(alarm(1))
            return err.value, p.a.centre.count(), p.b.centre.count()
        finally:
            await ch.close()
            await p.stop()
    err, on_a, on_b = run(body)
    assert isinstance(err, Refused) and err.status == 401 and not err.retryable
    assert (on_a, on_b) == (0, 0)


def test_nobody_answering_is_retryable_and_within_the_deadline(tmp_path: Path) -> None:
    async def body() -> tuple[ChannelError, float]:
        holds: list[asyncio.StreamWriter] = []

        async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            holds.append(w)
        servers = [await asyncio.start_server(hold, "127.0.0.1", 0) for _ in range(2)]
        urls = [f"https://127.0.0.1:{s.sockets[0].getsockname()[1]}/v1" for s in servers]
        ch = HttpsChannel(base_urls=urls, token="t0ken-of-the-test", deadline_s=1.0)
        start = time.monotonic()
        try:
            with pytest.raises(ChannelError) as err:
                await ch.send(alarm(1))
            return err.value, time.monotonic() - start
        finally:
            await ch.close()
            for s in servers:
                s.close()
            for w in holds:
                w.close()
    err, took = run(body)
    assert err.retryable and "no answer within 1 s" in str(err) and 0.9 < took < 1.5


# --- DC-09 against two real receivers -------------------------------------------------------

@pytest.mark.parametrize("first, transport", [("not listening", "tcp"),
                                              ("not listening", "udp"),
                                              ("hung", "tcp")])
def test_dc09_first_receiver_down_the_second_acks_within_the_deadline(
        tmp_path: Path, first: str, transport: str) -> None:
    async def body() -> tuple[list[tuple[str, float]], int, int, str]:
        p = await two_nodes(tmp_path)
        assert p.b.dc09 is not None
        holds: list[asyncio.StreamWriter] = []

        async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            holds.append(w)
        hung = await asyncio.start_server(hold, "127.0.0.1", 0)
        dead = (hung.sockets[0].getsockname()[1] if first == "hung" else free_port())
        second = f"127.0.0.1:{p.b.dc09.port}"
        ch = p.dc09([("127.0.0.1", dead), ("127.0.0.1", p.b.dc09.port)], transport)
        try:
            acks = [await timed(ch, alarm(seq)) for seq in range(1, 6)]
            return acks, p.a.centre.count(), p.b.centre.count(), second
        finally:
            await ch.close()
            hung.close()
            for w in holds:
                w.close()
            await p.stop()
    acks, on_a, on_b, second = run(body)
    took = [t for _, t in acks]
    print(f"\ndc09 {transport}, first {first}: median {statistics.median(took):.3f} s,"
          f" max {max(took):.3f} s")
    assert [end for end, _ in acks] == [second] * 5 and (on_a, on_b) == (0, 5)
    assert max(took) < DEADLINE_S


def test_dc09_both_receivers_up_the_first_takes_it(tmp_path: Path) -> None:
    async def body() -> tuple[list[str], int, int, str]:
        p = await two_nodes(tmp_path)
        assert p.a.dc09 is not None and p.b.dc09 is not None
        ch = p.dc09([("127.0.0.1", p.a.dc09.port), ("127.0.0.1", p.b.dc09.port)])
        try:
            ends = [(await ch.send(alarm(seq))).endpoint for seq in range(1, 4)]
            return ends, p.a.centre.count(), p.b.centre.count(), f"127.0.0.1:{p.a.dc09.port}"
        finally:
            await ch.close()
            await p.stop()
    ends, on_a, on_b, first = run(body)
    assert ends == [first] * 3 and (on_a, on_b) == (3, 0)


# --- the order of the addresses -------------------------------------------------------------

def test_the_order_is_sticky_and_keeps_every_address() -> None:
    async def body() -> list[tuple[str, ...]]:
        f = Failover("x", ["a", "b", "c"], 0.3)
        seen = []

        def answering(who: set[str]) -> Callable[[str], Awaitable[str]]:
            async def attempt(e: str) -> str:
                if e not in who:
                    raise ChannelError("x", f"{e} down")
                return e
            return attempt
        for up in ({"b"}, {"b", "a"}, {"c"}, {"a", "b", "c"}):
            await f.first(answering(up), final=lambda _e: False)
            seen.append(f.order)
        return seen
    assert run(body) == [("b", "c", "a"),   # b answered: first; a failed: last
                         ("b", "c", "a"),   # b answered at once: nothing else was tried
                         ("c", "a", "b"),   # b failed, c answered: a was not tried
                         ("c", "a", "b")]


# --- the configuration ----------------------------------------------------------------------

BASE: dict[str, Any] = {
    "host": {"state_dir": "state"},
    "button": [{"id": "0x0a0b0c0d", "address": "C0:00:00:00:00:01", "key_file": "b.key"}],
    "location": {"source": "fixed", "lat": 51.0, "lon": 3.7},
}
HTTPS = {"type": "https", "token_file": "t"}
DC09 = {"type": "dc09"}
U1, U2 = "https://n1.example:8443/v1", "https://n2.example:8443/v1"


def parse(tmp_path: Path, channel: dict[str, Any]) -> dict[str, Any]:
    for name, content in (("b.key", "11" * 32), ("t", "t0ken")):
        (tmp_path / name).write_text(content)
        os.chmod(tmp_path / name, 0o600)
    return config.parse({**BASE, "channel": [channel]}, "host.toml", tmp_path).channels[0]


@pytest.mark.parametrize("channel, urls", [
    ({**HTTPS, "url": U1}, (U1,)),
    ({**HTTPS, "url": U1 + "/"}, (U1,)),
    ({**HTTPS, "urls": [U1]}, (U1,)),
    ({**HTTPS, "urls": [U2, U1, U1.replace("n1", "n3"), U1.replace("n1", "n4")]},
     (U2, U1, U1.replace("n1", "n3"), U1.replace("n1", "n4"))),
])
def test_https_url_or_urls(tmp_path: Path, channel: dict[str, Any],
                           urls: tuple[str, ...]) -> None:
    c = parse(tmp_path, channel)
    assert c["urls"] == urls and c["url"] == urls[0]
    built = CHANNEL_FACTORIES["https"](c)
    assert isinstance(built, HttpsChannel) and built.base_urls == urls


@pytest.mark.parametrize("channel, receivers, kind", [
    ({**DC09, "host": "arc.example", "port": 5000}, (("arc.example", 5000),), Dc09Channel),
    ({**DC09, "receivers": ["arc.example:5000"]}, (("arc.example", 5000),), Dc09Channel),
    ({**DC09, "receivers": ["arc1.example:5000", "[2001:db8::1]:5001"]},
     (("arc1.example", 5000), ("2001:db8::1", 5001)), Dc09Receivers),
])
def test_dc09_host_and_port_or_receivers(tmp_path: Path, channel: dict[str, Any],
                                         receivers: tuple[tuple[str, int], ...],
                                         kind: type) -> None:
    c = parse(tmp_path, channel)
    assert c["receivers"] == receivers and (c["host"], c["port"]) == receivers[0]
    assert isinstance(CHANNEL_FACTORIES["dc09"](c), kind)


@pytest.mark.parametrize("channel, key, words", [
    ({**HTTPS}, "url", "missing; expected the dispatch API's https:// base URL (or urls:"),
    ({**HTTPS, "url": U1, "urls": [U2]}, "urls", "either url or urls, not both"),
    ({**HTTPS, "urls": []}, "urls", "1 to 4 entries, got 0"),
    ({**HTTPS, "urls": [U1.replace("n1", f"n{i}") for i in range(5)]}, "urls",
     "1 to 4 entries, got 5"),
    ({**HTTPS, "urls": [U1, "http://n2.example/v1"]}, "urls", "a list of 1 to 4 https://"),
    ({**HTTPS, "urls": [U1, 7]}, "urls", "a list of 1 to 4 https://"),
    ({**HTTPS, "urls": U1}, "urls", "a list of 1 to 4 https://"),
    ({**HTTPS, "urls": [U1, U2, U1 + "/"]}, "urls", "is listed twice"),
    ({**HTTPS, "url": "https://bad host/v1"}, "url", "https:// base URL"),
    ({**DC09}, "host", "missing; expected the receiver's host name or address (or receivers:"),
    ({**DC09, "host": "arc.example"}, "port", "missing; expected a port"),
    ({**DC09, "port": 5000}, "host", "missing; expected the receiver's host name"),
    ({**DC09, "host": "arc.example", "port": 5000, "receivers": ["arc2.example:5000"]},
     "receivers", "either host or receivers, not both"),
    ({**DC09, "port": 5000, "receivers": ["arc2.example:5000"]}, "receivers", "not both"),
    ({**DC09, "receivers": []}, "receivers", "1 to 4 entries, got 0"),
    ({**DC09, "receivers": [f"arc{i}.example:5000" for i in range(5)]}, "receivers",
     "1 to 4 entries, got 5"),
    ({**DC09, "receivers": ["arc.example"]}, "receivers", '"host:port" strings'),
    ({**DC09, "receivers": ["arc.example:0"]}, "receivers", '"host:port" strings'),
    ({**DC09, "receivers": ["arc.example:65536"]}, "receivers", '"host:port" strings'),
    ({**DC09, "receivers": [":5000"]}, "receivers", '"host:port" strings'),
    ({**DC09, "receivers": ["arc.example:5000", "arc.example:5000"]}, "receivers",
     "arc.example:5000 is listed twice"),
    ({**DC09, "receivers": ["[::1]:5000", "::1:5000"]}, "receivers", "listed twice"),
])
def test_address_mistakes_are_clear_errors(tmp_path: Path, channel: dict[str, Any], key: str,
                                           words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(tmp_path, channel)
    assert err.value.key == f"channel[0].{key}" and words in err.value.expected, str(err.value)


@pytest.mark.parametrize("kw, words", [
    ({"base_urls": []}, "one of the two"),
    ({"base_url": U1, "base_urls": [U2]}, "one of the two"),
    ({"base_urls": [U1, "http://n2.example/v1"]}, "not an https:// URL"),
    ({"base_urls": [U1, U1 + "/"]}, "listed twice"),
    ({"base_urls": [U1.replace("n1", f"n{i}") for i in range(5)]}, "1 to 4 addresses"),
])
def test_the_channel_itself_refuses_bad_address_lists(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ChannelError) as err:
        HttpsChannel(token="t0ken", **kw)
    assert not err.value.retryable and words in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["answers", "fails", "fails for good", "refuses"]),
                min_size=1, max_size=4), st.permutations(range(4)))
def test_the_first_good_answer_wins_and_no_address_is_lost(outcomes: list[str],
                                                           shuffle: list[int]) -> None:
    """Outcomes that come at once: the next address starts at once after each failure, so the
    winner is the first that answers in the order, unless a refusal before it ends it all."""
    names = [f"n{i}" for i in shuffle if i < len(outcomes)]
    outcome = dict(zip(names, outcomes))

    async def attempt(e: str) -> str:
        if outcome[e] == "answers":
            return e
        raise ChannelError("x", outcome[e], retryable=outcome[e] == "fails")

    async def body() -> tuple[str | ChannelError, tuple[str, ...]]:
        f = Failover("x", names, 5.0)
        try:
            return (await f.first(attempt, final=lambda e: e.detail == "refuses"))[0], f.order
        except ChannelError as exc:
            return exc, f.order
    got, order = run(body)
    first = next((n for n in names if outcome[n] in ("answers", "refuses")), None)
    tried = names[:names.index(first) + 1] if first else names
    assert sorted(order) == sorted(names)  # nobody dropped
    if first is None:
        assert isinstance(got, ChannelError)
        if len(names) > 1:
            assert got.retryable == ("fails" in outcomes)
        assert order == tuple(names)
        return
    # A refusal is an answer too (the node is alive): it ends it all, nobody after it tried.
    assert got == first if outcome[first] == "answers" else (
        isinstance(got, ChannelError) and got.detail == "refuses")
    assert order == (first, *[n for n in names if n not in tried], *tried[:-1])


@pytest.mark.parametrize("budget_s", [None, 0.4])
def test_the_stagger_fits_the_time_the_dispatcher_gives(budget_s: float | None) -> None:
    """Before the SMS fallback is due the dispatcher may give a send less than the channel's
    deadline (SEND_BUDGET_S, set as the dispatcher sets it): the second node must still be
    tried, and answer, within that time."""
    async def body() -> tuple[str, float]:
        failover = Failover("https", ["https://a", "https://b"], deadline_s=2.0)

        async def attempt(endpoint: str) -> str:
            if endpoint == "https://a":
                await asyncio.Event().wait()  # hung: accepts, never answers
            return "ack"
        token = SEND_BUDGET_S.set(budget_s)
        started = time.monotonic()
        try:
            winner, _ = await asyncio.wait_for(failover.first(attempt, lambda _e: False),
                                               budget_s or 2.0)
        finally:
            SEND_BUDGET_S.reset(token)
        return winner, time.monotonic() - started
    winner, took = asyncio.run(body())
    assert winner == "https://b"
    assert took < (budget_s or 2.0)  # the stagger is half the time given, not of 2 s

