"""How the host tells the victim (host/warn.py): each kind of warning its own haptic pattern on
every connected button, failures said in the contract's words, the buttons' low battery and test
alarm, and a button out of reach; the [proximity]/[warnings] configuration and its wiring.
Links are ButtonLink-shaped objects (tests/test_proximity_host.py's FakeLink): the button's own
WARN path is the firmware's tests' and, over Bumble to the firmware in MicroPython, tests/sim's
(test_haptic_e2e.py; test_proximity_service.py from a tag's fix to the motor)."""
from __future__ import annotations

import asyncio
import copy
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from msa.host import config
from msa.host.errors import ConfigError, LinkError
from msa.host.events import Via, event_for
from msa.host.proximity import ProximitySettings
from msa.host.warn import PATTERNS, Delivery, Notice, Warner, failed
from msa.wire import protocol as hp
from msa.wire import proximity as contract
from test_proximity_host import FakeLink, run

KEYS = hp.ButtonKeys.from_master(bytes(32))
CENTRE = hp.CentreKey.from_master(bytes(range(32)))
OUTCOME = re.compile(r"(ok|none|no motor|not connected|failed: [ -~]{1,120})")  # the contract's


def test_each_kind_has_its_own_pattern_and_every_kind_one() -> None:
    assert set(PATTERNS) == set(contract.WARNING_KINDS)
    assert len(set(PATTERNS.values())) == len(PATTERNS)  # one signal never means two things


def test_a_warning_plays_on_every_connected_button_and_only_there() -> None:
    async def body() -> tuple[list[FakeLink], Delivery, Delivery]:
        links = [FakeLink(1), FakeLink(2, connected=False), FakeLink(3)]
        w = Warner(links)
        first = await w.deliver(Notice("proximity", 1.0, id=7))
        for link in links:
            link.connected.clear()
        return links, first, await w.deliver(Notice("proximity", 2.0, id=8))
    links, first, second = run(body)
    assert [link.patterns for link in links] == [[hp.Pattern.PROXIMITY], [],
                                                 [hp.Pattern.PROXIMITY]]
    assert (first.haptic, first.hook) == ("ok", "none")
    assert second.haptic == "not connected"


def test_a_busy_challenge_is_tried_again_and_other_failures_are_said() -> None:
    async def body() -> list[str]:
        busy, broken = FakeLink(1), FakeLink(2)
        busy.errors = [LinkError(1, "challenge of 3 bytes")]
        broken.errors = [LinkError(2, "warning not sent: \u00e9crit refus\u00e9 " + "x" * 200)]
        return [(await Warner([busy]).deliver(Notice("test", 1.0))).haptic,
                (await Warner([broken]).deliver(Notice("test", 1.0))).haptic]
    busy, broken = run(body)
    assert busy == "ok"
    assert broken.startswith("failed: button 00000002: warning not sent: ?crit") and \
        OUTCOME.fullmatch(broken)


@given(st.text(max_size=300))
def test_every_failure_reads_as_the_contract_takes_it(why: str) -> None:
    assert OUTCOME.fullmatch(failed(why))


def test_a_low_battery_and_a_test_alarm_warn_with_their_own_patterns() -> None:
    def event(kind: hp.Kind, seq: int) -> Any:
        raw = hp.encode_frame(KEYS, CENTRE, kind=kind, button_id=0x0A0B0C0D, boot_id=1,
                              seq=seq, gesture=hp.Gesture.NONE, battery_pct=9, age_ms=0)
        return event_for(hp.verify(raw, KEYS), Via.GATT, time.time())

    async def body() -> tuple[FakeLink, list[Delivery]]:
        link = FakeLink()
        got: asyncio.Queue[Delivery] = asyncio.Queue()
        w = Warner([link], on_delivery=got.put_nowait)
        w.on_event(event(hp.Kind.LOW_BATTERY, 1))
        w.on_event(event(hp.Kind.HEARTBEAT, 2))  # no warning
        w.on_event(event(hp.Kind.TEST, 3))
        return link, [await got.get(), await got.get()]
    link, got = run(body)
    assert sorted(link.patterns) == [hp.Pattern.LOW_BATTERY, hp.Pattern.TEST]
    assert sorted((d.notice.kind, d.notice.id, d.notice.button_id) for d in got) == [
        ("low battery", None, 0x0A0B0C0D), ("test", None, 0x0A0B0C0D)]


def test_a_button_out_of_reach_warns_once_per_loss() -> None:
    async def body() -> list[tuple[Delivery, float]]:
        lost, other = FakeLink(1, connected=False), FakeLink(2)
        got: asyncio.Queue[Delivery] = asyncio.Queue()
        w = Warner([lost, other], link_lost_after_s=0.2, on_delivery=got.put_nowait)
        task = asyncio.create_task(w.run())
        try:
            started = time.time()
            first = await asyncio.wait_for(got.get(), 10)
            lost.connected.set()  # back ...
            await asyncio.sleep(0.5)  # ... for a while (longer than two checks)
            assert got.empty()  # still one warning for the first loss
            lost.connected.clear()  # and lost again
            again_from = time.time()
            second = await asyncio.wait_for(got.get(), 10)
        finally:
            await w.stop()
            await task
        return [(first, started), (second, again_from)]
    (first, started), (second, again_from) = run(body)
    for d, since in ((first, started), (second, again_from)):
        assert (d.notice.kind, d.notice.button_id, d.haptic) == ("link lost", 1, "ok")
        assert d.notice.at - since >= 0.2
    # Only the button still in reach could play it, with the link-lost pattern.


# --- configuration and wiring --------------------------------------------------------------

BASE: dict[str, Any] = {
    "host": {"state_dir": "state"},
    "button": [{"id": "0x0a0b0c0d", "address": "C0:00:00:00:00:01", "key_file": "b.key"}],
    "location": {"source": "fixed", "lat": 51.0, "lon": 3.7},
    "channel": [{"type": "dc09", "host": "arc.example", "port": 5000},
                {"type": "https", "url": "https://c.example/v1", "token_file": "t",
                 "ca_file": "ca.pem"}],
    "proximity": {},
}
RANGES = [("proximity", "poll_wait_s", 1, 25), ("warnings", "hook_timeout_s", 1, 120),
          ("warnings", "link_lost_after_s", 10, 86_400)]
DOC = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()


def _load(tmp_path: Path, data: dict[str, Any]) -> config.HostConfig:
    for name, content in (("b.key", "11" * 32), ("t", "t0ken-of-the-host")):
        (tmp_path / name).write_text(content)
        os.chmod(tmp_path / name, 0o600)
    return config.parse(data, "host.toml", tmp_path)


def _with(section: str, key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.setdefault(section, {})[key] = value
    return data


def test_proximity_talks_through_the_https_channel_with_its_credential(
        tmp_path: Path) -> None:
    c = _load(tmp_path, BASE)
    assert c.proximity == {"report_position": True, "poll_wait_s": 25,
                           "url": "https://c.example/v1", "token": "t0ken-of-the-host",
                           "ca_file": str(tmp_path / "ca.pem")}
    assert c.warnings == {"hook": None, "hook_timeout_s": 10.0, "link_lost_after_s": 120.0}
    assert "t0ken" not in repr(ProximitySettings(c.proximity["url"], c.proximity["token"]))
    without = copy.deepcopy(BASE)
    del without["proximity"]
    assert _load(tmp_path, without).proximity is None and \
        _load(tmp_path, without).warnings is None
    without["channel"] = without["channel"][:1]
    without["proximity"] = {}
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, without)
    assert err.value.key == "proximity" and "https" in err.value.expected


@pytest.mark.parametrize("section, key, low, high", RANGES, ids=[r[1] for r in RANGES])
def test_each_range_is_inclusive_documented_and_nothing_outside_loads(
        tmp_path: Path, section: str, key: str, low: int, high: int) -> None:
    rows = [line for line in DOC.splitlines() if f"`{key}`" in line and "|" in line]
    assert any(f"{low}–{high}" in r for r in rows), rows
    for good in (low, high):
        assert getattr(_load(tmp_path, _with(section, key, good)), section)[key] == good
    for bad in (low - 1, high + 1, float("nan"), float("inf"), True, str(low)):
        with pytest.raises(ConfigError) as err:
            _load(tmp_path, _with(section, key, bad))
        assert err.value.key == f"{section}.{key}", bad


@pytest.mark.parametrize("hook, words", [
    ("notify --quiet", "list of strings"),
    ([], "list of strings"),
    (["notify", ""], "list of strings"),
    (["bin/notify\x00"], "list of strings"),
    (["missing"], "not an executable file"),
    (["notify.txt"], "not an executable file"),
])
def test_a_hook_must_be_an_argument_list_naming_an_executable(tmp_path: Path, hook: Any,
                                                              words: str) -> None:
    (tmp_path / "notify.txt").write_text("")
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, _with("warnings", "hook", hook))
    assert err.value.key == "warnings.hook" and words in err.value.expected


def test_a_hook_is_run_by_its_path_relative_to_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "notify").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin" / "notify", 0o700)
    c = _load(tmp_path, _with("warnings", "hook", ["bin/notify", "--to", "a b"]))
    assert c.warnings is not None and \
        c.warnings["hook"] == [str(tmp_path / "bin" / "notify"), "--to", "a b"]


def test_the_service_wires_the_warner_and_the_client(tmp_path: Path) -> None:
    from msa.host.service import HostService

    async def body() -> None:
        c = _load(tmp_path, _with("proximity", "report_position", False))
        service = HostService(c)
        try:
            assert service.warner is not None and service.proximity is not None
            assert service.warner.links == tuple(service.links)
            s = service.proximity.settings
            assert (s.base_url, s.report_position, s.wait_s) == ("https://c.example/v1",
                                                                 False, 25)
        finally:
            service.outbox.close()
            service.guard.close()
            await service.proximity.close() if service.proximity else None
    from msa.centre.tls import make_tls
    (tmp_path / "ca.pem").write_bytes(make_tls(tmp_path / "tls").ca_cert.read_bytes())
    run(body)
