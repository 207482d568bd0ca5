"""Retention and paths under /api/v1/projects/{id}/…: the cohort grid and the sessions behind one of its cells, the
Sankey of walks from (or to) a page and the sessions that walked one of its edges, as JSON (their OpenAPI part is
here too).

Read endpoints for any member of the project (viewer and up), with the overview's date range and filters (kept in
the URL, so a view is a link) and ``compare=previous`` (the same answer for the days just before, beside it);
days and periods are those of the project's time zone; a bad parameter is a 400 naming it. The dashboard pages
(``hitmetrix.web.retention_pages``) answer from the same functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import params as param
from hitmetrix.analytics import paths, retention
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_api import TEXT_SCHEMA, VIEW_FILTER_PARAMS, VIEW_RESPONSES, query_param, today_in
from hitmetrix.web.analytics_chrome import wants_compare
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run


def previous_of(base: OverviewQuery) -> OverviewQuery:
    """The same view over the same number of days just before it (``compare=previous``)."""
    first, last = base.previous
    return dataclasses.replace(base, date_from=first, date_to=last)


def retention_answer(
    store: EventStore, project_id: int, query: retention.RetentionQuery, zone: str, compare: bool
) -> dict[str, Any]:
    """The grid, and with ``compare`` the grid of the cohorts of the previous period under ``previous``."""
    grid = timed("retention", retention.retention)
    answer = grid(store, project_id, query, zone)
    if compare:
        answer["previous"] = grid(store, project_id, dataclasses.replace(query, base=previous_of(query.base)), zone)
    return answer


def path_answer(
    store: EventStore, project_id: int, query: paths.PathsQuery, zone: str, compare: bool,
    edge: tuple[int, str, str] | None = None, page: int = 1,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Sankey (with ``compare``, the previous period's under ``previous``) and, given an edge, one page of the
    sessions that walked it."""
    walked = timed("paths", paths.paths)
    answer = walked(store, project_id, query, zone)
    if compare:
        answer["previous"] = walked(store, project_id, dataclasses.replace(query, base=previous_of(query.base)), zone)
    listed = None
    if edge is not None:
        listed = timed("path_sessions", paths.edge_sessions)(store, project_id, query, edge, page,
                                                             paths.DEFAULT_PAGE_SIZE, zone)
    return answer, listed


@guard("viewer", api=True)
async def get_retention(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = retention.RetentionQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        compare = wants_compare(request.query_params)
        answer = await run(retention_answer, runtime.store, project.id, query, zone, compare)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


def cell_answer(
    store: EventStore, project_id: int, query: retention.RetentionQuery, zone: str, compare: bool,
    cell: tuple[dt.date, int] | None = None, page: int = 1,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The grid (with ``compare``, the previous period's under ``previous``) and, given a cell (cohort start,
    offset), one page of the sessions behind it."""
    answer = retention_answer(store, project_id, query, zone, compare)
    listed = None
    if cell is not None:
        listed = timed("retention_sessions", retention.cohort_sessions)(store, project_id, query, *cell, page,
                                                                        retention.DEFAULT_PAGE_SIZE, zone)
    return answer, listed


@guard("viewer", api=True)
async def get_retention_sessions(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    params = request.query_params
    try:
        query = retention.RetentionQuery.from_query(params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        cohort_start, offset = retention.parse_cell(params, query)
        page = param.whole_number(params, "page", 1, 1, retention.MAX_PAGE)
        page_size = param.whole_number(params, "page_size", retention.DEFAULT_PAGE_SIZE, 1, retention.MAX_PAGE_SIZE)
        answer = await run(timed("retention_sessions", retention.cohort_sessions), runtime.store, project.id, query,
                           cohort_start, offset, page, page_size, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


@guard("viewer", api=True)
async def get_paths(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = paths.PathsQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        compare = wants_compare(request.query_params)
        answer, _ = await run(path_answer, runtime.store, project.id, query, zone, compare)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


@guard("viewer", api=True)
async def get_path_sessions(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    params = request.query_params
    try:
        query = paths.PathsQuery.from_query(params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        edge = paths.parse_edge(params, query.steps)
        page = param.whole_number(params, "page", 1, 1, paths.MAX_PAGE)
        page_size = param.whole_number(params, "page_size", paths.DEFAULT_PAGE_SIZE, 1, paths.MAX_PAGE_SIZE)
        answer = await run(timed("path_sessions", paths.edge_sessions), runtime.store, project.id, query, edge,
                           page, page_size, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/retention", get_retention, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/retention/sessions", get_retention_sessions, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/paths", get_paths, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/paths/sessions", get_path_sessions, methods=["GET"]),
]

_FILTERS, _RESPONSES, _TEXT, _q = VIEW_FILTER_PARAMS, VIEW_RESPONSES, TEXT_SCHEMA, query_param


_COMPARE = _q("compare", "`previous`: the same answer for the same number of days just before, under `previous`",
              {"type": "string", "enum": ["previous"]})
_CONDITION = "a page pattern (the whole path; * stands for any characters, e.g. /blog/*)"
_PATH_PARAMETERS = [
    *_FILTERS,
    _q("start", "the walks from this (cleaned) page on; give start or end", _TEXT),
    _q("end", "the walks that led to this (cleaned) page; give start or end", _TEXT),
    _q("steps", "pages after the start (before the end)",
       {"type": "integer", "minimum": 1, "maximum": paths.MAX_STEPS, "default": paths.DEFAULT_STEPS}),
    _q("limit", "edges drawn per step; the rest go to an `other` node",
       {"type": "integer", "minimum": 1, "maximum": paths.MAX_EDGES_PER_STEP,
        "default": paths.DEFAULT_EDGES_PER_STEP}),
    _q("strip_ids", "replace number, UUID and hex path segments with :id (default 1)",
       {"type": "string", "enum": ["1", "0", "true", "false"]}),
    {"name": "group", "in": "query", "style": "form", "explode": True,
     "description": f"a cleaning rule REGEX=>TARGET (RE2): a path the regex matches becomes TARGET; up to "
     f"{paths.MAX_GROUP_RULES}, the first that matches wins",
     "schema": {"type": "array", "maxItems": paths.MAX_GROUP_RULES,
                "items": {"type": "string", "maxLength": paths.MAX_GROUP_RULE_CHARS}}},
]
_RETENTION_PARAMETERS = [
    *_FILTERS,
    _q("period", "day, week or month", {"type": "string", "enum": list(retention.PERIODS)}),
    _q("periods", "periods after the cohort's",
       {"type": "integer", "minimum": 1, "maximum": retention.MAX_PERIOD_COUNT,
        "default": retention.DEFAULT_PERIOD_COUNT}),
    _q("identity", "count browsers (anonymous) or identified users (user)",
       {"type": "string", "enum": list(retention.IDENTITIES)}),
    _q("start_page", f"the cohort starts at a session that viewed {_CONDITION}", _TEXT),
    _q("start_event", "… or sent this custom event", _TEXT),
    _q("return_page", f"a return is a session that viewed {_CONDITION}", _TEXT),
    _q("return_event", "… or sent this custom event", _TEXT),
]
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/retention": {
        "get": {
            "summary": "Retention: cohorts by the period visitors were first seen (or first did an event), and how "
            "many came back (or did another event) each period after",
            "description": "Read from the per-session rows the loader writes; periods are days, weeks (Monday) or "
            "months of the project's time zone; cell 0 is the cohort's size.",
            "security": [{"bearer": []}],
            "parameters": [*_RETENTION_PARAMETERS, _COMPARE],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/retention/sessions": {
        "get": {
            "summary": "The sessions behind one cell of a retention answer (oldest first), each with its replay",
            "description": "The cell's visitors are those of the cohort starting on `cohort_start`; offset 0 lists "
            "their sessions in the cohort's own period that start a cohort, offset k their returning sessions k "
            "periods later (the sessions the grid counts). A replay opens just before the session's first page or "
            "event that the start (offset 0) or return condition names.",
            "security": [{"bearer": []}],
            "parameters": [
                *_RETENTION_PARAMETERS,
                {**_q("cohort_start", "the first day of one of the answer's cohorts (its `cohort`)",
                      {"type": "string", "format": "date"}), "required": True},
                {**_q("offset", "the cell: periods after the cohort's (0: the cohort's own)",
                      {"type": "integer", "minimum": 0, "maximum": retention.MAX_PERIOD_COUNT}), "required": True},
                _q("page", "page number", {"type": "integer", "minimum": 1, "maximum": retention.MAX_PAGE}),
                _q("page_size", "sessions per page", {"type": "integer", "minimum": 1,
                                                      "maximum": retention.MAX_PAGE_SIZE}),
            ],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/paths": {
        "get": {
            "summary": "Paths: the pages walked after a start page (or before an end page) as Sankey nodes and "
            "edges, with ids stripped and pages grouped by rules",
            "security": [{"bearer": []}],
            "parameters": [*_PATH_PARAMETERS, _COMPARE],
            "responses": _RESPONSES,
        }
    },
    "/api/v1/projects/{project_id}/paths/sessions": {
        "get": {
            "summary": "The sessions that walked one edge of a paths answer (newest first), each with its replay",
            "security": [{"bearer": []}],
            "parameters": [
                *_PATH_PARAMETERS,
                {**_q("edge", "an edge's id from the paths answer, like 1:/pricing->2:/signup",
                      {"type": "string", "maxLength": 2 * MAX_TEXT_CHARS + 16}), "required": True},
                _q("page", "page number", {"type": "integer", "minimum": 1, "maximum": paths.MAX_PAGE}),
                _q("page_size", "sessions per page", {"type": "integer", "minimum": 1,
                                                      "maximum": paths.MAX_PAGE_SIZE}),
            ],
            "responses": _RESPONSES,
        }
    },
}
