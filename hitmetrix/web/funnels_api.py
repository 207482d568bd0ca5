"""Funnels under /api/v1/projects/{id}/funnels: a funnel's steps, breakdown and trend, and each step's sessions.

GET with the definition as a JSON ``definition`` parameter: a funnel is a read, so it is a link that can be
shared and bookmarked like every other view, and a safe method needs no CSRF token. Any member (viewer and up)
may read; days are days of the project's zone; a bad parameter is a 400 naming it (``definition.steps[1].path``).
``compare=previous`` adds the same funnel over the previous period of the same length. A listed session's replay
link opens at the moment it entered the funnel (``?t=`` seconds after the session's start, as the replay page
takes it), a little before, so the step is seen happening.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import funnels, overview
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_api import VIEW_FILTER_PARAMS, VIEW_RESPONSES, today_in
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run

# The replay opens this long before the session entered the funnel: the step is seen happening, not its aftermath.
REPLAY_LEAD_MS = 2_000


def _parse(request: Request, zone: str) -> tuple[overview.OverviewQuery, funnels.FunnelDefinition]:
    runtime = runtime_of(request)
    query = overview.OverviewQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
    definition = funnels.FunnelDefinition.from_json(request.query_params.get("definition") or "")
    return query, definition


def funnel_with_previous(store: EventStore, project_id: int, query: overview.OverviewQuery,
                         definition: funnels.FunnelDefinition, zone: str, compare: bool) -> dict[str, Any]:
    """The funnel, and with ``compare`` the same funnel over the previous period of as many days (``previous``)."""
    answer = funnels.funnel(store, project_id, query, definition, zone)
    if compare:
        first, last = query.previous
        previous = dataclasses.replace(query, date_from=first, date_to=last)
        answer["previous"] = funnels.funnel(store, project_id, previous, definition, zone)
    return answer


def with_replay_moments(store: EventStore, project_id: int, answer: dict[str, Any]) -> dict[str, Any]:
    """Each listed session's start, where it is, what it ran on, and its replay URL at the moment it entered."""
    listed = answer["sessions"]
    if not listed:
        return answer
    q = ScopedSelect(project_id).from_("sessions", final=True)
    q.select("session_id", "toUnixTimestamp64Milli(started_at) AS started_ms", "country", "device_type", "browser",
             "os", "pageviews", "duration_ms")
    q.where("is_deleted = 0")
    q.where("session_id IN (" + ", ".join(q.bind(s["session_id"], "String") for s in listed) + ")")
    found = {row["session_id"]: row for row in store.query(q.sql(), q.params)}
    for s in listed:
        row = found.get(s["session_id"])
        if row is None:  # deleted meanwhile: the replay page says so
            continue
        started_ms = int(row["started_ms"])
        at_s = max(0, (int(s["entered_at_ms"]) - REPLAY_LEAD_MS - started_ms) // 1000)
        s.update({"started_at_ms": started_ms, "replay_at_s": at_s, "replay_url": f"{s['replay_url']}?t={at_s}",
                  "country": row["country"], "device_type": row["device_type"], "browser": row["browser"],
                  "os": row["os"], "pageviews": int(row["pageviews"]), "duration_ms": int(row["duration_ms"])})
    return answer


def funnel_sessions_with_moments(store: EventStore, project_id: int, query: overview.OverviewQuery,
                                 definition: funnels.FunnelDefinition, step: int, outcome: str, offset: int,
                                 limit: int, zone: str) -> dict[str, Any]:
    answer = funnels.funnel_sessions(store, project_id, query, definition, step, outcome, offset, limit, zone)
    return with_replay_moments(store, project_id, answer)


@guard("viewer", api=True)
async def get_funnel(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query, definition = _parse(request, zone)
        query = await resolve_cohort(request, query)
        compare = param.choice(request.query_params, "compare", ("previous",)) == "previous"
        answer = await run(timed("funnel", funnel_with_previous), runtime.store, project.id, query, definition, zone,
                           compare)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


@guard("viewer", api=True)
async def get_funnel_sessions(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    params = request.query_params
    try:
        query, definition = _parse(request, zone)
        query = await resolve_cohort(request, query)
        step = param.whole_number(params, "step", 1, 1, funnels.MAX_STEPS)
        outcome = param.choice(params, "outcome", ("converted", "dropped")) or "converted"
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        limit = param.whole_number(params, "limit", 50, 1, funnels.MAX_PAGE)
        answer = await run(timed("funnel_sessions", funnel_sessions_with_moments), runtime.store, project.id, query,
                           definition, step, outcome, offset, limit, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/funnels", get_funnel, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/funnels/sessions", get_funnel_sessions, methods=["GET"]),
]

_COMMON, _RESPONSES = VIEW_FILTER_PARAMS, VIEW_RESPONSES
_DEFINITION = {
    "name": "definition", "in": "query",
    "description": "the funnel as JSON: {\"steps\": [2–10 of {\"kind\": \"pageview\", \"match\": "
    "\"exact\"|\"prefix\"|\"regex\", \"path\": …} | {\"kind\": \"click\", \"selector\": …, \"text\": …} | "
    "{\"kind\": \"submit\", \"selector\": …} | {\"kind\": \"custom\", \"name\": …, \"props\": {key: value}}], "
    "\"window_s\": seconds (default 86400), \"order\": \"ordered\"|\"strict\"|\"any\", \"exclusions\": [a step "
    "with \"from_step\", \"to_step\"], \"breakdown\": " + "|".join(f'"{b}"' for b in funnels.BREAKDOWNS) + "}",
    "schema": {"type": "string", "maxLength": funnels.MAX_DEFINITION_CHARS},  # required: absent is a 400
}
_SEMANTICS = (funnels.__doc__ or "").split("What a funnel means — decided here, once:")[-1].split("Reads:")[0].strip()
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/funnels": {
        "get": {
            "summary": "Funnel: sessions per step, conversion, drop-off, median time to convert, a breakdown by a "
            "property and a daily conversion trend",
            "description": _SEMANTICS,
            "security": [{"bearer": []}],
            "parameters": [
                *_COMMON, _DEFINITION,
                {"name": "compare", "in": "query", "description": "previous: add the same funnel over the previous "
                 "period of as many days, as `previous`", "schema": {"type": "string", "enum": ["previous"]}},
            ],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/funnels/sessions": {
        "get": {
            "summary": "The sessions that reached a funnel step (converted) or dropped off before it, each with "
            "its replay URL at the moment it entered the funnel, paged",
            "security": [{"bearer": []}],
            "parameters": [
                *_COMMON, _DEFINITION,
                {"name": "step", "in": "query", "description": "the step (1-based)",
                 "schema": {"type": "integer", "minimum": 1, "maximum": funnels.MAX_STEPS, "default": 1}},
                {"name": "outcome", "in": "query", "description": "converted: reached the step; dropped: reached "
                 "the one before and not this one (step 2 or later)",
                 "schema": {"type": "string", "enum": ["converted", "dropped"], "default": "converted"}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": funnels.MAX_PAGE, "default": 50}},
            ],
            "responses": _RESPONSES,
        }
    },
}
