"""Behaviour analytics under /api/v1/projects/{id}/…: the overview as JSON (its OpenAPI part is here too).

Read endpoints for any member of the project (viewer and up), like the session list; days are days of the
project's time zone, and a bad parameter is a 400 naming it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import overview
from hitmetrix.analytics.days import time_zone
from hitmetrix.analytics.params import MAX_DATE, MIN_DATE, BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, now_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run


def today_in(zone: str, now: dt.datetime) -> dt.date:
    return now.astimezone(time_zone(zone)).date()


@guard("viewer", api=True)
async def get_overview(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    try:
        query = overview.OverviewQuery.from_query(request.query_params, today_in(zone, now_of(runtime)))
        query = await resolve_cohort(request, query)
        answer = await run(timed("overview", overview.overview), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response(answer)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/overview", get_overview, methods=["GET"]),
]

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_BAD = {
    "description": "a parameter is wrong: `field` names it, `error` says what is wrong",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_DAY = (
    f"a day of the project's time zone, between {MIN_DATE} and {MAX_DATE}; a session counts on the day it started"
)


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI query parameter (every analytics view's documentation builds its own with this)."""
    return {"name": name, "in": "query", "description": description, "schema": schema}


_q = query_param


_MAX_ID = 10**18 - 1  # as hitmetrix.web.openapi.MAX_ID: a longer id matches no route
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": overview.MAX_TEXT_CHARS}
_TEXT = TEXT_SCHEMA
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/overview": {
        "get": {
            "summary": "Overview: visitors, sessions, pageviews, bounce rate, duration, a time series, the previous "
            "period, top pages, entry and exit pages, referrers, UTM tags, countries, browsers, OS, devices",
            "description": "Read from the per-session rows the loader writes. A session is in the range if it "
            "started in it; the series bucket is an hour (1–2 days), a day (up to 92) or a week (Monday).",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "project_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_ID}},
                _q("from", f"first day (default: {overview.DEFAULT_DAYS} days before `to`); {_DAY}",
                   {"type": "string", "format": "date"}),
                _q("to", f"last day, inclusive (default: today); {_DAY}", {"type": "string", "format": "date"}),
                _q("limit", "rows of each list", {"type": "integer", "minimum": 1, "maximum": overview.MAX_LIMIT,
                                                   "default": overview.DEFAULT_LIMIT}),
                _q("country", "two-letter country code", {"type": "string", "pattern": "^[A-Za-z]{2}$"}),
                _q("device", "device type", {"type": "string", "enum": list(overview.DEVICE_TYPES)}),
                _q("browser", "browser family", _TEXT),
                _q("os", "operating system family", _TEXT),
                _q("url", "the session viewed a page whose path contains this (case-insensitive)", _TEXT),
                _q("referrer", "the entry's referrer domain, without www. (empty: direct)", _TEXT),
                _q("utm_source", "utm_source of the entry page", _TEXT),
                _q("utm_medium", "utm_medium of the entry page", _TEXT),
                _q("utm_campaign", "utm_campaign of the entry page", _TEXT),
                _q("identified", "the visitor identified (yes) or not (no)", {"type": "string", "enum": ["yes", "no"]}),
                _q("prop_key", "a custom event of the session has this property", _TEXT),
                _q("prop_value", "… with this value (needs prop_key)", _TEXT),
                _q("cohort", "a cohort's id (…/cohorts): only its people's sessions",
                   {"type": "integer", "minimum": 1, "maximum": overview.MAX_COHORT_ID}),
            ],
            "responses": {"200": {"description": "ok"}, "400": _BAD, "401": _ERR, "404": _ERR},
        }
    },
}


# What every other analytics view's documentation shares with the overview's: its range and filters (not its list
# length) and its answers (200, 400 naming the parameter, 401, 404).
VIEW_FILTER_PARAMS: list[dict[str, Any]] = [
    p for p in OPENAPI_PATHS["/api/v1/projects/{project_id}/overview"]["get"]["parameters"] if p["name"] != "limit"
]
VIEW_RESPONSES: dict[str, Any] = OPENAPI_PATHS["/api/v1/projects/{project_id}/overview"]["get"]["responses"]
