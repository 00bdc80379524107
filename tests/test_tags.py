"""Perpetrator tags at the centre (issue 14, part 1): OsmAnd and JSON ingestion over real HTTPS
against a started centre, every field checked (400 and nothing stored), each tag's own secret
(401 and nothing stored for any other, a retired one's included), supervision of battery, tamper
and silence in the operator's warnings, and the CLI that issues, shows and retires tags."""
from __future__ import annotations

import asyncio
import calendar
import http.client
import json
import os
import ssl
import stat
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest
from backends import BACKENDS, State, fresh_state, make_state, state  # noqa: F401
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pg import pg_database, pg_server  # noqa: F401

from msa.centre.registry import Case
from msa.centre.server import RunningCentre, start_centre
from msa.centre.tags import SILENCE_GRACE_S
from msa.wire.tag import TagError, osmand_time, read_osmand
from staff import session_headers

from test_cli import msa

T = TypeVar("T")
NOW = time.time()


def _operator_session(work: Any) -> dict[str, str]:
    return session_headers(work, "observer")


class Centre:
    """A started centre on a loop thread of its own, with one case, its suspect's tag and a
    host; every call into the centre runs on that loop."""

    def __init__(self, state: State | Path) -> None:
        if isinstance(state, Path):  # a state folder (tests/test_sim_tag.py): SQLite
            state = make_state(state, None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running: RunningCentre = self.call(start_centre(state.config()))
        reg = self.running.centre.registry
        self.do(lambda: reg.put_case(Case("C-T", "V. Victim", suspect="S. Suspect")))
        self.do(lambda: reg.put_case(Case("C-N", "N. Nosuspect")))
        issued = self.do(lambda: self.running.tags.issue("C-T", 10))
        self.tag_id, self.secret = issued.tag.tag_id, issued.secret
        self.host_token = self.do(lambda: self.running.issue_host("C-T")).token
        self.ssl = ssl.create_default_context(cafile=str(self.running.tls.ca_cert))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()
        return self.call(run())

    def close(self) -> None:
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def stored(self, tag_id: str | None = None) -> list[dict[str, object]]:
        tags = self.running.tags
        return self.do(lambda: tags.positions(tag_id or self.tag_id))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.running.api_port,
                                           context=self.ssl, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def osmand_get(self, params: dict[str, str]) -> tuple[int, bytes]:
        return self.request("GET", "/v1/tags/osmand?" + urlencode(params))

    def post_json(self, body: object, token: str | None = None) -> tuple[int, bytes]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", "/v1/tags/positions", raw, {
            "Authorization": f"Bearer {token or self.secret}",
            "Content-Type": "application/json"})

    def operator_headers(self) -> dict[str, str]:
        """The cookie of an operator's session (made once, through the centre's own
        accounts, on the centre's loop): the page is behind a login."""
        if not getattr(self, "_operator", None):
            self._operator = self.do(lambda: _operator_session(self.running.work))
        return dict(self._operator)

    def state_warnings(self) -> list[dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.running.operator_port, timeout=30)
        conn.request("GET", "/api/state", headers=self.operator_headers())
        resp = conn.getresponse()
        data = json.loads(resp.read())
        conn.close()
        assert resp.status == 200
        return list(data["warnings"])


@pytest.fixture(scope="module", params=BACKENDS)
def centre(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Centre]:
    """One centre per backend for the module (started once: the tests share it)."""
    with fresh_state(request, tmp_path_factory.mktemp("tags") / "centre", request.param) as s:
        c = Centre(s)
        yield c
        c.close()


def good(secret: str, **over: str) -> dict[str, str]:
    p = {"id": secret, "lat": "51.0543", "lon": "3.7174", "timestamp": str(int(time.time())),
         "accuracy": "8.5", "batt": "87"}
    p.update(over)
    return {k: v for k, v in p.items() if v != "DROP"}


def test_osmand_get_is_stored_with_every_field(centre: Centre) -> None:
    before = len(centre.stored())
    when = int(time.time()) - 5
    status, body = centre.osmand_get(good(centre.secret, timestamp=str(when), speed="3.2",
                                          bearing="180", altitude="12.5", hdop="0.9"))
    assert (status, body) == (200, b"")
    last = centre.stored()[before:]
    assert len(last) == 1
    assert last[0]["lat"] == 51.0543 and last[0]["lon"] == 3.7174
    assert last[0]["fix_time"] == when and last[0]["accuracy_m"] == 8.5
    assert last[0]["battery_pct"] == 87.0 and last[0]["tamper"] is False
    assert abs(float(str(last[0]["received_at"])) - time.time()) < 30


def test_osmand_post_form_and_the_timestamp_forms(centre: Centre) -> None:
    before = len(centre.stored())
    when = int(time.time()) - 60
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    for stamp in (str(when), str(when * 1000), iso):
        form = urlencode(good(centre.secret, timestamp=stamp, accuracy="DROP")).encode()
        status, body = centre.request("POST", "/v1/tags/osmand", form,
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body) == (200, b""), stamp
    got = centre.stored()[before:]
    assert [p["fix_time"] for p in got] == [when] * 3
    assert [p["accuracy_m"] for p in got] == [None] * 3  # none given: none made up
    # Traccar Client posts its parameters in the query string with an empty body.
    status, _ = centre.request("POST", "/v1/tags/osmand?" + urlencode(good(centre.secret)))
    assert status == 200 and len(centre.stored()) == before + 4


@pytest.mark.parametrize("text, seconds", [
    ("1800000000", 1_800_000_000.0),  # Unix seconds (Traccar Client)
    ("1800000000123", 1_800_000_000.123),  # milliseconds: too large for 32-bit seconds
    ("2027-01-15T08:00:00Z", float(calendar.timegm((2027, 1, 15, 8, 0, 0)))),
    ("2027-01-15T09:00:00+01:00", float(calendar.timegm((2027, 1, 15, 8, 0, 0)))),
    ("2027-01-15 08:00:00", float(calendar.timegm((2027, 1, 15, 8, 0, 0)))),  # no zone: UTC
])
def test_osmand_time_golden(text: str, seconds: float) -> None:
    assert osmand_time(text, 1_900_000_000.0) == pytest.approx(seconds)


def test_json_form_is_stored(centre: Centre) -> None:
    before = len(centre.stored())
    when = time.time() - 2
    status, body = centre.post_json({"lat": -33.86, "lon": 151.2, "accuracy_m": 12,
                                     "time": when, "battery_pct": 55, "tamper": False})
    assert status == 200 and json.loads(body) == {"tag": centre.tag_id, "stored": True}
    [got] = centre.stored()[before:]
    assert (got["lat"], got["lon"], got["accuracy_m"], got["fix_time"],
            got["battery_pct"], got["tamper"]) == (-33.86, 151.2, 12.0, when, 55.0, False)


BAD_OSMAND = [
    ("lat missing", {"lat": "DROP"}), ("lon missing", {"lon": "DROP"}),
    ("lat > 90", {"lat": "90.5"}), ("lon < -180", {"lon": "-180.01"}),
    ("lat nan", {"lat": "nan"}), ("lat inf", {"lat": "inf"}), ("lat exponent", {"lat": "1e1"}),
    ("lat spaces", {"lat": " 51.0"}), ("lat empty", {"lat": ""}),
    ("accuracy > 10 km", {"accuracy": "10000.1"}), ("accuracy < 0", {"accuracy": "-1"}),
    ("battery > 100", {"batt": "100.5"}), ("battery < 0", {"batt": "-3"}),
    ("timestamp missing", {"timestamp": "DROP"}), ("timestamp future", {
        "timestamp": str(int(time.time()) + 3600)}),
    ("timestamp 1970", {"timestamp": "12"}), ("timestamp junk", {"timestamp": "yesterday"}),
    ("timestamp huge", {"timestamp": "9" * 13}),
    ("timestamp year 9999", {"timestamp": "9999-12-31T23:59:59-23:59"}),
    ("speed < 0", {"speed": "-1"}),
    ("bearing > 360", {"bearing": "361"}), ("altitude huge", {"altitude": "1000000"}),
    ("hdop junk", {"hdop": "x"}), ("alarm junk", {"alarm": "tamper;drop"}),
    ("id short", {"id": "abc"}), ("id missing", {"id": "DROP"}),
    ("value too long", {"note": "x" * 300}),
]


@pytest.mark.parametrize("what, over", BAD_OSMAND, ids=[b[0] for b in BAD_OSMAND])
def test_malformed_osmand_is_400_and_nothing_stored(centre: Centre, what: str,
                                                     over: dict[str, str]) -> None:
    before = len(centre.stored())
    status, _ = centre.osmand_get(good(centre.secret, **over))
    assert status == 400, what
    assert len(centre.stored()) == before


def test_a_parameter_given_twice_is_refused(centre: Centre) -> None:
    before = len(centre.stored())
    query = urlencode(good(centre.secret)) + "&lat=10.0"
    assert centre.request("GET", "/v1/tags/osmand?" + query)[0] == 400
    assert len(centre.stored()) == before


BAD_JSON: list[tuple[str, Any]] = [
    ("not an object", [1, 2]), ("lat missing", {"lon": 3.0, "accuracy_m": 5, "time": NOW}),
    ("lat as text", {"lat": "51", "lon": 3.0, "accuracy_m": 5, "time": NOW}),
    ("lat bool", {"lat": True, "lon": 3.0, "accuracy_m": 5, "time": NOW}),
    ("lat > 90", {"lat": 91, "lon": 3.0, "accuracy_m": 5, "time": NOW}),
    ("accuracy > 10 km", {"lat": 51, "lon": 3.0, "accuracy_m": 10_001, "time": NOW}),
    ("accuracy missing", {"lat": 51, "lon": 3.0, "time": NOW}),
    ("time future", {"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": NOW + 3600}),
    ("time 1970", {"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": 5}),
    ("battery 101", {"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": NOW, "battery_pct": 101}),
    ("tamper text", {"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": NOW, "tamper": "yes"}),
    ("unknown field", {"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": NOW, "x": 1}),
    ("huge integer", {"lat": 10 ** 400, "lon": 3.0, "accuracy_m": 5, "time": NOW}),
    ("NaN", b'{"lat": NaN, "lon": 3.0, "accuracy_m": 5, "time": 1.9e9}'),
    ("Infinity", b'{"lat": 51, "lon": Infinity, "accuracy_m": 5, "time": 1.9e9}'),
    ("not JSON", b"lat=51"), ("deep nesting", b"[" * 100_000),
    ("not UTF-8", b'{"lat": "\xff"}'),
]


@pytest.mark.parametrize("what, body", BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_malformed_json_is_400_and_nothing_stored(centre: Centre, what: str, body: Any) -> None:
    before = len(centre.stored())
    status, _ = centre.post_json(body)
    assert status in (400, 413), what  # 413: the deep nesting is over the body limit
    assert len(centre.stored()) == before


def test_wrong_or_missing_credentials_are_401_and_nothing_stored(centre: Centre) -> None:
    before = len(centre.stored())
    unknown = "A" * 43
    assert centre.osmand_get(good(unknown))[0] == 401
    assert centre.post_json({"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": time.time()},
                            token=unknown)[0] == 401
    # A host's token is not a tag's, and a tag's secret opens no host endpoint.
    assert centre.post_json({"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": time.time()},
                            token=centre.host_token)[0] == 401
    assert centre.request("POST", "/v1/events", b"{}",
                          {"Authorization": f"Bearer {centre.secret}"})[0] == 401
    assert centre.request("POST", "/v1/tags/positions", b"{}")[0] == 401
    assert len(centre.stored()) == before


def test_a_retired_tag_is_refused_like_an_unknown_one(centre: Centre) -> None:
    issued = centre.do(lambda: centre.running.tags.issue("C-T", 30))
    assert centre.osmand_get(good(issued.secret))[0] == 200
    assert centre.do(lambda: centre.running.tags.retire(issued.tag.tag_id))
    assert centre.osmand_get(good(issued.secret)) == centre.osmand_get(good("B" * 43))
    assert centre.osmand_get(good(issued.secret))[0] == 401
    assert len(centre.stored(issued.tag.tag_id)) == 1
    core = centre.running.centre
    tags = centre.do(lambda: core.warnings(now=time.time() + 10_000))
    assert not [w for w in tags if w.get("tag_id") == issued.tag.tag_id]  # not supervised


def test_a_tag_needs_a_case_with_a_suspect(centre: Centre) -> None:
    from msa.centre.errors import RegistryError
    for case, interval in (("C-N", 10), ("NOPE", 10), ("C-T", 0)):
        with pytest.raises(RegistryError):
            centre.do(lambda: centre.running.tags.issue(case, interval))


def _of(warnings: list[dict[str, Any]], tag_id: str) -> set[str]:
    return {str(w["warning"]) for w in warnings if w.get("tag_id") == tag_id}


def test_silence_is_warned_after_interval_plus_grace_without_any_message(
        centre: Centre) -> None:
    issued = centre.do(lambda: centre.running.tags.issue("C-T", 10, now=NOW))
    tid = issued.tag.tag_id
    core = centre.running.centre
    # Never heard from: silent counted from issue.
    assert "tag silent" not in _of(centre.do(lambda: core.warnings(now=NOW + 10 + 59)), tid)
    assert "tag silent" in _of(centre.do(lambda: core.warnings(now=NOW + 10 + 61)), tid)
    # The operator page (polled every second) shows it: at the latest 70 s + 1 s after the
    # last word, within the 90 s bound. Heard from now: not silent until interval + grace.
    heard = time.time()
    assert centre.osmand_get(good(issued.secret))[0] == 200
    assert "tag silent" not in _of(centre.do(lambda: core.warnings(now=heard + 60)), tid)
    assert "tag silent" in _of(centre.do(
        lambda: core.warnings(now=time.time() + 10 + SILENCE_GRACE_S + 1)), tid)
    assert "tag silent" not in _of(centre.state_warnings(), tid)


def test_low_battery_and_tamper_reach_the_operator_page(centre: Centre) -> None:
    issued = centre.do(lambda: centre.running.tags.issue("C-T", 60))
    tid, secret = issued.tag.tag_id, issued.secret
    assert centre.osmand_get(good(secret, batt="21"))[0] == 200
    assert _of(centre.state_warnings(), tid) == set()
    assert centre.osmand_get(good(secret, batt="20"))[0] == 200
    assert _of(centre.state_warnings(), tid) == {"tag low battery"}
    assert centre.osmand_get(good(secret, batt="90", alarm="sos"))[0] == 200
    assert _of(centre.state_warnings(), tid) == set()
    assert centre.osmand_get(good(secret, alarm="removing"))[0] == 200
    assert _of(centre.state_warnings(), tid) == {"tag tampered"}
    # Tamper stays once said, also after a plain report.
    assert centre.post_json({"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": time.time()},
                            token=secret)[0] == 200
    assert _of(centre.state_warnings(), tid) == {"tag tampered"}
    other = centre.do(lambda: centre.running.tags.issue("C-T", 60))
    assert centre.post_json({"lat": 51, "lon": 3.0, "accuracy_m": 5, "time": time.time(),
                             "tamper": True}, token=other.secret)[0] == 200
    assert _of(centre.state_warnings(), other.tag.tag_id) == {"tag tampered"}


FUZZ = ["/v1/tags/osmand?id=%00", "/v1/tags/osmand?" + "a=1&" * 200, "/v1/tags/osmand?lat=%FF",
        "/v1/tags/osmand?id=" + "A" * 43 + "&lat=1&lon=1&timestamp=2026-13-45T99:99:99",
        "/v1/tags/osmand?timestamp=" + "9" * 40, "/v1/tags/../alarms"]


@pytest.mark.parametrize("path", FUZZ)
def test_hostile_requests_never_get_a_5xx(centre: Centre, path: str) -> None:
    before = len(centre.stored())
    for method in ("GET", "POST", "HEAD", "PUT"):
        body = b"id=%%%&lat=\xff" if method != "GET" else None
        status, _ = centre.request(method, path, body,
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= status < 500, (method, path, status)
    assert len(centre.stored()) == before


def test_head_stores_nothing(centre: Centre) -> None:
    before = len(centre.stored())
    status, _ = centre.request("HEAD", "/v1/tags/osmand?" + urlencode(good(centre.secret)))
    assert status == 405 and len(centre.stored()) == before


def test_read_osmand_names_the_field_at_fault() -> None:
    with pytest.raises(TagError) as err:
        read_osmand(good("A" * 43, lat="91"), time.time())
    assert err.value.field == "lat"


def test_cli_adds_shows_and_retires_a_tag(state: State, tmp_path: Path) -> None:
    reg = str(state.database or state.registry)
    assert msa("case", "add", "--registry", reg, "--case", "GENT-1", "--victim", "V",
               "--suspect", "S").returncode == 0
    out = tmp_path / "tag.secret"
    added = msa("case", "tag-add", "--registry", reg, "--case", "GENT-1", "--interval-s",
                "10", "--token-out", str(out))
    assert added.returncode == 0, added.stderr
    secret = out.read_text().strip()
    assert len(secret) >= 22 and stat.S_IMODE(os.stat(out).st_mode) == 0o600
    tag_id = added.stdout.split()[1]
    assert tag_id.startswith("TAG-") and secret not in added.stdout
    again = msa("case", "tag-add", "--registry", reg, "--case", "GENT-1", "--interval-s",
                "10", "--token-out", str(out))
    assert again.returncode == 1 and again.stderr.startswith("msa: ")
    printed = msa("case", "tag-add", "--registry", reg, "--case", "GENT-1", "--interval-s", "5")
    second = printed.stdout.split("secret (OsmAnd id, or Bearer token): ")[1].strip()
    shown = msa("case", "show", "--registry", reg, "--case", "GENT-1")
    assert f"tag {tag_id}: every 10 s, in service" in shown.stdout
    assert secret not in shown.stdout and second not in shown.stdout
    retired = msa("case", "tag-retire", "--registry", reg, "--tag", tag_id)
    assert retired.returncode == 0 and "retired" in retired.stdout
    assert f"tag {tag_id}: every 10 s, retired" in msa(
        "case", "show", "--registry", reg, "--case", "GENT-1").stdout
    twice = msa("case", "tag-retire", "--registry", reg, "--tag", tag_id)
    assert twice.returncode == 1 and twice.stderr.startswith("msa: tag ")
    bad = msa("case", "tag-add", "--registry", reg, "--case", "GENT-1", "--interval-s", "0")
    assert bad.returncode != 0


@settings(max_examples=60, deadline=None)
@given(interval_s=st.integers(1, 86_400), first_off_s=st.floats(-100, 100),
       gap_off_s=st.floats(-100, 100))
def test_silence_property(tmp_path_factory: pytest.TempPathFactory, interval_s: int,
                          first_off_s: float, gap_off_s: float) -> None:
    """Silent exactly when the last word (or the issue, before any) is older than the
    interval + the grace; a report resets it; the warning is computed for any `now`.
    SQLite only: a registry per example (a PostgreSQL database each would cost ten times)."""
    from msa.centre.registry import Registry
    from msa.centre.tags import Tags
    from msa.wire.tag import TagReport

    registry = Registry(tmp_path_factory.mktemp("prop") / "registry.db")
    tags = Tags(registry)
    try:
        registry.put_case(Case("C", "V", suspect="S"))
        issued = tags.issue("C", interval_s, now=NOW)
        limit = interval_s + SILENCE_GRACE_S
        # Times drawn around the limit, where a wrong bound shows.
        first_s, gap_s = max(0.0, limit + first_off_s), max(0.0, limit + gap_off_s)
        # Off the exact boundary: a sum of floats is not exact there.
        assume(abs(first_s - limit) > 1e-3 and abs(gap_s - limit) > 1e-3)
        before = {str(w["warning"]) for w in tags.warnings(NOW + first_s)}
        assert ("tag silent" in before) == (first_s > limit)
        tags.record(issued.tag, TagReport(51.0, 3.0, 5.0, NOW), NOW + first_s)
        after = {str(w["warning"]) for w in tags.warnings(NOW + first_s + gap_s)}
        assert ("tag silent" in after) == (gap_s > limit)
    finally:
        tags.close()
        registry.close()
