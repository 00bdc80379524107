"""The case side of the operator page: an incident's case file with its whole timeline
(centre/timeline.py), operators' notes on it, and the supervisor's daily report
(centre/report.py). Every view and note is audited before it is served or stored.
"""
from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .audit import AuditLog
from .authweb import (CASE_ROLES, REPORT_ROLES, SESSION_KEY, allow, audit, json_body,
                      text_field)
from .core import Centre
from .errors import CentreError
from .notes import NOTE_MAX, Notes
from .proxstore import ProximityStore
from .ratelog import Throttle
from .registry import Registry
from .report import audit_subject, daily_report, to_json
from .tags import Tags
from .timeline import incident_timeline

log = logging.getLogger("msa.centre.cases")
_throttled = Throttle(log)


@dataclass
class CaseDesk:
    """What the case endpoints read and write."""

    centre: Centre
    registry: Registry
    notes: Notes
    audit: AuditLog
    proximity: ProximityStore | None
    tags: Tags
    clock: Callable[[], float] = time.time


DESK_KEY: web.AppKey[CaseDesk] = web.AppKey("case-desk", CaseDesk)


def _unavailable(what: str, exc: CentreError) -> web.HTTPException:
    _throttled.warning("storage", "%s not read: %s", what, exc)
    return web.HTTPServiceUnavailable(text=f"the centre cannot read the {what} now")


def _ref(request: web.Request) -> tuple[str, int]:
    """The incident a path names (a reference or a key) as (reference, row id); 404 if none."""
    desk = request.app[DESK_KEY]
    named = request.match_info["incident"]
    number = desk.centre.incident_id(named)
    if number is None:
        raise web.HTTPNotFound(text="no such incident")
    return f"INC-{number:06d}", number


def _case_file(desk: CaseDesk, ref: str) -> dict[str, object]:
    """The incident's timeline with its case file (as the registry holds it now)."""
    try:
        timeline = incident_timeline(desk.centre, ref, notes=desk.notes, audit=desk.audit,
                                     proximity=desk.proximity)
        case_ref = None if timeline is None else timeline["case_ref"]
        case = desk.registry.case(case_ref) if isinstance(case_ref, str) else None
    except CentreError as exc:
        raise _unavailable("case file", exc) from None
    if timeline is None:
        raise web.HTTPNotFound(text="no such incident")
    return timeline | {"case": None if case is None else case.as_json()}


@allow(CASE_ROLES)
async def case_file(request: web.Request) -> web.Response:
    ref, _number = _ref(request)
    audit(request, "case.view", ref, {"via": "case file"})
    return web.json_response(_case_file(request.app[DESK_KEY], ref))


@allow(CASE_ROLES)
async def add_note(request: web.Request) -> web.Response:
    ref, number = _ref(request)
    text = text_field(await json_body(request, 16 * 1024), "text", NOTE_MAX).strip()
    desk = request.app[DESK_KEY]
    try:
        desk.notes.check(text)
    except CentreError as exc:
        raise web.HTTPBadRequest(text=str(exc)[-200:]) from None
    # The audit holds the note's digest: a note edited later no longer matches its entry.
    audit(request, "incident.note", ref, {"sha256": Notes.digest(text)})
    try:
        # The records' open batch first (as resolve does): the note's own connection would
        # otherwise wait on that batch's write lock, holding up the loop.
        desk.centre.flush()
        note_id = desk.notes.add(number, request[SESSION_KEY].name, text, desk.clock())
    except CentreError as exc:
        _throttled.warning("storage", "note not stored: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot store this now") from None
    return web.json_response(_case_file(desk, ref) | {"note": note_id}, status=201)


@allow(REPORT_ROLES)
async def report(request: web.Request) -> web.Response:
    text = request.query.get("day", "")
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text="day must be YYYY-MM-DD") from None
    desk = request.app[DESK_KEY]
    now = desk.clock()
    if day > datetime.datetime.fromtimestamp(now, datetime.timezone.utc).date():
        raise web.HTTPBadRequest(text="the day has not begun yet: choose today or an earlier"
                                 " day")
    try:
        made = daily_report(desk.centre, desk.registry, desk.tags, desk.audit, day, now)
    except CentreError as exc:
        raise _unavailable("report", exc) from None
    # Made, not yet shown: the view is recorded first (a refused day is no view).
    audit(request, "report.view", audit_subject(day), {"day": day.isoformat()})
    return web.json_response(to_json(made))


def add_case_routes(app: web.Application, desk: CaseDesk) -> None:
    app[DESK_KEY] = desk
    app.router.add_get("/api/incidents/{incident}", case_file)
    app.router.add_post("/api/incidents/{incident}/notes", add_note)
    app.router.add_get("/api/report", report)
