"""JSON API for projects and personal API tokens under /api/v1 (listing projects is in ``api``).

Same rules as the pages: a caller sees only its projects (404 otherwise);
changing settings or deleting a project needs the write scope and the owner
role; deleting also needs ``?confirm=`` with the project's name, as the
dashboard asks to type it; a token is only ever its own user's to list or revoke.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.store import accounts, projects
from hitmetrix.store.meta import Project
from hitmetrix.web.api import error, json_body, json_response
from hitmetrix.web.auth import Principal, guard, now_of, principal_of, project_of, runtime_of
from hitmetrix.web.offload import run

PROJECT = "/api/v1/projects/{project_id:int}"


def _time(value: dt.datetime | None) -> str | None:
    return accounts.as_utc(value).isoformat() if value is not None else None


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "public_key": project.public_key,
        "ip_anonymisation": project.ip_anonymisation,
        "allowed_origins": project.origins(),
        "allowed_query_keys": list(project.query_allowlist),
        "viewers_can_replay": project.viewers_can_replay,
        "time_zone": project.time_zone,
        "auth_rules": project.auth_rules or "",
        **{name: getattr(project, name) for name in projects.RECORDING_FEATURES},
        "created_at": _time(project.created_at),
    }


def token_json(token: accounts.ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "hint": token.hint,
        "created_at": _time(token.created_at),
        "last_used_at": _time(token.last_used_at),
        "revoked_at": _time(token.revoked_at),
    }


def owner_for(meta: Any, principal: Principal) -> int | None:
    """Who owns a project this caller creates: the caller, or for the local admin token (the CLI's)
    the first admin, as ``hitmetrix project create`` does."""
    if principal.user_id is not None:
        return principal.user_id
    admin = projects.first_admin(meta)
    return admin.id if admin is not None else None


@guard(api=True)
async def create_project(request: Request) -> Response:
    runtime, principal = runtime_of(request), principal_of(request)
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        changes = projects.settings_changes({"name": "", **body})
        owner = await run(owner_for, runtime.meta, principal)
        project = await run(
            projects.create_project,
            runtime.meta,
            changes.pop("name"),
            owner_id=owner,
            actor_id=principal.user_id,
            ip_anonymisation=changes.get("ip_anonymisation", "truncate"),
        )
        if changes:
            project = await run(projects.update_settings, runtime.meta, project.id, changes, actor_id=principal.user_id)
    except ValueError as exc:
        return error(400, str(exc))
    runtime.projects.invalidate()
    return json_response(await run(project_with_members, runtime.meta, project), 201)


def project_with_members(meta: Any, project: Project) -> dict[str, Any]:
    members = [
        {"user_id": user.id, "email": user.email, "role": role} for user, role in accounts.members_of(meta, project.id)
    ]
    return {**project_json(project), "members": members}


def with_server_key(request: Request, answer: dict[str, Any], project: Project) -> dict[str, Any]:
    """The server key is a secret: only the project's owners see it."""
    if principal_of(request).role_in(project.id) == "owner":
        answer["server_key"] = project.server_key
    return answer


@guard("viewer", api=True)
async def get_project(request: Request) -> Response:
    project = project_of(request)
    answer = await run(project_with_members, runtime_of(request).meta, project)
    return json_response(with_server_key(request, answer, project))


@guard("owner", api=True)
async def rotate_server_key(request: Request) -> Response:
    """A new server key; the old one stops working within seconds (capture caches keys briefly)."""
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    try:
        found = await run(projects.rotate_server_key, runtime.meta, project.id, actor_id=principal.user_id)
    except KeyError:
        return error(404, "no such project")
    return json_response({"server_key": found.server_key})


@guard("owner", api=True)
async def change_project(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        found = await run(projects.update_settings, runtime.meta, project.id, body, actor_id=principal.user_id)
    except ValueError as exc:
        return error(400, str(exc))
    except KeyError:
        return error(404, "no such project")
    runtime.projects.invalidate()
    return json_response(with_server_key(request, await run(project_with_members, runtime.meta, found), found))


@guard("owner", api=True)
async def delete_project(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    if request.query_params.get("confirm") != project.name:
        return error(400, "confirm must repeat the project's name: deleting it deletes all of its data")
    try:
        await run(projects.delete_project, runtime.meta, project.id, actor_id=principal.user_id)
    except KeyError:
        return error(404, "no such project")
    runtime.projects.invalidate()
    await run(
        projects.delete_project_data,
        runtime.store,
        project.id,
        blobs_root=runtime.blobs.root,
        data_dir=runtime.data_dir,
    )
    return Response(status_code=204)


def _own_user(principal: Principal) -> int | Response:
    if principal.user_id is None:
        return error(400, "the local admin token has no personal API tokens")
    return principal.user_id


@guard(api=True)
async def list_tokens(request: Request) -> Response:
    user_id = _own_user(principal_of(request))
    if isinstance(user_id, Response):
        return user_id
    tokens = await run(accounts.api_tokens_of, runtime_of(request).meta, user_id)
    return json_response([token_json(t) for t in tokens])


@guard(api=True)
async def create_token(request: Request) -> Response:
    user_id = _own_user(principal_of(request))
    if isinstance(user_id, Response):
        return user_id
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    fields = {"name": "", "scope": "", **body}
    for name in ("name", "scope"):
        if not isinstance(fields[name], str):
            return error(400, f"{name} must be a string")
    try:
        token, plaintext = await run(
            accounts.create_api_token, runtime_of(request).meta, user_id, fields["name"], fields["scope"]
        )
    except ValueError as exc:
        return error(400, str(exc))
    return json_response({**token_json(token), "token": plaintext}, 201)


@guard(api=True)
async def revoke_token(request: Request) -> Response:
    runtime = runtime_of(request)
    user_id = _own_user(principal_of(request))
    if isinstance(user_id, Response):
        return user_id
    token_id = request.path_params["token_id"]
    if not await run(accounts.revoke_api_token, runtime.meta, user_id, token_id, now_of(runtime)):
        return error(404, "no such token")
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects", create_project, methods=["POST"]),
    Route(PROJECT, get_project, methods=["GET"]),
    Route(PROJECT, change_project, methods=["PATCH"]),
    Route(PROJECT, delete_project, methods=["DELETE"]),
    Route(PROJECT + "/server-key", rotate_server_key, methods=["POST"]),
    Route("/api/v1/tokens", list_tokens, methods=["GET"]),
    Route("/api/v1/tokens", create_token, methods=["POST"]),
    Route("/api/v1/tokens/{token_id:int}", revoke_token, methods=["DELETE"]),
]
