"""Every numeric setting of the host's configuration at the edges of its documented range
(docs/configuration.md's table), and secrets that are empty, not hex, the wrong length or not
text: each accepted value loads, each refused one is a ConfigError naming the key."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest

from msa.host import config
from msa.host.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text()
KEY_HEX = "11" * 32
BASE: dict[str, Any] = {
    "host": {"state_dir": "state"},
    "button": [{"id": "0x0a0b0c0d", "address": "C0:00:00:00:00:01", "key_file": "b.key"}],
    "location": {"source": "fixed", "lat": 51.0, "lon": 3.7},
    "channel": [{"type": "https", "url": "https://c.example/v1", "token_file": "t"},
                {"type": "dc09", "host": "arc.example", "port": 5000},
                {"type": "sms", "modem": "/dev/ttyUSB2", "number": "+32470999112"}],
}
# (where in BASE, key as the error names it, documented low, high)
RANGES = [
    ("location.max_age_s", "location.max_age_s", 1, 600),
    ("location.accuracy_m", "location.accuracy_m", 0, 100_000),
    ("location.lat", "location.lat", -90, 90),
    ("location.lon", "location.lon", -180, 180),
    ("dispatch.fallback_after_s", "dispatch.fallback_after_s", 1, 60),
    ("dispatch.heartbeat_ttl_s", "dispatch.heartbeat_ttl_s", 10, 86_400),
    ("tracking.interval_s", "tracking.interval_s", 1, 600),
    ("tracking.window_s", "tracking.window_s", 0, 86_400),
    ("channel.0.deadline_s", "channel[0].deadline_s", 0.5, 60),
    ("channel.1.deadline_s", "channel[1].deadline_s", 0.5, 60),
    ("channel.1.port", "channel[1].port", 1, 65_535),
    ("channel.2.deadline_s", "channel[2].deadline_s", 5, 300),
]


def secrets_in(tmp_path: Path, key: bytes | str = KEY_HEX, token: bytes | str = "t0ken",
               dc09_key: bytes | str | None = None) -> None:
    for name, content in (("b.key", key), ("t", token), ("d.key", dc09_key)):
        if content is None:
            continue
        p = tmp_path / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        os.chmod(p, 0o600)


def with_value(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    node[parts[-1]] = value
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> config.HostConfig:
    return config.parse(data, "host.toml", tmp_path)


def test_the_ranges_here_are_the_documented_ones() -> None:
    """Each range above stands in docs/configuration.md's table as "low–high" (lat, lon,
    accuracy and ports are worded there, not written as a range)."""
    worded = ("lat", "lon", "accuracy_m", "port")
    for path, _key, low, high in RANGES:
        name = path.rsplit(".", 1)[1]
        if name in worded:
            continue
        rows = [line for line in DOC.splitlines() if f"`{name}`" in line and "|" in line]
        assert any(f"{low:g}–{high:g}" in r for r in rows), (path, rows)


@pytest.mark.parametrize("path, key, low, high", RANGES, ids=[r[0] for r in RANGES])
def test_each_range_is_inclusive_and_nothing_outside_loads(tmp_path: Path, path: str, key: str,
                                                           low: float, high: float) -> None:
    secrets_in(tmp_path)
    for good in (low, high):
        load(tmp_path, with_value(path, good))
    step = 1 if isinstance(low, int) and isinstance(high, int) else 0.01
    for bad in (low - step, high + step, float("nan"), float("inf"), True, str(low)):
        with pytest.raises(ConfigError) as err:
            load(tmp_path, with_value(path, bad))
        assert err.value.key == key, (bad, str(err.value))


BAD_KEYS: list[tuple[str, bytes | str, str]] = [
    ("empty", "", "hex digits"),
    ("blank", "   \n", "hex digits"),
    ("not hex", "zz" * 32, "hex digits only"),
    ("one digit short", KEY_HEX[:-1], "hex digits"),
    ("one byte long", KEY_HEX + "11", "64 hex digits"),
    ("0x prefix", "0x" + KEY_HEX[2:], "hex digits"),
    ("spaces inside", KEY_HEX[:30] + "  " + KEY_HEX[32:], "hex digits"),
    ("not text", b"\xff" * 64, "hex digits"),
]


@pytest.mark.parametrize("content, words", [(c, w) for _, c, w in BAD_KEYS],
                         ids=[n for n, _, _ in BAD_KEYS])
def test_a_button_key_must_be_64_hex_digits(tmp_path: Path, content: bytes | str,
                                            words: str) -> None:
    secrets_in(tmp_path, key=content)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, BASE)
    assert err.value.key == "button[0].key_file" and words in err.value.expected, str(err.value)


@pytest.mark.parametrize("content, words", [(c, w) for _, c, w in BAD_KEYS],
                         ids=[n for n, _, _ in BAD_KEYS])
def test_a_dc09_key_must_be_32_48_or_64_hex_digits(tmp_path: Path, content: bytes | str,
                                                   words: str) -> None:
    secrets_in(tmp_path, dc09_key=content)
    data = with_value("channel.1.key_file", "d.key")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, data)
    assert err.value.key == "channel[1].key_file", str(err.value)


@pytest.mark.parametrize("good", ["22" * 16, "22" * 24, "22" * 32, ("AB" * 16) + "\n"])
def test_dc09_keys_of_each_aes_size_load(tmp_path: Path, good: str) -> None:
    secrets_in(tmp_path, dc09_key=good)
    c = load(tmp_path, with_value("channel.1.key_file", "d.key"))
    assert c.channels[1]["key"] == bytes.fromhex(good.strip())


@pytest.mark.parametrize("token", ["", " \n", b"\xff\xfe"], ids=["empty", "blank", "not text"])
def test_an_empty_or_unreadable_token_is_refused(tmp_path: Path, token: bytes | str) -> None:
    secrets_in(tmp_path, token=token)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, BASE)
    assert err.value.key == "channel[0].token_file", str(err.value)


def test_the_base_configuration_loads_with_its_key(tmp_path: Path) -> None:
    secrets_in(tmp_path)
    c = load(tmp_path, BASE)
    assert c.buttons[0].key == bytes.fromhex(KEY_HEX) and c.channels[0]["token"] == "t0ken"
