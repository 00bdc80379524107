"""Limits against a freeze and no quiet listeners (issue 12, parts 4-6): idle, slow and too
many DC-09 connections are closed, an unreadable datagram gets no answer, a slow-header HTTP
client is cut off, tokens are real secrets in the Bearer scheme, DC-09 runs only when asked
and never plain, and every listener says where it is."""
from __future__ import annotations

import asyncio
import resource
import socket
import time
from pathlib import Path

import pytest
from backends import State, state  # noqa: F401
from hostile_kit import Live, alarm
from hostile_kit import live_on_both_backends  # noqa: F401  (`live`, on both backends)
from pg import pg_database, pg_server  # noqa: F401

import msa.centre.dc09 as centre_dc09
import msa.centre.server as centre_server
from msa.centre.hosts import secret_hash
from msa.centre.server import CentreConfig, raise_open_files, start_centre
from msa.centre.web import MIN_TOKEN_LEN
from msa.wire import dc09
from msa.wire.api import body

pytestmark = pytest.mark.usefixtures("no_tracebacks")


def _closed_by_peer(sock: socket.socket) -> bool:
    """True once the other end closed (EOF or reset) within the socket's timeout."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_idle_and_slow_dc09_connections_are_closed(live: Live,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(centre_dc09, "FIRST_MESSAGE_S", 0.3)
    monkeypatch.setattr(centre_dc09, "READ_S", 0.3)
    idle = socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
    slow.sendall(b"\n1234")  # a message begun, never ended
    assert _closed_by_peer(idle) and _closed_by_peer(slow)  # each well within its 10 s
    idle.close()
    slow.close()


def test_dc09_connections_are_capped_per_peer_and_a_valid_alarm_still_goes(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(centre_dc09, "MAX_PER_PEER", 4)
    held = [socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
            for _ in range(3)]
    alarm_sock = socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
    extra = socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
    assert _closed_by_peer(extra)  # the fifth from one address
    reply = live.reply(live.dc09_tcp(live.dc09_event(alarm(1)), alarm_sock))
    assert reply.token is dc09.Token.ACK
    assert live.running.dc09 is not None and live.running.dc09.refused_connections >= 1
    for s in [*held, alarm_sock, extra]:
        s.close()


def test_dc09_connections_are_capped_in_total(live: Live,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(centre_dc09, "MAX_CONNECTIONS", 3)
    held = [socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
            for _ in range(3)]
    live.do(lambda: None)  # let the loop accept them
    extra = socket.create_connection(("127.0.0.1", live.dc09_port), timeout=10)
    assert _closed_by_peer(extra)
    for s in [*held, extra]:
        s.close()


def test_an_unreadable_datagram_gets_no_answer(live: Live) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(20)
    for garbage in (b"\x00" * 100, b"\nFFFF0010garbage\r", b"GET / HTTP/1.0\r\n\r\n",
                    live.dc09_event(alarm(1))[:-5] + b"\r"):
        sock.sendto(garbage, ("127.0.0.1", live.dc09_port))
    sock.sendto(live.dc09_event(alarm(1), seq=7), ("127.0.0.1", live.dc09_port))
    # The first (and only) answer is the valid event's: nothing came back for the garbage.
    answer, _ = sock.recvfrom(4096)
    reply = live.reply(answer)
    assert (reply.token, reply.seq) == (dc09.Token.ACK, 7)
    sock.close()


def test_slow_header_and_idle_http_clients_are_cut_off(live: Live,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # A centre of its own: the timeout is read when the listener starts.
    monkeypatch.setattr(centre_server, "HEADER_TIMEOUT_S", 0.5)

    async def body() -> None:
        c = await start_centre(CentreConfig(state_dir=live.root.parent / "c2",
                                            database=live.database))
        try:
            slow_r, slow_w = await asyncio.open_connection("127.0.0.1", c.operator_port)
            slow_w.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")  # never ends
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", c.api_port)  # no TLS
            start = time.monotonic()
            for reader in (slow_r, idle_r):
                await asyncio.wait_for(reader.read(), 10)  # TimeoutError: still held open
            assert time.monotonic() - start < 10
            for w in (slow_w, idle_w):
                w.close()
        finally:
            await c.stop()
    asyncio.run(body())


def test_issued_tokens_are_long_and_a_short_or_empty_one_never_authenticates(
        live: Live) -> None:
    assert len(live.token) >= MIN_TOKEN_LEN and live.token != live.other_token
    # Even were a short token's hash in the table (a registry edited by hand), the API
    # refuses it before the lookup.
    db = live.running.hosts._db
    for i, short in enumerate(["", "short", "fifteen chars!!"]):
        live.do(lambda: db.execute(
            "INSERT INTO hosts (name, case_ref, token_sha256, dc09_account, dc09_key,"
            " issued_at) VALUES (?, 'C-H', ?, ?, ?, 0)",
            (f"hand-{i}", secret_hash(short), f"ABC{i}", b"\x00")))
        status, _ = live.post("/alarms", body(alarm(1)),
                              headers={"Authorization": f"Bearer {short}"}, auth=False)
        assert status == 401, short
    assert live.post("/alarms", body(alarm(1)))[0] == 201  # the host's own, issued token


@pytest.mark.parametrize("header", ["{t}", "Basic {t}", "Bearer{t}", "Bearer  {t}",
                                    "Token {t}", "Bearer ", "bearer{t}"])
def test_only_the_bearer_scheme_is_accepted(live: Live, header: str) -> None:
    status, _ = live.post("/alarms", body(alarm(1)),
                          headers={"Authorization": header.format(t=live.token)}, auth=False)
    assert status == 401
    assert live.post("/alarms", body(alarm(1)))[0] == 201  # "Bearer <token>" is


def test_dc09_runs_only_when_asked_and_never_plain(tmp_path: Path, state: State) -> None:
    async def body_() -> None:
        c = await start_centre(CentreConfig(state_dir=tmp_path / "a", database=state.database))
        try:
            assert c.dc09 is None
            assert [line.split(":")[0] for line in c.listeners] == \
                ["dispatch API (HTTPS)", "operator's page (HTTP)"]
        finally:
            await c.stop()
        c = await start_centre(CentreConfig(state_dir=tmp_path / "c", dc09_port=0,
                                            database=state.database))
        try:
            assert c.dc09 is not None and c.listeners[-1].endswith(f":{c.dc09.port}")
        finally:
            await c.stop()
    asyncio.run(body_())


def test_a_plain_dc09_message_is_refused_for_every_account(live: Live) -> None:
    for account in (live.account, dc09.account_for(0x0A0B0C0D), "123456"):
        plain = dc09.encode(dc09.event_for(alarm(1), seq=2, at=time.time(), account=account))
        reply = dc09.decode(live.dc09_tcp(plain))
        assert isinstance(reply, dc09.Dc09Reply) and reply.token is dc09.Token.DUH, account
    assert live.incidents() == []


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 64:
        pytest.skip("no finite hard limit to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard // 2), hard))
    try:
        assert raise_open_files() == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
