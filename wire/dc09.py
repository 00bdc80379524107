"""SIA DC-09 (ANSI/SIA DC-09-2013/2021) codec with SIA-DCS content: framing, CRC, AES, the
extended data that carries the location, the idempotency key and the button's own frame, and
the receiver's ACK / NAK / DUH. The host's Dc09Channel and the centre's Dc09Server share it.

Wire form: <LF><crc><0LLL>"[*]<id>"<seq>R<rcvr>L<line>#<acct>[<data>]<xdata>_<time><CR>;
CRC and length cover the text from the first quote up to (not including) the <CR>.
"""
from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .message import MAX_ACCURACY_M, MAX_ALTITUDE_M, Message, MessageKind, finite
from .errors import Dc09Error
from .protocol import CENTRE_FRAME_LEN

SEQ_MAX = 9999
KEY_LENGTHS = (16, 24, 32)  # AES-128/192/256
TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"
# A receiver accepts a timestamp from 40 s behind to 20 s ahead of its own clock (DC-09 5.5.2).
WINDOW_BEHIND_S = 40.0
WINDOW_AHEAD_S = 20.0
AREA = 1  # the SIA "ri" (area/partition): a button is a one-area system
MAX_BODY = 0xFFF  # the length field is "0" and three hex digits
_PAD_FORBIDDEN = frozenset(b"|[]")  # the standard's pad is any byte but these three


class Token(enum.Enum):
    """The message ids this codec speaks: SIA-DCS events and the receiver's three replies."""

    SIA_DCS = "SIA-DCS"
    ACK = "ACK"
    NAK = "NAK"
    DUH = "DUH"


REPLIES = frozenset({Token.ACK, Token.NAK, Token.DUH})


@dataclass(frozen=True)
class EventCode:
    """How one message kind is reported in SIA-DCS. `update`: the zone field carries the
    tracking update number (>= 1) instead of 0."""

    kind: MessageKind
    code: str
    update: bool = False


EVENT_CODES: tuple[EventCode, ...] = (
    EventCode(MessageKind.ALARM, "PA"),  # panic alarm
    EventCode(MessageKind.TEST, "RX"),  # manual test
    EventCode(MessageKind.LOW_BATTERY, "XT"),  # transmitter battery trouble
    EventCode(MessageKind.BOOT, "RR"),  # power up
    EventCode(MessageKind.HEARTBEAT, "RP"),  # automatic test
    # SIA has no tracking or position code. A location update re-reports the open panic (PA)
    # with its update number as the zone, so a standard centre shows the newest position on the
    # panic it already has open: another alarm code (QA, HA) would open a second incident, a
    # restore (PH, PR) would close this one, and a non-alarm code would file the position in a
    # log the operator does not watch. Our centre tells update from alarm by the zone (and key).
    EventCode(MessageKind.LOCATION, "PA", update=True),
)
# A call event (MessageKind.CALL) has no code here: SIA's codes report alarms and troubles,
# not the state of a voice line, and re-reporting PA for it would show a call step as a new
# position of the panic. DC-09 channels do not take CALL; the HTTPS and SMS channels carry it.
_CODE_OF = {e.kind: e for e in EVENT_CODES}
CARRIED_KINDS = frozenset(_CODE_OF)
_KIND_OF = {(e.code, e.update): e.kind for e in EVENT_CODES}

_HEX_ID = re.compile(r"[0-9A-F]{1,6}")
_ACCOUNT = re.compile(r"[0-9A-F]{3,16}")
_KEY_TEXT = re.compile(r"[!-Z\\^-z{}~]{1,64}")  # printable ASCII without space, [ ] and |


@dataclass(frozen=True)
class Dc09Message:
    """One SIA-DCS event. `key` and `frame` are the outbox message's idempotency key and the
    button's 26-byte tagged frame; lat/lon/alt the position (degrees, metres); `encrypted`
    says how it arrived (encode() encrypts whenever it is given a key)."""

    seq: int
    account: str
    kind: MessageKind
    key: str
    frame: bytes = field(repr=False)
    receiver: str | None = None
    line: str = "0"
    update_no: int = 0
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    accuracy_m: float | None = None
    timestamp: datetime | None = None
    encrypted: bool = False

    def __post_init__(self) -> None:
        check_route(self.seq, self.account, self.receiver, self.line, event=True)
        if not _KEY_TEXT.fullmatch(self.key):
            raise ValueError(f"idempotency key {self.key!r} cannot travel in DC-09 extended data")
        if len(self.frame) != CENTRE_FRAME_LEN:
            raise ValueError(f"a centre frame is {CENTRE_FRAME_LEN} bytes,"
                             f" got {len(self.frame)}")
        tracking = _CODE_OF[self.kind].update
        if not 0 <= self.update_no <= SEQ_MAX or tracking != (self.update_no > 0):
            raise ValueError(f"{self.kind.name} with update number {self.update_no}")
        # A position is whole and finite or absent: never NaN, never beyond the globe.
        if (self.lat is None) != (self.lon is None):
            raise ValueError("a position needs both [X] and [Y]")
        for value, low, high, what in ((self.lat, -90.0, 90.0, "latitude"),
                                       (self.lon, -180.0, 180.0, "longitude"),
                                       (self.alt, -MAX_ALTITUDE_M, MAX_ALTITUDE_M, "altitude"),
                                       (self.accuracy_m, 0.0, MAX_ACCURACY_M, "accuracy")):
            if value is not None:
                finite(value, low, high, what)

    @property
    def code(self) -> str:
        return _CODE_OF[self.kind].code


@dataclass(frozen=True)
class Dc09Reply:
    """A receiver's ACK, NAK or DUH. A NAK names no account (the standard writes "A0") and
    carries the receiver's clock, which the sender adopts before it retries."""

    token: Token
    seq: int
    account: str
    receiver: str | None = None
    line: str = "0"
    timestamp: datetime | None = None
    encrypted: bool = False

    def __post_init__(self) -> None:
        if self.token not in REPLIES:
            raise ValueError(f"{self.token.value} is not a reply")
        check_route(self.seq, self.account, self.receiver, self.line, event=False)


def check_route(seq: int, account: str, receiver: str | None, line: str, event: bool) -> None:
    """Raises ValueError unless these header fields are valid for an event (or a reply)."""
    if not (1 if event else 0) <= seq <= SEQ_MAX:
        raise ValueError(f"sequence number {seq} outside {1 if event else 0}-{SEQ_MAX}")
    if (event or account) and not _ACCOUNT.fullmatch(account):
        raise ValueError(f"account {account!r} is not 3-16 upper-case hex digits")
    for name, value in (("receiver", receiver), ("line", line)):
        if value is not None and not _HEX_ID.fullmatch(value):
            raise ValueError(f"{name} {value!r} is not 1-6 upper-case hex digits")


def next_seq(seq: int) -> int:
    """The sequence number after `seq`: 0001-9999, then 0001 again (0000 is the NAK's)."""
    return seq % SEQ_MAX + 1


def account_for(button_id: int) -> str:
    """The default account: the button id as 8 upper-case hex digits."""
    return f"{button_id:08X}"


def stamp(unix_time: float) -> datetime:
    """A DC-09 timestamp (UTC, whole seconds) for a Unix time."""
    return datetime.fromtimestamp(int(unix_time), timezone.utc)


def event_for(message: Message, *, seq: int, account: str | None = None,
              receiver: str | None = None, line: str = "0", at: float) -> Dc09Message:
    """The SIA-DCS event for one outbox message, stamped `at` (the sender's corrected clock)."""
    fix = message.fix
    return Dc09Message(
        seq=seq, account=account or account_for(message.button_id), kind=message.kind,
        key=message.key, frame=message.frame, receiver=receiver, line=line,
        update_no=message.update_no if _CODE_OF[message.kind].update else 0,
        lat=fix.lat if fix else None, lon=fix.lon if fix else None,
        alt=fix.altitude_m if fix else None, accuracy_m=fix.accuracy_m if fix else None,
        timestamp=stamp(at))


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The DC-09 CRC: CRC-16/ARC (reflected polynomial 0xA001, initial value 0), a byte at a
    time from a table (bit by bit it cost a receiver most of its time per message)."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _read_degrees(limit: float, negative: str, positive: str) -> Callable[[str], float]:
    # Decimal degrees with a sign, as the standard's examples and other senders write them;
    # a hemisphere letter in front ("E3.71234", "S33.9") is read too.
    shape = re.compile(rf"(?P<hemi>[{negative}{positive}])?(?P<num>[+-]?\d{{1,3}}(?:\.\d+)?)")

    def read(text: str) -> float:
        m = shape.fullmatch(text)
        if m is None or abs(value := float(m["num"])) > limit or (m["hemi"] and value < 0):
            raise ValueError(f"not a coordinate: {text!r}")
        return -value if m["hemi"] == negative else value
    return read


def _read_number(shape: str) -> Callable[[str], float]:
    # Plain decimal only: float() alone would also take "inf", "nan" and "1e999".
    pattern = re.compile(shape, re.ASCII)

    def read(text: str) -> float:
        if not pattern.fullmatch(text):
            raise ValueError(f"not a plain decimal number: {text[:20]!r}")
        return float(text)
    return read


def _read_key(text: str) -> str:
    if not _KEY_TEXT.fullmatch(text):
        raise ValueError(f"not an idempotency key: {text!r}")
    return text


def _read_frame(text: str) -> bytes:
    if not re.fullmatch(rf"[0-9A-Fa-f]{{{2 * CENTRE_FRAME_LEN}}}", text):
        raise ValueError(f"not a {CENTRE_FRAME_LEN}-byte frame in hex")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class _Block:
    """One extended-data block: [<letter><text>] <-> a Dc09Message attribute."""

    letter: str
    attr: str
    write: Callable[[Any], str]
    read: Callable[[str], Any]


# X/Y/Z are the standard's longitude, latitude and altitude (12 characters at most; signed
# decimal degrees, six decimals = 0.1 m). The standard's identifiers are upper-case letters
# (A, C, H-P, R-T, V, X-Z in use); the lower-case "e" (event key) and "f" (button frame) are
# ours (as is "a", the fix's accuracy radius in metres), so no present or future standard
# block collides with them, and receivers that do not
# know them skip them (pysiaalarm does, and still ACKs).
XDATA: tuple[_Block, ...] = (
    _Block("X", "lon", lambda v: f"{v:.6f}", _read_degrees(180.0, "W", "E")),
    _Block("Y", "lat", lambda v: f"{v:.6f}", _read_degrees(90.0, "S", "N")),
    _Block("Z", "alt", lambda v: f"{v:.1f}", _read_number(r"[+-]?\d{1,6}(?:\.\d{1,3})?")),
    # ours: the fix's 68% radius in whole metres (as written; a decimal is read too)
    _Block("a", "accuracy_m", lambda v: f"{v:.0f}", _read_number(r"\d{1,7}(?:\.\d{1,3})?")),
    _Block("e", "key", str, _read_key),
    _Block("f", "frame", lambda v: v.hex().upper(), _read_frame),
)
_BLOCK_OF = {b.letter: b for b in XDATA}
_REQUIRED = ("key", "frame")


def random_pad(n: int) -> bytes:
    """`n` random pad bytes as the standard wants them: any value but "|", "[" and "]"."""
    out = bytearray()
    while len(out) < n:
        out += bytes(b for b in os.urandom(n) if b not in _PAD_FORBIDDEN)
    return bytes(out[:n])


def _aes(key: bytes, data: bytes, raw: bytes, decrypt: bool) -> bytes:
    if len(key) not in KEY_LENGTHS:
        raise Dc09Error("key", raw, f"a {len(key)}-byte key; AES takes 16, 24 or 32")
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))  # DC-09: CBC with a zero IV
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    try:
        return op.update(data) + op.finalize()
    except ValueError as exc:
        raise Dc09Error("ciphertext", raw, str(exc)) from None


def _header(token: Token, encrypted: bool, seq: int, receiver: str | None, line: str,
            account: str) -> str:
    return (f'"{"*" if encrypted else ""}{token.value}"{seq:04d}'
            f'{"" if receiver is None else "R" + receiver}L{line}'
            f'{"#" + account if account else "A0"}[')


def encode(item: Dc09Message | Dc09Reply, key: bytes | None = None,
           pad: Callable[[int], bytes] = random_pad) -> bytes:
    """One framed message, encrypted (`"*..."`) when a key is given. NAKs are never encrypted."""
    when = "" if item.timestamp is None else "_" + item.timestamp.strftime(TIME_FORMAT)
    if isinstance(item, Dc09Message):
        entry = _CODE_OF[item.kind]
        token = Token.SIA_DCS
        data = f"#{item.account}|Nri{AREA}/{entry.code}{item.update_no}"
        xdata = "".join(f"[{b.letter}{b.write(v)}]" for b in XDATA
                        if (v := getattr(item, b.attr)) is not None)
    else:
        token, data, xdata = item.token, "", ""
        if token is Token.NAK:
            key = None
    content = f"{data}]{xdata}{when}".encode("ascii")
    if key is not None:
        plain = b"|" + content
        # The pad makes pad + "|" + data a multiple of 16; a full block when it already is.
        plain = pad(16 - len(plain) % 16) + plain
        content = _aes(key, plain, b"", decrypt=False).hex().upper().encode("ascii")
    body = _header(token, key is not None, item.seq, item.receiver, item.line,
                   item.account).encode("ascii") + content
    if len(body) > MAX_BODY:
        raise Dc09Error("length", body, f"{len(body)} bytes, at most {MAX_BODY}")
    return b"\n" + f"{crc16(body):04X}0{len(body):03X}".encode("ascii") + body + b"\r"


_FRAMING = re.compile(rb"\n(?P<crc>[0-9A-F]{4})0(?P<len>[0-9A-F]{3})(?P<body>.*)\r", re.S)
# Lazy line and late receiver: pysiaalarm answers unparsable input with "NAK"0000L0R0A0[],
# line before receiver, and "A0" (the NAK's account) would otherwise read as line digits.
_HEADER = re.compile(r'"(?P<star>\*)?(?P<token>[A-Z-]+)"(?P<seq>\d{4})'
                     r"(?:R(?P<rcvr>[0-9A-F]{1,6}))?L(?P<line>[0-9A-F]{1,6}?)"
                     r"(?:R(?P<rcvr2>[0-9A-F]{1,6}?))?(?:#(?P<acct>[0-9A-F]{3,16})|A0)?"
                     r"\[(?P<rest>.*)", re.S)
_CONTENT = re.compile(r"(?P<data>[^\[\]]*)\](?P<xdata>(?:\[[^\[\]]*\])*)(?:_(?P<ts>.*))?", re.S)
_TIME = re.compile(r"\d\d:\d\d:\d\d,\d\d-\d\d-\d{4}")
_DATA = re.compile(r"#(?P<acct>[0-9A-F]{3,16})\|N(?:ri(?P<area>\d{1,3})/)?"
                   r"(?P<code>[A-Z]{2})(?P<zone>\d{1,4})?")


def no_keys(account: str) -> bytes | None:
    """key_for for a party without keys: every account is plain."""
    return None


def decode(raw: bytes, key_for: Callable[[str], bytes | None] = no_keys
           ) -> Dc09Message | Dc09Reply:
    """Parses and checks one framed message (CRC, length, structure; decrypts with
    `key_for(account)`); raises Dc09Error whose `reason` names the broken rule. The timestamp
    window is the receiver's business (it needs its own clock)."""
    raw = bytes(raw)
    framing = _FRAMING.fullmatch(raw)
    if framing is None:
        raise Dc09Error("framing", raw, "expected <LF><crc:4 hex><0LLL>...<CR>")
    body = framing["body"]
    if int(framing["len"], 16) != len(body):
        raise Dc09Error("length", raw, f"length field {int(framing['len'], 16)}, body {len(body)}")
    if int(framing["crc"], 16) != crc16(body):
        raise Dc09Error("crc", raw, f"CRC field {framing['crc'].decode()}, body {crc16(body):04X}")
    try:
        head = _HEADER.fullmatch(body.decode("ascii"))
    except UnicodeDecodeError:
        raise Dc09Error("ascii", raw, "non-ASCII bytes") from None
    if head is None:
        raise Dc09Error("header", raw, "no id, sequence, line or account")
    try:
        token = Token(head["token"])
    except ValueError:
        raise Dc09Error("token", raw, f"unsupported message id {head['token']}") from None
    account, encrypted, content = head["acct"] or "", bool(head["star"]), head["rest"]
    if encrypted:
        key = key_for(account)
        if key is None:
            raise Dc09Error("no-key", raw, f"encrypted, and account {account or '-'} has no key")
        content = _decrypt(key, content, raw, lenient=token in REPLIES)
    parts = _CONTENT.fullmatch(content)
    if parts is None:
        raise Dc09Error("content", raw, "no [data] block")
    timestamp = _parse_time(parts["ts"], raw)
    if encrypted and timestamp is None:
        raise Dc09Error("timestamp", raw, "an encrypted message must carry its timestamp")
    route: dict[str, Any] = dict(seq=int(head["seq"]), account=account, line=head["line"],
                                 receiver=head["rcvr"] or head["rcvr2"], timestamp=timestamp,
                                 encrypted=encrypted)
    try:
        if token in REPLIES:
            return Dc09Reply(token=token, **route)
        return Dc09Message(**route, **_event_fields(parts["data"], parts["xdata"], account, raw))
    except ValueError as exc:
        raise Dc09Error("field", raw, str(exc)) from None


def _decrypt(key: bytes, text: str, raw: bytes, lenient: bool) -> str:
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{32})+", text):
        raise Dc09Error("ciphertext", raw, "not whole 16-byte blocks in hex")
    plain = _aes(key, bytes.fromhex(text), raw, decrypt=True)
    end = plain.find(b"|")
    if end < 0 and not lenient:
        raise Dc09Error("pad", raw, "no pad terminator '|': wrong key?")
    # Replies from pysiaalarm pad with "0"s and no "|"; the reply's data is unused, so the
    # pad stays in it rather than being guessed at.
    try:
        return plain[end + 1:].decode("ascii")
    except UnicodeDecodeError:
        raise Dc09Error("decrypt", raw, "not ASCII after the pad: wrong key?") from None


def _parse_time(text: str | None, raw: bytes) -> datetime | None:
    if text is None:
        return None
    try:
        if not _TIME.fullmatch(text):
            raise ValueError(text)
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise Dc09Error("timestamp", raw, f"{text!r} is not HH:MM:SS,MM-DD-YYYY") from None


def _event_fields(data: str, xdata: str, account: str, raw: bytes) -> dict[str, Any]:
    m = _DATA.fullmatch(data)
    if m is None:
        raise Dc09Error("data", raw, f"{data!r} is not #<acct>|Nri<area>/<code><zone>")
    if m["acct"] != account:
        raise Dc09Error("account", raw, f"header account {account}, data account {m['acct']}")
    zone = int(m["zone"] or 0)
    kind = _KIND_OF.get((m["code"], zone > 0))
    if kind is None:
        raise Dc09Error("code", raw, f"event {m['code']} zone {zone} is not one of ours")
    fields: dict[str, Any] = {"kind": kind, "update_no": zone}
    for letter, text in re.findall(r"\[(.)([^\]]*)\]", xdata):
        block = _BLOCK_OF.get(letter)
        if block is None:
            continue  # another sender's block (the standard's or a vendor's): not ours to read
        if block.attr in fields:
            raise Dc09Error("xdata", raw, f"[{letter}] given twice")
        try:
            fields[block.attr] = block.read(text)
        except ValueError as exc:
            raise Dc09Error("xdata", raw, f"[{letter}]: {exc}") from None
    missing = [b.letter for b in XDATA if b.attr in _REQUIRED and b.attr not in fields]
    if missing:
        raise Dc09Error("xdata", raw, f"no {', '.join(f'[{x}]' for x in missing)} block")
    return fields


def within_window(timestamp: datetime, now: float) -> bool:
    """Whether a message timestamp is inside the receiver's window around `now` (Unix time)."""
    return -WINDOW_BEHIND_S <= timestamp.timestamp() - now <= WINDOW_AHEAD_S
