"""Trends under /api/v1/projects/{id}/trends: up to five event series over time, and the sessions behind a line.

GET with the series as a JSON list in the ``series`` parameter (each an object like a funnel step in the funnels'
``definition``, plus its ``math``), so a trend is a link that can be shared and bookmarked; the interval, the
breakdown and ``compare=previous`` are plain parameters beside the overview's range and filters. Any member
(viewer and up) may read; days are days of the project's zone; a bad parameter is a 400 naming it
(``series[1].path``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import overview, trends
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_api import VIEW_FILTER_PARAMS, VIEW_RESPONSES, today_in
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run


def parse(params: Mapping[str, str], zone: str, now: dt.datetime
          ) -> tuple[overview.OverviewQuery, trends.TrendDefinition]:
    """The range, filters and trend definition of a request's parameters (the page parses them the same way)."""
    query = overview.OverviewQuery.from_query(params, today_in(zone, now))
    return query, trends.TrendDefinition.from_query(params, query)


@guard("viewer", api=True)
async def get_trend(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query, definition = parse(request.query_params, zone, now_of(runtime))
        query = await resolve_cohort(request, query)
        answer = await run(timed("trend", trends.trend), runtime.store, project.id, query, definition, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


def line_of(params: Mapping[str, str], definition: trends.TrendDefinition) -> tuple[int, str | None]:
    """(series index, breakdown value or None for "other") of ``index`` and ``value`` / ``other``."""
    index = param.whole_number(params, "index", 0, 0, trends.MAX_SERIES - 1)
    if index >= len(definition.series):
        raise BadParameter("index", f"index must be from 0 to {len(definition.series) - 1}")
    other = param.flag(params, "other")
    value = params.get("value")
    if not definition.breakdown:
        if other or value is not None:
            raise BadParameter("value", "value and other need a breakdown")
        return index, None
    if other:
        if value is not None:
            raise BadParameter("value", "give a value or other=1, not both")
        return index, None
    if value is None:
        raise BadParameter("value", "with a breakdown, give the line's value (or other=1)")
    if len(value) > overview.MAX_TEXT_CHARS:
        raise BadParameter("value", f"value is too long (at most {overview.MAX_TEXT_CHARS} characters)")
    return index, value


@guard("viewer", api=True)
async def get_trend_sessions(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    params = request.query_params
    try:
        query, definition = parse(params, zone, now_of(runtime))
        query = await resolve_cohort(request, query)
        index, value = line_of(params, definition)
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        limit = param.whole_number(params, "limit", 50, 1, trends.MAX_PAGE)
        answer = await run(timed("trend_sessions", trends.trend_sessions), runtime.store, project.id, query,
                           definition, index, value, offset, limit, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/trends", get_trend, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/trends/sessions", get_trend_sessions, methods=["GET"]),
]

_COMMON, _RESPONSES = VIEW_FILTER_PARAMS, VIEW_RESPONSES
_STEP = ("{\"kind\": \"pageview\", \"match\": \"exact\"|\"prefix\"|\"regex\", \"path\": …} | {\"kind\": \"click\", "
         "\"selector\": …, \"text\": …} | {\"kind\": \"submit\", \"selector\": …} | {\"kind\": \"custom\", \"name\": "
         "…, \"props\": {key: value}}")
_DEFINITION = [
    {"name": "series", "in": "query",
     "description": f"the series as a JSON list of 1–{trends.MAX_SERIES} event definitions, each {_STEP} with "
     "\"math\": " + "|".join(f'"{m}"' for m in trends.MATHS) + " (default \"total\"); default: every pageview",
     "schema": {"type": "string", "maxLength": trends.MAX_SERIES_CHARS}},
    {"name": "interval", "in": "query", "description": "the bucket (default: hour up to 2 days, day up to 92, "
     f"week beyond); hour for at most {trends.MAX_HOUR_DAYS} days",
     "schema": {"type": "string", "enum": list(trends.INTERVALS)}},
    {"name": "breakdown", "in": "query", "description": "a line per value of "
     + ", ".join(trends.BREAKDOWNS) + ", or prop:<key> (a custom event's property); the top values and \"other\"",
     "schema": {"type": "string", "maxLength": overview.MAX_TEXT_CHARS}},
    {"name": "breakdown_limit", "in": "query", "description": "how many values get a line of their own",
     "schema": {"type": "integer", "minimum": 1, "maximum": trends.MAX_BREAKDOWN_LIMIT,
                "default": trends.DEFAULT_BREAKDOWN_LIMIT}},
    {"name": "compare", "in": "query", "description": "previous: the same series over the previous period of as "
     "many days", "schema": {"type": "string", "enum": ["previous"]}},
]
_SEMANTICS = (trends.__doc__ or "").split("What a trend means — decided here, once:")[-1].split("Reads:")[0].strip()
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/trends": {
        "get": {
            "summary": "Trends: events, unique visitors or events per session of up to five event series over "
            "time, a breakdown by a property, and the previous period",
            "description": _SEMANTICS,
            "security": [{"bearer": []}],
            "parameters": [*_COMMON, *_DEFINITION],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/trends/sessions": {
        "get": {
            "summary": "The sessions behind one line of a trend, by their first such event, each with its replay "
            "URL at that moment, paged",
            "security": [{"bearer": []}],
            "parameters": [
                *_COMMON, *_DEFINITION,
                {"name": "index", "in": "query", "description": "the series (0-based)",
                 "schema": {"type": "integer", "minimum": 0, "maximum": trends.MAX_SERIES - 1, "default": 0}},
                {"name": "value", "in": "query", "description": "with a breakdown: the line's value",
                 "schema": {"type": "string", "maxLength": overview.MAX_TEXT_CHARS}},
                {"name": "other", "in": "query", "description": "with a breakdown: 1 for the \"other\" line",
                 "schema": {"type": "string", "enum": ["0", "1"]}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": trends.MAX_PAGE, "default": 50}},
            ],
            "responses": _RESPONSES,
        }
    },
}
