"""The operator page's side of the proximity warning (issue 14, part 5): the views the state
endpoint shows (one per case, tag and zone, shaped as in docs/proximity.md) and the operator's
acknowledgement of an alert or pre-alert, `POST PROX_ACK_PATH` with the JSON body
`{"case_ref", "tag_id", "zone"}`. The rules engine and its store are elsewhere: the operator
app is handed two callables, and this module only checks what crosses HTTP."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import CentreError
from .ratelog import Throttle

log = logging.getLogger("msa.centre.proximity")
_throttled = Throttle(log)

ProximityViews = Callable[[], list[dict[str, object]]]
ProximityAck = Callable[[str, str, str], bool]  # case_ref, tag_id, zone -> found
PROXIMITY_KEY: web.AppKey[ProximityViews] = web.AppKey("proximity")
PROX_ACK_KEY: web.AppKey[ProximityAck] = web.AppKey("proximity-ack")
PROX_ACK_PATH = "/proximity/ack"
ACK_FIELDS = ("case_ref", "tag_id", "zone")
MAX_NAME_LEN = 128  # a case reference, tag id or zone name; anything longer is not one


def no_views() -> list[dict[str, object]]:
    """The default for a centre without proximity rules: nothing to show."""
    return []


def no_ack(_case_ref: str, _tag_id: str, _zone: str) -> bool:
    """The default for a centre without proximity rules: nothing to acknowledge."""
    return False


def views(app: web.Application) -> list[dict[str, object]] | None:
    """The views for the state JSON; None when their store cannot be read now (the page says
    so, and still shows the alarms: a proximity fault must never hide an alarm)."""
    try:
        return app[PROXIMITY_KEY]()
    except CentreError as exc:
        _throttled.warning("storage", "proximity views not read: %s", exc)
        return None


def read_ack(body: Any) -> tuple[str, str, str]:
    """The acknowledged view's (case_ref, tag_id, zone); 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    extra = sorted(set(body) - set(ACK_FIELDS))
    if extra:
        raise web.HTTPBadRequest(text=f"unknown field {extra[0][:40]!r}")
    out = []
    for name in ACK_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LEN \
                or not value.isprintable():
            raise web.HTTPBadRequest(text=f"{name} must be 1 to {MAX_NAME_LEN} printable"
                                     " characters")
        out.append(value)
    return out[0], out[1], out[2]


def acknowledge(app: web.Application, body: Any) -> web.Response:
    """Records the operator's acknowledgement: 404 when the callable finds no such view to
    acknowledge, 503 when it cannot be stored now."""
    case_ref, tag_id, zone = read_ack(body)
    try:
        found = app[PROX_ACK_KEY](case_ref, tag_id, zone)
    except CentreError as exc:
        _throttled.warning("storage", "proximity acknowledgement not stored: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot store this now") from None
    if not found:
        raise web.HTTPNotFound(text="no such proximity alert or pre-alert")
    return web.json_response({"case_ref": case_ref, "tag_id": tag_id, "zone": zone,
                              "acknowledged": True})
