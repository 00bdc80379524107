"""The API's endpoints for perpetrator tags (on the dispatch API's TLS port): the OsmAnd
protocol at TAG_OSMAND_PATH (GET or POST, query or form parameters; 200 with an empty body) and
the centre's JSON form at TAG_JSON_PATH (POST, `Authorization: Bearer <tag secret>`). A tag
authenticates with its own secret (centre/tags.py), not a host's token: the API's host check
leaves exactly TAG_PATHS to these handlers. An unknown, wrong or retired secret gets the
same 401; malformed input 400; nothing is stored for either (docs/proximity.md)."""
from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl
from collections.abc import Callable

from aiohttp import web

from msa.wire.tag import TAG_SECRET, TagError, TagReport, read_osmand, read_tag_json

from .bodies import read_small, strict_json
from .errors import CentreError
from .ratelog import Throttle
from .tags import Tag, Tags

log = logging.getLogger("msa.centre.tags")
_throttled = Throttle(log)

TAGS_KEY: web.AppKey[Tags] = web.AppKey("tags", Tags)
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("tag-clock")
OnReport = Callable[[Tag, TagReport, float], None]
ON_REPORT_KEY: web.AppKey[OnReport] = web.AppKey("tag-on-report")
TAG_PREFIX = "/v1/tags/"
TAG_OSMAND_PATH = TAG_PREFIX + "osmand"
TAG_JSON_PATH = TAG_PREFIX + "positions"
# Exactly these paths skip the hosts' token check (no prefix match: no path tricks).
TAG_PATHS = frozenset({TAG_OSMAND_PATH, TAG_JSON_PATH})
MAX_TAG_BODY = 4096  # an OsmAnd form or a JSON position is a few hundred bytes


def _refused() -> web.HTTPException:
    # One answer for an unknown, a wrong and a retired secret: a prober learns nothing.
    return web.HTTPUnauthorized(text="unknown tag", headers={"WWW-Authenticate": "Bearer"})


def _store(request: web.Request, tag: Tag, report: TagReport, now: float) -> None:
    try:
        request.app[TAGS_KEY].record(tag, report, now)
        request.app[ON_REPORT_KEY](tag, report, now)  # the proximity rules, once it is stored
    except CentreError as exc:
        _throttled.warning("tag-storage", "tag report not stored: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot store this now") from None


def _lookup(request: web.Request, secret: str) -> Tag:
    try:
        tag = request.app[TAGS_KEY].by_secret(secret)
    except CentreError as exc:
        _throttled.warning("tag-storage", "tag not checked: %s", exc)
        raise web.HTTPServiceUnavailable(text="the centre cannot check tags now") from None
    if tag is None:
        _throttled.warning("tag-unknown", "tag report refused: unknown or retired tag")
        raise _refused()
    return tag


async def osmand(request: web.Request) -> web.Response:
    """An OsmAnd report: query parameters, and for a POST form parameters too; each name at
    most once in all."""
    now = request.app[CLOCK_KEY]()
    pairs: list[tuple[str, str]] = list(request.query.items())
    if request.method == "POST":
        raw = await read_small(request, MAX_TAG_BODY)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="the form is not ASCII") from None
        try:
            pairs += parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                               max_num_fields=32)
        except ValueError:
            raise web.HTTPBadRequest(text="the form is malformed") from None
    params = dict(pairs)
    if len(params) != len(pairs):
        raise web.HTTPBadRequest(text="a parameter is given twice")
    try:
        secret, report = read_osmand(params, now)
    except TagError as exc:
        raise web.HTTPBadRequest(text=str(exc)[:200]) from None
    _store(request, _lookup(request, secret), report, now)
    return web.Response(status=200)


async def json_position(request: web.Request) -> web.Response:
    """The centre's own form: the tag's secret as a bearer token, one position as JSON."""
    now = request.app[CLOCK_KEY]()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not TAG_SECRET.fullmatch(given):
        raise _refused()
    tag = _lookup(request, given)
    body = strict_json(await read_small(request, MAX_TAG_BODY))
    try:
        report = read_tag_json(body, now)
    except TagError as exc:
        raise web.HTTPBadRequest(text=str(exc)[:200]) from None
    _store(request, tag, report, now)
    return web.json_response({"tag": tag.tag_id, "stored": True})


def _ignore(_tag: Tag, _report: TagReport, _now: float) -> None:
    pass


def add_tag_routes(app: web.Application, tags: Tags,
                   clock: Callable[[], float] = time.time, on_report: OnReport = _ignore
                   ) -> None:
    """Adds the tag endpoints to the dispatch API's app (before it starts); `on_report` is
    called with each report once it is stored."""
    app[TAGS_KEY] = tags
    app[CLOCK_KEY] = clock
    app[ON_REPORT_KEY] = on_report
    app.router.add_get(TAG_OSMAND_PATH, osmand, allow_head=False)  # HEAD stores nothing
    app.router.add_post(TAG_OSMAND_PATH, osmand)
    app.router.add_post(TAG_JSON_PATH, json_position)
