"""Dashboard pages for projects: the list with a create form, and each project's settings and members.

Everyone signed in may create a project and becomes its owner; owners (and
admins who are members) change settings and members. After a change the
capture path's project cache is invalidated so it takes effect at once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.store.meta import IP_ANONYMISATION, Project, parse_origins
from hitmetrix.web.auth import Principal, can_manage, require_page
from hitmetrix.web.csrf import own_origin, read_form
from hitmetrix.web.render import error_page, render

MAX_PROJECT_NAME_CHARS = 200
OWNERS_ONLY = "Only the project's owners can change its settings and members."


def project_name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= MAX_PROJECT_NAME_CHARS:
        raise ValueError(f"a project needs a name of 1 to {MAX_PROJECT_NAME_CHARS} characters")
    return name




def project_page_routes(runtime: Runtime) -> list[BaseRoute]:
    meta = runtime.meta

    def list_page(request: Request, principal: Principal, status_code: int = 200, **context: Any) -> Response:
        roles = accounts.memberships_of(meta, principal.user_id) if principal.user_id is not None else {}
        visible = [p for p in meta.projects() if principal.can_access(p.id)]
        return render(
            request, "projects.html", status_code, principal=principal, projects=visible, roles=roles, **context
        )

    def settings_page(
        request: Request, principal: Principal, project: Project, status_code: int = 200, **context: Any
    ) -> Response:
        return render(
            request,
            "project_settings.html",
            status_code,
            principal=principal,
            project=project,
            script_tag=project.script_tag(own_origin(request)),
            members=accounts.members_of(meta, project.id),
            manage=can_manage(principal, runtime, project.id),
            ip_modes=IP_ANONYMISATION,
            roles=accounts.ROLES,
            **context,
        )

    async def projects(request: Request) -> Response:
        checked = await require_page(request, runtime)
        if isinstance(checked, Response):
            return checked
        if request.method != "POST":
            return list_page(request, checked)
        form = await read_form(request)
        try:
            name = project_name(form.get("name", ""))
        except ValueError as exc:
            return list_page(request, checked, 400, error=str(exc).capitalize(), name=form.get("name", ""))
        if checked.user_id is None:
            project = meta.create_project(name)
        else:
            project = accounts.create_owned_project(meta, checked.user_id, name)
        runtime.projects.invalidate()
        return RedirectResponse(f"/projects/{project.id}/settings", 303)

    async def guarded_project(request: Request, manage: bool) -> tuple[Principal, Project] | Response:
        """The caller and the path's project, or the page to answer (sign in / 403 / 404)."""
        pid = request.path_params["project_id"]
        checked = await require_page(request, runtime, pid)
        if isinstance(checked, Response):
            return checked
        project = meta.project(pid)
        if project is None:
            return error_page(request, 404, "There is no such project.", checked)
        if manage and not can_manage(checked, runtime, pid):
            return error_page(request, 403, OWNERS_ONLY, checked)
        return checked, project

    async def project_settings(request: Request) -> Response:
        guarded = await guarded_project(request, manage=request.method == "POST")
        if isinstance(guarded, Response):
            return guarded
        principal, project = guarded
        if request.method != "POST":
            return settings_page(request, principal, project, saved=request.query_params.get("saved") == "1")
        form = await read_form(request)
        try:
            project = meta.update_project(
                project.id,
                name=project_name(form.get("name", project.name)),
                allowed_origins=parse_origins(form.get("allowed_origins", "")),
                ip_anonymisation=form.get("ip_anonymisation", project.ip_anonymisation),
            )
        except ValueError as exc:
            return settings_page(request, principal, project, 400, error=str(exc).capitalize(), form=form)
        runtime.projects.invalidate()
        return RedirectResponse(f"/projects/{project.id}/settings?saved=1", 303)

    async def add_member(request: Request) -> Response:
        guarded = await guarded_project(request, manage=True)
        if isinstance(guarded, Response):
            return guarded
        principal, project = guarded
        form = await read_form(request)
        user = accounts.user_by_email(meta, form.get("email", ""))
        if user is None:
            message = "No user has that email. Create the account first (hitmetrix user create EMAIL)."
            return settings_page(request, principal, project, 400, member_error=message)
        try:
            accounts.add_member(meta, project.id, user.id, form.get("role", "member"))
        except ValueError as exc:
            return settings_page(request, principal, project, 400, member_error=str(exc).capitalize())
        return RedirectResponse(f"/projects/{project.id}/settings#members", 303)

    async def remove_member(request: Request) -> Response:
        guarded = await guarded_project(request, manage=True)
        if isinstance(guarded, Response):
            return guarded
        principal, project = guarded
        user_id = request.path_params["user_id"]
        members = accounts.members_of(meta, project.id)
        owners = [user.id for user, role in members if role == "owner"]
        if owners == [user_id]:
            return settings_page(request, principal, project, 400, member_error="A project keeps at least one owner.")
        accounts.remove_member(meta, project.id, user_id)
        return RedirectResponse(f"/projects/{project.id}/settings#members", 303)

    return [
        Route("/projects", projects, methods=["GET", "POST"]),
        Route("/projects/{project_id:int}/settings", project_settings, methods=["GET", "POST"]),
        Route("/projects/{project_id:int}/members", add_member, methods=["POST"]),
        Route("/projects/{project_id:int}/members/{user_id:int}/remove", remove_member, methods=["POST"]),
    ]
