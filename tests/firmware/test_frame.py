"""Firmware frame codec against the shared vectors (runs under CPython and MicroPython)."""
import frame
import vectors

V = vectors.load()
KEY = bytes.fromhex(V["key"])
CENTRE_KEY = bytes.fromhex(V["centre_key"])


def _hex(b):
    return "".join("%02x" % x for x in b)


def test_hmac_matches_rfc4231_case_2():
    mac = frame.Hmac(b"Jefe").digest(b"what do ya want for nothing?")
    assert _hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_long_key_is_hashed_first_rfc4231_case_6():
    mac = frame.Hmac(b"\xaa" * 131).digest(
        b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert _hex(mac) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_encoder_reproduces_every_vector_frame():
    enc = frame.FrameEncoder(KEY, CENTRE_KEY, V["button_id"])
    for f in V["frames"]:
        battery = frame.BATTERY_UNKNOWN if f["battery_pct"] is None else f["battery_pct"]
        age = frame.AGE_UNKNOWN if f["age_ms"] is None else f["age_ms"]
        out = enc.encode(f["kind"], f["boot_id"], f["seq"], f["gesture"], battery, age)
        assert _hex(out) == f["hex"], f["name"]


def test_encoder_reuses_one_buffer():
    enc = frame.FrameEncoder(KEY, CENTRE_KEY, 7)
    a = enc.encode(frame.KIND_ALARM, 1, 1, frame.GESTURE_HOLD, 50, 0)
    b = enc.encode(frame.KIND_ALARM, 1, 2, frame.GESTURE_HOLD, 50, 0)
    assert a is b and len(a) == frame.FRAME_LEN


def test_out_of_range_age_is_sent_as_unknown():
    enc = frame.FrameEncoder(KEY, CENTRE_KEY, 7)
    out = enc.encode(frame.KIND_ALARM, 1, 1, frame.GESTURE_HOLD, 50, -5)
    assert bytes(out[14:18]) == b"\xff\xff\xff\xff"


def test_verifier_accepts_vector_commands():
    ver = frame.CommandVerifier(KEY, V["button_id"])
    for c in V["commands"]:
        nonce = bytes.fromhex(c["nonce"]) if c["nonce"] else bytes.fromhex("0102030405060708")
        op, seq, value = ver.verify(bytes.fromhex(c["hex"]), nonce)
        assert (op, seq, value) == (c["op"], c["seq"], c["value"]), c["name"]


def _reason(ver, cmd, nonce):
    try:
        ver.verify(cmd, nonce)
    except ValueError as exc:
        return exc.args[0]
    return None


def test_verifier_rejects_every_flipped_bit_of_every_command():
    ver = frame.CommandVerifier(KEY, V["button_id"])
    nonce = bytes.fromhex("0102030405060708")
    for c in V["commands"]:
        raw = bytes.fromhex(c["hex"])
        for i in range(len(raw)):
            for bit in (0x01, 0x80):
                bad = bytearray(raw)
                bad[i] ^= bit
                assert _reason(ver, bytes(bad), nonce) is not None, (c["name"], i, bit)


def test_verifier_rejects_stale_nonce_wrong_button_and_bad_lengths():
    ver = frame.CommandVerifier(KEY, V["button_id"])
    test_cmd = bytes.fromhex(V["commands"][1]["hex"])
    assert _reason(ver, test_cmd, bytes(8)) == "tag"
    other = frame.CommandVerifier(KEY, V["button_id"] + 1)
    assert _reason(other, bytes.fromhex(V["commands"][0]["hex"]), bytes(8)) == "tag"
    assert _reason(ver, test_cmd[:-1], bytes(8)) == "length"
    assert _reason(ver, test_cmd + b"\x00", bytes(8)) == "length"
    assert _reason(ver, b"\x01" + test_cmd[1:], bytes(8)) == "version"  # a version 1 command
    assert _reason(ver, b"\x03" + test_cmd[1:], bytes(8)) == "version"
    assert _reason(ver, b"\x02\x09" + test_cmd[2:], bytes(8)) == "op"


def test_tags_equal():
    assert frame.tags_equal(b"abcdefgh", b"abcdefgh", 8)
    assert not frame.tags_equal(b"abcdefgh", b"abcdefgX", 8)
    assert frame.tags_equal(b"abcdefgh", b"abcdXXXX", 4)
