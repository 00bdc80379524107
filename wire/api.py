"""The dispatch API's JSON bodies (HTTPS): what a host posts for a message, and how a centre
reads one back. The reader checks every field for type, form and range before anything else
sees it; what it cannot accept raises ApiError naming the field."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .call import CallPayload
from .errors import ApiError
from .message import MAX_TIME, MAX_UPDATE_NO, Fix, Message, MessageKind, finite
from .protocol import CENTRE_FRAME_LEN

MAX_BUTTON_ID = 2 ** 32 - 1
_KEY_TEXT = re.compile(r"[!-~]{1,64}", re.ASCII)  # a key as sent; the centre builds its own
_FRAME_HEX = re.compile(r"[0-9a-fA-F]{%d}" % (2 * CENTRE_FRAME_LEN), re.ASCII)


def fix_json(fix: Fix | None) -> dict[str, Any] | None:
    """A fix as the API carries it (None: no fix yet; the centre shows "no location")."""
    if fix is None:
        return None
    return {"lat": round(fix.lat, 6), "lon": round(fix.lon, 6),
            "accuracy_m": round(fix.accuracy_m, 1), "time": fix.time,
            "quality": fix.quality.value, "source": fix.source}


def fix_from_json(d: object) -> Fix | None:
    """A fix from the API's JSON (None for none); ValueError when malformed."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError("location must be an object or null")
    return Fix.from_dict(d)


def body(message: Message) -> dict[str, Any]:
    """The JSON body a host posts for a message (a CALL's adds its `call`)."""
    out: dict[str, Any] = {
        "key": message.key, "kind": message.kind.value, "button_id": message.button_id,
        "frame": message.frame.hex(), "created_at": message.created_at,
        "pressed_at": message.pressed_at, "battery_pct": message.battery_pct,
        "update_no": message.update_no, "incident": message.incident,
        "location": fix_json(message.fix)}
    if message.call is not None:
        out["call"] = message.call.as_json()
    return out


@dataclass(frozen=True)
class Posted:
    """A body as a centre reads it: every field checked, nothing yet verified against the
    frame (the centre does that, and builds the keys it stores from the frame itself)."""

    key: str
    kind: MessageKind
    button_id: int
    frame: bytes
    fix: Fix | None
    incident: str
    update_no: int
    pressed_at: float | None
    call: CallPayload | None = None  # a CALL's event (required there, refused elsewhere)


def _int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high}")
    return value


def _text(value: object, shape: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise ValueError(f"{what} is malformed")
    return value


def _call(obj: dict[str, Any], kind: MessageKind) -> CallPayload | None:
    if (kind is MessageKind.CALL) != ("call" in obj):
        raise ApiError("call", "required for a call event, and only there")
    try:
        return CallPayload.from_json(obj["call"]) if kind is MessageKind.CALL else None
    except ValueError as exc:
        raise ApiError("call", str(exc)) from None


def read_body(obj: object, allowed: frozenset[MessageKind]) -> Posted:
    """A posted body, read field by field; ApiError says which field is wrong."""
    if not isinstance(obj, dict):
        raise ApiError("body", "must be a JSON object")
    try:
        kind = MessageKind(obj["kind"])
    except KeyError:
        raise ApiError("kind", "missing") from None
    except (TypeError, ValueError):
        raise ApiError("kind", "unknown") from None
    if kind not in allowed:
        raise ApiError("kind", f"{kind.value!r} does not belong on this endpoint")
    call = _call(obj, kind)
    try:
        incident, update_no = obj.get("incident"), obj.get("update_no")
        pressed = obj.get("pressed_at")
        return Posted(key=_text(obj["key"], _KEY_TEXT, "key"), kind=kind,
                      button_id=_int(obj["button_id"], 1, MAX_BUTTON_ID, "button_id"),
                      frame=bytes.fromhex(_text(obj["frame"], _FRAME_HEX, "frame")),
                      fix=fix_from_json(obj.get("location")),
                      incident="" if incident in (None, "") else
                      _text(incident, _KEY_TEXT, "incident"),
                      update_no=0 if update_no is None else
                      _int(update_no, 0, MAX_UPDATE_NO, "update_no"),
                      pressed_at=None if pressed is None else
                      finite(pressed, 0.0, MAX_TIME, "pressed_at"), call=call)
    except KeyError as exc:
        raise ApiError(str(exc).strip("'")[:40], "missing") from None
    except (TypeError, ValueError) as exc:
        raise ApiError("body", str(exc)) from None
