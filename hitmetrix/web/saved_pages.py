"""Dashboard pages of saved views and cohorts: the list of saved views (open, delete) and the "Save view" form
every analytics page's bar carries; the cohorts page (a conditions editor with a size preview, and the list);
a cohort's page (its size, its people, their latest sessions, and links that filter any view by it).

Reading is for every member; saving, building and deleting is for analysts and owners (as the API). The forms
post with the session's CSRF token; a bad form is answered with its page again, what was typed kept, and the
reason. The editor works without JavaScript (``static/dashboard/cohorts.js`` only shows the fields of a
condition's type and marks the page busy while it counts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import cohorts
from hitmetrix.analytics import params as param
from hitmetrix.analytics.overview import DEVICE_TYPES
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.store import saved
from hitmetrix.web.analytics_chrome import TABS, chrome_context
from hitmetrix.web.analytics_pages import duration_text
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import today_of
from hitmetrix.web.csrf import read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates
from hitmetrix.web.saved_api import VIEW_PAGES

PAGE_LABELS = {**dict(TABS), "sessions": "Sessions"}
# Fields of one row of the conditions editor (form names c{row}_{field}).
ROW_FIELDS = ("type", "property", "value", "key", "kind", "match", "path", "selector", "text", "name",
              "prop_key", "prop_value", "at_least", "days")
PROPERTY_LABELS = {
    "country": "Country", "device": "Device", "browser": "Browser", "os": "OS", "referrer": "Referrer",
    "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "identified": "Identified", "event_property": "Custom event property",
}
EVENT_LABELS = {"pageview": "Viewed a page", "click": "Clicked", "submit": "Submitted a form",
                "custom": "Sent a custom event"}
# Views a cohort page links to, filtered by the cohort.
FILTERED_VIEWS = ("overview", "funnels", "retention", "paths", "trends")
_CONDITION_FIELD = re.compile(r"^definition\.conditions\[(\d+)\]\.?(.*)$")


def _base_context(request: Request, page: str) -> dict[str, Any]:
    context = chrome_context(request, page, compare=False)
    principal, project = context["principal"], context["project"]
    context["can_edit"] = principal.has_role(project.id, "analyst")
    context["csrf_token"] = principal.csrf_token or ""
    return context


def describe(condition: cohorts.Condition) -> str:
    """A condition in words, for lists and headings."""
    if isinstance(condition, cohorts.PropertyCondition):
        if condition.property == "event_property":
            wanted = f" = {condition.value}" if condition.value else ""
            return f"had a custom event with {condition.key}{wanted}"
        if condition.property == "identified":
            return "identified" if condition.value == "yes" else "never identified"
        if condition.property == "referrer" and not condition.value:
            return "came directly (no referrer)"
        return f"{PROPERTY_LABELS[condition.property]} is {condition.value}"
    step = condition.step
    if step.kind == "pageview":
        how = {"exact": "", "prefix": "starting with ", "regex": "matching "}[step.match]
        what = f"viewed a page {how}{step.path}"
    elif step.kind == "click":
        what = "clicked " + " ".join(x for x in (step.selector, f"“{step.text}”" if step.text else "") if x)
    elif step.kind == "submit":
        what = "submitted " + (step.selector or "a form")
    else:
        props = ", ".join(f"{k} = {v}" for k, v in step.props)
        what = f"sent {step.name}" + (f" ({props})" if props else "")
    times = "once" if condition.at_least == 1 else f"{condition.at_least} times"
    return f"{what} at least {times} in the last {condition.days} days"


def descriptions(text: str) -> list[str]:
    try:
        return [describe(c) for c in cohorts.CohortDefinition.from_json(text).conditions]
    except BadParameter:
        return ["(a definition this version cannot read)"]


async def _delete(request: Request, delete: Callable[..., bool], id_param: str, list_page: str) -> Response:
    """``delete(meta, project id, the path's id, actor_id=…)``, then back to the list (as well when there was no
    such one: it is gone either way)."""
    project = project_of(request)
    await run(delete, runtime_of(request).meta, project.id, request.path_params[id_param],
              actor_id=principal_of(request).user_id)
    return RedirectResponse(f"/projects/{project.id}/{list_page}", 303)


# --- saved views --------------------------------------------------------------------------------------------


def view_rows(views: list[saved.SavedView]) -> list[dict[str, Any]]:
    return [{"id": v.id, "name": v.name, "page": PAGE_LABELS.get(v.page, v.page), "url": v.url(),
             "params": parse_qsl(v.query)} for v in views]


async def _views_page(request: Request, status: int = 200, **extra: Any) -> Response:
    context = _base_context(request, "saved")
    found = await run(saved.views, runtime_of(request).meta, context["project"].id)
    context.update(views=view_rows(found), created=None, form_error=None, form={})
    context.update(extra)
    created = request.query_params.get("created", "")
    if created.isdigit():
        context["created"] = next((v for v in context["views"] if v["id"] == int(created)), None)
    return templates.TemplateResponse(request, "saved_views.html", context, status_code=status)


@guard("viewer")
async def saved_views_page(request: Request) -> Response:
    return await _views_page(request)


@guard("analyst")
async def save_view(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    form = await read_form(request)
    page = form.get("page", "")
    try:
        if page not in VIEW_PAGES:
            raise ValueError("this page cannot be saved as a view")
        view = await run(saved.add_view, runtime.meta, project.id, form.get("name", ""), page,
                         form.get("query", ""), actor_id=principal_of(request).user_id)
    except ValueError as exc:
        return await _views_page(request, 409 if isinstance(exc, saved.NameTaken) else 400,
                                 form_error=str(exc), form=form)
    return RedirectResponse(f"/projects/{project.id}/saved?created={view.id}", 303)


@guard("viewer")
async def open_view(request: Request) -> Response:
    project = project_of(request)
    found = await run(saved.view, runtime_of(request).meta, project.id, request.path_params["view_id"])
    if found is None:
        return await _views_page(request, 404, form_error="There is no such saved view (it may have been deleted).")
    return RedirectResponse(found.url(), 303)


@guard("analyst")
async def delete_view(request: Request) -> Response:
    return await _delete(request, saved.delete_view, "view_id", "saved")


# --- cohorts ------------------------------------------------------------------------------------------------


def rows_of(form: dict[str, str]) -> list[dict[str, str]]:
    """The editor's filled rows (a row without a type is an unused one)."""
    rows = []
    for i in range(cohorts.MAX_CONDITIONS):
        row = {f: form.get(f"c{i}_{f}", "").strip() for f in ROW_FIELDS}
        if row["type"] in ("property", "behaviour"):
            rows.append(row)
    return rows


def _whole(row: dict[str, str], name: str, default: int, index: int) -> int:
    value = row[name] or str(default)
    if not value.isdigit() or len(value) > 9:
        raise BadParameter(f"definition.conditions[{index}].{name}", f"{name.replace('_', ' ')} must be a number")
    return int(value)


def definition_of_rows(rows: list[dict[str, str]]) -> cohorts.CohortDefinition:
    """The definition the rows describe; BadParameter naming the condition and field."""
    conditions: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if row["type"] == "property":
            c: dict[str, Any] = {"type": "property", "property": row["property"], "value": row["value"]}
            if row["property"] == "event_property":
                c["key"] = row["key"]
        else:
            kind = row["kind"] or "pageview"
            event: dict[str, Any] = {"kind": kind}
            if kind == "pageview":
                event.update(match=row["match"] or "exact", path=row["path"])
            elif kind in ("click", "submit"):
                event.update({k: row[k] for k in (("selector", "text") if kind == "click" else ("selector",))
                              if row[k]})
            else:
                event.update(name=row["name"], props={row["prop_key"]: row["prop_value"]} if row["prop_key"] else {})
            c = {"type": "behaviour", "event": event, "at_least": _whole(row, "at_least", 1, i),
                 "days": _whole(row, "days", cohorts.DEFAULT_DAYS, i)}
        conditions.append(c)
    return cohorts.CohortDefinition.from_data({"conditions": conditions})


def rows_from_definition(definition: cohorts.CohortDefinition) -> list[dict[str, str]]:
    rows = []
    for c in definition.conditions:
        row = dict.fromkeys(ROW_FIELDS, "")
        if isinstance(c, cohorts.PropertyCondition):
            row.update(type="property", property=c.property, value=c.value, key=c.key)
        else:
            s = c.step
            row.update(type="behaviour", kind=s.kind, match=s.match, path=s.path, selector=s.selector, text=s.text,
                       name=s.name, at_least=str(c.at_least), days=str(c.days))
            if s.props:
                row.update(prop_key=s.props[0][0], prop_value=s.props[0][1])
        rows.append(row)
    return rows


def problem_text(exc: BadParameter) -> tuple[int | None, str]:
    """(the editor row a definition error is about, the message as a person reads it)."""
    found = _CONDITION_FIELD.match(exc.parameter)
    if found is None:
        return None, str(exc)
    row = int(found.group(1))
    return row, f"Condition {row + 1}: {exc}"


async def _cohorts_page(request: Request, status: int = 200, *, rows: list[dict[str, str]] | None = None,
                        **extra: Any) -> Response:
    context = _base_context(request, "cohorts")
    runtime, project = runtime_of(request), context["project"]
    found = await run(saved.cohorts, runtime.meta, project.id)
    context.update(
        cohorts=[{"id": c.id, "name": c.name, "conditions": descriptions(c.definition),
                  "url": f"/projects/{project.id}/cohorts/{c.id}",
                  "overview_url": f"/projects/{project.id}/overview?cohort={c.id}"} for c in found],
        property_labels=PROPERTY_LABELS, event_labels=EVENT_LABELS, device_types=DEVICE_TYPES,
        max_days=cohorts.MAX_DAYS, form_error=None, error_row=None, preview=None, name="",
        preview_url=f"/api/v1/projects/{project.id}/cohorts/preview",
    )
    shown = list(rows) if rows else [dict(dict.fromkeys(ROW_FIELDS, ""), type="property", property="country")]
    # Every row up to the most a cohort takes; the page shows the first unused one (CSS), the next when it is used.
    shown += [dict.fromkeys(ROW_FIELDS, "") for _ in range(cohorts.MAX_CONDITIONS - len(shown))]
    context["rows"] = shown
    context.update(extra)
    return templates.TemplateResponse(request, "cohorts.html", context, status_code=status)


@guard("viewer")
async def cohorts_page(request: Request) -> Response:
    return await _cohorts_page(request)


@guard("analyst")
async def build_cohort(request: Request) -> Response:
    """The editor's form: "Preview size" counts the people now; "Save cohort" saves and opens the cohort."""
    runtime, project = runtime_of(request), project_of(request)
    form = await read_form(request)
    rows = rows_of(form)
    name = form.get("name", "").strip()
    try:
        if not rows:
            raise BadParameter("definition.conditions", "add at least one condition")
        definition = definition_of_rows(rows)
        await run(cohorts.check_regexes, runtime.store, project.id, definition)
        if form.get("action") != "save":
            size = await run(timed("cohort_size", cohorts.size), runtime.store, project.id, definition,
                             today_of(request), project.time_zone or "UTC")
            return await _cohorts_page(request, rows=rows, name=name, preview=size)
        cohort = await run(saved.add_cohort, runtime.meta, project.id, name, definition.to_json(),
                           actor_id=principal_of(request).user_id)
    except BadParameter as exc:
        row, message = problem_text(exc)
        return await _cohorts_page(request, 400, rows=rows, name=name, form_error=message, error_row=row)
    except ValueError as exc:
        status = 409 if isinstance(exc, saved.NameTaken) else 400
        return await _cohorts_page(request, status, rows=rows, name=name, form_error=str(exc))
    return RedirectResponse(f"/projects/{project.id}/cohorts/{cohort.id}", 303)


@guard("viewer")
async def cohort_page(request: Request) -> Response:
    context = _base_context(request, "cohorts")
    runtime, project = runtime_of(request), context["project"]
    zone = project.time_zone or "UTC"
    found = await run(saved.cohort, runtime.meta, project.id, request.path_params["cohort_id"])
    if found is None:
        return await _cohorts_page(request, 404, form_error="There is no such cohort in this project.")
    try:
        offset = param.whole_number(request.query_params, "offset", 0, 0, 10**9)
        definition = cohorts.CohortDefinition.from_json(found.definition)
    except BadParameter as exc:
        return await _cohorts_page(request, 400, form_error=str(exc))
    answer = await run(timed("cohort_members", cohorts.members), runtime.store, project.id, definition,
                       today_of(request), zone, offset, cohorts.DEFAULT_PAGE)
    for person in answer["people"]:
        person["sessions_url"] = (f"/projects/{project.id}/sessions?" + urlencode({"user": person["user_id"]})
                                  if person["user_id"] and len(person["user_id"]) <= 256 else None)
        for s in person["recent_sessions"]:
            s["duration"] = duration_text(s["duration_ms"])
    base = f"/projects/{project.id}/cohorts/{found.id}"
    context.update(
        cohort={"id": found.id, "name": found.name, "conditions": [describe(c) for c in definition.conditions],
                "definition_json": json.dumps(definition.to_data(), ensure_ascii=False, indent=1)},
        size=answer["size"], people=answer["people"], offset=offset,
        next_url=f"{base}?offset={answer['next_offset']}" if answer["next_offset"] is not None else None,
        previous_url=f"{base}?offset={max(0, offset - cohorts.DEFAULT_PAGE)}" if offset else None,
        views=[(PAGE_LABELS[v], f"/projects/{project.id}/{v}?cohort={found.id}") for v in FILTERED_VIEWS
               if v in {name for name, _, _ in context["tabs"]}],
        rows=rows_from_definition(definition),
    )
    return templates.TemplateResponse(request, "cohort.html", context)


@guard("analyst")
async def delete_cohort(request: Request) -> Response:
    return await _delete(request, saved.delete_cohort, "cohort_id", "cohorts")


_BASE = "/projects/{project_id:int}"
ROUTES: list[BaseRoute] = [
    Route(f"{_BASE}/saved", saved_views_page, methods=["GET"]),
    Route(f"{_BASE}/saved", save_view, methods=["POST"]),
    Route(f"{_BASE}/saved/{{view_id:int}}", open_view, methods=["GET"]),
    Route(f"{_BASE}/saved/{{view_id:int}}/delete", delete_view, methods=["POST"]),
    Route(f"{_BASE}/cohorts", cohorts_page, methods=["GET"]),
    Route(f"{_BASE}/cohorts", build_cohort, methods=["POST"]),
    Route(f"{_BASE}/cohorts/{{cohort_id:int}}", cohort_page, methods=["GET"]),
    Route(f"{_BASE}/cohorts/{{cohort_id:int}}/delete", delete_cohort, methods=["POST"]),
]
