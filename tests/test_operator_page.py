"""The operator's page, rendered by a real browser (Debian's headless Chromium): a live alarm
with its case file and the track drawn, a TEST alarm marked as such, warnings, and nothing from
outside the centre loaded."""
from __future__ import annotations

import asyncio
import html.parser
import importlib.resources
import re
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from msa.centre.authweb import CSRF_HEADER
from msa.centre.core import Inbound
from msa.centre.registry import Case
from msa.centre.server import start_centre
from msa.wire import aml
from msa.wire import protocol as hp
from msa.wire.call import CallEvent, CallPayload
from msa.wire.message import Fix, FixQuality, Message, MessageKind

from backends import State, state  # noqa: F401
from cdp import browser, chromium
from pg import pg_database, pg_server  # noqa: F401
from staff import add_account, login

KEY = bytes(range(32))
KEYS = hp.ButtonKeys.from_master(KEY)
CENTRE_KEY = bytes(range(64, 96))  # K_c: the button's and the centre's, never the host's
CENTRE = hp.CentreKey.from_master(CENTRE_KEY)
BID = 0x0C0FFEE5


async def render(exe: str, url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (virtual time: no waiting on the wall clock)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
    if screenshot is not None:
        flags += [f"--screenshot={screenshot}", "--window-size=1100,700"]
    else:
        flags.append("--dump-dom")
    proc = await asyncio.create_subprocess_exec(exe, *flags, url,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode()


def _alarm(kind: hp.Kind, seq: int, fixes: int, t0: float) -> list[Inbound]:
    raw = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=BID, boot_id=2,
                                          seq=seq, gesture=hp.Gesture.HOLD, battery_pct=64,
                                          age_ms=40))
    key = Message.event_key(BID, 2, seq)
    mkind = MessageKind.ALARM if kind is hp.Kind.ALARM else MessageKind.TEST
    out = []
    for n in range(fixes):
        fix = Fix(51.0543 + n * 0.0002, 3.7174 + n * 0.0003, 6.0, t0 + 10 * n,
                  FixQuality.GNSS, "nmea")
        out.append(Inbound("https", key if n == 0 else f"{key}/{n}",
                           mkind if n == 0 else MessageKind.LOCATION, BID, raw, fix,
                           incident=key, update_no=n, pressed_at=t0, received_at=t0 + 10 * n))
    return out


LIVE_S = 5.0  # under the page's 10 s slow refresh: only the event stream is that quick


def test_operator_sees_the_alarm_case_file_and_track(tmp_path: Path, state: State) -> None:
    chromium()

    async def body() -> tuple[str, str]:
        c = await start_centre(state.config(dc09_port=None))
        try:
            reg = c.centre.registry
            reg.put_case(Case("CASE-17", "Jane <Doe>", "+32470000017", "John Roe",
                              "stalks at work", ("restraining order: 200 m",), weapons=True,
                              host_phone="+32470000099"))
            reg.register(BID, CENTRE_KEY, "CASE-17")
            now = time.time()
            for m in _alarm(hp.Kind.TEST, 3, 1, now - 60) + _alarm(hp.Kind.ALARM, 4, 5, now - 40):
                c.centre.ingest(m)
            # An AML SMS whose MSA1 never came: known by the sender's number only.
            c.sms.receive("+32470000099", aml.build(Fix(51.06, 3.72, 12.0, now - 5,
                                                        FixQuality.GNSS, "nmea"), now=now - 5))
            password = add_account(c.work, "olga", "operator")
            async with browser(tmp_path / "profile") as page:
                await page.goto(c.operator_url)  # sent to the login page first
                assert await page.eval("location.pathname") == "/login"
                await page.type("#name", "olga")
                await page.type("#password", password)
                await page.click("button[type=submit]")
                await page.wait("location.pathname === '/' && document.body.dataset.ready"
                                " === '1' && document.querySelectorAll('article.incident')"
                                ".length === 2")
                dom = await page.dom()
                await page.screenshot(tmp_path / "operator.png")
                # Live: a new alarm shows within LIVE_S, by the page's event stream (its slow
                # timer reads the state only every 10 s).
                live = _alarm(hp.Kind.ALARM, 5, 1, time.time())
                for m in live:
                    await c.centre.submit(m)
                await page.wait("document.querySelectorAll('article.incident').length === 3",
                                timeout_s=LIVE_S)
                # The silent call's state on that alarm's card (issue 16), as the host
                # reports it: answered, with the attempt.
                alarm = live[0]
                await c.centre.submit(replace(
                    alarm, key=f"{alarm.key}/c1", kind=MessageKind.CALL, fix=None,
                    pressed_at=None, call=CallPayload(CallEvent.ANSWERED, time.time(), 1, "")))
                await page.wait("[...document.querySelectorAll('dd.call')].some(d =>"
                                " d.textContent.startsWith('answered since') &&"
                                " d.textContent.endsWith('; attempt 1'))", timeout_s=LIVE_S)
            return dom, c.operator_url
        finally:
            await c.stop()
    dom, _url = asyncio.run(body())
    assert 'data-ready="1"' in dom and "olga (operator)" in dom
    articles = re.findall(r'<article class="incident ([^"]*)" data-incident="([^"]+)"', dom)
    assert [(cls.split(), ref) for cls, ref in articles] == \
        [(["open"], "INC-000002"), (["test", "open"], "INC-000001")]
    assert "1 open alarms, 1 tests" in dom and "STALKING ALARM" in dom and "TEST ALARM" in dom
    assert "Jane &lt;Doe&gt;" in dom  # case data is escaped, never markup
    assert "WEAPONS FEARED" in dom and "restraining order: 200 m" in dom
    alarm = dom[dom.index('data-incident="INC-000002"'):dom.index('data-incident="INC-000001"')]
    points = re.search(r'<polyline points="([^"]+)"', alarm)
    assert points is not None and len(points.group(1).split()) == 5
    assert "51.05510, 3.71860 ±6 m" in alarm and "5 fixes" in alarm
    assert "SMS (CASE-17): unverified SMS ghost call at 51.06000, 3.72000 ±12 m" in dom
    assert (tmp_path / "operator.png").stat().st_size > 10_000
    assert "http://" not in dom.replace("http://www.w3.org", "")  # nothing fetched from outside


class _Refs(html.parser.HTMLParser):
    """Every address the markup would fetch: src, href and their kin, and CSS url()."""

    ATTRS = frozenset({"src", "href", "action", "formaction", "srcset", "poster", "data",
                       "background", "xlink:href", "ping", "manifest", "cite"})

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.ATTRS and value is not None:
                self.refs += [v.strip().split(" ")[0] for v in value.split(",")]
            if name == "style" and value:
                self.refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)

    def handle_data(self, data: str) -> None:
        self.refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)
        self.refs += re.findall(r"@import\s+['\"]([^'\"]+)", data)
        self.refs += re.findall(r"""(?:fetch|import|call)\(\s*[`'"]([^`'"]+)""", data)


def _outside(ref: str) -> bool:
    """Whether an address leaves the page's own origin (a scheme, or scheme-relative //)."""
    return bool(re.match(r"\s*(//|\\\\|[a-zA-Z][a-zA-Z0-9+.-]*:)", ref)) and \
        not ref.startswith(("data:", "#"))


# The page as the centre serves it: from the package (a staged copy for mutation testing has
# no centre/ folder next to tests/).
PAGE = Path(str(importlib.resources.files("msa.centre").joinpath("static/operator.html")))


@pytest.mark.parametrize("name", ["operator.html", "login.html"])
def test_the_page_fetches_nothing_from_outside(name: str) -> None:
    text = (PAGE.parent / name).read_text()
    refs = _Refs()
    refs.feed(text)
    assert {"operator.html": "api/state", "login.html": "api/login"}[name] in refs.refs
    assert [r for r in refs.refs if _outside(r)] == []
    for bad in ('<script src="https://cdn.example/x.js"></script>', '<img src="//t.example/p">',
                '<link rel="stylesheet" href="http://x.example/s.css">'):
        probe = _Refs()
        probe.feed(text.replace("</body>", bad + "</body>"))
        assert [r for r in probe.refs if _outside(r)], bad  # the check itself can fail


def test_the_page_guards_its_origin_and_its_state_changes(state: State) -> None:
    """Host and Origin are checked, a state change needs the page's own token and Origin,
    the CSP forbids framing; the resolve action the page's script sends still works."""
    async def body() -> None:
        c = await start_centre(state.config())
        try:
            c.centre.registry.register(BID, CENTRE_KEY, None)
            for m in _alarm(hp.Kind.ALARM, 4, 1, time.time()):
                c.centre.ingest(m)
            base = f"http://127.0.0.1:{c.operator_port}"
            password = add_account(c.work, "olga", "operator")
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/login") as r:
                    csp = r.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
                assert "unsafe-inline" not in csp
                page = PAGE.read_text()
                assert '"X-MSA-CSRF": me.csrf' in page  # what the page's script sends
                own = (await login(s, base, "olga", password)).headers
                cookie = {"Cookie": own["Cookie"]}
                token = own[CSRF_HEADER]
                url = base + "/api/incidents/INC-000001/resolve"
                async with s.get(base + "/api/state", headers={**own, "Host": "evil.example"}
                                 ) as r:
                    assert r.status == 421  # DNS rebinding: another name for this address
                async with s.post(url, headers={**cookie, "Origin": "http://evil.example",
                                                CSRF_HEADER: token}) as r:
                    assert r.status == 403
                async with s.post(url, headers={**cookie, "Origin": base}) as r:  # no token
                    assert r.status == 403
                async with s.post(url, headers={**own, CSRF_HEADER: "guess"}) as r:
                    assert r.status == 403
                async with s.post(url, headers={**own, "Cookie": "msa_session=guess"}) as r:
                    assert r.status == 401  # the token is good only with its session
                assert c.centre.incidents()[0]["status"] == "open"
                async with s.post(url, headers=own) as r:
                    assert r.status == 200
                # Resolved, it is listed as a summary: its case file is a view of its own.
                async with s.get(base + "/api/state", headers=own) as r:
                    listed = (await r.json())["incidents"]
                assert [(i["incident"], i["status"], "case" in i, "track" in i)
                        for i in listed] == [("INC-000001", "resolved", False, False)]
            assert c.centre.incidents(include_resolved=True)[0]["status"] == "resolved"
        finally:
            await c.stop()
    asyncio.run(body())
