"""JSON API for a project's members (owners only): add by email with a role, change a role, remove.

The rules are the library's (``hitmetrix.store.projects``): a role is owner,
analyst or viewer; the last owner can neither leave nor be demoted (409).
A project's members are listed in ``GET /api/v1/projects/{id}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.store import projects
from hitmetrix.store.accounts import role_in
from hitmetrix.web.api import error, json_body, json_response
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.offload import run

MEMBERS = "/api/v1/projects/{project_id:int}/members"


def _field(body: dict[str, object], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


@guard("owner", api=True)
async def add_member(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        email, role = _field(body, "email"), _field(body, "role") or "viewer"
        user = await run(
            projects.add_member_by_email, runtime.meta, project.id, email, role, actor_id=principal.user_id
        )
    except projects.LastOwnerError as exc:  # an owner adding themselves again with a lower role
        return error(409, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    except KeyError:
        return error(404, "no such project")
    return json_response({"user_id": user.id, "email": user.email, "role": role}, 201)


async def _is_member(request: Request, user_id: int) -> bool:
    return await run(role_in, runtime_of(request).meta, project_of(request).id, user_id) is not None


@guard("owner", api=True)
async def change_member(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    user_id: int = request.path_params["user_id"]
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    if not await _is_member(request, user_id):
        return error(404, "no such member")
    try:
        role = _field(body, "role")
        await run(projects.set_role, runtime.meta, project.id, user_id, role, actor_id=principal.user_id)
    except projects.LastOwnerError as exc:
        return error(409, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    except KeyError:
        return error(404, "no such project")
    return json_response({"user_id": user_id, "role": role})


@guard("owner", api=True)
async def remove_member(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    user_id: int = request.path_params["user_id"]
    try:
        removed = await run(projects.remove_member, runtime.meta, project.id, user_id, actor_id=principal.user_id)
    except projects.LastOwnerError as exc:
        return error(409, str(exc))
    except KeyError:
        return error(404, "no such project")
    return Response(status_code=204) if removed else error(404, "no such member")


ROUTES: list[BaseRoute] = [
    Route(MEMBERS, add_member, methods=["POST"]),
    Route(MEMBERS + "/{user_id:int}", change_member, methods=["PATCH"]),
    Route(MEMBERS + "/{user_id:int}", remove_member, methods=["DELETE"]),
]
