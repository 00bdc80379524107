"""Reads the shared hex test vectors out of docs/protocol.md (works on both interpreters)."""
import json

_BEGIN = "<!-- vectors:begin -->"
_END = "<!-- vectors:end -->"


def _default_path():
    here = __file__.replace("\\", "/").rsplit("/", 1)[0]
    return here + "/../../docs/protocol.md"


def load(path=None):
    """The vectors object from the JSON block between the markers in the protocol document."""
    if path is None:
        path = _default_path()
    with open(path) as f:
        text = f.read()
    start = text.find(_BEGIN)
    end = text.find(_END)
    if start < 0 or end < start:
        raise ValueError("no vectors block in " + path)
    block = text[start + len(_BEGIN):end]
    block = block[block.find("{"):block.rfind("}") + 1]
    return json.loads(block)


# Receiver rules 1-4 of docs/protocol.md, written against the firmware's own primitives (its
# HMAC, its field table), so the shared vectors are judged by a second receiver besides the
# host's: both must refuse each rejected vector for the same reason.
_KINDS = (1, 2, 3, 4, 5)
_GESTURES = (0, 1, 2, 3, 4)
_BATTERY_UNKNOWN = 255
# The frame table's field names, in order (docs/protocol.md; the device keeps only formats).
FRAME_NAMES = ("version", "kind", "button_id", "boot_id", "seq", "gesture", "battery_pct",
               "age_ms")


def check_frame(raw, key, button_id):
    """The frame's fields as a dict if a receiver serving `button_id` with master key `key`
    accepts it; else raises ValueError with the rule's reason (length, downgrade, version,
    tag, field)."""
    import struct

    import frame

    if len(raw) != frame.FRAME_LEN:
        raise ValueError("length")
    if raw[0] != frame.VERSION:
        raise ValueError("downgrade" if raw[0] < frame.VERSION else "version")
    mac = frame.Hmac(frame.derive(key, b"msa1 frame")).digest(raw[:frame.BODY_LEN])
    named = struct.unpack_from(">I", raw, 2)[0]
    if named != button_id or not frame.tags_equal(mac, raw[frame.BODY_LEN:], frame.TAG_LEN):
        raise ValueError("tag")
    values = struct.unpack_from(frame.FRAME_FORMAT, raw, 0)
    fields = {}
    for i in range(len(FRAME_NAMES)):
        fields[FRAME_NAMES[i]] = values[i]
    battery = fields["battery_pct"]
    if (fields["kind"] not in _KINDS or fields["gesture"] not in _GESTURES
            or (battery > 100 and battery != _BATTERY_UNKNOWN)):
        raise ValueError("field")
    return fields
