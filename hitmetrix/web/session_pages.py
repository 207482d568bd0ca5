"""Dashboard pages for sessions: the filterable list and the replay page.

The list is server-rendered and needs no JavaScript; its filters live in the
URL (a GET form), so any view can be shared. The replay page renders the
session's facts and a `#replay-root` shell that `static/dashboard/replay.js`
(built from `dashboard/`) turns into the player; the script reads everything
from data- attributes because the CSP forbids inline scripts.

A session is *live* while the visitor is still there: its last event or
recorded moment is at most ``LIVE_WINDOW_MS`` old, and it does not end with a
page left ``LEFT_GRACE_MS`` ago or more (a navigation's next pageview comes
sooner). A chunk's last moment counts no later than it reached us, so that a
visitor's clock running ahead cannot keep a session live. The replay page of a live session asks
``GET /api/v1/projects/{id}/sessions/{sid}/recording/chunks?since=SEQ`` every
few seconds for the chunks after the last one it has, and follows the visitor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import params, sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import FRUSTRATION_COUNT_COLUMNS
from hitmetrix.web.api import bad_parameter, error, json_response, session_id_of
from hitmetrix.web.auth import guard, principal_of, project_of, record, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, templates
from hitmetrix.web.security import replay_origins, replay_page_headers

PAGE_SIZE = 50
# The tracker sends every 5 s; a visitor reading a page sends nothing for a while: a minute of quiet ends "live".
LIVE_WINDOW_MS = 60_000
LEFT_GRACE_MS = 10_000
MAX_SEQ = 2**32 - 1
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Only what the player needs: the blob path stays on the server.
_CHUNK_FIELDS = ("seq", "first_ts", "last_ts", "event_count", "bytes")
_SVG = (
    '<svg class="hm-icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" fill="none" '
    'stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round">{}</svg>'
)
# Drawn, not emoji: emoji fonts are missing on many Linux desktops.
_DEVICE_SHAPES = {
    "desktop": '<rect x="1.5" y="2.5" width="13" height="8.5" rx="1"/><path d="M5.5 14h5M8 11v3"/>',
    "mobile": '<rect x="4.5" y="1.5" width="7" height="13" rx="1.5"/><path d="M7.3 12.2h1.4"/>',
    "tablet": '<rect x="2.5" y="1.5" width="11" height="13" rx="1.5"/><path d="M7.3 12.2h1.4"/>',
    "bot": '<rect x="3" y="5" width="10" height="8" rx="2"/><path d="M8 2.5V5M6 9h.01M10 9h.01"/>',
    "": '<circle cx="8" cy="8" r="6"/><path d="M8 11h.01M6.5 6.3a1.6 1.6 0 1 1 2 1.6c-.4.2-.5.5-.5.9"/>',
}
DEVICE_ICONS = {name: Markup(_SVG.format(shape)) for name, shape in _DEVICE_SHAPES.items()}
# What the list calls each frustration signal (its badges and filter), by the count column of a sessions row.
SIGNAL_LABELS = {
    "rage": "Rage click",
    "dead": "Dead click",
    "error": "Error click",
    "quick_back": "Quick back",
    "excessive_scroll": "Excessive scroll",
    "thrashed_cursor": "Thrashed cursor",
}
_SIGNAL_COUNTS = {kind: column for column, kind in FRUSTRATION_COUNT_COLUMNS.items()}
# Labels of the overview filters a link from an analytics view may bring to the list.
_CARRIED_LABELS = {
    "referrer": "Referrer", "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "identified": "Identified", "prop_key": "Event property", "prop_value": "Property value", "cohort": "Cohort",
    "frustration_page": "Frustrated on page",
}


@guard("viewer")
async def session_list(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    context: dict[str, Any] = {
        "principal": principal,
        "project": project,
        "filters": sessions.SessionFilters(),
        "error": None,
        "rows": [],
        "older_url": None,
        "newest_url": None,
        "options": {"countries": [], "browsers": [], "oses": [], "device_types": []},
        "device_types": sessions.DEVICE_TYPES,
        "params": dict(request.query_params),
        "snippet": project.script_tag(str(request.base_url)),
        "filtered": False,
        "signal_labels": list(SIGNAL_LABELS.items()),
        "carried_filters": [],
        "chips": [],
    }
    status = 200
    cursor = request.query_params.get("cursor") or None
    try:
        filters = sessions.SessionFilters.from_query(request.query_params)
        context["filters"] = filters
        carried = list(filters.analytics)
        if filters.frustration_page:
            carried.append(("frustration_page", filters.frustration_page))
        context["carried_filters"] = carried
        context["chips"] = filter_chips(request.url.path, filters.to_query(), carried)
        if dict(filters.analytics).get("cohort"):
            resolved = await resolve_cohort(request, filters.overview_query())
            filters = dataclasses.replace(filters, cohort=resolved.cohort)
        rows, next_cursor = await run(
            timed("session_list", sessions.list_sessions),
            runtime.store,
            project.id,
            filters,
            cursor,
            PAGE_SIZE,
            project.time_zone,
        )
    except BadParameter as exc:  # names the parameter; anything else is a bug, not a 400
        context["error"] = str(exc)
        status = 400
    else:
        query = filters.to_query()
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        context["rows"] = [display_row(row, now_ms) for row in rows]
        context["filtered"] = bool(query)
        if next_cursor:
            context["older_url"] = "?" + urlencode({**query, "cursor": next_cursor})
        if cursor:
            context["newest_url"] = "?" + urlencode(query) if query else request.url.path
    context["options"] = await run(timed("filter_options", sessions.filter_options), runtime.store, project.id)
    return templates.TemplateResponse(request, "sessions.html", context, status_code=status)


@guard("viewer", replay=True)
async def replay(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    sid = request.path_params["session_id"]
    summary = None
    if _SESSION_ID.match(sid):
        summary = await run(timed("session_summary", sessions.session_summary), runtime.store, project.id, sid)
    if summary is None:
        return error_page(request, 404, "There is no such session in this project.", principal)
    chunks = await run(timed("recording_index", recording_index), runtime.store, project.id, sid)
    await record(request, "replay_viewed", project.id, sid)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    last = await run(timed("last_event", last_event), runtime.store, project.id, sid)
    live = is_live(summary, chunks, last, now_ms)
    # The replay may load images, fonts, media and stylesheets from these (and the dashboard) only.
    media_origins = replay_origins(project.origins())
    context = {
        "principal": principal,
        "project": project,
        "session": display_row(summary, now_ms),
        "chunks_json": json.dumps([{k: c[k] for k in _CHUNK_FIELDS} for c in chunks], separators=(",", ":")),
        "media_origins": media_origins,
        "back_url": f"/projects/{project.id}/sessions",
        "live": live,
        "now_ms": now_ms,
    }
    headers = replay_page_headers(media_origins)
    return templates.TemplateResponse(request, "replay.html", context, headers=headers)


@guard("viewer", api=True, replay=True)
async def recording_progress(request: Request) -> Response:
    """The chunks after ``since`` (all without it), whether the session is still live, and our clock."""
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    try:
        since = params.whole_number(request.query_params, "since", -1, 0, MAX_SEQ)
    except params.BadParameter as exc:
        return bad_parameter(exc)
    summary = await run(timed("session_summary", sessions.session_summary), runtime.store, pid, sid)
    chunks = await run(timed("recording_index", recording_index), runtime.store, pid, sid)
    if summary is None and not chunks:
        return error(404, "no such session")
    last = await run(timed("last_event", last_event), runtime.store, pid, sid)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    return json_response(
        {
            "chunks": [{k: c[k] for k in _CHUNK_FIELDS} for c in chunks if c["seq"] > since],
            "live": is_live(summary, chunks, last, now_ms),
            "now_ms": now_ms,
            "started_at": summary["started_at"] if summary else None,
            "duration_ms": summary["duration_ms"] if summary else None,
        }
    )


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/sessions", session_list, methods=["GET"]),
    Route("/projects/{project_id:int}/sessions/{session_id}", replay, methods=["GET"]),
    Route(
        "/api/v1/projects/{project_id:int}/sessions/{session_id}/recording/chunks", recording_progress, methods=["GET"]
    ),
]


def recording_index(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """The session's chunk index in seq order, with when each chunk reached us (``received_at``, our clock)."""
    q = ScopedSelect(project_id).from_("recordings", final=True)
    q.select(
        "seq",
        "toUnixTimestamp64Milli(first_ts) AS first_ts",
        "toUnixTimestamp64Milli(last_ts) AS last_ts",
        "event_count",
        "bytes",
        "toUnixTimestamp64Milli(received_at) AS received_at",
    )
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by.append("seq")
    return store.query(q.sql(), q.params)


def last_event(store: EventStore, project_id: int, session_id: str) -> dict[str, Any] | None:
    """The session's latest analytics event: its type and time (our clock)."""
    q = ScopedSelect(project_id).from_("events").select("type", "toUnixTimestamp64Milli(ts) AS ts")
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by.append("ts DESC")
    q.limit = 1
    rows = store.query(q.sql(), q.params)
    return rows[0] if rows else None


def is_live(
    summary: dict[str, Any] | None, chunks: list[dict[str, Any]], last: dict[str, Any] | None, now_ms: int
) -> bool:
    """Whether the visitor is still there at ``now_ms`` (see the module docstring)."""
    last_ms = max((min(int(c["last_ts"]), int(c["received_at"])) for c in chunks), default=0)
    if summary is not None:
        last_ms = max(last_ms, int(summary["started_at"]) + int(summary.get("duration_ms") or 0))
    if last is not None and last["type"] == "pageleave" and now_ms - int(last["ts"]) >= LEFT_GRACE_MS:
        return False
    return last_ms > 0 and now_ms - last_ms <= LIVE_WINDOW_MS


def display_row(row: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A session summary with what the templates show: times, flag, device icon, short URL."""
    started = dt.datetime.fromtimestamp(row["started_at"] / 1000, dt.UTC)
    country = (row.get("country") or "").upper()
    entry = row.get("entry_url") or ""
    parts = urlsplit(entry)
    return {
        **row,
        "started_iso": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
        "started_relative": relative_time(now_ms - int(row["started_at"])),
        "duration": format_duration(int(row.get("duration_ms") or 0)),
        "flag": country_flag(country),
        "device_icon": DEVICE_ICONS.get(row.get("device_type") or "", DEVICE_ICONS[""]),
        "entry_path": (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if parts.netloc else entry,
        "entry_host": parts.netloc,
        "frustration": frustration_badges(row),
    }


def filter_chips(path: str, query: dict[str, str], carried: list[tuple[str, str]]) -> list[dict[str, str]]:
    """A chip for each filter the form has no field for, with the list's URL without it."""
    chips = []
    for name, value in carried:
        rest = {k: v for k, v in query.items() if k != name and not (name == "prop_key" and k == "prop_value")}
        chips.append({"label": _CARRIED_LABELS.get(name, name), "value": value,
                      "remove_url": path + ("?" + urlencode(rest) if rest else "")})
    return chips


def frustration_badges(row: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(signal, label, count) of each signal the session raised, in the list's order."""
    return [
        (kind, label, int(row.get(_SIGNAL_COUNTS[kind]) or 0))
        for kind, label in SIGNAL_LABELS.items()
        if int(row.get(_SIGNAL_COUNTS[kind]) or 0)
    ]


def country_flag(code: str) -> str:
    """The flag emoji of a two-letter country code (regional indicator symbols), or ''."""
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())


def format_duration(duration_ms: int) -> str:
    seconds = max(duration_ms, 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def relative_time(age_ms: int) -> str:
    seconds = age_ms // 1000
    if seconds < 60:
        return "just now"
    for unit_s, name in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= unit_s:
            n = seconds // unit_s
            suffix = "" if n == 1 or name == "min" else "s"
            return f"{n} {name}{suffix} ago"
    return "just now"
