"""Saved views and cohorts under /api/v1/projects/{id}/saved-views and …/cohorts (``hitmetrix.web.cohort_filter``
turns a view's ``cohort=<id>`` filter into the cohort's people for every analytics endpoint).

Who may do what follows the project's roles (``hitmetrix.store.accounts``): any member (viewer and up) reads
saved views and cohorts, a cohort's size and members, and filters any view by a cohort; analysts and owners
create, rename and delete them, since they are shared by everyone in the project (the audit log records each
change). Another project's view or cohort is a 404, as if it did not exist; as a filter (``cohort=``), a cohort
the project does not have is a 400 naming the parameter. A bad body field is a 400 ``{"error", "field"}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import cohorts
from hitmetrix.analytics import params as param
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.store import saved
from hitmetrix.web.analytics_chrome import TABS
from hitmetrix.web.api import bad_parameter, error, json_body, json_response
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.cohort_filter import today_of
from hitmetrix.web.offload import run

# Pages a saved view may open: the analytics pages (but the list of saved views itself) and the session list.
VIEW_PAGES = (*(name for name, _ in TABS if name != "saved"), "sessions")

class BadField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _bad(field: str, message: str) -> Response:
    return json_response({"error": message, "field": field}, 400)


def _text_field(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadField(name, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadField(name, f"{name} must be a string")
    return value


def _checked(check: Any, field: str, value: str) -> str:
    """``check(value)``, its ValueError as a BadField naming ``field``."""
    try:
        return str(check(value))
    except ValueError as exc:
        raise BadField(field, str(exc)) from None


def _name_field(body: dict[str, Any]) -> str:
    """The body's ``name``, required and checked as every saved thing's name is."""
    return _checked(saved.check_name, "name", _text_field(body, "name", required=True) or "")


def view_json(view: saved.SavedView) -> dict[str, Any]:
    return {"id": view.id, "name": view.name, "page": view.page, "query": view.query, "url": view.url(),
            "created_by": view.created_by, "created_at": saved.utc(view.created_at).isoformat(timespec="seconds")}


def cohort_json(cohort: saved.Cohort) -> dict[str, Any]:
    return {"id": cohort.id, "name": cohort.name, "definition": json.loads(cohort.definition),
            "created_by": cohort.created_by,
            "created_at": saved.utc(cohort.created_at).isoformat(timespec="seconds"),
            "updated_at": saved.utc(cohort.updated_at).isoformat(timespec="seconds")}


# --- what saved views and cohorts share ---------------------------------------------------------------------

_NO_VIEW = "no such saved view"
_NO_COHORT = "no such cohort"


async def _write(request: Request, write: Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]], *,
                 creating: bool, missing: str) -> Response:
    """``write(body)`` on the request's JSON body, answered with the JSON it returns (201 when ``creating``), a
    404 saying ``missing`` when it returns None (no such one to change), or a 400 / 409 saying what is wrong."""
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        answer = await write(body)
    except BadField as exc:
        return _bad(exc.field, str(exc))
    except BadParameter as exc:
        return bad_parameter(exc)
    except saved.NameTaken as exc:
        return error(409, str(exc))
    except ValueError as exc:
        if not creating:  # only a new one can meet the project's limit: anything else is a bug to hear about
            raise
        return error(409, str(exc))
    if answer is None:
        return error(404, missing)
    return json_response(answer, 201 if creating else 200)


async def _delete(request: Request, delete: Callable[..., bool], id_param: str, missing: str) -> Response:
    """``delete(meta, project id, the path's id, actor_id=…)``: a 204, or a 404 when the project has no such one."""
    deleted = await run(delete, runtime_of(request).meta, project_of(request).id, request.path_params[id_param],
                        actor_id=principal_of(request).user_id)
    return Response(status_code=204) if deleted else error(404, missing)


# --- saved views --------------------------------------------------------------------------------------------


def check_view_page(page: str) -> str:
    if page not in VIEW_PAGES:
        raise BadField("page", f"page must be one of {', '.join(VIEW_PAGES)}")
    return page


@guard("viewer", api=True)
async def list_views(request: Request) -> Response:
    found = await run(saved.views, runtime_of(request).meta, project_of(request).id)
    return json_response({"views": [view_json(v) for v in found]})


@guard("analyst", api=True)
async def add_view(request: Request) -> Response:
    async def add(body: dict[str, Any]) -> dict[str, Any]:
        name = _name_field(body)
        page = check_view_page(_text_field(body, "page", required=True) or "")
        query = _checked(saved.normalise_query, "query", _text_field(body, "query", required=False) or "")
        view = await run(saved.add_view, runtime_of(request).meta, project_of(request).id, name, page, query,
                         actor_id=principal_of(request).user_id)
        return view_json(view)

    return await _write(request, add, creating=True, missing=_NO_VIEW)


@guard("viewer", api=True)
async def get_view(request: Request) -> Response:
    found = await run(saved.view, runtime_of(request).meta, project_of(request).id, request.path_params["view_id"])
    return error(404, _NO_VIEW) if found is None else json_response(view_json(found))


@guard("analyst", api=True)
async def rename_view(request: Request) -> Response:
    async def rename(body: dict[str, Any]) -> dict[str, Any] | None:
        found = await run(saved.rename_view, runtime_of(request).meta, project_of(request).id,
                          request.path_params["view_id"], _name_field(body), actor_id=principal_of(request).user_id)
        return None if found is None else view_json(found)

    return await _write(request, rename, creating=False, missing=_NO_VIEW)


@guard("analyst", api=True)
async def delete_view(request: Request) -> Response:
    return await _delete(request, saved.delete_view, "view_id", _NO_VIEW)


# --- cohorts ------------------------------------------------------------------------------------------------


def definition_of(value: Any) -> cohorts.CohortDefinition:
    """A definition given as a JSON object or as its text; BadParameter naming the field."""
    if isinstance(value, str):
        return cohorts.CohortDefinition.from_json(value)
    return cohorts.CohortDefinition.from_data(value)


@guard("viewer", api=True)
async def list_cohorts(request: Request) -> Response:
    found = await run(saved.cohorts, runtime_of(request).meta, project_of(request).id)
    return json_response({"cohorts": [cohort_json(c) for c in found]})


async def _checked_size(request: Request, definition: cohorts.CohortDefinition) -> int:
    runtime, project = runtime_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    await run(cohorts.check_regexes, runtime.store, project.id, definition)
    return await run(timed("cohort_size", cohorts.size), runtime.store, project.id, definition, today_of(request),
                     zone)


@guard("analyst", api=True)
async def add_cohort(request: Request) -> Response:
    async def add(body: dict[str, Any]) -> dict[str, Any]:
        name = _name_field(body)
        if "definition" not in body:
            raise BadField("definition", "definition is required: an object with conditions")
        definition = definition_of(body["definition"])
        size = await _checked_size(request, definition)
        cohort = await run(saved.add_cohort, runtime_of(request).meta, project_of(request).id, name,
                           definition.to_json(), actor_id=principal_of(request).user_id)
        return {**cohort_json(cohort), "size": size}

    return await _write(request, add, creating=True, missing=_NO_COHORT)


@guard("viewer", api=True)
async def preview_cohort(request: Request) -> Response:
    """The size a definition would have now, before it is saved (the cohort builder's preview)."""
    try:
        definition = cohorts.CohortDefinition.from_json(request.query_params.get("definition") or "")
        size = await _checked_size(request, definition)
    except BadParameter as exc:
        return bad_parameter(exc)
    return json_response({"size": size, "definition": definition.to_data()})


@guard("viewer", api=True)
async def get_cohort(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    found = await run(saved.cohort, runtime.meta, project.id, request.path_params["cohort_id"])
    if found is None:
        return error(404, _NO_COHORT)
    params = request.query_params
    try:
        offset = param.whole_number(params, "offset", 0, 0, 10**9)
        limit = param.whole_number(params, "limit", cohorts.DEFAULT_PAGE, 1, cohorts.MAX_PAGE)
        definition = cohorts.CohortDefinition.from_json(found.definition)
    except BadParameter as exc:
        return bad_parameter(exc)
    answer = await run(timed("cohort_members", cohorts.members), runtime.store, project.id, definition,
                       today_of(request), project.time_zone or "UTC", offset, limit)
    return json_response({**cohort_json(found), **answer})


@guard("analyst", api=True)
async def change_cohort(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)

    async def change(body: dict[str, Any]) -> dict[str, Any] | None:
        unknown = sorted(set(body) - {"name", "definition"})
        if unknown:
            raise BadField(unknown[0], "unknown field: a cohort has a name and a definition")
        name = _name_field(body) if body.get("name") is not None else None
        text = None
        if "definition" in body:
            definition = definition_of(body["definition"])
            await run(cohorts.check_regexes, runtime.store, project.id, definition)
            text = definition.to_json()
        found = await run(saved.update_cohort, runtime.meta, project.id, request.path_params["cohort_id"],
                          name=name, definition=text, actor_id=principal_of(request).user_id)
        return None if found is None else cohort_json(found)

    return await _write(request, change, creating=False, missing=_NO_COHORT)


@guard("analyst", api=True)
async def delete_cohort(request: Request) -> Response:
    return await _delete(request, saved.delete_cohort, "cohort_id", _NO_COHORT)


_BASE = "/api/v1/projects/{project_id:int}"
ROUTES: list[BaseRoute] = [
    Route(f"{_BASE}/saved-views", list_views, methods=["GET"]),
    Route(f"{_BASE}/saved-views", add_view, methods=["POST"]),
    Route(f"{_BASE}/saved-views/{{view_id:int}}", get_view, methods=["GET"]),
    Route(f"{_BASE}/saved-views/{{view_id:int}}", rename_view, methods=["PATCH"]),
    Route(f"{_BASE}/saved-views/{{view_id:int}}", delete_view, methods=["DELETE"]),
    Route(f"{_BASE}/cohorts", list_cohorts, methods=["GET"]),
    Route(f"{_BASE}/cohorts", add_cohort, methods=["POST"]),
    Route(f"{_BASE}/cohorts/preview", preview_cohort, methods=["GET"]),
    Route(f"{_BASE}/cohorts/{{cohort_id:int}}", get_cohort, methods=["GET"]),
    Route(f"{_BASE}/cohorts/{{cohort_id:int}}", change_cohort, methods=["PATCH"]),
    Route(f"{_BASE}/cohorts/{{cohort_id:int}}", delete_cohort, methods=["DELETE"]),
]

# --- OpenAPI ------------------------------------------------------------------------------------------------

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_BAD = {"description": "a parameter or body field is wrong: `field` names it, `error` says what is wrong",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_TAKEN = {"description": "the project has another one of that name", "content": _ERR["content"]}
_MAX_ID = 10**18 - 1  # as hitmetrix.web.openapi.MAX_ID: a longer id matches no route


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0,
                                                                      "maximum": _MAX_ID}}


def _op(summary: str, ids: tuple[str, ...], ok: str, codes: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "done" if ok == "204" else "ok"}}
    for code in codes:
        responses[code] = _BAD if code == "400" else _TAKEN if code == "409" else _ERR
    return {"summary": summary, "security": [{"bearer": []}],
            "parameters": [_path_id("project_id"), *(_path_id(i) for i in ids), *extra.pop("query", [])],
            "responses": responses, **extra}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_NAME = {"type": "string", "minLength": 1, "maxLength": saved.MAX_NAME_CHARS}
_DEFINITION = {
    "type": "object",
    "description": "{\"conditions\": [1–10 of {\"type\": \"property\", \"property\": "
    + "|".join(f'"{p}"' for p in cohorts.PROPERTIES)
    + ", \"value\": …, \"key\": … (event_property)} | {\"type\": \"behaviour\", \"event\": a funnel step "
    "(pageview / click / submit / custom), \"at_least\": N, \"days\": D}], AND-ed}",
}
_READ = ("401", "404")
_WRITE = ("400", "401", "403", "404", "409", "413")
_SEMANTICS = (cohorts.__doc__ or "").split("What a cohort means — decided here, once:")[-1].split("Reads ")[0].strip()
_PAGE = [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
    {"name": "limit", "in": "query", "description": "people per page",
     "schema": {"type": "integer", "minimum": 1, "maximum": cohorts.MAX_PAGE, "default": cohorts.DEFAULT_PAGE}},
]
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/projects/{project_id}/saved-views": {
        "get": _op("The project's saved views (name, page, query string, link)", (), "200", _READ),
        "post": _op("Save a view: an analytics page with its query string, named (analysts, write scope)", (), "201",
                    _WRITE, requestBody=_body({"name": _NAME, "page": {"type": "string", "enum": list(VIEW_PAGES)},
                                               "query": {"type": "string", "maxLength": saved.MAX_QUERY_CHARS}},
                                              ["name", "page"])),
    },
    "/api/v1/projects/{project_id}/saved-views/{view_id}": {
        "get": _op("One saved view", ("view_id",), "200", _READ),
        "patch": _op("Rename a saved view (analysts, write scope)", ("view_id",), "200", _WRITE,
                     requestBody=_body({"name": _NAME}, ["name"])),
        "delete": _op("Delete a saved view (analysts, write scope)", ("view_id",), "204", ("401", "403", "404")),
    },
    "/api/v1/projects/{project_id}/cohorts": {
        "get": _op("The project's cohorts with their definitions; filter any view by one with cohort=<id>", (), "200",
                   _READ, description=_SEMANTICS),
        "post": _op("Save a cohort (analysts, write scope); answers with its size now", (), "201", _WRITE,
                    requestBody=_body({"name": _NAME, "definition": _DEFINITION}, ["name", "definition"])),
    },
    "/api/v1/projects/{project_id}/cohorts/preview": {
        "get": _op("The size a cohort definition would have now, without saving it", (), "200", ("400", *_READ),
                   query=[{"name": "definition", "in": "query", "description": "the definition as JSON",
                           "schema": {"type": "string", "maxLength": cohorts.MAX_DEFINITION_CHARS}}]),
    },
    "/api/v1/projects/{project_id}/cohorts/{cohort_id}": {
        "get": _op("A cohort: its size and a page of its people (most recently seen first), each with their latest "
                   "sessions and replay links", ("cohort_id",), "200", ("400", *_READ), query=_PAGE),
        "patch": _op("Rename a cohort or change its definition (analysts, write scope)", ("cohort_id",), "200",
                     _WRITE, requestBody=_body({"name": _NAME, "definition": _DEFINITION}, [])),
        "delete": _op("Delete a cohort (analysts, write scope)", ("cohort_id",), "204", ("401", "403", "404")),
    },
}
