"""Live data for a project: the server-sent events feed, the "waiting for the first event" check, the live
page, and the session list's newest rows (so the list grows without a reload).

``GET /api/v1/projects/{id}/live`` answers in two ways. Asked for
``text/event-stream`` (``EventSource`` does), it streams the project's accepted
batches from the live feed (``hitmetrix.observe.feed``) as they arrive: one
``batch`` event each, with the summary as JSON and its id (after the feed's
epoch, which names the server process) as the event id, so a reconnecting
browser resumes after the last one it saw (``Last-Event-ID``); a ``gap`` event
when it fell behind and missed some, or the server restarted meanwhile. Otherwise it answers one
JSON snapshot: whether the project has any data yet (the feed, else the
store), and the newest summaries. The feed is best-effort and in memory; what
counts is in the spool and the store.

A stream lasts at most ``STREAM_MAX_S`` (the browser reconnects, and the guard
runs again), sends a comment every ``KEEPALIVE_S`` and ends when the server
stops. At most ``MAX_STREAMS`` are open at once; more are answered 503. The
feed keeps summaries only of projects somebody watches (a stream, or a
snapshot asking for a backlog): the first snapshot of a project lists none.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.observe.feed import RING_SIZE, LiveFeed
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates
from hitmetrix.web.session_pages import PAGE_SIZE, display_row

KEEPALIVE_S = 15.0
STREAM_MAX_S = 300.0
MAX_STREAMS = 64
DEFAULT_BACKLOG = 20  # summaries a new stream or snapshot starts with
RETRY_MS = 3000
NO_STORE = {"Cache-Control": "no-store"}
_EVENT_ID = re.compile(r"^([0-9a-f]{8})-([0-9]{1,18})$")  # LiveFeed.epoch, then the summary's id
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MS = re.compile(r"^-?[0-9]{1,19}$")


def feed_of(request: Request) -> LiveFeed:
    feed: LiveFeed = request.app.state.live_feed
    return feed


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body), status_code, {**NO_STORE, **(headers or {})}, media_type="application/json"
    )


def first_data_ms(store: EventStore, project_id: int) -> int | None:
    """When one of the project's stored events arrived, or None when it has none (reads one row)."""
    q = ScopedSelect(project_id).select("toUnixTimestamp64Milli(received_at) AS at").from_("events")
    q.limit = 1
    rows = store.query(q.sql(), q.params)
    return int(rows[0]["at"]) if rows else None


async def has_data_since_ms(request: Request, project_id: int) -> int | None:
    """When the project's data was first seen: the feed knows at once, the store knows what came before."""
    feed = feed_of(request)
    seen = feed.first_seen_ms(project_id)
    if seen is None:
        seen = await run(timed("first_event", first_data_ms), runtime_of(request).store, project_id)
        if seen is not None:
            feed.note_data(project_id, seen)
    return seen


def _backlog(request: Request) -> int | Response:
    raw = request.query_params.get("backlog", "")
    if not raw:
        return DEFAULT_BACKLOG
    if not raw.isdigit() or int(raw) > RING_SIZE:
        return _json({"error": f"backlog must be a whole number from 0 to {RING_SIZE}", "field": "backlog"}, 400)
    return int(raw)


@guard("viewer", api=True)
async def live_feed(request: Request) -> Response:
    project_id = project_of(request).id
    backlog = _backlog(request)
    if isinstance(backlog, Response):
        return backlog
    feed = feed_of(request)
    streaming = "text/event-stream" in request.headers.get("accept", "")
    if streaming or backlog:
        feed.watch(project_id)  # from now on the feed keeps this project's summaries
    if not streaming:
        first_ms = await has_data_since_ms(request, project_id)
        return _json(
            {
                "has_data": first_ms is not None,
                "first_seen_at": first_ms,
                "last_id": feed.last_id,
                "batches": feed.recent(project_id, backlog),
            }
        )
    last_event_id = request.headers.get("last-event-id", "").strip()
    resumed = _EVENT_ID.match(last_event_id) if last_event_id else None
    if last_event_id and resumed is None:
        return _json({"error": "Last-Event-ID must be an id this feed sent (EPOCH-NUMBER)"}, 400)
    if feed.readers >= MAX_STREAMS:
        return _json({"error": "too many live views open; retry later"}, 503, {"Retry-After": "10"})
    restarted = resumed is not None and resumed.group(1) != feed.epoch
    if resumed is not None and not restarted:
        after_id = int(resumed.group(2))
    else:
        recent = feed.recent(project_id, backlog)
        after_id = recent[0]["id"] - 1 if recent else feed.last_id
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}  # a buffering proxy would hold events back
    stream = _stream(feed, project_id, after_id, restarted=restarted)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _stream(feed: LiveFeed, project_id: int, after_id: int, *, restarted: bool) -> AsyncIterator[str]:
    feed.readers += 1
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if restarted:  # the browser's last id is of a server process before this one: what came between is lost
            yield "event: gap\ndata: {}\n\n"
        deadline = time.monotonic() + STREAM_MAX_S
        while not feed.closed:
            feed.watch(project_id)
            batches, missed = feed.since(project_id, after_id)
            if missed:
                yield "event: gap\ndata: {}\n\n"
                if not batches:  # nothing of the project is newer: say it once, not at every wake-up
                    after_id = max(after_id, feed.last_id)
            for summary in batches:
                after_id = summary["id"]
                data = msgspec.json.encode(summary).decode()
                yield f"id: {feed.epoch}-{after_id}\nevent: batch\ndata: {data}\n\n"
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return
            if not await feed.wait(project_id, after_id, min(KEEPALIVE_S, remaining_s)) and not feed.closed:
                yield ": keep-alive\n\n"
    finally:
        feed.readers -= 1


@guard("viewer")
async def live_page(request: Request) -> Response:
    project = project_of(request)
    context = {"principal": principal_of(request), "project": project}
    return templates.TemplateResponse(request, "live.html", context)


def _after(request: Request) -> tuple[int, str] | None:
    """The newest session the page shows, as (started_at ms, session id); BadParameter if malformed."""
    ms, sid = request.query_params.get("after_ms", ""), request.query_params.get("after_session", "")
    if not ms and not sid:
        return None
    if not _MS.match(ms) or not -(2**63) <= int(ms) < 2**63:
        raise BadParameter("after_ms", "after_ms must be a time in milliseconds since 1970")
    if not _SESSION_ID.match(sid):
        raise BadParameter("after_session", "after_session must be a session id")
    return int(ms), sid


@guard("viewer")
async def newer_sessions(request: Request) -> Response:
    """Rows of the session list (same filters) that are newer than the page's newest, as HTML table rows.

    Reads the list's first page: newer sessions are at its top (newest first, by start and id). When the
    whole page is newer, there may be more than it holds: the answer says so (``X-Hitmetrix-More``).
    """
    project = project_of(request)
    try:
        filters = sessions.SessionFilters.from_query(request.query_params)
        after = _after(request)
        rows, _ = await run(
            timed("session_list_newer", sessions.list_sessions),
            runtime_of(request).store,
            project.id,
            filters,
            None,
            PAGE_SIZE,
            project.time_zone,
        )
    except BadParameter as exc:
        return _json({"error": str(exc), "field": exc.parameter}, 400)
    fresh = [r for r in rows if after is None or (int(r["started_at"]), r["session_id"]) > after]
    now_ms = int(time.time() * 1000)
    context = {"project": project, "rows": [display_row(r, now_ms) for r in fresh]}
    headers = {**NO_STORE, "X-Hitmetrix-More": "1" if fresh and len(fresh) == len(rows) == PAGE_SIZE else "0"}
    return templates.TemplateResponse(request, "_session_rows.html", context, headers=headers)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/live", live_feed, methods=["GET"]),
    Route("/projects/{project_id:int}/live", live_page, methods=["GET"]),
    Route("/projects/{project_id:int}/live/sessions", newer_sessions, methods=["GET"]),
]
