"""The host's one configuration file (TOML, docs/configuration.md): its buttons, location
source, dispatch channels with their addresses, keys and deadlines, and tracking. Checked by
tables of fields; every mistake is a ConfigError naming the key and what it must be.
Keys and tokens are read from files (mode 0600), never written in the configuration itself.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Field:
    """One key of a section: what it must be, and its default (None: required)."""

    expected: str
    check: Check
    default: Any = None
    required: bool = False


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_num(lo: float, hi: float) -> Check:
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi


def _is_port(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_argv(v: Any) -> bool:
    # No shell ever sees it, so any characters may stand in an argument but a NUL.
    return isinstance(v, list) and bool(v) and len(v) <= 64 and all(
        isinstance(a, str) and a and "\0" not in a for a in v)


def _one_of(*names: str) -> Check:
    return lambda v: v in names


def _is_button_id(v: Any) -> bool:
    try:
        n = int(v, 0) if isinstance(v, str) else v
    except ValueError:
        return False
    return isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2 ** 32


def _is_address(v: Any) -> bool:
    parts = v.split(":") if isinstance(v, str) else []
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF"
                                                       for c in p) for p in parts)


def _is_adapter(v: Any) -> bool:
    if not _is_str(v):
        return False
    if v.startswith("sim:"):
        host, _, port = v[4:].rpartition(":")
        return bool(host) and port.isdigit() and 0 < int(port) < 65536
    return v.isprintable() and " " not in v


SECTIONS: dict[str, dict[str, Field]] = {
    "host": {
        "state_dir": Field("a folder path", _is_str, required=True),
        "adapter": Field('a Bluetooth adapter such as "hci0", or "sim:HOST:PORT" for the'
                         ' simulator\'s radio', _is_adapter),
    },
    "button": {
        "id": Field("a button id, 1 to 2^32-1 (e.g. 0x12345678)", _is_button_id, required=True),
        "address": Field("a BLE identity address like C0:00:00:00:00:01", _is_address,
                         required=True),
        "key_file": Field("a file holding the 32-byte key as 64 hex digits", _is_str,
                          required=True),
    },
    "location": {
        "source": Field('one of "nmea", "gpsd", "fixed", "sim"',
                        _one_of("nmea", "gpsd", "fixed", "sim"), required=True),
        "url": Field("a pyserial URL such as /dev/ttyUSB0 or socket://host:port", _is_str),
        "baudrate": Field("a baud rate", _is_num(300, 4_000_000), 9600),
        "host": Field("a host name or address", _is_str, "127.0.0.1"),
        "port": Field("a TCP port, 1-65535", _is_port, 2947),
        "lat": Field("a latitude, -90 to 90", _is_num(-90, 90)),
        "lon": Field("a longitude, -180 to 180", _is_num(-180, 180)),
        "accuracy_m": Field("metres, 0 to 100000", _is_num(0, 100_000), 50.0),
        "max_age_s": Field("seconds, 1 to 600", _is_num(1, 600), 10.0),
    },
    "dispatch": {
        "fallback_after_s": Field("seconds, 1 to 60", _is_num(1, 60), 5.0),
        "heartbeat_ttl_s": Field("seconds, 10 to 86400", _is_num(10, 86400), 300.0),
    },
    "tracking": {
        "interval_s": Field("seconds, 1 to 600", _is_num(1, 600), 10.0),
        "window_s": Field("seconds, 0 to 86400", _is_num(0, 86400), 7200.0),
    },
    # The centre's proximity warnings, over the first https channel's URL, token and CA.
    "proximity": {
        "report_position": Field("true or false", _is_bool, True),
        "poll_wait_s": Field("seconds, 1 to 25", _is_num(1, 25), 25),
    },
    # How the victim is warned (also the host's own warnings: low battery, link lost, test).
    "warnings": {
        "hook": Field("the notification program and its arguments as a list of strings,"
                      " like [\"/usr/local/bin/notify\", \"--quiet\"]", _is_argv),
        "hook_timeout_s": Field("seconds, 1 to 120", _is_num(1, 120), 10.0),
        "link_lost_after_s": Field("seconds, 10 to 86400", _is_num(10, 86400), 120.0),
    },
}


def _is_https(v: Any) -> bool:
    return _is_str(v) and v.startswith("https://") and v.isprintable() and " " not in v


def _receiver(v: Any) -> tuple[str, int] | None:
    """("host", port) from "host:port" or "[v6-address]:port"; None if it is neither."""
    if not isinstance(v, str):
        return None
    host, _, port = v.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (host and host.isprintable() and " " not in host and "[" not in host
            and port.isdigit() and _is_port(int(port))):
        return None
    return host, int(port)


def _list_of(each: Check) -> Check:
    # The count and duplicates are checked after, each with its own message.
    return lambda v: isinstance(v, list) and all(each(x) for x in v)


MAX_ADDRESSES = 4  # nodes or receivers of one centre a channel may list
CHANNELS: dict[str, dict[str, Field]] = {
    "dc09": {
        "host": Field("the receiver's host name or address", _is_str),
        "port": Field("a port, 1-65535", _is_port),
        "receivers": Field('a list of 1 to 4 receivers as "host:port" strings, like'
                           ' ["arc1.example:5000", "[2001:db8::1]:5000"]',
                           _list_of(lambda v: _receiver(v) is not None)),
        "transport": Field('"tcp" or "udp"', _one_of("tcp", "udp"), "tcp"),
        "account": Field("a DC-09 account, 3-16 hex digits (default: the button id)", _is_str),
        "receiver": Field("a receiver number, 1-6 hex digits", _is_str, "1"),
        "line": Field("a line prefix, 1-6 hex digits", _is_str, "1"),
        "key_file": Field("a file holding the AES key as 32, 48 or 64 hex digits", _is_str),
        "deadline_s": Field("seconds, 0.5 to 60", _is_num(0.5, 60), 2.0),
    },
    "https": {
        "url": Field("the dispatch API's https:// base URL", _is_https),
        "urls": Field("a list of 1 to 4 https:// base URLs of the same centre's nodes",
                      _list_of(_is_https)),
        "token_file": Field("a file holding the API bearer token", _is_str, required=True),
        "ca_file": Field("a PEM file of the CA that signed the centre (default: system CAs)",
                         _is_str),
        "deadline_s": Field("seconds, 0.5 to 60", _is_num(0.5, 60), 2.0),
    },
    "sms": {
        "modem": Field("the modem's pyserial URL such as /dev/ttyUSB2", _is_str, required=True),
        "baudrate": Field("a baud rate", _is_num(300, 4_000_000), 115200),
        "number": Field("the centre's SMS number in international form, e.g. +32470000000",
                        lambda v: isinstance(v, str) and v.startswith("+")
                        and v[1:].isdigit() and 6 <= len(v) <= 16, required=True),
        "deadline_s": Field("seconds, 5 to 300", _is_num(5, 300), 60.0),
    },
}
# [channel.voice] under an sms channel: the silent call after an alarm (docs/dispatch.md).
VOICE: dict[str, Field] = {
    "number": Field("the centre's voice number, 3 to 20 digits, optionally after +",
                    lambda v: isinstance(v, str) and v.removeprefix("+").isdigit()
                    and v.removeprefix("+").isascii()
                    and 3 <= len(v.removeprefix("+")) <= 20),
    "call": Field("true or false", _is_bool, False),
    "redial_for_s": Field("seconds, 0 to 7200", _is_num(0, 7200), 1800.0),
    "redial_first_s": Field("seconds, 2 to 60", _is_num(2, 60), 5.0),
    "redial_max_s": Field("seconds, 5 to 600", _is_num(5, 600), 60.0),
    "poll_s": Field("seconds, 0.5 to 10", _is_num(0.5, 10), 1.0),
}
_LOCATION_NEEDS = {"nmea": ("url",), "gpsd": (), "fixed": ("lat", "lon"), "sim": ()}


def _section(raw: Any, fields: Mapping[str, Field], where: str, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table", path)
    unknown = sorted(set(raw) - set(fields) - {"type"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "unknown key (see docs/configuration.md)",
                          path)
    out: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if f.required:
                raise ConfigError(key, f"missing; expected {f.expected}", path)
            out[name] = f.default
            continue
        if not f.check(raw[name]):
            raise ConfigError(key, f"expected {f.expected}, got {raw[name]!r}", path)
        out[name] = raw[name]
    return out


@dataclass(frozen=True)
class ButtonConfig:
    button_id: int
    address: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class HostConfig:
    """A checked configuration. Sections are plain dicts of checked values."""

    path: str
    state_dir: Path
    buttons: tuple[ButtonConfig, ...]
    location: dict[str, Any]
    channels: tuple[dict[str, Any], ...]
    dispatch: dict[str, Any]
    tracking: dict[str, Any]
    # None: the platform's default adapter; "hciN" names a BlueZ adapter; "sim:HOST:PORT" the
    # radio of `msa sim board --radio` (practice and tests only).
    adapter: str | None = None
    # [proximity] with the centre's url, token and ca_file added; None: not configured.
    proximity: dict[str, Any] | None = None
    # [warnings] (its defaults when only [proximity] is given); None: neither is configured.
    warnings: dict[str, Any] | None = None


def read_secret(key: str, file: str, base: Path, path: str, hex_lengths: tuple[int, ...] = ()
                ) -> str:
    """A key or token from its own file; hex_lengths, if given, are the allowed digit counts."""
    p = (base / file).expanduser()
    try:
        text = p.read_text().strip()
        mode = p.stat().st_mode & 0o077
    except OSError as exc:
        raise ConfigError(key, f"cannot read {p}: {exc.strerror}", path) from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{p} is not text: it must hold "
                          f"{'hex digits only' if hex_lengths else 'the token'}", path) from None
    if mode and os.name == "posix":
        raise ConfigError(key, f"{p} is readable by others: chmod 600 it", path)
    if hex_lengths:
        # Not bytes.fromhex alone: it skips spaces, so "11 22…" would pass as a shorter key.
        if not all(c in "0123456789abcdefABCDEF" for c in text):
            raise ConfigError(key, f"{p} must hold hex digits only", path)
        if len(text) not in hex_lengths:
            raise ConfigError(key, f"{p} must hold {' or '.join(map(str, hex_lengths))} hex"
                              " digits", path)
    elif not text:
        raise ConfigError(key, f"{p} is empty", path)
    return text


def _addresses(c: dict[str, Any], where: str, path: str, one: str, many: str,
               norm: Callable[[Any], Any]) -> tuple[Any, ...]:
    """A channel's addresses from its one (`url`; `host` and `port`) or its list of several,
    normalised by norm() so one address written two ways counts as a duplicate."""
    kind = c["type"]
    single = c[one] is not None or (kind == "dc09" and c["port"] is not None)
    if single and c[many] is not None:
        raise ConfigError(f"{where}.{many}", f"either {one} or {many}, not both", path)
    if kind == "dc09" and single:
        for name in ("host", "port"):
            if c[name] is None:
                raise ConfigError(f"{where}.{name}", f"missing; expected"
                                  f" {CHANNELS['dc09'][name].expected}", path)
        return ((c["host"], c["port"]),)
    if single:
        return (norm(c[one]),)
    if c[many] is None:
        raise ConfigError(f"{where}.{one}", f"missing; expected {CHANNELS[kind][one].expected}"
                          f" (or {many}: {CHANNELS[kind][many].expected})", path)
    if not 1 <= len(c[many]) <= MAX_ADDRESSES:
        raise ConfigError(f"{where}.{many}", f"1 to {MAX_ADDRESSES} entries, got"
                          f" {len(c[many])}", path)
    listed = tuple(norm(v) for v in c[many])
    twice = sorted({str(v) for v in c[many] if listed.count(norm(v)) > 1})
    if twice:
        raise ConfigError(f"{where}.{many}", f"each only once: {twice[0]} is listed twice",
                          path)
    return listed


def _voice(raw: Any, where: str, path: str) -> dict[str, Any]:
    v = _section(raw, VOICE, where, path)
    if "type" in raw:
        raise ConfigError(f"{where}.type", "unknown key (see docs/configuration.md)", path)
    if v["call"] and v["number"] is None:
        raise ConfigError(f"{where}.number", f"missing; needed when call = true:"
                          f" {VOICE['number'].expected}", path)
    if v["redial_max_s"] < v["redial_first_s"]:
        raise ConfigError(f"{where}.redial_max_s", f"at least redial_first_s"
                          f" ({v['redial_first_s']:g}), got {v['redial_max_s']!r}", path)
    return v


def parse(data: Mapping[str, Any], path: str = "", base: Path | None = None) -> HostConfig:
    """Checks a parsed TOML document; secrets are read relative to `base`."""
    base = base or Path.cwd()
    known = set(SECTIONS) | {"channel"}
    for name in data:
        if name not in known:
            raise ConfigError(name, "unknown section (see docs/configuration.md)", path)
    host = _section(data.get("host"), SECTIONS["host"], "host", path)
    raw_buttons = data.get("button")
    if not isinstance(raw_buttons, list) or not raw_buttons:
        raise ConfigError("button", "at least one [[button]] table", path)
    buttons = []
    for i, raw in enumerate(raw_buttons):
        b = _section(raw, SECTIONS["button"], f"button[{i}]", path)
        bid = int(b["id"], 0) if isinstance(b["id"], str) else int(b["id"])
        key = read_secret(f"button[{i}].key_file", b["key_file"], base, path, (64,))
        buttons.append(ButtonConfig(bid, b["address"].upper(), bytes.fromhex(key)))
    if len({b.button_id for b in buttons}) != len(buttons):
        raise ConfigError("button", "each button id only once", path)
    location = _section(data.get("location"), SECTIONS["location"], "location", path)
    for need in _LOCATION_NEEDS[location["source"]]:
        if location[need] is None:
            raise ConfigError(f"location.{need}", f"needed for source"
                              f" {location['source']!r}: {SECTIONS['location'][need].expected}",
                              path)
    raw_channels = data.get("channel")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise ConfigError("channel", "at least one [[channel]] table", path)
    channels = []
    for i, raw in enumerate(raw_channels):
        where = f"channel[{i}]"
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in CHANNELS:
            raise ConfigError(f"{where}.type", f"one of {', '.join(sorted(CHANNELS))}", path)
        raw_voice = None
        if kind == "sms" and "voice" in raw:
            raw = {k: v for k, v in raw.items() if k != "voice"}
            raw_voice = raw_channels[i]["voice"]
        c = _section(raw, CHANNELS[kind], where, path)
        c["type"] = kind
        if kind == "sms":
            c["voice"] = None if raw_voice is None else _voice(raw_voice, f"{where}.voice", path)
        if kind == "https":
            c["urls"] = _addresses(c, where, path, "url", "urls", lambda u: u.rstrip("/"))
            c["url"] = c["urls"][0]
        elif kind == "dc09":
            c["receivers"] = _addresses(c, where, path, "host", "receivers", _receiver)
            c["host"], c["port"] = c["receivers"][0]
        if kind == "dc09" and c["key_file"]:
            c["key"] = bytes.fromhex(read_secret(f"{where}.key_file", c["key_file"], base, path,
                                                 (32, 48, 64)))
        if kind == "https":
            c["token"] = read_secret(f"{where}.token_file", c["token_file"], base, path)
            if not c["token"].isascii() or not c["token"].isprintable() or " " in c["token"]:
                # It goes into an HTTP header: a space, a line break or a non-ASCII byte
                # would break the header or smuggle another one.
                raise ConfigError(f"{where}.token_file", "the token must be printable ASCII"
                                  " without spaces", path)
            if c["ca_file"]:
                c["ca_file"] = str((base / c["ca_file"]).expanduser())
        channels.append(c)
    proximity = warnings = None
    if "proximity" in data:
        proximity = _section(data["proximity"], SECTIONS["proximity"], "proximity", path)
        https = [c for c in channels if c["type"] == "https"]
        if not https:
            raise ConfigError("proximity", "needs an https [[channel]]: the centre's warnings"
                              " come over it, with its url, token and CA", path)
        proximity.update(url=https[0]["url"], token=https[0]["token"],
                         ca_file=https[0]["ca_file"])
    if "warnings" in data or proximity is not None:
        warnings = _section(data.get("warnings", {}), SECTIONS["warnings"], "warnings", path)
        if warnings["hook"] is not None:
            # Run by its path, never looked up in PATH: relative to the configuration file.
            program = (base / warnings["hook"][0]).expanduser()
            if not os.access(program, os.X_OK) or not program.is_file():
                raise ConfigError("warnings.hook", f"{program} is not an executable file",
                                  path)
            warnings["hook"] = [str(program), *warnings["hook"][1:]]
    return HostConfig(path=path, state_dir=(base / host["state_dir"]).expanduser(),
                      buttons=tuple(buttons), location=location, channels=tuple(channels),
                      dispatch=_section(data.get("dispatch", {}), SECTIONS["dispatch"],
                                        "dispatch", path),
                      tracking=_section(data.get("tracking", {}), SECTIONS["tracking"],
                                        "tracking", path),
                      adapter=host["adapter"], proximity=proximity, warnings=warnings)


def load(path: Path | str) -> HostConfig:
    """Reads and checks a configuration file; relative paths in it are relative to it."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError("(file)", f"cannot read: {exc.strerror}", str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(syntax)", f"not valid TOML: {exc}", str(p)) from None
    return parse(data, str(p), p.resolve().parent)
