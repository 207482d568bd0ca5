"""Funnels under /api/v1/projects/{id}/funnels: a funnel's steps, breakdown and trend, and each step's sessions.

GET with the definition as a JSON ``definition`` parameter: a funnel is a read, so it is a link that can be
shared and bookmarked like every other view, and a safe method needs no CSRF token. Any member (viewer and up)
may read; days are days of the project's zone; a bad parameter is a 400 naming it (``definition.steps[1].path``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import funnels, overview
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_api import OPENAPI_PATHS as OVERVIEW_PATHS
from hitmetrix.web.analytics_api import today_in
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.offload import run


def _parse(request: Request, zone: str) -> tuple[overview.OverviewQuery, funnels.FunnelDefinition]:
    runtime = runtime_of(request)
    query = overview.OverviewQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
    definition = funnels.FunnelDefinition.from_json(request.query_params.get("definition") or "")
    return query, definition


@guard("viewer", api=True)
async def get_funnel(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query, definition = _parse(request, zone)
        answer = await run(timed("funnel", funnels.funnel), runtime.store, project.id, query, definition, zone)
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
        step = param.whole_number(params, "step", 1, 1, funnels.MAX_STEPS)
        outcome = param.choice(params, "outcome", ("converted", "dropped")) or "converted"
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        limit = param.whole_number(params, "limit", 50, 1, funnels.MAX_PAGE)
        answer = await run(timed("funnel_sessions", funnels.funnel_sessions), runtime.store, project.id, query,
                           definition, step, outcome, offset, limit, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/funnels", get_funnel, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/funnels/sessions", get_funnel_sessions, methods=["GET"]),
]

_FILTERS: list[dict[str, Any]] = OVERVIEW_PATHS["/api/v1/projects/{project_id}/overview"]["get"]["parameters"]
_COMMON = [p for p in _FILTERS if p["name"] != "limit"]
_RESPONSES = OVERVIEW_PATHS["/api/v1/projects/{project_id}/overview"]["get"]["responses"]
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
            "parameters": [*_COMMON, _DEFINITION],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/funnels/sessions": {
        "get": {
            "summary": "The sessions that reached a funnel step (converted) or dropped off before it, each with "
            "its replay URL, paged",
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
