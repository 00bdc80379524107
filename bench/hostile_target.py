"""The hostile benchmark's target: a reference centre on an event loop of its own (a thread),
with one case, its host's own credentials and one provisioned button, reached through its real
listeners (HTTPS, DC-09 TCP and UDP) and its SMS inbox, with the button's genuine messages to
mutate."""
from __future__ import annotations

import asyncio
import http.client
import json
import socket
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from msa.centre.authweb import COOKIE, Workplace
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, RunningCentre, start_centre
from msa.wire import dc09
from msa.wire import protocol as hp
from msa.wire.message import Fix, FixQuality, Message, MessageKind

T = TypeVar("T")
BID = 0x0B0E0C01
HOST_PHONE = "+32470000042"


def _operator_session(work: Workplace) -> dict[str, str]:
    """An operator's session cookie (the operator page is behind a login)."""
    password = secrets.token_urlsafe(16)
    work.accounts.add("bench-observer", "operator", password)
    account = work.accounts.get("bench-observer")
    assert account is not None
    token, _session = work.sessions.open(account, "bench")
    return {"Cookie": f"{COOKIE}={token}"}


class Target:
    """A reference centre on a loop of its own (a thread), with one case, its host's
    credentials and one button, reached through its real listeners."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running: RunningCentre = self.call(start_centre(CentreConfig(root, dc09_port=0)))
        self.keys = hp.ButtonKeys.from_master(bytes(range(32)))
        centre_key = bytes(range(32, 64))
        self.centre_key = hp.CentreKey.from_master(centre_key)
        registry = self.running.centre.registry
        self.do(lambda: registry.put_case(Case("BENCH-H", "(bench)", host_phone=HOST_PHONE)))
        self.do(lambda: registry.register(BID, centre_key, "BENCH-H"))
        issued = self.do(lambda: self.running.issue_host("BENCH-H"))
        self.token, self.aes = issued.token, issued.dc09_key
        self.account = issued.host.dc09_account
        self.ssl = ssl.create_default_context(cafile=str(self.running.tls.ca_cert))
        self._https: http.client.HTTPSConnection | None = None
        self._tcp: socket.socket | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()
        return self.call(run())

    def close(self) -> None:
        for conn in (self._https, self._tcp):
            if conn is not None:
                conn.close()
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # --- genuine messages ---
    def frame(self, kind: hp.Kind, seq: int) -> bytes:
        return hp.centre_frame(hp.encode_frame(self.keys, self.centre_key, kind=kind,
                                               button_id=BID, boot_id=1, seq=seq,
                                               gesture=hp.Gesture.HOLD, battery_pct=70,
                                               age_ms=100))

    def alarm(self, seq: int) -> Message:
        key = Message.event_key(BID, 1, seq)
        return Message(key, MessageKind.ALARM, BID, self.frame(hp.Kind.ALARM, seq), time.time(),
                       fix=fix(), incident=key)

    def update(self, seq: int, n: int) -> Message:
        key = Message.event_key(BID, 1, seq)
        return Message(f"{key}/{n}", MessageKind.LOCATION, BID,
                       self.frame(hp.Kind.ALARM, seq), time.time(), fix=fix(),
                       update_no=n,
                       incident=key)

    def dc09_event(self, m: Message, plain: bool = False) -> bytes:
        event = dc09.event_for(m, seq=1, at=time.time(), account=self.account)
        return dc09.encode(event, None if plain else self.aes)

    # --- what it holds ---
    def stored(self) -> set[str]:
        """The keys of the messages the centre holds (a track point comes with its key)."""
        db = self.running.centre._db
        return self.do(lambda: {str(k) for (k,) in db.rows("SELECT key FROM messages")})

    def operator_headers(self) -> dict[str, str]:
        """The cookie of an operator's session (made once, through the centre's own
        accounts, on the centre's loop): the page is behind a login."""
        if not getattr(self, "_operator", None):
            self._operator = self.do(lambda: _operator_session(self.running.work))
        return dict(self._operator)

    def state_is_strict_json(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.running.operator_port, timeout=30)
        try:
            conn.request("GET", "/api/state", headers=self.operator_headers())
            text = conn.getresponse().read().decode()
            json.loads(text, parse_constant=_refuse)
            return True
        except (ValueError, OSError):
            return False
        finally:
            conn.close()

    # --- the ways in ---
    def post(self, path: str, data: str | bytes) -> int:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        for _ in range(2):
            if self._https is None:
                self._https = http.client.HTTPSConnection(
                    "127.0.0.1", self.running.api_port, context=self.ssl, timeout=30)
            try:
                self._https.request("POST", "/v1" + path, body=raw, headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json"})
                resp = self._https.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                self._https.close()
                self._https = None
        return 0

    def dc09_tcp(self, raw: bytes) -> bytes:
        for _ in range(2):
            if self._tcp is None:
                assert self.running.dc09 is not None
                self._tcp = socket.create_connection(("127.0.0.1", self.running.dc09.port),
                                                     timeout=15)
            try:
                self._tcp.sendall(raw)
                got = b""
                while not got.endswith(b"\r"):
                    chunk = self._tcp.recv(4096)
                    if not chunk:
                        raise ConnectionResetError("closed")
                    got += chunk
                return got
            except OSError:
                self._tcp.close()
                self._tcp = None
        return b""

    def sms(self, sender: str, text: str) -> Any:
        return self.do(lambda: self.running.sms.receive(sender, text))


def _refuse(constant: str) -> None:
    raise ValueError(constant)


def fix() -> Fix:
    """A fresh position in Ghent, as a host's GPS would give it."""
    return Fix(51.05, 3.72, 8.0, time.time(), FixQuality.GNSS, "nmea")

