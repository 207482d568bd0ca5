"""Web vitals and JS errors under /api/v1/projects/{id}/…: p75 per metric, page and bucket; error groups; one
group with its sessions, each with a replay link at the error (their OpenAPI part is here too).

Read endpoints for any member of the project (viewer and up), with the overview's date range and filters (kept in
the URL, so a view is a link); days are those of the project's time zone; a bad parameter is a 400 naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import errors, vitals
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.paths import MAX_GROUP_RULE_CHARS, MAX_GROUP_RULES
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_api import TEXT_SCHEMA, VIEW_FILTER_PARAMS, VIEW_RESPONSES, query_param, today_in
from hitmetrix.web.api import bad_parameter, error, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run

Q = TypeVar("Q")


async def _report(request: Request, from_query: Callable[[Mapping[str, str], dt.date], Q],
                  report: Callable[[EventStore, int, Q, str], dict[str, Any]], name: str) -> Response:
    """``report(store, project id, query, time zone)`` (timed as ``name``) for the view the URL describes."""
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = await resolve_cohort(request, from_query(request.query_params, today_in(zone, now_of(runtime))))
        answer = await run(timed(name, report), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


@guard("viewer", api=True)
async def get_vitals(request: Request) -> Response:
    return await _report(request, vitals.VitalsQuery.from_query, vitals.vitals, "vitals")


@guard("viewer", api=True)
async def get_errors(request: Request) -> Response:
    return await _report(request, errors.ErrorsQuery.from_query, errors.errors, "errors")


@guard("viewer", api=True)
async def get_error_group(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    params = request.query_params
    try:
        group = errors.parse_group(request.path_params["group"])
        query = await resolve_cohort(request, errors.ErrorsQuery.from_query(params, today_in(zone, now_of(runtime))))
        page = param.whole_number(params, "page", 1, 1, errors.MAX_PAGE)
        page_size = param.whole_number(params, "page_size", errors.DEFAULT_PAGE_SIZE, 1, errors.MAX_PAGE_SIZE)
        answer = await run(timed("error_group", errors.error_group), runtime.store, project.id, query, group,
                           page, page_size, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    if answer is None:
        return error(404, "no error of this group in the range (with these filters)")
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/vitals", get_vitals, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/errors", get_errors, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/errors/{group}", get_error_group, methods=["GET"]),
]

_FILTERS, _RESPONSES, _TEXT, _q = VIEW_FILTER_PARAMS, VIEW_RESPONSES, TEXT_SCHEMA, query_param


def _semantics(module: Any, marker: str) -> str:
    return (module.__doc__ or "").split(marker)[-1].strip()


_ERRORS_PARAMETERS = [
    *_FILTERS,
    _q("search", "only groups whose (grouped) message contains this, case-insensitive", _TEXT),
]
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/vitals": {
        "get": {
            "summary": "Web vitals: p75 of LCP, INP, CLS, FCP and TTFB with good / needs-improvement / poor shares, "
            "per page and over time, beside the previous period",
            "description": _semantics(vitals, "What the numbers mean — decided here, once:"),
            "security": [{"bearer": []}],
            "parameters": [
                *_FILTERS,
                _q("page", "only this (cleaned) page", _TEXT),
                _q("sort", "order of the pages: by a metric's p75, by pageviews measured or by page",
                   {"type": "string", "enum": list(vitals.SORTS)}),
                _q("order", "desc (default; asc for page) or asc", {"type": "string", "enum": ["asc", "desc"]}),
                _q("pages", "page rows", {"type": "integer", "minimum": 1, "maximum": vitals.MAX_PAGES,
                                          "default": vitals.DEFAULT_PAGES}),
                _q("strip_ids", "replace number, UUID and hex path segments with :id (default 1)",
                   {"type": "string", "enum": ["1", "0", "true", "false"]}),
                {"name": "group", "in": "query", "style": "form", "explode": True,
                 "description": f"a page rule REGEX=>TARGET (RE2): a page the regex matches becomes TARGET; up to "
                 f"{MAX_GROUP_RULES}, the first that matches wins",
                 "schema": {"type": "array", "maxItems": MAX_GROUP_RULES,
                            "items": {"type": "string", "maxLength": MAX_GROUP_RULE_CHARS}}},
            ],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/errors": {
        "get": {
            "summary": "JS errors grouped by message and top stack frame: counts, affected sessions and visitors, "
            "first and last seen, a count per bucket, beside the previous period",
            "description": _semantics(errors, "What an error group means — decided here, once:"),
            "security": [{"bearer": []}],
            "parameters": [
                *_ERRORS_PARAMETERS,
                _q("sort", "order of the groups", {"type": "string", "enum": list(errors.SORTS)}),
                _q("groups", "groups listed", {"type": "integer", "minimum": 1, "maximum": errors.MAX_GROUPS,
                                               "default": errors.DEFAULT_GROUPS}),
            ],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/errors/{group}": {
        "get": {
            "summary": "One error group: its counts and series, its latest stack, and the sessions it happened in "
            "(latest first, paged), each with a replay URL that opens at the error",
            "security": [{"bearer": []}],
            "parameters": [
                *_ERRORS_PARAMETERS,
                {"name": "group", "in": "path", "required": True, "description": "a group id of the errors answer",
                 "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}},
                _q("page", "page number", {"type": "integer", "minimum": 1, "maximum": errors.MAX_PAGE}),
                _q("page_size", "sessions per page", {"type": "integer", "minimum": 1,
                                                      "maximum": errors.MAX_PAGE_SIZE}),
            ],
            "responses": _RESPONSES,
        }
    },
}
