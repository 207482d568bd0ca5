"""Dashboard pages for funnels: the builder with its answer, and the sessions behind each conversion and drop-off.

The whole funnel lives in the URL as plain form fields, so a funnel is a link and the builder works without
script: step N is ``sN_kind`` (pageview, click, submit, custom; a row with no kind is an unused row) with
``sN_match`` + ``sN_path``, ``sN_selector`` + ``sN_text``, or ``sN_name`` + ``sN_props`` (``key=value`` lines);
exclusion N is ``xN_…`` alike plus ``xN_from`` / ``xN_to``; then ``order``, ``window`` + ``window_unit`` and
``breakdown``. The fields become the JSON definition ``GET /api/v1/projects/{id}/funnels`` takes, and the page
renders from the same query (``funnels_api.funnel_with_previous``); a definition it refuses is a 400 page that
names the step and keeps what was typed. ``static/dashboard/funnels.js`` draws the charts from the answer
embedded as a data island (the CSP forbids inline scripts) and adds and removes builder rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix import timezones
from hitmetrix.analytics import funnels, overview
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
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
from hitmetrix.web.funnels_api import funnel_sessions_with_moments, funnel_with_previous
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates

STEP_FIELDS = ("kind", "match", "path", "selector", "text", "name", "props")
EXCLUSION_FIELDS = (*STEP_FIELDS, "from", "to")
WINDOW_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
DEFAULT_WINDOW = (1, "day")
SESSIONS_PER_PAGE = 50
# The breakdown properties that are also filters: a breakdown row links to the funnel filtered by its value.
BREAKDOWN_FILTERS = {
    "country": "country", "device": "device", "browser": "browser", "os": "os", "referrer": "referrer",
    "utm_source": "utm_source", "utm_medium": "utm_medium", "utm_campaign": "utm_campaign",
}
BREAKDOWN_LABELS = {
    "country": "Country", "device": "Device", "browser": "Browser", "os": "OS", "referrer": "Referrer",
    "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "entry_path": "Entry page",
}
ORDER_LABELS = {"ordered": "In order (other events between)", "strict": "Strictly in a row",
                "any": "In any order"}
VIEW_PARAMS = (
    *(f"s{i}_{f}" for i in range(1, funnels.MAX_STEPS + 1) for f in STEP_FIELDS),
    *(f"x{i}_{f}" for i in range(1, funnels.MAX_EXCLUSIONS + 1) for f in EXCLUSION_FIELDS),
    "order", "window", "window_unit", "breakdown",
)
_FIELD = re.compile(r"^definition\.(steps|exclusions)\[(\d+)\](?:\.(\w+))?$")
_FIELD_NAMES = {"from_step": "from", "to_step": "to", "props": "props"}


@dataclass
class Row:
    """One builder row as typed (kept as text, so a refused value is shown back to be fixed)."""

    prefix: str  # "s3" or "x1": its fields are named prefix + "_" + field
    kind: str = ""
    match: str = "exact"
    path: str = ""
    selector: str = ""
    text: str = ""
    name: str = ""
    props: str = ""
    from_step: str = ""
    to_step: str = ""

    def definition(self) -> dict[str, Any]:
        """This row as a step of the JSON definition: only the fields of its kind."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "pageview":
            out.update(match=self.match or "exact", path=self.path)
        elif self.kind == "click":
            out.update(selector=self.selector, text=self.text)
        elif self.kind == "submit":
            out.update(selector=self.selector)
        elif self.kind == "custom":
            out.update(name=self.name, props=props_of(self.props, f"{self.prefix}_props"))
        return out


_KIND_FIELDS = {"pageview": ("match", "path"), "click": ("selector", "text"), "submit": ("selector",),
                "custom": ("name", "props")}


@dataclass
class Builder:
    steps: list[Row]
    exclusions: list[Row]
    order: str = "ordered"
    window: str = str(DEFAULT_WINDOW[0])
    window_unit: str = DEFAULT_WINDOW[1]
    breakdown: str = ""
    field_of_step: dict[int, str] = field(default_factory=dict)  # definition index -> row prefix

    def url_params(self) -> dict[str, str]:
        """The funnel as the URL carries it: rows numbered without gaps, only the fields of each row's kind."""
        out: dict[str, str] = {}
        for row in (*self.steps, *self.exclusions):
            out[f"{row.prefix}_kind"] = row.kind
            for name in _KIND_FIELDS.get(row.kind, ("match", "path", "selector", "text", "name", "props")):
                value = getattr(row, name)
                if value and not (name == "match" and value == "exact"):
                    out[f"{row.prefix}_{name}"] = value
            if row.prefix.startswith("x"):
                out.update({f"{row.prefix}_{k}": v for k, v in (("from", row.from_step), ("to", row.to_step)) if v})
        defaults = {"order": "ordered", "window": str(DEFAULT_WINDOW[0]), "window_unit": DEFAULT_WINDOW[1],
                    "breakdown": ""}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                out[name] = getattr(self, name)
        return out

    def window_s(self) -> int:
        number = param.whole_number({"window": self.window}, "window", DEFAULT_WINDOW[0], 1, 10**6)
        if self.window_unit not in WINDOW_UNITS:
            raise BadParameter("window_unit", f"window_unit must be one of {', '.join(WINDOW_UNITS)}")
        return number * WINDOW_UNITS[self.window_unit]

    def definition_json(self) -> str:
        """The JSON definition the API takes; BadParameter naming a page field when a row cannot be one."""
        data: dict[str, Any] = {
            "steps": [row.definition() for row in self.steps],
            "window_s": self.window_s(),
            "order": self.order,
            "exclusions": [
                {**row.definition(), "from_step": _step_number(row.from_step, f"{row.prefix}_from", 1),
                 "to_step": _step_number(row.to_step, f"{row.prefix}_to", len(self.steps))}
                for row in self.exclusions
            ],
        }
        if self.breakdown:
            data["breakdown"] = self.breakdown
        return json.dumps(data, separators=(",", ":"))


def props_of(text: str, name: str) -> dict[str, str]:
    """``key=value`` lines (blank lines skipped) as a dict of text values."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BadParameter(name, "each property filter is a line key=value")
        props[key.strip()] = value.strip()
    return props


def _step_number(text: str, name: str, default: int) -> int:
    return param.whole_number({name: text}, name, default, 1, funnels.MAX_STEPS)


def _row(params: Mapping[str, str], prefix: str) -> Row:
    def get(name: str) -> str:
        # Long values are refused by the definition with a message; this only keeps a hostile URL bounded.
        return (params.get(f"{prefix}_{name}") or "")[: funnels.MAX_TEXT_CHARS * 4]

    return Row(prefix, kind=get("kind").strip(), match=get("match").strip() or "exact", path=get("path"),
               selector=get("selector"), text=get("text"), name=get("name"), props=get("props"),
               from_step=get("from").strip(), to_step=get("to").strip())


def builder_of(params: Mapping[str, str]) -> Builder:
    """The builder's rows from the URL, in order, leaving out rows with no kind (the spare, empty ones) and
    numbered again without gaps, as the form shows them."""
    steps = [r for r in (_row(params, f"s{i}") for i in range(1, funnels.MAX_STEPS + 1)) if r.kind]
    exclusions = [r for r in (_row(params, f"x{i}") for i in range(1, funnels.MAX_EXCLUSIONS + 1)) if r.kind]
    for letter, rows in (("s", steps), ("x", exclusions)):
        for n, row in enumerate(rows, 1):
            row.prefix = f"{letter}{n}"
    return Builder(
        steps, exclusions,
        order=(params.get("order") or "ordered").strip()[:16],
        window=(params.get("window") or str(DEFAULT_WINDOW[0])).strip()[:20],
        window_unit=(params.get("window_unit") or DEFAULT_WINDOW[1]).strip()[:16],
        breakdown=(params.get("breakdown") or "").strip()[:32],
    )


def page_field(builder: Builder, definition_field: str) -> tuple[str, str]:
    """(the page's field, a prefix for the message) for a definition field the API's parser named."""
    found = _FIELD.match(definition_field)
    if found:
        rows = builder.steps if found.group(1) == "steps" else builder.exclusions
        index = int(found.group(2))
        if index < len(rows):
            what = found.group(3) or "kind"
            name = f"{rows[index].prefix}_{_FIELD_NAMES.get(what, what)}"
            label = f"Step {index + 1}" if found.group(1) == "steps" else f"Exclusion {index + 1}"
            return name, f"{label}: "
    simple = {"definition.steps": ("s1_kind", ""), "definition.window_s": ("window", "Conversion window: "),
              "definition.order": ("order", ""), "definition.breakdown": ("breakdown", ""),
              "definition.exclusions": ("x1_kind", "")}
    return simple.get(definition_field, (definition_field, ""))


def step_label(step: funnels.Step) -> str:
    """How a step reads in the table and on the chart: "Pageview /pricing", "Click #buy “Buy now”"."""
    if step.kind == "pageview":
        how = {"exact": "", "prefix": "starts with ", "regex": "matches "}.get(step.match, "")
        return f"Pageview {how}{step.path}"
    if step.kind == "click":
        return " ".join(p for p in ("Click", step.selector, f"“{step.text}”" if step.text else "") if p)
    if step.kind == "submit":
        return f"Submit {step.selector}" if step.selector else "Any form submit"
    filters = ", ".join(f"{k}={v}" for k, v in step.props)
    return f"Event {step.name}" + (f" ({filters})" if filters else "")


def sessions_page_url(links: Links, step: int, outcome: str, **filters: str) -> str:
    merged = {**links.params, **links.session_range, **filters, "step": str(step), "outcome": outcome}
    return f"{links.base}/sessions?" + urlencode({k: v for k, v in merged.items() if v})


def step_rows(answer: Mapping[str, Any], definition: funnels.FunnelDefinition, links: Links,
              previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for k, (step, found) in enumerate(zip(definition.steps, answer["steps"], strict=True)):
        before = previous["steps"][k] if previous else None
        rows.append({
            **found,
            "label": step_label(step),
            "converted_url": sessions_page_url(links, k + 1, "converted") if found["sessions"] else None,
            "dropped_url": sessions_page_url(links, k + 1, "dropped") if k and found["dropped"] else None,
            "median_previous": duration_text(found["median_ms_from_previous"])
            if found["median_ms_from_previous"] is not None else "—",
            "median_start": duration_text(found["median_ms_from_start"])
            if found["median_ms_from_start"] is not None else "—",
            "previous": before,
            "change_pp": round(found["conversion"] - before["conversion"], 1) if before and before["sessions"] and k
            else None,
        })
    return rows


def breakdown_rows(answer: Mapping[str, Any], links: Links) -> list[dict[str, Any]]:
    if "breakdown" not in answer:
        return []
    name = BREAKDOWN_FILTERS.get(answer["breakdown"]["property"])
    out = []
    for group in answer["breakdown"]["values"]:
        value = group["value"]
        filters = {name: value} if name and value else None
        cells = [{"sessions": s["sessions"], "conversion": s["conversion"], "dropped": s["dropped"],
                  "converted_url": sessions_page_url(links, s["step"], "converted", **filters)
                  if filters and s["sessions"] else None,
                  "dropped_url": sessions_page_url(links, s["step"], "dropped", **filters)
                  if filters and s["step"] > 1 and s["dropped"] else None}
                 for s in group["steps"]]
        out.append({"value": value, "label": value or "(none)", "cells": cells,
                    "view_url": links.view(**filters) if filters else None})
    return out


def example_url(links: Links, pages: list[str]) -> str | None:
    """A ready-made funnel through the range's most viewed pages (what an empty builder offers)."""
    if len(pages) < 2:
        return None
    steps = {f"s{i}_{f}": v for i, page in enumerate(pages, 1) for f, v in (("kind", "pageview"), ("path", page))}
    return links.base + "?" + urlencode({**links.filters(), **steps})


def top_paths(store: Any, project_id: int, query: overview.OverviewQuery, zone: str) -> list[str]:
    q = overview.top_pages_query(project_id, query, zone)
    q.limit = 3
    return [row["value"] for row in store.query(q.sql() + "\nSETTINGS prefer_column_name_to_alias = 1", q.params)]


def builder_rows(builder: Builder) -> list[Row]:
    """The step rows the form shows: an empty builder starts with two pageview rows, a built one has a spare."""
    if not builder.steps:
        return [Row("s1", kind="pageview"), Row("s2", kind="pageview")]
    spare = [Row(f"s{len(builder.steps) + 1}")] if len(builder.steps) < funnels.MAX_STEPS else []
    return [*builder.steps, *spare]


def _context(request: Request) -> tuple[dict[str, Any], Builder]:
    builder = builder_of(request.query_params)
    # Every link of the page carries the funnel as the builder reads it (rows without gaps, no stray fields).
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in VIEW_PARAMS]
    canonical = urlencode([*others, *builder.url_params().items()]).encode()
    context = chrome_context(Request({**request.scope, "query_string": canonical}, request.receive), "funnels",
                             view_params=VIEW_PARAMS)
    # The builder's form replaces the funnel's own fields and keeps the range, the filters and the comparison.
    context["keep_for_builder"] = context["links"].hidden(keep=(*RANGE_PARAMS, COMPARE_PARAM, *FILTER_PARAMS))
    context.update(mode="funnel", builder=builder, kinds=funnels.KINDS, matches=funnels.MATCHES, orders=ORDER_LABELS,
                   window_units=WINDOW_UNITS, breakdowns=BREAKDOWN_LABELS, max_steps=funnels.MAX_STEPS,
                   max_exclusions=funnels.MAX_EXCLUSIONS, error=None, error_field=None)
    return context, builder


def _parse(context: dict[str, Any], builder: Builder, request: Request
           ) -> tuple[overview.OverviewQuery, funnels.FunnelDefinition | None]:
    query = overview.OverviewQuery.from_query(request.query_params, context["today"])
    finish_range(context, query.date_from, query.date_to)
    if not builder.steps:
        return query, None
    return query, funnels.FunnelDefinition.from_json(builder.definition_json())


def _refused(context: dict[str, Any], builder: Builder, exc: BadParameter) -> None:
    """A 400's message and field, named as the page names them (the query names the JSON definition's)."""
    name, label = page_field(builder, exc.parameter) if exc.parameter.startswith("definition") else (exc.parameter, "")
    context["error"], context["error_field"] = label + str(exc), name


@guard("viewer")
async def funnels_page(request: Request) -> Response:
    context, builder = _context(request)
    runtime, project, links = runtime_of(request), context["project"], context["links"]
    zone = context["time_zone"]
    status = 200
    try:
        query, definition = _parse(context, builder, request)
        query = await resolve_cohort(request, query)
        if definition is None:
            pages = await run(timed("funnel_example", top_paths), runtime.store, project.id, query, zone)
            context["example_url"] = example_url(links, pages)
            context["example_pages"] = pages
        else:
            compare = wants_compare(request.query_params)
            answer = await run(timed("funnel", funnel_with_previous), runtime.store, project.id, query, definition,
                               zone, compare)
    except BadParameter as exc:
        _refused(context, builder, exc)
        status = 400
    else:
        if definition is not None:
            api_params = {**links.filters(), "definition": builder.definition_json()}
            if compare:
                api_params["compare"] = "previous"
            previous = answer.get("previous")
            steps = step_rows(answer, definition, links, previous)
            context.update(
                answer=answer, previous=previous, steps=steps, breakdown=breakdown_rows(answer, links),
                api_url=f"/api/v1/projects/{project.id}/funnels?" + urlencode(api_params),
                island={"funnel": answer, "labels": [r["label"] for r in steps],
                        "converted_urls": [r["converted_url"] for r in steps],
                        "dropped_urls": [r["dropped_url"] for r in steps]},
            )
    context["step_rows"] = builder_rows(builder)
    spare = [Row(f"x{len(builder.exclusions) + 1}")] if len(builder.exclusions) < funnels.MAX_EXCLUSIONS else []
    context["exclusion_rows"] = [*builder.exclusions, *spare]
    return templates.TemplateResponse(request, "funnels.html", context, status_code=status)


@guard("viewer")
async def funnel_sessions_page(request: Request) -> Response:
    context, builder = _context(request)
    runtime, project, links = runtime_of(request), context["project"], context["links"]
    zone, params = context["time_zone"], request.query_params
    status = 200
    try:
        query, definition = _parse(context, builder, request)
        query = await resolve_cohort(request, query)
        if definition is None:
            raise BadParameter("s1_kind", "the funnel has no steps: build it first")
        step = param.whole_number(params, "step", 1, 1, funnels.MAX_STEPS)
        outcome = param.choice(params, "outcome", ("converted", "dropped")) or "converted"
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        answer = await run(timed("funnel_sessions", funnel_sessions_with_moments), runtime.store, project.id, query,
                           definition, step, outcome, offset, SESSIONS_PER_PAGE, zone)
    except BadParameter as exc:
        _refused(context, builder, exc)
        status = 400
    else:
        extra = {k: params[k] for k in ("step", "outcome") if params.get(k)}
        page_url = f"{links.base}/sessions?" + urlencode({**links.params, **extra})
        context.update(
            listing=answer, step=step, outcome=outcome, step_label=step_label(definition.steps[step - 1]),
            previous_label=step_label(definition.steps[step - 2]) if step > 1 else "",
            rows=[{**s, "entered": timezones.display(s["entered_at_ms"], zone, seconds=True),
                   "duration": duration_text(s["duration_ms"]) if "duration_ms" in s else "—"}
                  for s in answer["sessions"]],
            funnel_url=links.view(),
            next_url=f"{page_url}&offset={answer['next_offset']}" if answer["next_offset"] is not None else None,
            prev_url=f"{page_url}&offset={max(0, offset - SESSIONS_PER_PAGE)}" if offset else None,
            offset=offset,
        )
    context["mode"] = "sessions"
    return templates.TemplateResponse(request, "funnels.html", context, status_code=status)


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/funnels", funnels_page, methods=["GET"]),
    Route("/projects/{project_id:int}/funnels/sessions", funnel_sessions_page, methods=["GET"]),
]
