"""Receiver rules 1-4 on the shared vectors, judged by the firmware-side reference receiver
(vectors.check_frame, on the firmware's HMAC and field table): every published frame is
accepted with its fields, every rejected one refused for its published reason, including
those tagged validly but wrong inside (a version 3 frame, an unknown kind or gesture, a
battery of 150%). Runs under CPython and MicroPython; tests/test_receiver_rules.py holds the
host to the same vectors."""
import vectors

V = vectors.load()
KEY = bytes.fromhex(V["key"])
OTHER_KEY = bytes.fromhex(V["other_key"])
BID = V["button_id"]


def _reason(raw, key=KEY, button_id=BID):
    try:
        vectors.check_frame(raw, key, button_id)
    except ValueError as exc:
        return exc.args[0]
    return None


def test_every_vector_frame_is_accepted_with_its_fields():
    for f in V["frames"]:
        got = vectors.check_frame(bytes.fromhex(f["hex"]), KEY, BID)
        battery = 255 if f["battery_pct"] is None else f["battery_pct"]
        age = 0xFFFFFFFF if f["age_ms"] is None else f["age_ms"]
        assert (got["version"], got["kind"], got["button_id"], got["boot_id"], got["seq"],
                got["gesture"], got["battery_pct"], got["age_ms"]) == (
            2, f["kind"], BID, f["boot_id"], f["seq"], f["gesture"], battery, age), f["name"]


def test_every_rejected_vector_is_refused_for_its_reason():
    for r in V["rejected"]:
        assert _reason(bytes.fromhex(r["hex"])) == r["reason"], r["name"]


def test_the_validly_tagged_but_wrong_vectors_are_published():
    names = [r["name"] for r in V["rejected"]]
    for name in ("version-3", "unknown-kind", "unknown-gesture", "battery-150"):
        assert name in names, name


def test_no_vector_verifies_with_another_button_or_key():
    for f in V["frames"]:
        raw = bytes.fromhex(f["hex"])
        assert _reason(raw, OTHER_KEY) == "tag", f["name"]
        assert _reason(raw, KEY, BID + 1) == "tag", f["name"]
