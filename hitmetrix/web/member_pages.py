"""The members page of a project (owners only): add a user by email with a role, change roles, remove.

The rules are the library's (``hitmetrix.store.projects``), shared with the
API and the CLI: the last owner can neither leave nor be demoted; every change
is audited.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.store import accounts, projects
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.csrf import read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import render

MEMBERS = "/projects/{project_id:int}/members"
ROLE_HELP = {
    "owner": "changes settings and members, may delete the project",
    "analyst": "reads everything, handles alerts",
    "viewer": "reads sessions; replays unless the project withholds them",
}


async def members_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    project = project_of(request)
    members = await run(accounts.members_of, runtime_of(request).meta, project.id)
    owners = sum(1 for _, role in members if role == "owner")
    return render(
        request,
        "members.html",
        status_code,
        principal=principal_of(request),
        project=project,
        members=members,
        owners=owners,
        roles=accounts.ROLES,
        role_help=ROLE_HELP,
        **context,
    )


def _back(request: Request) -> Response:
    return RedirectResponse(f"/projects/{project_of(request).id}/members", 303)


@guard("owner")
async def members(request: Request) -> Response:
    """GET: the page; POST: add a member by email."""
    if request.method != "POST":
        return await members_page(request)
    form = await read_form(request)
    email, role = form.get("email", ""), form.get("role", "viewer")
    try:
        await run(
            projects.add_member_by_email,
            runtime_of(request).meta,
            project_of(request).id,
            email,
            role,
            actor_id=principal_of(request).user_id,
        )
    except ValueError as exc:  # no such user, a bad role, the last owner adding themselves as less
        message = str(exc)
        return await members_page(request, 400, member_error=message[:1].upper() + message[1:], email=email)
    return _back(request)


@guard("owner")
async def change_role(request: Request) -> Response:
    form = await read_form(request)
    user_id: int = request.path_params["user_id"]
    meta, project = runtime_of(request).meta, project_of(request)
    if await run(accounts.role_in, meta, project.id, user_id) is None:
        return await members_page(request, 404, member_error="That user is not a member of this project.")
    try:
        role = form.get("role", "")
        await run(projects.set_role, meta, project.id, user_id, role, actor_id=principal_of(request).user_id)
    except ValueError as exc:
        message = str(exc)
        return await members_page(request, 400, member_error=message[:1].upper() + message[1:])
    if user_id == principal_of(request).user_id and role != "owner":  # no longer allowed on this page
        return RedirectResponse(f"/projects/{project.id}/sessions", 303)
    return _back(request)


@guard("owner")
async def remove_member(request: Request) -> Response:
    user_id: int = request.path_params["user_id"]
    meta, project = runtime_of(request).meta, project_of(request)
    try:
        removed = await run(projects.remove_member, meta, project.id, user_id, actor_id=principal_of(request).user_id)
    except projects.LastOwnerError as exc:
        message = str(exc)
        return await members_page(request, 400, member_error=message[:1].upper() + message[1:])
    if not removed:
        return await members_page(request, 404, member_error="That user is not a member of this project.")
    if user_id == principal_of(request).user_id:  # an owner who left sees the project no more
        return RedirectResponse("/projects", 303)
    return _back(request)


ROUTES: list[BaseRoute] = [
    Route(MEMBERS, members, methods=["GET", "POST"]),
    Route(MEMBERS + "/{user_id:int}/role", change_role, methods=["POST"]),
    Route(MEMBERS + "/{user_id:int}/remove", remove_member, methods=["POST"]),
]
