"""The operator's page, rendered by a real browser (Debian's headless Chromium): a live alarm
with its case file and the track drawn, a TEST alarm marked as such, warnings, and nothing from
outside the centre loaded."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from msa.centre.core import Inbound
from msa.centre.registry import Case
from msa.centre.server import CentreConfig, start_centre
from msa.host import aml
from msa.host import protocol as hp
from msa.host.dispatch import Fix, FixQuality, Message, MessageKind

KEY = bytes(range(32))
KEYS = hp.ButtonKeys.from_master(KEY)
BID = 0x0C0FFEE5


def chromium() -> str:
    found = shutil.which("chromium")
    if found is not None:
        return found
    reason = "chromium is not installed (Debian chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must render the operator's page")
    pytest.skip(f"{reason}; `python3 bootstrap.py test` installs it when run as root")


async def render(browser: str, url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (virtual time: no waiting on the wall clock)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
    if screenshot is not None:
        flags += [f"--screenshot={screenshot}", "--window-size=1100,700"]
    else:
        flags.append("--dump-dom")
    proc = await asyncio.create_subprocess_exec(browser, *flags, url,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode()


def _alarm(kind: hp.Kind, seq: int, fixes: int, t0: float) -> list[Inbound]:
    raw = hp.encode_frame(KEYS, kind=kind, button_id=BID, boot_id=2, seq=seq,
                          gesture=hp.Gesture.HOLD, battery_pct=64, age_ms=40)
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


def test_operator_sees_the_alarm_case_file_and_track(tmp_path: Path) -> None:
    browser = chromium()

    async def body() -> tuple[str, str]:
        c = await start_centre(CentreConfig(state_dir=tmp_path / "centre", dc09_port=None))
        try:
            reg = c.centre.registry
            reg.put_case(Case("CASE-17", "Jane <Doe>", "+32470000017", "John Roe",
                              "stalks at work", ("restraining order: 200 m",), weapons=True,
                              host_phone="+32470000099"))
            reg.register(BID, KEY, "CASE-17")
            now = time.time()
            for m in _alarm(hp.Kind.TEST, 3, 1, now - 60) + _alarm(hp.Kind.ALARM, 4, 5, now - 40):
                c.centre.ingest(m)
            # An AML SMS whose MSA1 never came: known by the sender's number only.
            c.sms.receive("+32470000099", aml.build(Fix(51.06, 3.72, 12.0, now - 5,
                                                        FixQuality.GNSS, "nmea"), now=now - 5))
            dom = await render(browser, c.operator_url, tmp_path / "profile")
            await render(browser, c.operator_url, tmp_path / "profile2",
                         tmp_path / "operator.png")
            return dom, c.operator_url
        finally:
            await c.stop()
    dom, _url = asyncio.run(body())
    assert 'data-ready="1"' in dom
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
