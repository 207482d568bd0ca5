"""Dashboard pages for web vitals (p75 tiles coloured by rating, the trend of one metric, the per-page table sortable
by any metric) and JS errors (the groups with sparklines, and one group's stack and sessions, each replayed at its
error).

Each page renders from the same query as its JSON endpoint (``hitmetrix.web.vitals_api``), inside the bar every
analytics page shares (``hitmetrix.web.analytics_chrome``): range, comparison and filters in the URL with the
view's own parameters, so any view is a link. Tables, tiles, sparklines (inline SVG) and links are written here
and work without script; ``static/dashboard/vitals.js`` / ``errors.js`` draw the trend charts from the answer
embedded as a data island (the CSP allows no inline script).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import errors, vitals
from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import time_zone
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.analytics_chrome import Links, chrome_context, finish_range, wants_compare
from hitmetrix.web.auth import guard, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates

VITALS_PARAMS = ("page", "sort", "order", "strip_ids", "group", "pages", "chart")
ERRORS_PARAMS = ("search", "sort", "groups")
GROUP_PARAMS = ("search",)
RATING_TEXT = {"good": "Good", "needs-improvement": "Needs improvement", "poor": "Poor"}
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def metric_text(metric: str, value: float | None) -> str:
    """A p75 as people read it: 0.12 for CLS, 180 ms, 2.45 s."""
    if value is None:
        return "–"
    if metric == "cls":
        return f"{value:.3f}"
    return f"{value:,.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def local_time(ms: int, zone: str) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(time_zone(zone)).strftime("%Y-%m-%d %H:%M")


def offset_text(ms: int) -> str:
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes}:{seconds:02d}"


def sparkline(values: Sequence[int]) -> str:
    """The SVG polyline points of a count series (the highest at the top); empty without any count."""
    if not values or max(values) <= 0:
        return ""
    top = max(values)
    step = SPARK_WIDTH / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 2 - (v / top) * (SPARK_HEIGHT - 4):.1f}"
                    for i, v in enumerate(values))


def _change(now: float | None, before: float | None) -> dict[str, Any] | None:
    if now is None or not before:
        return None
    return {"value": round(100 * (now - before) / before), "unit": "%"}


# --- vitals ------------------------------------------------------------------------------------------------


def vitals_tiles(answer: Mapping[str, Any], comparing: bool) -> list[dict[str, Any]]:
    tiles = []
    for m in answer["metrics"]:
        key = m["key"]
        now, before = answer["totals"][key], answer["previous"]["totals"][key]
        tiles.append({
            "key": key, "name": key.upper(), "label": m["label"], "value": metric_text(key, now["p75"]),
            "rating": now["rating"], "rating_text": RATING_TEXT.get(now["rating"] or "", "No data"),
            "samples": now["samples"], "good": now["good"], "needs_improvement": now["needs_improvement"],
            "poor": now["poor"],
            "thresholds": f"good ≤ {metric_text(key, m['good'])}, poor > {metric_text(key, m['poor'])}",
            # Lower is better for every metric: a rise is bad.
            "change": _change(now["p75"], before["p75"]) if comparing else None,
            "previous": metric_text(key, before["p75"]),
        })
    return tiles


def vitals_rows(answer: Mapping[str, Any], links: Links) -> list[dict[str, Any]]:
    rows = []
    for row in answer["pages"]:
        page = row["page"]
        # A cleaned or grouped page (":id", a group's target) is not a path the session list can search for.
        plain = ":id" not in page and not links.params.get("group")
        rows.append({
            "page": page,
            "pageviews": row["pageviews"],
            "cells": [{"key": m, "text": metric_text(m, row[m]["p75"]), "rating": row[m]["rating"],
                       "samples": row[m]["samples"]} for m in vitals.METRICS],
            "view_url": links.view(page=page),
            "sessions_url": links.sessions(url=page) if plain else None,
        })
    return rows


def sort_links(links: Links, sort: str, order: str) -> dict[str, dict[str, str]]:
    """Per column: the URL that sorts by it (again: the other way round) and its aria-sort state."""
    out = {}
    for key in vitals.SORTS:
        current = key == sort
        default = "asc" if key == "page" else "desc"
        flipped = ("asc" if order == "desc" else "desc") if current else default
        out[key] = {"url": links.view(sort=key, order=flipped),
                    "aria": ("ascending" if order == "asc" else "descending") if current else "none"}
    return out


@guard("viewer")
async def vitals_page(request: Request) -> Response:
    context = chrome_context(request, "vitals", view_params=VITALS_PARAMS)
    runtime, project, zone = runtime_of(request), context["project"], context["time_zone"]
    params = request.query_params
    links: Links = context["links"]
    context.update(api_url=f"/api/v1/projects/{project.id}/vitals", metrics=vitals.METRICS,
                   form_keep=links.hidden(keep=("from", "to", "compare", *context["filter_params"], "sort",
                                                "order", "chart")))
    status = 200
    try:
        chart = param.choice(params, "chart", vitals.METRICS) or "lcp"
        query = await resolve_cohort(request, vitals.VitalsQuery.from_query(params, context["today"]))
        answer = await run(timed("vitals", vitals.vitals), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        context.update(error=str(exc), error_field=exc.parameter)
        status = 400
    else:
        finish_range(context, query.base.date_from, query.base.date_to)
        comparing = wants_compare(params)
        context.update(
            answer=answer, query=query, chart=chart, tiles=vitals_tiles(answer, comparing), comparing=comparing,
            rows=vitals_rows(answer, links), sorts=sort_links(links, query.sort, answer["order"]),
            chart_links={m: links.view(chart=m) for m in vitals.METRICS},
            all_pages_url=links.view(page=None),
        )
        metric = next(m for m in answer["metrics"] if m["key"] == chart)
        context["island"] = {
            "metric": chart, "label": metric["label"], "unit": metric["unit"], "good": metric["good"],
            "poor": metric["poor"], "labels": [p["bucket"] for p in answer["series"]],
            "values": [p[chart] for p in answer["series"]],
            "pageviews": [p["pageviews"] for p in answer["series"]],
        }
    return templates.TemplateResponse(request, "vitals.html", context, status_code=status)


# --- errors ------------------------------------------------------------------------------------------------


def error_rows(answer: Mapping[str, Any], project_id: int, links: Links, zone: str) -> list[dict[str, Any]]:
    rows = []
    query_string = links.view().partition("?")[2]
    for g in answer["groups"]:
        rows.append({
            **g,
            "first_seen": local_time(g["first_seen_ms"], zone),
            "last_seen": local_time(g["last_seen_ms"], zone),
            "spark": sparkline(g["series"]),
            "page_url": f"/projects/{project_id}/errors/{g['group']}" + (f"?{query_string}" if query_string else ""),
        })
    return rows


@guard("viewer")
async def errors_page(request: Request) -> Response:
    context = chrome_context(request, "errors", view_params=ERRORS_PARAMS)
    runtime, project, zone = runtime_of(request), context["project"], context["time_zone"]
    params = request.query_params
    links: Links = context["links"]
    context.update(api_url=f"/api/v1/projects/{project.id}/errors", sorts=errors.SORTS,
                   form_keep=links.hidden(keep=("from", "to", "compare", *context["filter_params"], "sort")),
                   sort_urls={key: links.view(sort=key) for key in errors.SORTS})
    status = 200
    try:
        query = await resolve_cohort(request, errors.ErrorsQuery.from_query(params, context["today"]))
        answer = await run(timed("errors", errors.errors), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        context.update(error=str(exc), error_field=exc.parameter)
        status = 400
    else:
        finish_range(context, query.base.date_from, query.base.date_to)
        if context["sessions_url"]:  # the session list's own "had a JS error" filter
            url = context["sessions_url"]
            context["sessions_url"] = url + ("&" if "?" in url else "?") + "has_errors=1"
        totals, before = answer["totals"], answer["previous"]["totals"]
        comparing = wants_compare(params)
        share = round(100 * totals["sessions"] / totals["sessions_in_range"], 1) if totals["sessions_in_range"] else 0.0
        context.update(
            answer=answer, query=query, rows=error_rows(answer, project.id, links, zone), comparing=comparing,
            tiles=[
                {"key": "errors", "label": "Errors", "value": f"{totals['errors']:,}",
                 "change": _change(totals["errors"], before["errors"]) if comparing else None},
                {"key": "sessions", "label": "Sessions with errors", "value": f"{totals['sessions']:,}",
                 "note": f"{share:.1f}% of {totals['sessions_in_range']:,}",
                 "change": _change(totals["sessions"], before["sessions"]) if comparing else None},
                {"key": "visitors", "label": "Visitors affected", "value": f"{totals['visitors']:,}", "change": None},
                {"key": "groups", "label": "Error groups", "value": f"{totals['groups']:,}",
                 "change": _change(totals["groups"], before["groups"]) if comparing else None},
            ],
        )
        context["island"] = {"labels": [p["bucket"] for p in answer["series"]],
                             "series": [{"name": "Errors", "values": [p["errors"] for p in answer["series"]]}]}
    return templates.TemplateResponse(request, "errors.html", context, status_code=status)


@guard("viewer")
async def error_group_page(request: Request) -> Response:
    context = chrome_context(request, "errors", view_params=GROUP_PARAMS)
    runtime, project, zone = runtime_of(request), context["project"], context["time_zone"]
    params = request.query_params
    links: Links = context["links"]
    raw_group = request.path_params["group"]
    # The bar's links and forms lead back to the list: a range or a filter chosen here applies to the groups.
    context.update(group_id=raw_group, back_url=links.view(), found=False)
    status = 200
    try:
        group = errors.parse_group(raw_group)
        page = param.whole_number(params, "page", 1, 1, errors.MAX_PAGE)
        query = await resolve_cohort(request, errors.ErrorsQuery.from_query(params, context["today"]))
        answer = await run(timed("error_group", errors.error_group), runtime.store, project.id, query, group,
                           page, errors.DEFAULT_PAGE_SIZE, zone)
    except BadParameter as exc:
        context.update(error=str(exc), error_field=exc.parameter)
        status = 400
    else:
        finish_range(context, query.base.date_from, query.base.date_to)
        here = f"/projects/{project.id}/errors/{group}"
        carried = links.view().partition("?")[2]

        def page_url(n: int) -> str:
            return here + "?" + "&".join(p for p in (carried, f"page={n}") if p)

        if answer is None:
            status = 404
            context["api_url"] = f"/api/v1/projects/{project.id}/errors/{group}"
        else:
            context.update(
                found=True, answer=answer, api_url=f"/api/v1/projects/{project.id}/errors/{group}",
                first_seen=local_time(answer["first_seen_ms"], zone),
                last_seen=local_time(answer["last_seen_ms"], zone),
                sessions=[{**s, "when": local_time(s["error_ms"], zone), "at": offset_text(s["offset_ms"])}
                          for s in answer["session_list"]],
                older_url=page_url(page + 1) if answer["has_more"] else None,
                newer_url=page_url(page - 1) if page > 1 else None,
                island={"labels": answer["buckets"], "series": [{"name": "Errors", "values": answer["series"]}]},
            )
    return templates.TemplateResponse(request, "errors_group.html", context, status_code=status)


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/vitals", vitals_page, methods=["GET"]),
    Route("/projects/{project_id:int}/errors", errors_page, methods=["GET"]),
    Route("/projects/{project_id:int}/errors/{group}", error_group_page, methods=["GET"]),
]
