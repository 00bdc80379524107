"""Limits against a freeze and no quiet listeners (issue 12, parts 4-6): idle, slow and too
many DC-09 connections are closed, an unreadable datagram gets no answer, a slow-header HTTP
client is cut off, tokens are real secrets in the Bearer scheme, DC-09 runs only when asked
with a key, and every listener says where it is."""
from __future__ import annotations

import asyncio
import resource
import socket
import time
from pathlib import Path

import pytest
from hostile_kit import TOKEN, Live, alarm

import msa.centre.dc09 as centre_dc09
import msa.centre.server as centre_server
from msa.centre.errors import CentreConfigError
from msa.centre.server import CentreConfig, raise_open_files, start_centre
from msa.wire import dc09

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
                                            tokens=(TOKEN,)))
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


@pytest.mark.parametrize("token", ["", "short", " " * 20, "sixteen chars ok", "ü" * 20])
def test_empty_or_short_tokens_refuse_to_start(tmp_path: Path, token: str) -> None:
    with pytest.raises(CentreConfigError):
        asyncio.run(start_centre(CentreConfig(state_dir=tmp_path, tokens=(token,))))


def test_msa_centre_refuses_an_empty_token_file(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from msa.tools.cli import main
    token = tmp_path / "api.token"
    token.write_text("\n")
    token.chmod(0o600)
    with pytest.raises(SystemExit) as exit_:
        main(["centre", "--state-dir", str(tmp_path / "s"), "--token-file", str(token),
              "--listen", "127.0.0.1:0", "--operator-port", "0"])
    assert exit_.value.code != 0
    assert capsys.readouterr().err.startswith(f"msa: {token} does not hold a usable bearer")


@pytest.mark.parametrize("header", [TOKEN, f"Basic {TOKEN}", f"Bearer{TOKEN}",
                                    f"Bearer  {TOKEN}", f"Token {TOKEN}", "Bearer "])
def test_only_the_bearer_scheme_is_accepted(live: Live, header: str) -> None:
    status, _ = live.post("/alarms", {"kind": "alarm"}, headers={"Authorization": header},
                          auth=False)
    assert status == 401


def test_dc09_runs_only_when_asked_and_with_a_key(tmp_path: Path) -> None:
    async def body() -> None:
        c = await start_centre(CentreConfig(state_dir=tmp_path / "a", tokens=(TOKEN,)))
        try:
            assert c.dc09 is None
            assert [line.split(":")[0] for line in c.listeners] == \
                ["dispatch API (HTTPS)", "operator's page (HTTP)"]
        finally:
            await c.stop()
        with pytest.raises(CentreConfigError, match="key"):
            await start_centre(CentreConfig(state_dir=tmp_path / "b", tokens=(TOKEN,),
                                            dc09_port=0))
        c = await start_centre(CentreConfig(state_dir=tmp_path / "c", tokens=(TOKEN,),
                                            dc09_port=0, dc09_key=bytes(16)))
        try:
            assert c.dc09 is not None and c.listeners[-1].endswith(f":{c.dc09.port}")
        finally:
            await c.stop()
    asyncio.run(body())


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 64:
        pytest.skip("no finite hard limit to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard // 2), hard))
    try:
        assert raise_open_files() == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
