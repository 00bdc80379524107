"""Exact values of the wire codecs where mutation testing found a change that no other test
noticed (docs/testing.md lists them): every field, bound and error message of the MSA1 SMS
form, DC-09, AML and the frame codec."""
from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import replace as dataclass_replace
from dataclasses import replace as dt_replace
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from msa.wire import aml, dc09
from msa.wire import protocol as hp
from msa.wire.errors import AmlError, Dc09Error, FrameError
from msa.wire.message import MessageKind
from msa.wire.msa1 import KIND_LETTERS, MSA1_TAG, Msa1, parse_msa1, render_msa1

KEYS = hp.ButtonKeys.from_master(bytes(range(32)))
CENTRE = hp.CentreKey.from_master(bytes(range(64, 96)))
BID = 0x0BADC0DE
FRAME = hp.centre_frame(hp.encode_frame(KEYS, CENTRE, kind=hp.Kind.ALARM, button_id=BID,
                                        boot_id=3, seq=17, gesture=hp.Gesture.HOLD,
                                        battery_pct=80, age_ms=120))


# --- MSA1 ------------------------------------------------------------------------------------

def test_msa1_letters_and_tag() -> None:
    assert MSA1_TAG == "MSA1"
    assert KIND_LETTERS == {MessageKind.ALARM: "A", MessageKind.TEST: "T",
                            MessageKind.LOCATION: "L", MessageKind.LOW_BATTERY: "B",
                            MessageKind.CALL: "C"}


@pytest.mark.parametrize("kind,letter,key", [
    (MessageKind.ALARM, "A", "0badc0de-3-17"), (MessageKind.TEST, "T", "0badc0de-3-17"),
    (MessageKind.LOCATION, "L", "0badc0de-3-17/86400"),
    (MessageKind.LOW_BATTERY, "B", "0badc0de-65535-4294967295")])
def test_msa1_renders_exactly_and_parses_back(kind: MessageKind, letter: str, key: str) -> None:
    line = render_msa1(kind, key, FRAME)
    assert line == f"MSA1 {letter} {key} {FRAME.hex()}"
    assert parse_msa1(line) == Msa1(kind=kind, key=key, frame=FRAME)


@pytest.mark.parametrize("kind,key,frame,error", [
    (MessageKind.HEARTBEAT, "0badc0de-3-17", FRAME, "heartbeat messages do not go by SMS"),
    (MessageKind.BOOT, "0badc0de-3-17", FRAME, "boot messages do not go by SMS"),
    (MessageKind.ALARM, "0BADC0DE-3-17", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17/0", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17 ", FRAME, "the key is not an outbox key"),
    (MessageKind.ALARM, "0badc0de-3-17", FRAME[:-1],
     f"a frame is {len(FRAME)} bytes, got {len(FRAME) - 1}"),
    (MessageKind.ALARM, "0badc0de-3-17", FRAME + b"\x00",
     f"a frame is {len(FRAME)} bytes, got {len(FRAME) + 1}"),
])
def test_msa1_render_refuses_with_its_reason(kind: MessageKind, key: str, frame: bytes,
                                             error: str) -> None:
    with pytest.raises(ValueError) as err:
        render_msa1(kind, key, frame)
    assert str(err.value) == error


GOOD = f"MSA1 A 0badc0de-3-17 {FRAME.hex()}"


@pytest.mark.parametrize("text,error", [
    ("MSA2" + GOOD[4:], "not an MSA1 message"),
    (GOOD + " x", "not an MSA1 message"),
    (GOOD.rsplit(" ", 1)[0], "not an MSA1 message"),
    (GOOD.replace(" ", "  ", 1), "not an MSA1 message"),
    (GOOD.replace(" A ", " H "), "unknown kind letter 'H'"),
    (GOOD.replace(" A ", " a "), "unknown kind letter 'a'"),
    (GOOD.replace("0badc0de-3-17", "0badc0de-3"), "malformed key"),
    (GOOD.replace("0badc0de-3-17", "0badc0de-3-17/01"), "malformed key"),
    (GOOD[:-2], f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
    (GOOD + "00", f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
    (GOOD[:-2] + "AB", f"the frame must be {2 * len(FRAME)} lowercase hex digits"),
])
def test_msa1_parse_refuses_with_its_reason(text: str, error: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_msa1(text)
    assert str(err.value) == error


# --- frame codec -----------------------------------------------------------------------------

MASTER = bytes(range(32))


def _frame(**fields: object) -> bytes:
    args: dict[str, object] = {"kind": hp.Kind.ALARM, "button_id": BID, "boot_id": 3, "seq": 17,
                               "gesture": hp.Gesture.HOLD, "battery_pct": 80, "age_ms": 120}
    args.update(fields)
    return hp.encode_frame(KEYS, CENTRE, **args)  # type: ignore[arg-type]


def _retag(body: bytes) -> bytes:
    """A frame with valid tags around any 18-byte body (what a button with the key could send)."""
    return body + hp.frame_tag(KEYS, body) + hp.centre_tag(CENTRE, body)


def _rejected(call: object, *args: object) -> tuple[str, str]:
    with pytest.raises(FrameError) as err:
        call(*args)  # type: ignore[operator]
    return err.value.reason, err.value.detail


def test_decoded_frames_carry_both_tags_as_received() -> None:
    raw = _frame()
    for frame in (hp.decode(raw), hp.verify(raw, KEYS)):
        assert frame.version == hp.VERSION == 2
        assert frame.tag == raw[18:26] and frame.centre_tag == raw[26:34]
        assert frame.raw == raw[:18] + raw[26:34] == hp.centre_frame(raw)
    centre = hp.verify_centre(hp.centre_frame(raw), CENTRE)
    assert centre.version == 2 and centre.tag == b"" and centre.centre_tag == raw[26:34]
    assert centre.raw == hp.centre_frame(raw)


def test_envelope_and_field_errors_say_what_they_saw() -> None:
    raw = _frame()
    assert _rejected(hp.decode, raw[:-1]) == ("length", "33 bytes, expected 34")
    assert _rejected(hp.verify_centre, raw, CENTRE) == ("length", "34 bytes, expected 26")
    assert _rejected(hp.verify, bytes([1]) + raw[1:], KEYS) == ("downgrade", "protocol version 1")
    assert _rejected(hp.verify, bytes([3]) + raw[1:], KEYS) == ("version", "protocol version 3")
    body = bytearray(raw[:18])
    body[1] = 9
    assert _rejected(hp.verify, _retag(bytes(body)), KEYS) == ("field", "9 is not a valid Kind")
    body = bytearray(raw[:18])
    body[12] = 7
    assert _rejected(hp.verify, _retag(bytes(body)), KEYS) == ("field",
                                                               "7 is not a valid Gesture")
    for pct, ok in ((100, True), (101, False), (254, False), (255, True)):
        body = bytearray(raw[:18])
        body[13] = pct
        if ok:
            got = hp.verify(_retag(bytes(body)), KEYS).battery_pct
            assert got == (None if pct == 255 else pct)
        else:
            assert _rejected(hp.verify, _retag(bytes(body)), KEYS) == ("field",
                                                                       f"battery {pct}%")


def test_key_lengths_are_checked_with_a_clear_message() -> None:
    for make, what in ((hp.ButtonKeys.from_master, "button"),
                       (hp.CentreKey.from_master, "centre")):
        with pytest.raises(ValueError) as err:
            make(bytes(31))
        assert str(err.value) == f"a {what} key is 32 bytes, got 31"


def test_purpose_keys_and_gatt_uuids_follow_the_document() -> None:
    """Computed here from docs/protocol.md with the standard library alone."""
    def mac(label: bytes) -> bytes:
        return hmac.new(MASTER, label, hashlib.sha256).digest()

    def derived(label: bytes) -> str:
        raw = bytearray(mac(label)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return str(uuid.UUID(bytes=bytes(raw)))

    keys = hp.ButtonKeys.from_master(MASTER)
    assert keys.frame == mac(b"msa1 frame") and keys.command == mac(b"msa1 cmd")
    assert keys.advert == mac(b"msa1 adv")[:16]
    assert keys.gatt == hp.GattUuids(*(derived(b"msa1 uuid" + bytes((i,))) for i in range(5)))
    assert hp.CentreKey.from_master(MASTER).tag == mac(b"msa2 centre")
    for text in (keys.gatt.service, keys.gatt.event, keys.gatt.status, keys.gatt.control,
                 keys.gatt.info):
        u = uuid.UUID(text)
        assert u.version == 4 and u.variant == uuid.RFC_4122
    assert len({keys.gatt.service, keys.gatt.event, keys.gatt.status, keys.gatt.control,
                keys.gatt.info}) == 5


def test_commands_and_bursts_for_button_ids_above_two_to_the_31() -> None:
    top = 0xFFFFFFFF
    cmd = hp.encode_command(KEYS, top, hp.Op.ACK, 5)
    body = cmd[:10]
    want = hmac.new(KEYS.command, bytes.fromhex("ffffffff") + body, hashlib.sha256).digest()
    assert cmd[10:] == want[:8]
    raw = _frame(button_id=top)
    assert hp.open_burst(hp.seal_burst(KEYS, raw), [(top, KEYS)]).button_id == top


def test_command_nonce_errors_say_what_the_op_takes() -> None:
    for op, nonce, text in ((hp.Op.TEST, b"", "TEST takes an 8-byte nonce"),
                            (hp.Op.TIME, b"1234567", "TIME takes an 8-byte nonce"),
                            (hp.Op.ACK, b"12345678", "ACK takes no nonce")):
        with pytest.raises(ValueError) as err:
            hp.encode_command(KEYS, BID, op, 1, nonce=nonce)
        assert str(err.value) == text


def test_burst_errors_carry_reason_payload_and_detail() -> None:
    sealed = hp.seal_burst(KEYS, _frame())
    with pytest.raises(FrameError) as err:
        hp.open_burst(sealed[:-1], [(BID, KEYS)])
    assert (err.value.reason, err.value.data, err.value.detail) == (
        "length", sealed[:-1], "advert payload of 26 bytes")
    with pytest.raises(FrameError) as err:
        hp.open_burst(sealed, [(BID + 1, KEYS), (BID, hp.ButtonKeys.from_master(bytes(32)))])
    assert (err.value.reason, err.value.data, err.value.detail) == (
        "tag", sealed, "no known button sealed this advert")
    opened = hp.open_burst(sealed, [(BID, KEYS)])
    assert opened.tag == _frame()[18:24] and opened.centre_tag == _frame()[26:34]


# --- AML -------------------------------------------------------------------------------------

GNSS_BODY = ('A"ML=1;lt=+55.74297;lg=-4.26880;rd=10;top=20130717175329;lc=95;pm=G;'
             'si=234302543446355;ei=356708041746734;mcc=234;mnc=30;ml=127')


def _with_ml(head: str) -> str:
    """A body with a correct ml, computed here by trying every length."""
    return next(f"{head};ml={n}" for n in range(len(head), len(head) + 10)
                if len(f"{head};ml={n}") == n)


def _swap(attr: str, value: str) -> str:
    """GNSS_BODY with one attribute's value replaced and ml made right again."""
    parts = GNSS_BODY.split(";")[:-1]
    parts = [f"{attr}={value}" if p.startswith(attr + "=") else p for p in parts]
    return _with_ml(";".join(parts))


@pytest.mark.parametrize("body,field,detail", [
    ('A"ML=2' + GNSS_BODY[6:], "header", 'must start with A"ML=1'),
    (GNSS_BODY.replace(";mnc=30", ""), "ml", "10 attributes, expected 11"),
    (GNSS_BODY.replace("lc=95", "lc=95;pm=G"), "ml", "12 attributes, expected 11"),
    (GNSS_BODY.replace("rd=10", "rx=10"), "rd", "expected attribute rd here, found 'rx'"),
    (GNSS_BODY.replace("rd=10", "rd10"), "rd", "expected attribute rd here, found 'rd10'"),
    (_swap("lt", "+55.7=4297"), "lt", "must be signed degrees with 5 decimals"),
    (_swap("rd", "1.5"), "rd", "must be whole metres or N"),
    (_swap("top", "20131317175329"), "top", "not a calendar date and time"),
    (_swap("pm", "X"), "pm", "must be one of G, W, C, N"),
    (_swap("lc", "\u0669\u0665"), "lc", "must be a percentage"),  # Arabic-Indic 95
    (GNSS_BODY.replace("ml=127", "mx=127"), "ml", "the last attribute must be ml=<length>"),
    (GNSS_BODY.replace("ml=127", "ml127"), "ml", "the last attribute must be ml=<length>"),
    (GNSS_BODY.replace("ml=127", "ml=1270"), "ml", "the last attribute must be ml=<length>"),
    (GNSS_BODY.replace("ml=127", "ml=126"), "ml", "says 126 characters, the message has 127"),
    (_swap("lt", "+90.00001"), "lt", "latitude beyond +-90 degrees"),
    (_swap("lt", "-90.00001"), "lt", "latitude beyond +-90 degrees"),
    (_swap("lg", "+180.00001"), "lg", "longitude beyond +-180 degrees"),
    (_swap("lg", "-180.00001"), "lg", "longitude beyond +-180 degrees"),
    (_swap("lc", "101"), "lc", "confidence above 100%"),
    (_swap("rd", "N"), "rd", "rd=N goes with pm=N, and only with it"),
    (_swap("pm", "N"), "rd", "rd=N goes with pm=N, and only with it"),
])
def test_aml_parse_names_the_attribute_and_says_what_is_wrong(body: str, field: str,
                                                              detail: str) -> None:
    with pytest.raises(AmlError) as err:
        aml.parse(body)
    assert (err.value.field, err.value.detail, err.value.body) == (field, detail, body)


def test_aml_no_location_form_rules_name_their_attribute() -> None:
    nothing = aml.build(None, now=1_700_000_000)
    for body, field, detail in (
            (nothing.replace("lt=+00.00000", "lt=+01.00000"), "lt",
             "pm=N carries lt=+00.00000 and lg=+000.00000"),
            (nothing.replace("lg=+000.00000", "lg=+000.00001"), "lt",
             "pm=N carries lt=+00.00000 and lg=+000.00000"),
            (_with_ml(nothing.rsplit(";", 1)[0].replace("lc=0", "lc=5")), "lc",
             "pm=N carries lc=0")):
        with pytest.raises(AmlError) as err:
            aml.parse(body)
        assert (err.value.field, err.value.detail) == (field, detail)


def test_aml_bounds_themselves_are_accepted() -> None:
    for attr, value, got in (("lt", "+90.00000", 90.0), ("lt", "-90.00000", -90.0),
                             ("lg", "+180.00000", 180.0), ("lg", "-180.00000", -180.0),
                             ("lc", "100", 100)):
        report = aml.parse(_swap(attr, value))
        assert getattr(report, {"lt": "lat", "lg": "lon", "lc": "confidence"}[attr]) == got


def test_aml_one_sms_is_160_characters_and_no_more() -> None:
    report = aml.parse(GNSS_BODY)
    base = len(aml.render(report))
    fits = dt_replace(report, imsi=report.imsi + "9" * (160 - base))
    assert len(aml.render(fits)) == 160
    over = dt_replace(report, imsi=report.imsi + "9" * (161 - base))
    with pytest.raises(AmlError) as err:
        aml.render(over)
    body = err.value.body
    assert len(body) == 161 and body.endswith(";ml=161")
    assert (err.value.field, err.value.detail) == ("ml", "161 characters, more than one SMS (160)")


def test_aml_times_are_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    try:
        body = aml.build(None, now=1_700_000_000)
        assert ";top=20231114221320;" in body
        assert aml.parse(body).time.utcoffset() is not None
    finally:
        monkeypatch.undo()
        time.tzset()


# --- DC-09 -----------------------------------------------------------------------------------

ACC = "0BADC0DE"
AES_KEY = bytes(range(16))
WHEN = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)


def _event(**fields: object) -> dc09.Dc09Message:
    args: dict[str, object] = {"seq": 1, "account": ACC, "kind": MessageKind.ALARM,
                               "key": "0badc0de-3-17", "frame": FRAME, "timestamp": WHEN}
    args.update(fields)
    return dc09.Dc09Message(**args)  # type: ignore[arg-type]


def _framed(body: str | bytes) -> bytes:
    data = body.encode("ascii") if isinstance(body, str) else body
    return b"\n" + f"{dc09.crc16(data):04X}0{len(data):03X}".encode() + data + b"\r"


def _plain(content: str, token: str = "SIA-DCS", head: str = f"0001L0#{ACC}") -> bytes:
    return _framed(f'"{token}"{head}[{content}')


def _encrypted(plain: bytes, key: bytes = AES_KEY, token: str = "SIA-DCS") -> bytes:
    """A message whose plaintext (pad included) is exactly `plain`, encrypted as DC-09 says."""
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    hexed = (enc.update(plain) + enc.finalize()).hex().upper()
    return _framed(f'"*{token}"0001L0#{ACC}[{hexed}')


GOOD_DATA = f"#{ACC}|Nri1/PA0][e0badc0de-3-17][f{FRAME.hex().upper()}]_12:00:00,01-02-2026"


def _dc09_rejected(raw: bytes, key_for: object = dc09.no_keys) -> tuple[str, str]:
    with pytest.raises(Dc09Error) as err:
        dc09.decode(raw, key_for)  # type: ignore[arg-type]
    assert err.value.data == raw
    return err.value.reason, err.value.detail


def test_dc09_good_message_and_its_variants_decode() -> None:
    got = dc09.decode(_plain(GOOD_DATA))
    assert isinstance(got, dc09.Dc09Message)
    assert (got.kind, got.update_no, got.key, got.frame, got.timestamp) == (
        MessageKind.ALARM, 0, "0badc0de-3-17", FRAME, WHEN)
    # no zone is zone 0; another sender's block before ours is skipped, not the end
    other = GOOD_DATA.replace("/PA0]", "/PA][Q1234]")
    assert dc09.decode(_plain(other)).kind is MessageKind.ALARM  # type: ignore[union-attr]


@pytest.mark.parametrize("raw,reason,detail", [
    (b"junk", "framing", "expected <LF><crc:4 hex><0LLL>...<CR>"),
    (_plain(GOOD_DATA)[:5] + b"0001" + _plain(GOOD_DATA)[9:], "length",
     f"length field 1, body {len(_plain(GOOD_DATA)) - 10}"),
    (_plain(GOOD_DATA)[:5] + b"001A" + _plain(GOOD_DATA)[9:], "length",
     f"length field 26, body {len(_plain(GOOD_DATA)) - 10}"),
    (b"\n0000" + _plain(GOOD_DATA)[5:], "crc",
     f"CRC field 0000, body {_plain(GOOD_DATA)[1:5].decode()}"),
    (_framed(b'"SIA-DCS"0001L0#ABC[\xff]'), "ascii", "non-ASCII bytes"),
    (_framed("garbage"), "header", "no id, sequence, line or account"),
    (_framed(f'"FOO"0001L0#{ACC}[]'), "token", "unsupported message id FOO"),
    (_framed(f'"*SIA-DCS"0001L0#{ACC}[00]'), "no-key", f"encrypted, and account {ACC} has no key"),
    (_framed('"*ACK"0001L0[00]'), "no-key", "encrypted, and account - has no key"),
    (_plain("nothing"), "content", "no [data] block"),
    (_plain(GOOD_DATA.replace("12:00:00", "25:00:00")), "timestamp",
     "'25:00:00,01-02-2026' is not HH:MM:SS,MM-DD-YYYY"),
    (_plain(GOOD_DATA.replace("_12:00:00,", "_12:00,")), "timestamp",
     "'12:00,01-02-2026' is not HH:MM:SS,MM-DD-YYYY"),
    (_plain(GOOD_DATA, head=f"0000L0#{ACC}"), "field", "sequence number 0 outside 1-9999"),
    (_plain("garbage]"), "data", "'garbage' is not #<acct>|Nri<area>/<code><zone>"),
    (_plain(GOOD_DATA.replace(f"#{ACC}|", "#0BADC0DF|")), "account",
     f"header account {ACC}, data account 0BADC0DF"),
    (_plain(GOOD_DATA.replace("/PA0", "/ZZ0")), "code", "event ZZ zone 0 is not one of ours"),
    (_plain(GOOD_DATA.replace("/PA0", "/RX3")), "code", "event RX zone 3 is not one of ours"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "[e0badc0de-3-17][e1]")), "xdata",
     "[e] given twice"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "[Xabc]")), "xdata",
     "[X]: not a coordinate: 'abc'"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "[e]")), "xdata",
     "[e]: not an idempotency key: ''"),
    (_plain(GOOD_DATA.replace(FRAME.hex().upper(), "ZZ")), "xdata",
     "[f]: not a 26-byte frame in hex"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "[Z1e999]")), "xdata",
     "[Z]: not a plain decimal number: '1e999'"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "[a" + "1" * 30 + "]")), "xdata",
     "[a]: not a plain decimal number: '11111111111111111111'"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "")), "xdata", "no [e] block"),
    (_plain(GOOD_DATA.replace("[e0badc0de-3-17]", "").replace(f"[f{FRAME.hex().upper()}]", "")),
     "xdata", "no [e], [f] block"),
])
def test_dc09_decode_says_which_rule_broke_and_what_it_saw(raw: bytes, reason: str,
                                                           detail: str) -> None:
    assert _dc09_rejected(raw) == (reason, detail)


def test_dc09_decryption_errors_name_their_cause() -> None:
    def key(account: str) -> bytes | None:
        return AES_KEY if account == ACC else None

    body = b"|" + GOOD_DATA.encode()
    padded = b"0" * (16 - len(body) % 16) + body
    assert isinstance(dc09.decode(_encrypted(padded), key), dc09.Dc09Message)
    # a plaintext whose pad terminator is its very first byte (no pad at all) is fine too
    filler = next(n for n in range(1, 17) if (len(GOOD_DATA) + 1 + n) % 16 == 0)
    exact = b"|" + GOOD_DATA.replace("0badc0de-3-17", "k" * (13 + filler)).encode()
    assert len(exact) % 16 == 0
    got = dc09.decode(_encrypted(exact), key)
    assert isinstance(got, dc09.Dc09Message) and got.key == "k" * (13 + filler)
    lower = _encrypted(padded).decode("ascii")
    head, _, hexed = lower.partition("[")
    lowered = _framed(head[5 + 4:] .encode() + b"[" + hexed[:-1].lower().encode())
    assert isinstance(dc09.decode(lowered, key), dc09.Dc09Message)
    assert _dc09_rejected(_framed(f'"*SIA-DCS"0001L0#{ACC}[0123'), key) == (
        "ciphertext", "not whole 16-byte blocks in hex")
    assert _dc09_rejected(_encrypted(b"0" * 32), key) == (
        "pad", "no pad terminator '|': wrong key?")
    assert _dc09_rejected(_encrypted(b"0" * 15 + b"|" + b"\xff" * 16), key) == (
        "decrypt", "not ASCII after the pad: wrong key?")
    assert _dc09_rejected(_encrypted(padded), lambda a: bytes(10)) == (
        "key", "a 10-byte key; AES takes 16, 24 or 32")
    # a reply may come without a pad terminator (pysiaalarm's): its data is not read
    reply = _encrypted(b"0" * 11 + b"]_12:00:00,01-02-2026", token="ACK")
    got = dc09.decode(reply, key)
    assert isinstance(got, dc09.Dc09Reply) and got.token is dc09.Token.ACK
    assert _dc09_rejected(_encrypted(b"0" * 30 + b"|]", token="SIA-DCS"), key) == (
        "timestamp", "an encrypted message must carry its timestamp")


def test_dc09_encode_round_trips_without_a_timestamp_and_refuses_a_bad_key() -> None:
    plain = _event(timestamp=None)
    raw = dc09.encode(plain)
    assert b"_" not in raw.split(b"]", 1)[1]
    assert dc09.decode(raw) == plain
    with pytest.raises(Dc09Error) as err:
        dc09.encode(_event(), key=bytes(10))
    assert (err.value.reason, err.value.detail) == ("key", "a 10-byte key; AES takes 16, 24 or 32")


@pytest.mark.parametrize("fields,error", [
    ({"seq": 0}, "sequence number 0 outside 1-9999"),
    ({"seq": 10000}, "sequence number 10000 outside 1-9999"),
    ({"account": "abc"}, "account 'abc' is not 3-16 upper-case hex digits"),
    ({"receiver": "xyz"}, "receiver 'xyz' is not 1-6 upper-case hex digits"),
    ({"line": "1234567"}, "line '1234567' is not 1-6 upper-case hex digits"),
    ({"key": "has space"}, "idempotency key 'has space' cannot travel in DC-09 extended data"),
    ({"frame": FRAME[:-1]}, "a centre frame is 26 bytes, got 25"),
    ({"update_no": 1}, "ALARM with update number 1"),
    ({"kind": MessageKind.LOCATION}, "LOCATION with update number 0"),
    ({"kind": MessageKind.LOCATION, "update_no": 10000}, "LOCATION with update number 10000"),
    ({"lat": 1.0}, "a position needs both [X] and [Y]"),
    ({"lat": 90.5, "lon": 0.0}, "latitude must be a finite number from -90 to 90"),
    ({"lat": -90.5, "lon": 0.0}, "latitude must be a finite number from -90 to 90"),
    ({"lat": 0.0, "lon": 180.5}, "longitude must be a finite number from -180 to 180"),
    ({"lat": 0.0, "lon": -180.5}, "longitude must be a finite number from -180 to 180"),
    ({"alt": 1e9}, "altitude must be a finite number from -100000 to 100000"),
    ({"accuracy_m": -0.5}, "accuracy must be a finite number from 0 to 1e+07"),
])
def test_dc09_events_refuse_bad_fields_with_their_reason(fields: dict[str, object],
                                                         error: str) -> None:
    with pytest.raises(ValueError) as err:
        _event(**fields)
    assert str(err.value) == error


def test_dc09_field_bounds_themselves_are_accepted() -> None:
    assert _event(kind=MessageKind.LOCATION, update_no=9999).update_no == 9999
    assert _event(accuracy_m=0.5).accuracy_m == 0.5
    assert _event(seq=9999, lat=90.0, lon=-180.0).lat == 90.0
    assert _event(lat=-90.0, lon=180.0).lat == -90.0


@pytest.mark.parametrize("fields,error", [
    ({"token": dc09.Token.SIA_DCS}, "SIA-DCS is not a reply"),
    ({"seq": 10000}, "sequence number 10000 outside 0-9999"),
    ({"account": "xyz"}, "account 'xyz' is not 3-16 upper-case hex digits"),
    ({"receiver": "xyz"}, "receiver 'xyz' is not 1-6 upper-case hex digits"),
    ({"line": "xyz"}, "line 'xyz' is not 1-6 upper-case hex digits"),
])
def test_dc09_replies_refuse_bad_fields_with_their_reason(fields: dict[str, object],
                                                          error: str) -> None:
    args: dict[str, object] = {"token": dc09.Token.ACK, "seq": 1, "account": ACC}
    args.update(fields)
    with pytest.raises(ValueError) as err:
        dc09.Dc09Reply(**args)  # type: ignore[arg-type]
    assert str(err.value) == error


def test_dc09_replies_may_have_no_account_and_sequence_zero() -> None:
    nak = dc09.Dc09Reply(token=dc09.Token.NAK, seq=0, account="")
    assert nak.account == "" and nak.seq == 0


@pytest.mark.parametrize("block,attr,value", [
    ("XW3.5", "lon", -3.5), ("XE3.5", "lon", 3.5), ("X-3.5", "lon", -3.5),
    ("XW0", "lon", 0.0), ("XW0.5", "lon", -0.5), ("X180", "lon", 180.0),
    ("YS33.9", "lat", -33.9), ("YN33.9", "lat", 33.9), ("Y-90", "lat", -90.0),
    ("Z-12.5", "alt", -12.5), ("a7.25", "accuracy_m", 7.25),
])
def test_dc09_coordinates_read_with_and_without_a_hemisphere(block: str, attr: str,
                                                             value: float) -> None:
    other = {"lon": "X1.0", "lat": "Y1.0"}
    extra = "".join(f"[{v}]" for k, v in other.items() if k != attr and attr in other)
    data = GOOD_DATA.replace("[e0badc0de-3-17]", f"[{block}]{extra}[e0badc0de-3-17]")
    got = dc09.decode(_plain(data))
    assert getattr(got, attr) == value


@pytest.mark.parametrize("block", ["XN3.5", "YW3.5", "XW-3.5", "X180.000001", "Y90.1",
                                   "YS-1", "X1e2", "Zinf", "a-1"])
def test_dc09_coordinates_out_of_shape_or_range_are_refused(block: str) -> None:
    other = "[Y1.0]" if block[0] == "X" else "[X1.0]" if block[0] == "Y" else ""
    data = GOOD_DATA.replace("[e0badc0de-3-17]", f"[{block}]{other}[e0badc0de-3-17]")
    reason, detail = _dc09_rejected(_plain(data))
    assert reason == "xdata" and detail.startswith(f"[{block[0]}]: not a ")


def test_dc09_event_for_carries_every_field_of_the_message() -> None:
    from msa.wire.message import Fix, FixQuality, Message

    fix = Fix(51.0, 3.7, 8.4, 1_700_000_000.0, FixQuality.GNSS, "gnss", 12.5)
    m = Message(key="0badc0de-3-17", kind=MessageKind.ALARM, button_id=BID, frame=FRAME,
                created_at=1.0, fix=fix, update_no=5)
    ev = dc09.event_for(m, seq=7, receiver="12", line="7", at=1_700_000_000.9)
    assert (ev.seq, ev.account, ev.receiver, ev.line, ev.update_no) == (7, ACC, "12", "7", 0)
    assert (ev.lat, ev.lon, ev.alt, ev.accuracy_m) == (51.0, 3.7, 12.5, 8.4)
    assert ev.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    bare = dc09.event_for(dataclass_replace(m, fix=None), seq=1, at=0)
    assert (bare.lat, bare.lon, bare.alt, bare.accuracy_m, bare.line) == (None,) * 4 + ("0",)
