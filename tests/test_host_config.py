"""The host's configuration file: the documented example loads, and every mistake is a clear
error naming the key and what it must be."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from msa.host import config
from msa.host.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
KEY_HEX = "11" * 32


def example(tmp_path: Path) -> Path:
    """docs/configuration.md's example, with its secret files in place."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    toml = re.search(r"```toml\n(.*?)```", text, re.S)
    assert toml is not None
    for name, content in (("button-0a0b0c0d.key", KEY_HEX), ("dc09.key", "22" * 16),
                          ("api.token", "token"), ("centre-ca.pem", "-")):
        p = tmp_path / name
        p.write_text(content + "\n")
        os.chmod(p, 0o600)
    conf = tmp_path / "host.toml"
    conf.write_text(toml.group(1).replace("/etc/msa/", ""))
    return conf


def test_the_documented_example_loads(tmp_path: Path) -> None:
    c = config.load(example(tmp_path))
    assert c.buttons[0].button_id == 0x0A0B0C0D and c.buttons[0].key == bytes.fromhex(KEY_HEX)
    assert [ch["type"] for ch in c.channels] == ["dc09", "https", "sms"]
    assert c.channels[0]["key"] == bytes.fromhex("22" * 16) and c.channels[1]["token"] == "token"
    assert c.tracking == {"interval_s": 10, "window_s": 7200}
    voice = c.channels[2]["voice"]
    assert voice["call"] is True and voice["number"] == "+3292999112"
    assert "11" * 32 not in repr(c)  # keys are never printed


BASE: dict[str, Any] = {
    "host": {"state_dir": "state"},
    "button": [{"id": "0x0a0b0c0d", "address": "C0:00:00:00:00:01", "key_file": "b.key"}],
    "location": {"source": "fixed", "lat": 51.0, "lon": 3.7},
    "channel": [{"type": "https", "url": "https://c.example/v1", "token_file": "t"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    import copy
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, key, words", [
    ("host", None, "host", "must be a table"),
    ("button.0.id", "0", "button[0].id", "expected a button id"),
    ("button.0.id", 2 ** 32, "button[0].id", "expected a button id"),
    ("button.0.address", "C0-00", "button[0].address", "BLE identity address"),
    ("button.0.key_file", "missing.key", "button[0].key_file", "cannot read"),
    ("button.0.colour", "red", "button[0].colour", "unknown key"),
    ("button", [], "button", "at least one [[button]]"),
    ("location.source", "astrology", "location.source", '"nmea", "gpsd"'),
    ("location.lat", None, "location.lat", "needed for source 'fixed'"),
    ("location.lat", 91, "location.lat", "-90 to 90"),
    ("channel.0.type", "pigeon", "channel[0].type", "one of dc09, https, sms"),
    ("channel.0.url", "http://c.example", "channel[0].url", "https:// base URL"),
    ("channel.0.deadline_s", 0, "channel[0].deadline_s", "0.5 to 60"),
    ("channel", None, "channel", "at least one [[channel]]"),
    ("tracking", {"interval_s": 0}, "tracking.interval_s", "1 to 600"),
    ("dispatch", {"fallback_after_s": "soon"}, "dispatch.fallback_after_s", "1 to 60"),
    ("extra", {}, "extra", "unknown section"),
])
def test_errors_name_the_key_and_what_is_expected(tmp_path: Path, path: str, value: Any,
                                                   key: str, words: str) -> None:
    for name, content in (("b.key", KEY_HEX), ("t", "token")):
        (tmp_path / name).write_text(content)
        os.chmod(tmp_path / name, 0o600)
    data = _with(path, value) if path in BASE or "." in path else {**BASE, path: value}
    with pytest.raises(ConfigError) as err:
        config.parse(data, "host.toml", tmp_path)
    assert err.value.key == key and words in err.value.expected, str(err.value)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "b.key").write_text(KEY_HEX)
    os.chmod(tmp_path / "b.key", 0o644)
    (tmp_path / "t").write_text("token")
    os.chmod(tmp_path / "t", 0o600)
    with pytest.raises(ConfigError) as err:
        config.parse(BASE, "host.toml", tmp_path)
    assert err.value.key == "button[0].key_file" and "chmod 600" in err.value.expected


def test_a_key_file_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    (tmp_path / "b.key").write_text("abcd")
    os.chmod(tmp_path / "b.key", 0o600)
    with pytest.raises(ConfigError) as err:
        config.parse(BASE, "host.toml", tmp_path)
    assert "64 hex digits" in err.value.expected


def test_toml_syntax_errors_say_where(tmp_path: Path) -> None:
    conf = tmp_path / "host.toml"
    conf.write_text("[host\nstate_dir = 1\n")
    with pytest.raises(ConfigError) as err:
        config.load(conf)
    assert err.value.key == "(syntax)" and "line 1" in err.value.expected


SMS_CHANNEL = {"type": "sms", "modem": "/dev/ttyUSB2", "number": "+32470999112"}


def _voice(tmp_path: Path, voice: Any) -> config.HostConfig:
    for name, content in (("b.key", KEY_HEX), ("t", "token")):
        (tmp_path / name).write_text(content)
        os.chmod(tmp_path / name, 0o600)
    channel = dict(SMS_CHANNEL) if voice is None else {**SMS_CHANNEL, "voice": voice}
    return config.parse({**BASE, "channel": [BASE["channel"][0], channel]}, "host.toml",
                        tmp_path)


def test_an_sms_channel_without_a_voice_block_places_no_call(tmp_path: Path) -> None:
    assert _voice(tmp_path, None).channels[1]["voice"] is None


def test_the_voice_block_defaults(tmp_path: Path) -> None:
    v = _voice(tmp_path, {"number": "112"}).channels[1]["voice"]
    assert v == {"number": "112", "call": False, "redial_for_s": 1800.0,
                 "redial_first_s": 5.0, "redial_max_s": 60.0, "poll_s": 1.0}


@pytest.mark.parametrize("name, low, high", [("redial_for_s", 0, 7200),
                                             ("redial_first_s", 2, 60),
                                             ("redial_max_s", 5, 600), ("poll_s", 0.5, 10)])
def test_voice_ranges_are_inclusive_documented_and_clear(tmp_path: Path, name: str,
                                                         low: float, high: float) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert any(f"`{name}`" in line and f"{low:g}–{high:g}" in line for line in doc.splitlines())
    base = {"number": "+4930112110", "call": True, "redial_first_s": 2, "redial_max_s": 600}
    for good in (low, high):
        assert _voice(tmp_path, {**base, name: good}).channels[1]["voice"][name] == good
    for bad in (low - 0.1, high + 0.1, True, "5", float("nan")):
        with pytest.raises(ConfigError) as err:
            _voice(tmp_path, {**base, name: bad})
        assert err.value.key == f"channel[1].voice.{name}"
        assert f"{low:g} to {high:g}" in err.value.expected, str(err.value)


@pytest.mark.parametrize("voice, key, words", [
    ({"call": True}, "channel[1].voice.number", "needed when call = true"),
    ({"number": "12"}, "channel[1].voice.number", "3 to 20 digits"),
    ({"number": "+" + "1" * 21}, "channel[1].voice.number", "3 to 20 digits"),
    ({"number": "+32 470"}, "channel[1].voice.number", "3 to 20 digits"),
    ({"number": "١٢٣"}, "channel[1].voice.number", "3 to 20 digits"),  # not ASCII digits
    ({"number": "112", "call": "yes"}, "channel[1].voice.call", "true or false"),
    ({"number": "112", "redial_first_s": 30, "redial_max_s": 10},
     "channel[1].voice.redial_max_s", "at least redial_first_s"),
    ({"number": "112", "ring": True}, "channel[1].voice.ring", "unknown key"),
    ({"number": "112", "type": "x"}, "channel[1].voice.type", "unknown key"),
    ("+4930112110", "channel[1].voice", "must be a table"),
])
def test_voice_block_errors_name_the_key(tmp_path: Path, voice: Any, key: str,
                                         words: str) -> None:
    with pytest.raises(ConfigError) as err:
        _voice(tmp_path, voice)
    assert err.value.key == key and words in err.value.expected, str(err.value)


def test_only_the_sms_channel_takes_a_voice_block(tmp_path: Path) -> None:
    data = _with("channel.0.voice", {"number": "112"})
    for name, content in (("b.key", KEY_HEX), ("t", "token")):
        (tmp_path / name).write_text(content)
        os.chmod(tmp_path / name, 0o600)
    with pytest.raises(ConfigError) as err:
        config.parse(data, "host.toml", tmp_path)
    assert err.value.key == "channel[0].voice" and "unknown key" in err.value.expected
