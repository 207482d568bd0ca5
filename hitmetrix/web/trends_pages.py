"""Dashboard pages for trends: the chart of up to five event series with its editor and totals table, and the
sessions behind one line.

The page takes the same parameters as ``GET /api/v1/projects/{id}/trends`` (``series`` as JSON, ``interval``,
``breakdown``, ``breakdown_limit``, ``compare=previous``, the range and the filters) plus ``chart`` (line or bar),
so a view is a link and its JSON is the same URL under /api/v1. It renders from the same query
(``hitmetrix.analytics.trends``): the table here, the chart by ``static/dashboard/trends.js`` from the answer
embedded as a data island (the CSP forbids inline scripts). The series editor is that script's: it writes the
rows into the ``series`` field before the form is sent. Each table row links to its sessions (every session
with such an event in the range, one click from its replay at that moment) and, when the breakdown is also a
filter, to the view filtered by its value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import overview, trends
from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import time_zone
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_chrome import COMPARE_PARAM, FILTER_PARAMS, RANGE_PARAMS, chrome_context, finish_range
from hitmetrix.web.auth import guard, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates
from hitmetrix.web.trends_api import line_of

VIEW_PARAMS = ("series", "interval", "breakdown", "breakdown_limit", "chart")
CHARTS = ("line", "bar")
SESSIONS_PER_PAGE = 50
MATH_LABELS = {"total": "Total count", "visitors": "Unique visitors", "per_session": "Per session (average)"}
KIND_LABELS = {"pageview": "Pageview", "click": "Click", "submit": "Form submit", "custom": "Custom event"}
INTERVAL_LABELS = {"hour": "Hour", "day": "Day", "week": "Week", "month": "Month"}
BREAKDOWN_LABELS = {
    "country": "Country", "device": "Device", "browser": "Browser", "os": "OS", "referrer": "Referrer",
    "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "entry_path": "Entry page", "path": "Page (of the event)",
}
# Breakdowns that are also overview filters: a row links to the view filtered by its value.
BREAKDOWN_FILTERS = {name: name for name in ("country", "device", "browser", "os", "referrer", "utm_source",
                                             "utm_medium", "utm_campaign")}


def editor_rows(definition: trends.TrendDefinition) -> list[dict[str, str]]:
    """The editor's rows, one per series, as text fields (properties as ``key=value`` lines)."""
    rows = []
    for s in definition.series:
        step = s.step
        rows.append({"kind": step.kind, "match": step.match, "path": step.path, "selector": step.selector,
                     "text": step.text, "name": step.name, "props": "\n".join(f"{k}={v}" for k, v in step.props),
                     "math": s.math})
    return rows


def _previous_totals(answer: Mapping[str, Any]) -> dict[tuple[int, Any, bool], dict[str, Any]]:
    previous = answer.get("previous") or {}
    return {(line["series"], line.get("breakdown_value"), bool(line.get("other"))): line["totals"]
            for line in previous.get("lines", [])}


def _change(now: float, before: float) -> int | None:
    return round(100 * (now - before) / before) if before else None


def table_rows(answer: Mapping[str, Any], definition: trends.TrendDefinition, project_id: int,
               params: Mapping[str, str], links: Any) -> list[dict[str, Any]]:
    """One row per line: its name, its totals (and the previous period's), its sessions and filtered view."""
    before = _previous_totals(answer)
    carried = {k: v for k, v in params.items() if k in (*RANGE_PARAMS, *FILTER_PARAMS, *VIEW_PARAMS) and k != "chart"}
    carried.update(links.session_range)
    rows = []
    for line in answer["lines"]:
        value, other = line.get("breakdown_value"), bool(line.get("other"))
        which: dict[str, str] = {"index": str(line["series"])}
        if definition.breakdown:
            which.update({"other": "1"} if other else {"value": value or ""})
        math = line["math"]
        previous = before.get((line["series"], value, other))
        filter_name = BREAKDOWN_FILTERS.get(definition.breakdown)
        rows.append({
            "series": line["series"],
            "label": line["label"],
            "value_label": None if not definition.breakdown else "Other" if other else (value or "(none)"),
            "math": math,
            "math_label": MATH_LABELS[math],
            "totals": line["totals"],
            "shown": line["totals"][math],
            "previous": previous[math] if previous else None,
            "change": _change(line["totals"][math], previous[math]) if previous else None,
            "sessions_url": f"/projects/{project_id}/trends/sessions?" + urlencode({**carried, **which}),
            "filter_url": links.view(**{filter_name: value}) if filter_name and value and not other else None,
        })
    return rows


def _parse(request: Request, context: dict[str, Any]) -> tuple[overview.OverviewQuery, trends.TrendDefinition]:
    query = overview.OverviewQuery.from_query(request.query_params, context["today"])
    definition = trends.TrendDefinition.from_query(request.query_params, query)
    finish_range(context, query.date_from, query.date_to)
    return query, definition


def _base_context(request: Request, mode: str) -> dict[str, Any]:
    context = chrome_context(request, "trends", view_params=VIEW_PARAMS)
    links = context["links"]
    context.update({
        "mode": mode,
        "kinds": KIND_LABELS,
        "maths": MATH_LABELS,
        "intervals": INTERVAL_LABELS,
        "breakdowns": BREAKDOWN_LABELS,
        "max_series": trends.MAX_SERIES,
        "api_url": f"/api/v1/projects/{context['project'].id}/trends"
        + ("?" + urlencode({k: v for k, v in links.params.items() if k != "chart"}) if links.params else ""),
        # The editor's form keeps the range, the filters and the comparison; its own fields replace the rest.
        "keep_for_editor": links.hidden(keep=(*RANGE_PARAMS, COMPARE_PARAM, *FILTER_PARAMS, "chart")),
        "rows": editor_rows(trends.TrendDefinition()),
        "definition": trends.TrendDefinition(),
    })
    return context


@guard("viewer")
async def trends_page(request: Request) -> Response:
    context = _base_context(request, "trend")
    runtime, project, links = runtime_of(request), context["project"], context["links"]
    zone = context["time_zone"]
    status = 200
    try:
        chart = param.choice(request.query_params, "chart", CHARTS) or "line"
        query, definition = _parse(request, context)
        context["rows"], context["definition"] = editor_rows(definition), definition
        query = await resolve_cohort(request, query)
        answer = await run(timed("trend", trends.trend), runtime.store, project.id, query, definition, zone)
    except BadParameter as exc:
        context["error"], context["error_field"] = str(exc), exc.parameter
        status = 400
    else:
        context.update(
            chart=chart,
            answer=answer,
            series_json=definition.series_json(),
            table=table_rows(answer, definition, project.id, request.query_params, links),
            chart_urls={c: links.view(chart=None if c == "line" else c) for c in CHARTS},
            island={"trend": answer, "chart": chart},
        )
    return templates.TemplateResponse(request, "trends.html", context, status_code=status)


@guard("viewer")
async def trend_sessions_page(request: Request) -> Response:
    context = _base_context(request, "sessions")
    runtime, project, links = runtime_of(request), context["project"], context["links"]
    zone, params = context["time_zone"], request.query_params
    status = 200
    try:
        query, definition = _parse(request, context)
        context["rows"], context["definition"] = editor_rows(definition), definition
        query = await resolve_cohort(request, query)
        index, value = line_of(params, definition)
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        answer = await run(timed("trend_sessions", trends.trend_sessions), runtime.store, project.id, query,
                           definition, index, value, offset, SESSIONS_PER_PAGE, zone)
    except BadParameter as exc:
        context["error"], context["error_field"] = str(exc), exc.parameter
        status = 400
    else:
        tz = time_zone(zone)
        for s in answer["sessions"]:
            moment = dt.datetime.fromtimestamp(s["first_event_ms"] / 1000, dt.UTC).astimezone(tz)
            s["first_event_text"] = moment.strftime("%Y-%m-%d %H:%M:%S")
        here = {k: v for k, v in params.items() if k != "offset"}
        base = f"/projects/{project.id}/trends/sessions?"
        context.update(
            listing=answer,
            line_label=answer["label"] + (
                "" if not definition.breakdown else " · " + ("Other" if value is None else value or "(none)")),
            back_url=links.view(),
            next_url=base + urlencode({**here, "offset": answer["next_offset"]}) if answer["next_offset"] else None,
            prev_url=base + urlencode({**here, "offset": max(0, offset - SESSIONS_PER_PAGE)}) if offset else None,
        )
    return templates.TemplateResponse(request, "trends.html", context, status_code=status)


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/trends", trends_page, methods=["GET"]),
    Route("/projects/{project_id:int}/trends/sessions", trend_sessions_page, methods=["GET"]),
]
