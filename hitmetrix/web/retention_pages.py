"""Dashboard pages for retention (the cohort grid as a heat-coloured table, with its curve, and the sessions behind
one of its cells) and paths (the Sankey of walks from or to a page, with the sessions that walked one of its edges).

Each page renders from the same queries as its JSON endpoint (``hitmetrix.web.retention_api``), inside the bar
every analytics page shares (``hitmetrix.web.analytics_chrome``): range, comparison and filters in the URL with
the view's own parameters, so any view is a link. Tables and links are written here and work without script; the
charts are drawn by ``static/dashboard/retention.js`` / ``paths.js`` from the answer embedded as a data island.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix import timezones
from hitmetrix.analytics import params as param
from hitmetrix.analytics import paths, retention
from hitmetrix.analytics.params import BadParameter
from hitmetrix.web.analytics_chrome import (
    COMPARE_PARAM,
    FILTER_PARAMS,
    RANGE_PARAMS,
    Links,
    chrome_context,
    finish_range,
    wants_compare,
)
from hitmetrix.web.analytics_pages import duration_text
from hitmetrix.web.auth import guard, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates
from hitmetrix.web.retention_api import cell_answer, path_answer

RETENTION_PARAMS = ("period", "periods", "identity", "start_page", "start_event", "return_page", "return_event")
PATH_PARAMS = ("start", "end", "steps", "limit", "strip_ids", "group")
PERIOD_NAMES = {"day": "Day", "week": "Week", "month": "Month"}
HEAT_STEPS = 10  # a cell's colour is one of 11 shades: its percentage rounded to tens
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Without a start or an end page, the paths page starts where most visits do.
DEFAULT_START_PAGE = "/"
TOP_EDGES = 25  # rows of the table that stands in for the Sankey on small screens and for screen readers


# --- retention ---------------------------------------------------------------------------------------------


def _day_text(day: dt.date, year: bool = True) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]}" + (f" {day.year}" if year else "")


def cohort_label(start: dt.date, period: str) -> str:
    if period == "month":
        return f"{_MONTHS[start.month - 1]} {start.year}"
    if period == "week":
        return f"Week of {_day_text(start)}"
    return f"{start.strftime('%a')} {_day_text(start)}"


def heat(percent: float) -> int:
    """The shade (0–10) of a cell: its percentage in tens, so a 4 % cell is not as pale as an empty one."""
    if percent <= 0:
        return 0
    return max(1, min(HEAT_STEPS, round(percent / 10)))


def _period_text(start: dt.date, period: str) -> str:
    end = retention.add_periods(start, period, 1) - dt.timedelta(days=1)
    return _day_text(start) if start == end else f"{_day_text(start, year=False)} – {_day_text(end)}"


def retention_grid(answer: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """The table of an answer: per cohort its cells (with shade, and whether the period has begun or is still
    running on ``today``), and the average row, weighted by cohort size over the cohorts that reached each period
    (a cohort of last week cannot have come back in week 3 yet, and must not pull the average down)."""
    period = answer["period"]
    name = PERIOD_NAMES[period]
    rows = []
    reached = [[0, 0] for _ in range(answer["periods"] + 1)]  # per offset: (returned, cohort size)
    for cohort in answer["cohorts"]:
        start = dt.date.fromisoformat(cohort["cohort"])
        cells = []
        for cell in cohort["cells"]:
            begins = retention.add_periods(start, period, cell["period"])
            future = begins > today
            partial = not future and retention.add_periods(begins, period, 1) > today
            if not future:
                reached[cell["period"]][0] += cell["visitors"]
                reached[cell["period"]][1] += cohort["visitors"]
            cells.append({
                **cell, "future": future, "partial": partial, "heat": heat(cell["percent"]),
                "title": f"{cell['visitors']:,} of {cohort['visitors']:,} ({cell['percent']:.1f} %) in {name.lower()} "
                f"{cell['period']} ({_period_text(begins, period)})" + (", not over yet" if partial else ""),
            })
        rows.append({"cohort": cohort["cohort"], "label": cohort_label(start, period), "visitors": cohort["visitors"],
                     "short": cohort_label(start, "month") if period == "month" else _day_text(start, year=False),
                     "cells": cells})
    average = []
    for offset, (returned, size) in enumerate(reached):
        percent = round(100 * returned / size, 1) if size else None
        average.append({"period": offset, "percent": percent, "heat": heat(percent or 0.0), "visitors": returned})
    return {
        "headers": [f"{name} {k}" for k in range(answer["periods"] + 1)],
        "rows": rows,
        "average": average,
        "visitors": sum(row["visitors"] for row in rows),
    }


def link_cells(grid: dict[str, Any], links: Links, opened: tuple[dt.date, int] | None) -> None:
    """Give each cohort's size and each cell that counts anyone the link to its sessions (this view with the cell
    added, which the page answers with the sessions panel filled), and mark the cell that is open."""
    for row in grid["rows"]:
        row["size_url"] = links.view(cohort_start=row["cohort"], offset="0") + "#hm-rt-sessions" if row[
            "visitors"] else None
        row["size_open"] = opened == (dt.date.fromisoformat(row["cohort"]), 0)
        for cell in row["cells"]:
            cell["url"] = (links.view(cohort_start=row["cohort"], offset=str(cell["period"])) + "#hm-rt-sessions"
                           if cell["visitors"] and not cell["future"] else None)
            cell["open"] = opened == (dt.date.fromisoformat(row["cohort"]), cell["period"])


def listed_rows(listed: Mapping[str, Any], zone: str) -> list[dict[str, Any]]:
    return [{**s, "started": timezones.display(s["started_at_ms"], zone, seconds=True),
             "duration": duration_text(s["duration_ms"])} for s in listed["sessions"]]


@guard("viewer")
async def retention_page(request: Request) -> Response:
    context = chrome_context(request, "retention", view_params=RETENTION_PARAMS)
    runtime, project, zone = runtime_of(request), context["project"], context["time_zone"]
    params = request.query_params
    context.update(api_url=f"/api/v1/projects/{project.id}/retention", periods=retention.PERIODS,
                   period_names=PERIOD_NAMES, identities=retention.IDENTITIES,
                   max_periods=retention.MAX_PERIOD_COUNT, form_keep=_form_keep(context["links"]))
    # The cohort and return conditions: which kind the form shows (and names its text field after).
    for prefix in ("start", "return"):
        kind = "event" if params.get(f"{prefix}_event", "").strip() else "page" if params.get(
            f"{prefix}_page", "").strip() else ""
        context[f"{prefix}_kind"] = kind
        value = params.get(f"{prefix}_{kind}", "").strip() if kind else ""
        context[f"{prefix}_value"] = value
        verbs = ("seen", "viewing", "doing") if prefix == "start" else ("with any visit", "to view", "to do")
        context[f"{prefix}_text"] = verbs[0] if not kind else f"{verbs[1 if kind == 'page' else 2]} “{value}”"
    status = 200
    try:
        query = retention.RetentionQuery.from_query(params, context["today"])
        query = await resolve_cohort(request, query)
        # A cell of the grid may be open: its sessions are listed under it (cohort_start and offset).
        cell = retention.parse_cell(params, query) if params.get("cohort_start") or params.get("offset") else None
        page = param.whole_number(params, "page", 1, 1, retention.MAX_PAGE)
        answer, listed = await run(cell_answer, runtime.store, project.id, query, zone, wants_compare(params), cell,
                                   page)
    except BadParameter as exc:
        context.update(error=str(exc), error_field=exc.parameter)
        status = 400
    else:
        finish_range(context, query.base.date_from, query.base.date_to)
        grid = retention_grid(answer, context["today"])
        links = context["links"]
        link_cells(grid, links, cell)
        previous = retention_grid(answer["previous"], context["today"]) if "previous" in answer else None
        context.update(answer=answer, query=query, grid=grid, previous=previous, listed=listed,
                       page_size=retention.DEFAULT_PAGE_SIZE)
        if listed is not None and cell is not None:
            cohort_start, offset = cell
            here = {"cohort_start": cohort_start.isoformat(), "offset": str(offset)}
            began = dt.date.fromisoformat(listed["period"]["from"])
            context.update(
                listed_rows=listed_rows(listed, zone),
                listed_cohort=cohort_label(cohort_start, query.period),
                listed_period=f"{PERIOD_NAMES[query.period].lower()} {offset} ({_period_text(began, query.period)})",
                more_url=links.view(**here, page=str(page + 1)) + "#hm-rt-sessions" if listed["has_more"] else None,
                less_url=links.view(**here, page=str(page - 1) if page > 2 else None) + "#hm-rt-sessions"
                if page > 1 else None,
            )
        context["island"] = {
            "labels": grid["headers"],
            "series": [{"name": f"{answer['range']['from']} – {answer['range']['to']}",
                        "values": [cell["percent"] for cell in grid["average"]]}]
            + ([{"name": f"{answer['previous']['range']['from']} – {answer['previous']['range']['to']}",
                 "values": [cell["percent"] for cell in previous["average"]]}] if previous else []),
        }
    return templates.TemplateResponse(request, "retention.html", context, status_code=status)


# --- paths -------------------------------------------------------------------------------------------------


class PathLinks(Links):
    """The bar's links for the paths page, which may repeat one parameter: ``group`` (one cleaning rule each)."""

    def __init__(self, project_id: int, params: Any, page: str, view_params: Iterable[str]) -> None:
        super().__init__(project_id, params, page, view_params)
        getlist = getattr(params, "getlist", None)
        values: list[str] = getlist("group") if getlist else [params.get("group") or ""]
        self.groups = [g for g in values if g.strip()]
        self.params.pop("group", None)

    def view(self, **changes: str | None) -> str:
        url = super().view(**changes)
        if "group" in changes or not self.groups:
            return url
        return url + ("&" if "?" in url else "?") + urlencode([("group", g) for g in self.groups])

    def hidden(self, *, keep: Iterable[str]) -> list[tuple[str, str]]:
        wanted = tuple(keep)
        return super().hidden(keep=wanted) + ([("group", g) for g in self.groups] if "group" in wanted else [])


def _relink(context: dict[str, Any], links: Links) -> None:
    """Point the bar at ``links``: the URLs ``chrome_context`` derived from its own links, made again."""
    context.update(
        links=links,
        params=links.params,
        # The chips as the bar made them (labels, a cohort's name), each removing its filter from this view.
        active=[(name, label, shown, links.view(**{name: None})) for name, label, shown, _ in context["active"]],
        clear_url=links.view(**dict.fromkeys(FILTER_PARAMS)),
        compare_on_url=links.view(**{COMPARE_PARAM: "previous"}),
        compare_off_url=links.view(**{COMPARE_PARAM: None}),
        keep_for_range=links.hidden(keep=(COMPARE_PARAM, *FILTER_PARAMS, *links.view_params)),
        keep_for_filters=links.hidden(keep=(*RANGE_PARAMS, COMPARE_PARAM, *links.view_params)),
    )


def _form_keep(links: Links) -> list[tuple[str, str]]:
    """Hidden inputs of a page's own form: the range, comparison and filters (its fields are the page's own)."""
    return links.hidden(keep=(*RANGE_PARAMS, COMPARE_PARAM, *FILTER_PARAMS))


def _node_page(node_id: str) -> str:
    return node_id.split(":", 1)[1]


def edge_rows(answer: Mapping[str, Any], previous: Mapping[str, Any] | None, links: PathLinks) -> list[dict[str, Any]]:
    """The heaviest edges (the Sankey as a table), each with its step, its sessions' link and the previous period's
    count of the same edge."""
    before = {e["id"]: e["sessions"] for e in previous["edges"]} if previous else {}
    rows = []
    for edge in sorted(answer["edges"], key=lambda e: (-e["sessions"], e["id"]))[:TOP_EDGES]:
        other = edge["id"].endswith(f":{paths.OTHER}")
        rows.append({
            "id": edge["id"],
            "step": int(edge["id"].split(":", 1)[0]),
            "source": _node_page(edge["source"]),
            "target": _node_page(edge["target"]),
            "sessions": edge["sessions"],
            "previous": before.get(edge["id"], 0) if previous else None,
            "sessions_url": None if other else links.view(edge=edge["id"]) + "#hm-pa-sessions",
        })
    return rows


@guard("viewer")
async def paths_page(request: Request) -> Response:
    context = chrome_context(request, "paths", view_params=PATH_PARAMS)
    runtime, project, zone = runtime_of(request), context["project"], context["time_zone"]
    links = PathLinks(project.id, request.query_params, "paths", PATH_PARAMS)
    _relink(context, links)
    params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "group"}
    if not params.get("start", "").strip() and not params.get("end", "").strip():
        params["start"] = DEFAULT_START_PAGE
    mode = "end" if params.get("end", "").strip() and not params.get("start", "").strip() else "start"
    context.update(api_url=f"/api/v1/projects/{project.id}/paths", mode=mode, anchor=params.get(mode, "").strip(),
                   groups=links.groups, max_steps=paths.MAX_STEPS, max_edges=paths.MAX_EDGES_PER_STEP,
                   max_groups=paths.MAX_GROUP_RULES, page_size=paths.DEFAULT_PAGE_SIZE,
                   form_keep=_form_keep(links),
                   edge=request.query_params.get("edge", "").strip())
    status = 200
    try:
        multi = _Multi(params, links.groups)
        query = paths.PathsQuery.from_query(multi, context["today"])
        query = await resolve_cohort(request, query)
        edge = paths.parse_edge(multi, query.steps) if context["edge"] else None
        page = param.whole_number(params, "page", 1, 1, paths.MAX_PAGE)
        answer, listed = await run(path_answer, runtime.store, project.id, query, zone, wants_compare(params),
                                   edge, page)
    except BadParameter as exc:
        context.update(error=str(exc), error_field=exc.parameter)
        status = 400
    else:
        finish_range(context, query.base.date_from, query.base.date_to)
        context.update(answer=answer, query=query, listed=listed,
                       rows=edge_rows(answer, answer.get("previous"), links))
        if listed is not None:
            near, far = listed["edge"].split("->", 1)
            context["listed_from"], context["listed_to"] = (
                (_node_page(near), _node_page(far)) if query.start else (_node_page(far), _node_page(near)))
            context["more_url"] = links.view(edge=listed["edge"], page=str(page + 1)) + "#hm-pa-sessions"
        context["island"] = {
            "mode": mode,
            "nodes": answer["nodes"],
            "edges": answer["edges"],
            # Where an edge's sessions are: this view's URL with the edge added (the script swaps the panel in).
            "edge_url": links.view(edge="EDGE"),
        }
    return templates.TemplateResponse(request, "paths.html", context, status_code=status)


class _Multi(dict[str, str]):
    """The page's parameters with ``group`` repeated, as ``PathsQuery.from_query`` reads a QueryParams."""

    def __init__(self, params: Mapping[str, str], groups: list[str]) -> None:
        super().__init__(params)
        self._groups = groups

    def getlist(self, name: str) -> list[str]:
        return list(self._groups) if name == "group" else ([self[name]] if name in self else [])


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/retention", retention_page, methods=["GET"]),
    Route("/projects/{project_id:int}/paths", paths_page, methods=["GET"]),
]
