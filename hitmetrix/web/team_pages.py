"""Dashboard pages for running a team: the admins' user list and the audit log pages.

Admins invite people by a one-time link (shown to copy, and mailed when SMTP
is configured), optionally into a project they own with a role; deactivate
and reactivate users; and make password reset links. The audit log is read
per project by its owners, and whole by admins.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics.params import BadParameter
from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit, team
from hitmetrix.web import team_mail
from hitmetrix.web.auth import Principal, client_ip, guard, now_of, principal_of, project_of, runtime_of
from hitmetrix.web.csrf import own_origin, read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, render
from hitmetrix.web.team_api import AuditFilters

_PROJECT_ID = re.compile(r"^[0-9]{1,18}$")  # ASCII digits only: str.isdigit() also takes "²"
NOTICES = {
    "deactivated": "The user was deactivated: their sessions ended and their API tokens were revoked.",
    "reactivated": "The user was reactivated: they can sign in with their password again.",
    "revoked": "The invitation was withdrawn.",
}


# --- the user list -----------------------------------------------------------------------------------


def _users_context(runtime: Runtime, principal: Principal) -> dict[str, Any]:
    return {
        "rows": team.user_rows(runtime.meta),
        "pending": team.pending_links(runtime.meta, now_of(runtime)),
        "invite_projects": [p for p in runtime.meta.projects() if principal.has_role(p.id, "owner")],
    }


async def _users_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    found = await run(_users_context, runtime, principal)
    return render(
        request,
        "users.html",
        status_code,
        principal=principal,
        roles=accounts.ROLES,
        mail=team_mail.configured(runtime.settings),
        notice=NOTICES.get(request.query_params.get("done", "")),
        **found,
        **context,
    )


@guard(admin=True)
async def users(request: Request) -> Response:
    return await _users_page(request)


def _link_url(request: Request, path: str, plaintext: str) -> str:
    return f"{own_origin(request)}{path}?{urlencode({'token': plaintext})}"


@guard(admin=True)
async def invite(request: Request) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    form = await read_form(request)
    email, role = form.get("email", "").strip(), form.get("role", "") or None
    raw_project = form.get("project_id", "").strip()

    async def refused(message: str) -> Response:
        return await _users_page(request, 400, invite_error=message, form=form)

    if raw_project and not _PROJECT_ID.match(raw_project):
        return await refused("Choose a project from the list.")
    project_id = int(raw_project) if raw_project else None
    if project_id is not None and not principal.has_role(project_id, "owner"):
        return await refused("You can invite people only into projects you own.")
    try:
        link, plaintext = await run(
            team.create_invitation,
            runtime.meta,
            principal.user_id,
            email,
            project_id,
            role,
            now_of(runtime),
            client_ip=client_ip(request),
        )
    except ValueError as exc:
        return await refused(str(exc).capitalize() + ".")
    url = _link_url(request, "/invite", plaintext)
    project = await run(runtime.meta.project, project_id) if project_id is not None else None
    days = team.INVITATION_TTL.days
    text = team_mail.invitation_text(url, principal.email, project.name if project else None, link.role, days)
    mailed = team_mail.send_later(runtime.settings, link.email, "You are invited to Hitmetrix", text) is not None
    made = {"kind": "invitation", "email": link.email, "url": url, "mailed": mailed, "valid": f"{days} days"}
    return await _users_page(request, 201, made=made)


@guard(admin=True)
async def revoke_invitation(request: Request) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    link_id = request.path_params["link_id"]
    if not await run(team.revoke_invitation, runtime.meta, principal.user_id, link_id, client_ip=client_ip(request)):
        return error_page(request, 404, "There is no such pending invitation.", principal)
    return RedirectResponse("/admin/users?done=revoked", 303)


async def _change_user(request: Request, change: Any, done: str) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    try:
        user_id = request.path_params["user_id"]
        await run(change, runtime.meta, principal.user_id, user_id, now_of(runtime), client_ip=client_ip(request))
    except KeyError:
        return error_page(request, 404, "There is no such user.", principal)
    except ValueError as exc:
        return await _users_page(request, 400, user_error=str(exc).capitalize() + ".")
    return RedirectResponse(f"/admin/users?done={done}", 303)


@guard(admin=True)
async def deactivate(request: Request) -> Response:
    return await _change_user(request, team.deactivate_user, "deactivated")


@guard(admin=True)
async def reactivate(request: Request) -> Response:
    return await _change_user(request, team.reactivate_user, "reactivated")


@guard(admin=True)
async def reset_link(request: Request) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    try:
        link, plaintext = await run(
            team.create_reset_link,
            runtime.meta,
            principal.user_id,
            request.path_params["user_id"],
            now_of(runtime),
            client_ip=client_ip(request),
        )
    except KeyError:
        return error_page(request, 404, "There is no such user.", principal)
    except ValueError as exc:
        return await _users_page(request, 400, user_error=str(exc).capitalize() + ".")
    url = _link_url(request, "/reset", plaintext)
    hours = int(team.RESET_LINK_TTL.total_seconds() // 3600)
    text = team_mail.reset_text(url, hours)
    mailed = team_mail.send_later(runtime.settings, link.email, "Choose a new Hitmetrix password", text) is not None
    made = {"kind": "reset", "email": link.email, "url": url, "mailed": mailed, "valid": f"{hours} hours"}
    return await _users_page(request, 201, made=made)


# --- the audit log -----------------------------------------------------------------------------------


async def _audit_page(request: Request, project_id: int | None) -> Response:
    principal, runtime = principal_of(request), runtime_of(request)
    try:
        filters = AuditFilters.from_query(request.query_params)
    except BadParameter as exc:
        return error_page(request, 400, str(exc).capitalize() + ".", principal)
    found = await run(
        audit.entries,
        runtime.meta,
        project_id,
        before_id=filters.before,
        limit=filters.limit,
        action=filters.action,
    )
    names = {p.id: p.name for p in await run(runtime.meta.projects)} if project_id is None else {}
    older = None
    if len(found) == filters.limit:
        older = "?" + urlencode({"before": found[-1].id, **({"action": filters.action} if filters.action else {})})
    return render(
        request,
        "audit.html",
        principal=principal,
        project=project_of(request) if project_id is not None else None,
        entries=found,
        project_names=names,
        actions=audit.ACTIONS,
        action=filters.action or "",
        older=older,
    )


@guard(role="owner")
async def project_audit(request: Request) -> Response:
    return await _audit_page(request, project_of(request).id)


@guard(admin=True)
async def admin_audit(request: Request) -> Response:
    return await _audit_page(request, None)


ROUTES: list[BaseRoute] = [
    Route("/admin/users", users, methods=["GET"]),
    Route("/admin/users/invite", invite, methods=["POST"]),
    Route("/admin/invitations/{link_id:int}/revoke", revoke_invitation, methods=["POST"]),
    Route("/admin/users/{user_id:int}/deactivate", deactivate, methods=["POST"]),
    Route("/admin/users/{user_id:int}/reactivate", reactivate, methods=["POST"]),
    Route("/admin/users/{user_id:int}/reset-link", reset_link, methods=["POST"]),
    Route("/admin/audit", admin_audit, methods=["GET"]),
    Route("/projects/{project_id:int}/audit", project_audit, methods=["GET"]),
]
