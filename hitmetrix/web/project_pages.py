"""Dashboard pages for projects: the list with a create form, each project's settings, and deletion.

Everyone signed in may create a project and becomes its owner. Owners change
settings and delete (after typing the project's name); admins see the projects
they are not members of and may add themselves. After a change the capture
path's project cache is invalidated so it takes effect at once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.store import projects
from hitmetrix.store.meta import IP_ANONYMISATION, Project
from hitmetrix.timezones import DEFAULT_TIME_ZONE, parse_time_zone
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.csrf import own_origin, read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, render

# The project's optional recording features as the settings form offers them: (column, title, what it records).
RECORDING_FEATURE_CHOICES = (
    ("record_console", "Console", "the visitor's console messages and uncaught errors, masked values scrubbed"),
    ("record_network", "Network", "fetch and XHR requests: method, URL (query values masked), status, timing"),
    ("record_vitals", "Web vitals", "LCP, INP, CLS, FCP and TTFB of each page, as a $web_vitals event"),
)
SETTINGS_FIELDS = ("name", "allowed_origins", "allowed_query_keys", "ip_anonymisation", "time_zone", "auth_rules")


async def list_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    principal, meta = principal_of(request), runtime_of(request).meta
    everything = await run(meta.projects)
    visible = [p for p in everything if principal.can_access(p.id)]
    # Admins may add themselves to any project: they see the others, and nothing of them but the name.
    others = [p for p in everything if not principal.can_access(p.id)] if principal.admin else []
    roles = {p.id: principal.role_in(p.id) for p in visible}
    return render(
        request,
        "projects.html",
        status_code,
        principal=principal,
        projects=visible,
        others=others,
        roles=roles,
        deleted=request.query_params.get("deleted", "")[:200],
        **context,
    )


@guard()
async def project_list(request: Request) -> Response:
    runtime, principal = runtime_of(request), principal_of(request)
    if request.method != "POST":
        return await list_page(request)
    form = await read_form(request)
    try:
        project = await run(
            projects.create_project,
            runtime.meta,
            form.get("name", ""),
            owner_id=principal.user_id,
            actor_id=principal.user_id,
            time_zone=browser_zone(form.get("time_zone", "")),
        )
    except ValueError as exc:
        return await list_page(request, 400, error=str(exc).capitalize(), name=form.get("name", ""))
    runtime.projects.invalidate()
    return RedirectResponse(f"/projects/{project.id}/settings", 303)


def browser_zone(raw: str) -> str:
    """The creator's zone (the form's JavaScript fills it in); UTC when absent or unknown here."""
    try:
        return parse_time_zone(raw)
    except ValueError:
        return DEFAULT_TIME_ZONE


def settings_page(request: Request, project: Project, status_code: int = 200, **context: Any) -> Response:
    return render(
        request,
        "project_settings.html",
        status_code,
        principal=principal_of(request),
        project=project,
        script_tag=project.script_tag(own_origin(request)),
        ip_modes=IP_ANONYMISATION,
        recording_features=RECORDING_FEATURE_CHOICES,
        **context,
    )


def settings_from_form(form: dict[str, str]) -> dict[str, Any]:
    """What the form changes: the fields it sent (a missing one stays as it is); the checkbox comes
    with a hidden "0" before it, so an unticked box still says so."""
    raw: dict[str, Any] = {name: form[name] for name in SETTINGS_FIELDS if name in form}
    for flag in ("viewers_can_replay", *projects.RECORDING_FEATURES):
        if flag in form:
            raw[flag] = form[flag] == "1"
    return raw


@guard("owner")
async def project_settings(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    if request.method != "POST":
        query = request.query_params
        return settings_page(request, project, saved=query.get("saved") == "1", rotated=query.get("rotated") == "1")
    form = await read_form(request)
    try:
        await run(
            projects.update_settings,
            runtime.meta,
            project.id,
            settings_from_form(form),
            actor_id=principal_of(request).user_id,
        )
    except ValueError as exc:
        # Only the first letter: capitalize() would lower-case names in the message (Europe/Berlin, origins).
        return settings_page(request, project, 400, error=str(exc)[:1].upper() + str(exc)[1:], form=form)
    except KeyError:
        return error_page(request, 404, "There is no such project.", principal_of(request))
    runtime.projects.invalidate()
    return RedirectResponse(f"/projects/{project.id}/settings?saved=1", 303)


@guard("owner")
async def rotate_server_key(request: Request) -> Response:
    """A new server key for the project's SDK and ingest-log senders; the old one stops working."""
    runtime, project = runtime_of(request), project_of(request)
    try:
        await run(projects.rotate_server_key, runtime.meta, project.id, actor_id=principal_of(request).user_id)
    except KeyError:
        return error_page(request, 404, "There is no such project.", principal_of(request))
    return RedirectResponse(f"/projects/{project.id}/settings?rotated=1#server-sources", 303)


@guard("owner")
async def delete_project(request: Request) -> Response:
    """GET: the confirmation page; POST with the project's name typed again: delete it and its data."""
    runtime, project = runtime_of(request), project_of(request)
    if request.method != "POST":
        return render(request, "project_delete.html", principal=principal_of(request), project=project)
    form = await read_form(request)
    if form.get("confirm_name", "") != project.name:
        message = "The name you typed is not this project's name: nothing was deleted."
        return render(
            request, "project_delete.html", 400, principal=principal_of(request), project=project, error=message
        )
    try:
        await run(projects.delete_project, runtime.meta, project.id, actor_id=principal_of(request).user_id)
    except KeyError:
        return error_page(request, 404, "There is no such project.", principal_of(request))
    runtime.projects.invalidate()
    await run(
        projects.delete_project_data,
        runtime.store,
        project.id,
        blobs_root=runtime.blobs.root,
        data_dir=runtime.data_dir,
    )
    return RedirectResponse("/projects?" + urlencode({"deleted": project.name}), 303)


@guard(admin=True)
async def join_project(request: Request) -> Response:
    """An admin adds themselves to a project as its owner (e.g. one made from the CLI)."""
    runtime, principal = runtime_of(request), principal_of(request)
    project_id: int = request.path_params["project_id"]
    if principal.user_id is None:
        return error_page(request, 400, "The local admin token cannot join a project.", principal)
    try:
        await run(projects.join_as_admin, runtime.meta, project_id, principal.user_id)
    except KeyError:
        return error_page(request, 404, "There is no such project.", principal)
    return RedirectResponse(f"/projects/{project_id}/sessions", 303)


ROUTES: list[BaseRoute] = [
    Route("/projects", project_list, methods=["GET", "POST"]),
    Route("/projects/{project_id:int}/settings", project_settings, methods=["GET", "POST"]),
    Route("/projects/{project_id:int}/delete", delete_project, methods=["GET", "POST"]),
    Route("/projects/{project_id:int}/server-key", rotate_server_key, methods=["POST"]),
    Route("/projects/{project_id:int}/join", join_project, methods=["POST"]),
]
