"""The hostile-input suite's kit (issue 12): a real reference centre, run on an event loop of
its own in a background thread so that plain sockets, http.client and Hypothesis can throw
input at it synchronously, with one provisioned button and its genuine messages to mutate. The
button's case has a host with credentials of its own (token, DC-09 account and key), and a
second case, OTHER, another host and button: a stranger that holds genuine credentials.

The conftest's `live` runs on SQLite files; a module that imports `live_on_both_backends`
(with the fixtures of tests/backends.py and tests/pg.py) gets a `live` on each backend in turn."""
from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.wire import dc09
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind
from msa.wire.api import body

from backends import State
from staff import session_headers

T = TypeVar("T")
KEY = bytes(range(32))
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0A0B0C0D
OTHER_BID = 0x0E0F1011  # another case's button, with its host
OTHER_KEY = bytes(range(1, 33))
HOST_PHONE = "+32470000001"  # the registered number of case C-H's host


def _operator_session(work: Any) -> dict[str, str]:
    return session_headers(work, "observer")


def frame(kind: hp.Kind, seq: int, boot: int = 1) -> bytes:
    return hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID,
                                           boot_id=boot, seq=seq, gesture=hp.Gesture.HOLD,
                                           battery_pct=70, age_ms=100))


def key(seq: int, boot: int = 1) -> str:
    return Message.event_key(BID, boot, seq)


def fix(t: float | None = None, lat: float = 51.05) -> Fix:
    return Fix(lat, 3.72, 8.0, time.time() if t is None else t, FixQuality.GNSS, "nmea")


def alarm(seq: int) -> Message:
    return Message(key=key(seq), kind=MessageKind.ALARM, button_id=BID,
                   frame=frame(hp.Kind.ALARM, seq), created_at=time.time(), fix=fix(),
                   incident=key(seq))


def update(seq: int, n: int, lat: float = 51.05) -> Message:
    return Message(key=f"{key(seq)}/{n}", kind=MessageKind.LOCATION, button_id=BID,
                   frame=frame(hp.Kind.ALARM, seq), created_at=time.time(), fix=fix(lat=lat),
                   update_no=n, incident=key(seq))


class Live:
    """A started centre on its own loop thread; every call into it runs on that loop."""

    def __init__(self, root: Path, database: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.root = root
        self.database = database  # None: the SQLite files in root
        self.running: RunningCentre = self.call(start_centre(CentreConfig(
            state_dir=root, dc09_port=0, database=database)))
        reg = self.running.centre.registry
        self.do(lambda: reg.put_case(Case("C-H", "V. Victim", host_phone=HOST_PHONE)))
        self.do(lambda: reg.register(BID, CENTRE_KEY, "C-H"))
        self.do(lambda: reg.put_case(Case("C-O", "O. Other", host_phone="+32470000002")))
        self.do(lambda: reg.register(OTHER_BID, OTHER_KEY, "C-O"))
        issued = self.do(lambda: self.running.issue_host("C-H"))
        self.token, self.dc09_key = issued.token, issued.dc09_key
        self.account = issued.host.dc09_account
        other = self.do(lambda: self.running.issue_host("C-O"))
        self.other_token, self.other_key = other.token, other.dc09_key
        self.other_account = other.host.dc09_account
        self.ssl = ssl.create_default_context(cafile=str(self.running.tls.ca_cert))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()
        return self.call(run())

    def close(self) -> None:
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # --- what the centre holds ---
    def incidents(self) -> list[dict[str, Any]]:
        return self.do(lambda: self.running.centre.incidents(include_resolved=True))

    def keys(self) -> set[str]:
        db = self.running.centre._db
        return self.do(lambda: {str(k) for (k,) in db.rows("SELECT key FROM messages")})

    def operator_headers(self) -> dict[str, str]:
        """The cookie of an operator's session (made once, through the centre's own
        accounts, on the centre's loop): the page is behind a login."""
        if not getattr(self, "_operator", None):
            self._operator = self.do(lambda: _operator_session(self.running.work))
        return dict(self._operator)

    def state_json(self) -> Any:
        """The operator page's state, parsed as a browser does (strict JSON)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.running.operator_port, timeout=30)
        conn.request("GET", "/api/state", headers=self.operator_headers())
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        assert resp.status == 200
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the state JSON"))

    # --- the ways in ---
    def post(self, path: str, payload: bytes | str | dict[str, Any],
             headers: dict[str, str] | None = None, auth: bool = True) -> tuple[int, str]:
        data = (json.dumps(payload) if isinstance(payload, dict) else payload)
        raw = data.encode() if isinstance(data, str) else data
        conn = http.client.HTTPSConnection("127.0.0.1", self.running.api_port,
                                           context=self.ssl, timeout=30)
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        conn.request("POST", "/v1" + path, body=raw, headers=h)
        resp = conn.getresponse()
        out = resp.status, resp.read().decode(errors="replace")
        conn.close()
        return out

    def send(self, m: Message) -> tuple[int, str]:
        if m.kind is MessageKind.LOCATION:
            return self.post(f"/alarms/{m.incident}/locations", body(m))
        if m.kind in (MessageKind.ALARM, MessageKind.TEST):
            return self.post("/alarms", body(m))
        return self.post("/events", body(m))

    def dc09_tcp(self, raw: bytes, sock: socket.socket | None = None) -> bytes:
        own = sock is None
        s = sock or socket.create_connection(("127.0.0.1", self.dc09_port), timeout=20)
        try:
            s.sendall(raw)
            got = b""
            while not got.endswith(b"\r"):
                chunk = s.recv(4096)
                if not chunk:
                    return got
                got += chunk
            return got
        finally:
            if own:
                s.close()

    @property
    def dc09_port(self) -> int:
        assert self.running.dc09 is not None
        return self.running.dc09.port

    def dc09_event(self, m: Message, seq: int = 1, *, at: float | None = None,
                   account: str | None = None, key: bytes | None = None) -> bytes:
        """The message as this host's DC-09 account sends it (or another account's, key)."""
        event = dc09.event_for(m, seq=seq, at=time.time() if at is None else at,
                               account=account or self.account)
        return dc09.encode(event, key or self.dc09_key)

    def reply(self, raw: bytes, key: bytes | None = None) -> dc09.Dc09Reply:
        got = dc09.decode(raw, lambda _a: key or self.dc09_key)
        assert isinstance(got, dc09.Dc09Reply)
        return got

    def sms(self, sender: str, text: str) -> Any:
        return self.do(lambda: self.running.sms.receive(sender, text))


@pytest.fixture(name="live")
def live_on_both_backends(state: State) -> Iterator[Live]:
    """A Live centre on the state's backend (the `state` fixture: SQLite, then PostgreSQL)."""
    c = Live(state.dir, state.database)
    try:
        yield c
    finally:
        c.close()
