"""The operator's view of proximity (issue 14, part 5): the state JSON carries the views the
centre is given, the acknowledge action is guarded like resolve and reaches the centre with the
values the operator clicked, and the page's drawing (run in Debian's headless Chromium, the
page's own script) puts the victim or zone, the tag, both accuracy circles, the R and 2R zones
and the distance to scale, north up, with every text escaped."""
from __future__ import annotations

import asyncio
import html
import html.parser
import json
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from geographiclib.geodesic import Geodesic

from msa.centre.accounts import Accounts
from msa.centre.audit import AuditLog
from msa.centre.authweb import CSRF_HEADER, Workplace
from msa.centre.caseweb import CaseDesk
from msa.centre.core import Centre
from msa.centre.errors import RecordError
from msa.centre.registry import Registry
from msa.centre.notes import Notes
from msa.centre.sessions import Sessions
from msa.centre.tags import Tags
from msa.centre.web import make_operator_app

from cdp import browser, chromium
from staff import add_account, session_headers
from test_operator_page import render

PAGE = Path(__file__).parent.parent / "centre" / "static" / "operator.html"
HOME = (51.0543, 3.7174)  # Ghent
HOSTILE = "GENT-<img src=x onerror=alert(1)>&\"'"  # case data is data, never markup
View = dict[str, Any]


def _at(origin: tuple[float, float], azimuth_deg: float, metres: float) -> tuple[float, float]:
    g = Geodesic.WGS84.Direct(origin[0], origin[1], azimuth_deg, metres)
    return g["lat2"], g["lon2"]


def _fix(p: tuple[float, float], accuracy_m: float | None, fix_time: float) -> dict[str, Any]:
    return {"lat": p[0], "lon": p[1], "accuracy_m": accuracy_m, "fix_time": fix_time}


def view(**over: Any) -> View:
    """A view in the shape of /tmp/msa/PROX.md: a tag 700 m from the victim at bearing 30°."""
    base: View = {"case_ref": "GENT-1", "tag_id": "TAG-1A2B3C4D", "zone": "victim",
                  "state": "pre-alert", "since": 1000.0, "distance_m": 700.0, "near_m": 660.0,
                  "alert_radius_m": 500.0, "prealert_radius_m": 1000.0,
                  "tag": _fix(_at(HOME, 30, 700), 12.0, 990.0),
                  "victim": _fix(HOME, 8.0, 995.0), "shape": None,
                  "flags": ["position jump"], "acknowledged": False}
    base.update(over)
    return base


# A fixed zone: a square about 200 m on a side around HOME, the tag 900 m east of its middle.
SQUARE = [list(_at(HOME, az, 100 * math.sqrt(2))) for az in (45, 135, 225, 315)]
POLYGON = view(zone="work", state="alert", victim=None, shape={"polygon": SQUARE},
               tag=_fix(_at(HOME, 90, 900), 20.0, 990.0), distance_m=800.0)
CIRCLE = view(zone="home", state="clear", victim=None,
              shape={"circle": {"lat": HOME[0], "lon": HOME[1], "radius_m": 30.0}},
              tag=_fix(_at(HOME, 180, 2500), 15.0, 990.0), distance_m=2470.0)


# --- the drawing, run in the browser -----------------------------------------------------


def _drawing_script() -> str:
    """The page's first script: its pure drawing functions, no DOM and no network."""
    scripts: list[str] = re.findall(r"<script>(.*?)</script>", PAGE.read_text(), re.S)
    assert "function proxSvg" in scripts[0]
    return scripts[0]


def run_in_browser(calls: list[tuple[str, list[Any]]], tmp: Path) -> list[Any]:
    """Each (function, arguments) called in Chromium with the page's drawing script; the
    results in order."""
    harness = tmp / "harness.html"
    # "<\/" in the data: a "</script>" in a test string must not end the script.
    data = json.dumps(calls).replace("</", "<\\/")
    harness.write_text(
        "<!doctype html><html><body><script>" + _drawing_script() + "</script><script>"
        f"const calls = {data};\n"
        "document.body.textContent = JSON.stringify(calls.map(([f, args]) =>"
        " globalThis[f](...args)));</script></body></html>")
    dom = asyncio.run(render(chromium(), harness.as_uri(), tmp / "profile"))
    body = re.search(r"<body>(.*)</body>", dom, re.S)
    assert body is not None, dom[:500]
    return list(json.loads(html.unescape(body.group(1))))


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # well-formed XML, or the page's escaping is broken


def _one(svg: ET.Element, cls: str, tag: str = "circle") -> ET.Element:
    found = [e for e in svg.iter(tag) if e.get("class") == cls]
    assert len(found) == 1, (cls, [e.get("class") for e in svg.iter(tag)])
    return found[0]


def _texts(svg: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in svg.iter("text")]


VIEWS = {"victim": view(), "polygon": POLYGON, "circle": CIRCLE,
         "no tag": view(tag=None, distance_m=None, near_m=None),
         "no victim": view(victim=None, distance_m=None, near_m=None),
         "nothing": view(tag=None, victim=None, distance_m=None, near_m=None),
         "no accuracy": view(tag=_fix(_at(HOME, 30, 700), None, 990.0)),
         "hostile": view(case_ref=HOSTILE, tag_id="TAG-<b>x</b>", zone="<script>z</script>",
                         flags=["<i>flag</i>"], shape={"circle": {"lat": HOME[0],
                                                                  "lon": HOME[1],
                                                                  "radius_m": 30.0}})}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every view drawn and carded, and the section for a list of views, in one browser run."""
    names = list(VIEWS)
    calls: list[tuple[str, list[Any]]] = [("proxSvg", [VIEWS[n]]) for n in names]
    calls += [("proxCard", [VIEWS["hostile"], 1010.0])]
    many = [view(case_ref=f"C-{i:02d}", state="clear") for i in range(25)]
    calls += [("proxSection", [many + [view(case_ref="Z", state="alert"),
                                       view(case_ref="Y", state="pre-alert")], 1010.0]),
              ("proxSection", [None, 1010.0])]
    out = run_in_browser(calls, tmp_path_factory.mktemp("draw"))
    result = {n: _svg(out[i]) for i, n in enumerate(names)}
    result["card"], result["section"], result["unavailable"] = out[len(names):]
    return result


def _scale(svg: ET.Element) -> float:
    return float(svg.get("data-px-per-m", "nan"))


def test_accuracy_circles_and_zones_are_drawn_to_scale(drawn: dict[str, Any]) -> None:
    svg = drawn["victim"]
    k = _scale(svg)
    assert 0.01 < k < 1  # about 1.4 km across 328 px
    for cls, metres in (("tag-acc", 12.0), ("victim-acc", 8.0), ("ring-alert", 500.0),
                        ("ring-prealert", 1000.0)):
        assert float(_one(svg, cls).get("r", "nan")) == pytest.approx(metres * k, abs=0.006)
    victim, ring = _one(svg, "victim"), _one(svg, "ring-alert")
    assert (ring.get("cx"), ring.get("cy")) == (victim.get("cx"), victim.get("cy"))
    bar = _one(svg, "scale-bar", "line")
    length_px = float(bar.get("x2", "nan")) - float(bar.get("x1", "nan"))
    assert length_px == pytest.approx(float(bar.get("data-m", "nan")) * k, abs=0.06)
    assert f"{bar.get('data-m')} m" in _texts(svg)
    assert "R 500 m · 2R 1000 m" in _texts(svg)


def test_north_is_up_and_the_distance_is_the_geodesic_one(drawn: dict[str, Any]) -> None:
    svg = drawn["victim"]
    k = _scale(svg)
    line = _one(svg, "distance", "line")
    tag, victim = _one(svg, "tag"), _one(svg, "victim")
    assert (line.get("x1"), line.get("y1")) == (tag.get("cx"), tag.get("cy"))
    assert (line.get("x2"), line.get("y2")) == (victim.get("cx"), victim.get("cy"))
    dx = float(tag.get("cx", "nan")) - float(victim.get("cx", "nan"))
    dy = float(tag.get("cy", "nan")) - float(victim.get("cy", "nan"))
    assert math.hypot(dx, dy) / k == pytest.approx(700, rel=0.005)  # the picture is true
    assert math.degrees(math.atan2(dx, -dy)) == pytest.approx(30, abs=0.5)  # bearing 30°: NNE
    assert "700 m" in _texts(svg)  # the centre's distance is written on it
    assert any(p.get("class") == "north" for p in svg.iter("path")) and "N" in _texts(svg)


def test_a_polygon_zone_is_drawn_with_its_buffers(drawn: dict[str, Any]) -> None:
    svg = drawn["polygon"]
    k = _scale(svg)
    zone = _one(svg, "zone", "polygon")
    points = [tuple(map(float, p.split(","))) for p in zone.get("points", "").split()]
    assert len(points) == 4
    side = math.dist(points[0], points[1]) / k
    assert side == pytest.approx(200, rel=0.01)
    for cls, metres in (("ring-alert", 500.0), ("ring-prealert", 1000.0)):
        ring = _one(svg, cls, "polygon")  # the zone's buffer: a round-joined stroke 2m wide
        assert ring.get("points") == zone.get("points")
        assert float(ring.get("stroke-width", "nan")) == pytest.approx(2 * metres * k, abs=0.01)
        assert ring.get("stroke-linejoin") == "round"
    assert not [e for e in svg.iter("circle") if e.get("class") in ("victim", "victim-acc")]
    line = _one(svg, "distance", "line")  # to the square's east edge: 900 - 100 m
    length = math.dist((float(line.get("x1", "nan")), float(line.get("y1", "nan"))),
                       (float(line.get("x2", "nan")), float(line.get("y2", "nan")))) / k
    assert length == pytest.approx(800, rel=0.01)
    assert float(_one(svg, "tag-acc").get("r", "nan")) == pytest.approx(20 * k, abs=0.006)
    assert "work" in _texts(svg) and "R 500 m · 2R 1000 m around the zone" in _texts(svg)


def test_a_circle_zone_has_its_rings_around_its_edge(drawn: dict[str, Any]) -> None:
    svg = drawn["circle"]
    k = _scale(svg)
    assert float(_one(svg, "zone").get("r", "nan")) == pytest.approx(30 * k, abs=0.006)
    for cls, metres in (("ring-alert", 530.0), ("ring-prealert", 1030.0)):
        assert float(_one(svg, cls).get("r", "nan")) == pytest.approx(metres * k, abs=0.006)
    line = _one(svg, "distance", "line")  # due south, from the tag to the zone's edge
    assert line.get("x1") == line.get("x2")
    assert (float(line.get("y1", "nan")) - float(line.get("y2", "nan"))) / k == \
        pytest.approx(2470, rel=0.005)


@pytest.mark.parametrize("name, note, circles", [
    ("no tag", "no tag fix yet", {"victim", "victim-acc", "ring-alert", "ring-prealert"}),
    ("no victim", "no victim position reported", {"tag", "tag-acc"}),
    ("nothing", "no tag fix yet; no victim position reported", set()),
])
def test_missing_positions_are_said_not_guessed(drawn: dict[str, Any], name: str, note: str,
                                                circles: set[str]) -> None:
    svg = drawn[name]
    assert any(note in t for t in _texts(svg))
    assert {e.get("class") for e in svg.iter("circle")} == circles
    assert not [e for e in svg.iter("line") if e.get("class") == "distance"]


def test_an_unknown_accuracy_is_drawn_as_the_rules_count_it(drawn: dict[str, Any]) -> None:
    svg = drawn["no accuracy"]
    acc = _one(svg, "tag-acc")
    assert float(acc.get("r", "nan")) == pytest.approx(50 * _scale(svg), abs=0.006)
    assert acc.get("stroke-dasharray")  # dashed: not a reported accuracy
    assert any("accuracy unknown: 50 m" in t for t in _texts(svg))


class _Markup(html.parser.HTMLParser):
    """The elements of some markup, with their attributes (unescaped)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    @property
    def tags(self) -> set[str]:
        return {tag for tag, _ in self.elements}

    def first(self, tag: str, attr: str) -> dict[str, str | None]:
        return next(a for t, a in self.elements if t == tag and attr in a)

    def articles(self) -> list[tuple[str | None, str | None]]:
        return [(a["class"], a["data-case"]) for t, a in self.elements
                if t == "article" and "prox" in (a["class"] or "")]


def test_case_data_is_text_never_markup(drawn: dict[str, Any]) -> None:
    svg = drawn["hostile"]  # parsed as XML already: the escaping held
    assert "TAG-<b>x</b>" in _texts(svg) and "<script>z</script>" in _texts(svg)
    assert {e.tag for e in svg.iter()} <= {"svg", "circle", "line", "text", "path", "polygon"}
    card = _Markup(drawn["card"])
    assert not {"img", "script", "b", "i"} & card.tags
    button = card.first("button", "data-ack-case")
    assert button["data-ack-case"] == HOSTILE  # the button sends back what it was given
    assert button["data-ack-zone"] == "<script>z</script>"
    assert "&lt;i&gt;flag&lt;/i&gt;" in drawn["card"]


def test_the_section_puts_alerts_first_and_caps_the_clear(drawn: dict[str, Any]) -> None:
    order = _Markup(drawn["section"]).articles()
    assert order[:2] == [("prox alert", "Z"), ("prox pre-alert", "Y")]
    assert len(order) == 22 and "and 5 more clear pairs" in drawn["section"]
    assert len(re.findall("<button data-ack-case", drawn["section"])) == 2  # clear: no button
    assert "Proximity state unavailable" in drawn["unavailable"]


# --- the operator app: state, acknowledgement, the page in a browser ---------------------


@asynccontextmanager
async def operator(tmp: Path, proximity: Callable[[], list[dict[str, object]]] | None = None,
                   ack: Callable[[str, str, str], bool] | None = None
                   ) -> AsyncIterator[tuple[str, dict[str, str], Workplace]]:
    """A real operator app on 127.0.0.1 with a real centre (SQLite); yields its base URL, an
    operator's session (cookie, token, Origin) and the app's accounts."""
    tmp.mkdir(exist_ok=True)
    registry = Registry(tmp / "registry.db")
    centre = Centre(tmp / "records.db", registry)
    work = Workplace(Accounts(registry), Sessions(registry), AuditLog(tmp / "audit.db"),
                     "login-token")
    kw: dict[str, Any] = {}
    if proximity is not None:
        kw["proximity"] = proximity
    if ack is not None:
        kw["on_proximity_ack"] = ack
    desk = CaseDesk(centre, registry, Notes(tmp / "records.db"), work.audit, None,
                    Tags(registry))
    runner = web.AppRunner(make_operator_app(centre, work, desk, **kw), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield base, session_headers(work, "olga", base=base), work
    finally:
        await runner.cleanup()
        centre.close()
        for part in (desk.notes, desk.tags, work.accounts, work.sessions, work.audit, registry):
            part.close()


def test_the_state_carries_the_views_and_defaults_to_none(tmp_path: Path) -> None:
    views = [view(), POLYGON, CIRCLE]

    async def body() -> None:
        async with operator(tmp_path / "a", proximity=lambda: views) as (base, own, _w), \
                aiohttp.ClientSession() as s:
            async with s.get(base + "/api/state", headers=own) as r:
                assert r.status == 200
                assert (await r.json())["proximity"] == views
        async with operator(tmp_path / "b") as (base, own, _w), aiohttp.ClientSession() as s:
            async with s.get(base + "/api/state", headers=own) as r:
                assert (await r.json())["proximity"] == []
            async with s.post(base + "/proximity/ack", headers=own, json={
                    "case_ref": "GENT-1", "tag_id": "TAG-1A2B3C4D", "zone": "victim"}) as r:
                assert r.status == 404  # nothing to acknowledge without proximity rules
    asyncio.run(body())


def test_the_page_gets_what_it_draws_and_each_case_shown_is_audited_once(tmp_path: Path
                                                                          ) -> None:
    """Every alert and pre-alert, and 20 clear pairs: the other clear pairs' positions stay
    at the centre (only their number goes). The first time a session is shown a case's
    proximity picture, the audit records a view of that case; later polls do not."""
    clear = [view(case_ref=f"C-{n:02d}", state="clear") for n in range(25)]
    views = [*clear, view(case_ref="A-1", state="alert")]

    async def body() -> None:
        async with operator(tmp_path, proximity=lambda: views) as (base, own, work), \
                aiohttp.ClientSession() as s:
            for _poll in range(2):
                async with s.get(base + "/api/state", headers=own) as r:
                    state = await r.json()
            assert [v["case_ref"] for v in state["proximity"]] == \
                ["A-1"] + [f"C-{n:02d}" for n in range(20)]
            assert state["proximity_withheld"] == 5
            viewed = [(e.actor, e.action, e.subject, e.detail) for e in work.audit.entries()]
            assert viewed == [("olga", "case.view", ref, {"via": "proximity"})
                              for ref in sorted(["A-1"] + [f"C-{n:02d}" for n in range(20)])]
    asyncio.run(body())


def test_a_proximity_store_fault_hides_no_alarm(tmp_path: Path) -> None:
    def broken() -> list[dict[str, object]]:
        raise RecordError("prox.db", "disk I/O error")

    def broken_ack(_c: str, _t: str, _z: str) -> bool:
        raise RecordError("prox.db", "disk I/O error")

    async def body() -> None:
        async with operator(tmp_path, proximity=broken, ack=broken_ack) as (base, own, _w), \
                aiohttp.ClientSession() as s:
            async with s.get(base + "/api/state", headers=own) as r:
                state = await r.json()
            assert r.status == 200 and state["proximity"] is None
            assert state["incidents"] == []  # still served
            async with s.post(base + "/proximity/ack", headers=own, json={
                    "case_ref": "GENT-1", "tag_id": "TAG-1A2B3C4D", "zone": "victim"}) as r:
                assert r.status == 503
    asyncio.run(body())


GOOD = {"case_ref": HOSTILE, "tag_id": "TAG-1A2B3C4D", "zone": "home"}
MALFORMED = [b"not json", b"[1, 2]", b'"text"', b"{}", b'{"case_ref": "A", "tag_id": "T"}',
             json.dumps({**GOOD, "extra": 1}).encode(), json.dumps({**GOOD, "zone": 5}).encode(),
             json.dumps({**GOOD, "zone": ""}).encode(),
             json.dumps({**GOOD, "zone": "x" * 129}).encode(),
             json.dumps({**GOOD, "tag_id": "TAG\n1"}).encode(),
             json.dumps({**GOOD, "case_ref": None}).encode(),
             b'{"case_ref": NaN, "tag_id": "T", "zone": "z"}']


def test_acknowledge_is_guarded_like_resolve(tmp_path: Path) -> None:
    acked: list[tuple[str, str, str]] = []

    def on_ack(case_ref: str, tag_id: str, zone: str) -> bool:
        acked.append((case_ref, tag_id, zone))
        return case_ref == HOSTILE

    async def body() -> None:
        async with operator(tmp_path, proximity=lambda: [view()], ack=on_ack) as (
                base, session, _w), aiohttp.ClientSession() as s:
            token = session[CSRF_HEADER]
            url, own = base + "/proximity/ack", {"Origin": base, "Cookie": session["Cookie"]}
            cookie = {"Cookie": session["Cookie"]}
            for refused in ({**own}, {**own, CSRF_HEADER: "guess"},
                            {**cookie, "Origin": "http://evil.example", CSRF_HEADER: token},
                            {**cookie, CSRF_HEADER: token},  # no Origin: not the page's fetch
                            {**own, CSRF_HEADER: token, "Sec-Fetch-Site": "cross-site"}):
                async with s.post(url, headers=refused, json=GOOD) as r:
                    assert r.status == 403, refused
            assert acked == []  # nothing reached the centre
            for bad in MALFORMED:
                async with s.post(url, headers={**own, CSRF_HEADER: token}, data=bad) as r:
                    assert r.status == 400, bad
            assert acked == []
            async with s.post(url, headers={**own, CSRF_HEADER: token}, json=GOOD) as r:
                assert r.status == 200
                assert await r.json() == {**GOOD, "acknowledged": True}
            assert acked == [(HOSTILE, "TAG-1A2B3C4D", "home")]
            async with s.post(url, headers={**own, CSRF_HEADER: token},
                              json={**GOOD, "case_ref": "GENT-9"}) as r:
                assert r.status == 404
    asyncio.run(body())


def _recent(v: View, now: float) -> View:
    """The view as if its times were now (views are built around t = 1000 s)."""
    out = dict(v, since=now - 40)
    for who in ("tag", "victim"):
        if out[who] is not None:
            out[who] = {**out[who], "fix_time": now - 1000 + out[who]["fix_time"] - 20}
    return out


def test_the_operator_sees_and_acknowledges_in_a_browser(tmp_path: Path) -> None:
    """The page as served, under its CSP, in Chromium: the views drawn, alerts first, text
    escaped; clicking Acknowledge sends the clicked view to the centre, and a refusal is
    shown."""
    chromium()
    views = [CIRCLE, view(case_ref=HOSTILE, state="alert", zone="home", tag_id="TAG-00000001"),
             {**POLYGON, "state": "pre-alert"},
             view(tag=None, distance_m=None, near_m=None, state="clear")]
    views = [_recent(v, time.time()) for v in views]
    acked: list[tuple[str, str, str]] = []
    done = asyncio.Event()

    def on_ack(case_ref: str, tag_id: str, zone: str) -> bool:
        acked.append((case_ref, tag_id, zone))
        done.set()
        return case_ref == HOSTILE

    async def body() -> str:
        async with operator(tmp_path / "centre", proximity=lambda: views, ack=on_ack) as (
                base, _own, work), browser(tmp_path / "profile") as page:
            password = add_account(work, "oscar", "operator")
            await page.goto(base + "/login")
            await page.type("#name", "oscar")
            await page.type("#password", password)
            await page.click("button[type=submit]")
            await page.wait("location.pathname === '/' && document.body.dataset.ready === '1'"
                            " && document.querySelectorAll('article.prox').length === 4")
            dom = await page.dom()
            await page.screenshot(tmp_path / "prox.png")
            await page.click("article.prox.alert button")
            async with asyncio.timeout(30):
                await done.wait()
            assert acked == [(HOSTILE, "TAG-00000001", "home")]
            done.clear()
            await page.click("article.prox.pre-alert button")
            async with asyncio.timeout(30):
                await done.wait()
            await page.wait('document.getElementById("notice").textContent.includes("404")')
            return dom
    dom = asyncio.run(body())
    assert 'data-ready="1"' in dom  # both scripts ran under the page's CSP
    dom = dom[:dom.index("<script>")]  # what the scripts drew, not their source
    page = _Markup(dom)
    assert page.articles() == [("prox alert", HOSTILE), ("prox pre-alert", "GENT-1"),
                               ("prox clear", "GENT-1"), ("prox clear", "GENT-1")]
    assert "0 open alarms, 0 tests, 1 proximity alerts, 1 pre-alerts" in dom
    assert "img" not in page.tags and "onerror=alert" in dom  # shown as text
    assert len([1 for t, a in page.elements if t == "svg" and "data-px-per-m" in a]) == 4
    assert ("polygon", "zone") in [(t, a.get("class")) for t, a in page.elements]
    assert "no tag fix yet" in dom
    assert "http://" not in dom.replace("http://www.w3.org", "")  # nothing fetched from outside
    assert (tmp_path / "prox.png").stat().st_size > 10_000
    assert acked[1] == ("GENT-1", "TAG-1A2B3C4D", "work")
