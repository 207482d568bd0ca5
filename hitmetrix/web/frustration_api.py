"""Frustration signals under /api/v1/projects/{id}/…: the pages with most (rage, dead and error clicks, quick backs,
excessive scrolling, thrashed cursor) for the overview's range and filters, and one session's signals in time order
for its replay timeline, as JSON (their OpenAPI part is here too).

Read endpoints for any member of the project (viewer and up); a bad parameter is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import frustration_query
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_api import OPENAPI_PATHS as OVERVIEW_PATHS
from hitmetrix.web.analytics_api import today_in
from hitmetrix.web.api import bad_parameter, error, json_response, session_id_of
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run


@guard("viewer", api=True)
async def get_frustration(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = OverviewQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        answer = await run(
            timed("frustration", frustration_query.pages_with_most_frustration), runtime.store, project.id, query, zone
        )
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


@guard("viewer", api=True)
async def get_session_frustration(request: Request) -> Response:
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    answer = await run(timed("session_frustration", frustration_query.session_marks), runtime.store, pid, sid)
    if answer is None:
        return error(404, "no such session")
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/frustration", get_frustration, methods=["GET"]),
    Route(
        "/api/v1/projects/{project_id:int}/sessions/{session_id}/frustration",
        get_session_frustration,
        methods=["GET"],
    ),
]

_OVERVIEW = OVERVIEW_PATHS["/api/v1/projects/{project_id}/overview"]["get"]
_SIGNALS = ", ".join(frustration_query.SIGNALS)
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/frustration": {
        "get": {
            "summary": "Frustration signals: how many sessions raised any, each signal's count beside the previous "
            "period's, and the pages with most",
            "description": f"Signals: {_SIGNALS}. Computed per session when it is loaded; a session counts in the "
            "range it started in; a signal counts on the page it happened on. `limit` pages, most signals first.",
            "security": [{"bearer": []}],
            "parameters": _OVERVIEW["parameters"],
            "responses": _OVERVIEW["responses"],
        }
    },
    "/api/v1/projects/{project_id}/sessions/{session_id}/frustration": {
        "get": {
            "summary": "One session's frustration signals in time order (what its replay timeline marks) and their "
            "counts",
            "security": [{"bearer": []}],
            "parameters": [
                _OVERVIEW["parameters"][0],
                {"name": "session_id", "in": "path", "required": True,
                 "schema": {"type": "string"}},
            ],
            "responses": _OVERVIEW["responses"],
        }
    },
}

# What the session list (GET /api/v1/projects/{id}/sessions) takes besides its own filters: the signals, and the
# overview's filters it has no field of its own for (hitmetrix.analytics.sessions.SessionFilters.analytics).
_LIST_OWN = {"project_id", "from", "to", "limit", "url", "country", "device", "browser", "os", "cohort"}
SESSION_LIST_PARAMETERS: list[dict[str, Any]] = [
    {"name": "frustration", "in": "query",
     "description": f"sessions with any of these signals, separated by commas ({_SIGNALS}), or `any`",
     "schema": {"type": "string", "maxLength": 200}},
    {"name": "frustration_page", "in": "query",
     "description": "sessions that raised a signal (those of `frustration`, or any) on the page with this path",
     "schema": {"type": "string", "maxLength": 500}},
    *(p for p in _OVERVIEW["parameters"] if p["name"] not in _LIST_OWN),
]
