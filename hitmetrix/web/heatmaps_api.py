"""Heatmaps under /api/v1/projects/{id}/heatmaps: a page's clicks by element and by document position, rage and
dead clicks, scroll depth, and which recorded pageview to replay underneath, for one device width bucket.

Any member (viewer and up) may read; days are days of the project's zone; a bad parameter is a 400 naming it.
The answer names sessions to replay but holds nothing of a recording: the chunks are read from the session API,
which checks replay rights itself.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import heatmaps
from hitmetrix.analytics.overview import MAX_TEXT_CHARS
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_api import VIEW_FILTER_PARAMS, VIEW_RESPONSES, today_in
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run


@guard("viewer", api=True)
async def get_heatmap(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = heatmaps.HeatmapQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        answer = await run(timed("heatmap", heatmaps.heatmap), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/heatmaps", get_heatmap, methods=["GET"]),
]

_COMMON, _RESPONSES = VIEW_FILTER_PARAMS, VIEW_RESPONSES
_SEMANTICS = (heatmaps.__doc__ or "").split("What a heatmap means — decided here, once:")[-1].split("Reads ")[0]
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/heatmaps": {
        "get": {
            "summary": "Heatmap of a page: clicks by element (offsets as fractions of the element's box) and by "
            "document position, rage and dead clicks, scroll depth reached, and recorded pageviews to replay under it",
            "description": _SEMANTICS.strip(),
            "security": [{"bearer": []}],
            "parameters": [
                *_COMMON,
                {"name": "page", "in": "query", "description": "the page: a path (/pricing) or a URL without its "
                 "query (https://…/pricing); * matches any run of characters",
                 "schema": {"type": "string", "maxLength": MAX_TEXT_CHARS}},  # required: absent is a 400
                {"name": "width", "in": "query", "description": "viewport width bucket: desktop ≥ 1024 px, tablet "
                 "768–1023 px, mobile < 768 px",
                 "schema": {"type": "string", "enum": list(heatmaps.WIDTHS), "default": "desktop"}},
                {"name": "kind", "in": "query", "description": "which clicks the offsets and positions are of, and "
                 "what orders the elements (scroll: all clicks)",
                 "schema": {"type": "string", "enum": list(heatmaps.KINDS), "default": "clicks"}},
                {"name": "limit", "in": "query", "description": "how many elements",
                 "schema": {"type": "integer", "minimum": 1, "maximum": heatmaps.MAX_ELEMENTS,
                            "default": heatmaps.DEFAULT_ELEMENTS}},
            ],
            "responses": _RESPONSES,
        }
    },
}
