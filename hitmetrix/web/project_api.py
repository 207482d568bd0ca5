"""JSON API for project settings and personal API tokens under /api/v1 (listing projects is in ``api``).

Same rules as the pages: a caller sees only its projects (404 otherwise),
changing settings needs the write scope and project ownership, and a token is
only ever its own user's to list or revoke.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.store.meta import Project, parse_origins
from hitmetrix.web.api import NO_STORE
from hitmetrix.web.auth import Principal, can_manage, now_of, require_api
from hitmetrix.web.project_pages import project_name

MAX_JSON_BYTES = 64 * 1024


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code, NO_STORE, media_type="application/json")


def _error(status_code: int, message: str) -> Response:
    return _json({"error": message}, status_code)


def _time(value: dt.datetime | None) -> str | None:
    return accounts.as_utc(value).isoformat() if value is not None else None


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "public_key": project.public_key,
        "ip_anonymisation": project.ip_anonymisation,
        "allowed_origins": project.origins(),
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


async def _body(request: Request) -> dict[str, Any] | Response:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            return _error(413, f"the body may have at most {MAX_JSON_BYTES} bytes")
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return _error(400, "the body is not JSON")
    except RecursionError:  # msgspec gives up past ~1000 levels of [ or {
        return _error(400, "the body is nested too deeply")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _origins_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_origins("\n".join(value))
    if isinstance(value, str):
        return parse_origins(value)
    raise ValueError("allowed_origins must be a list of origins")


def _string(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _settings_changes(body: dict[str, Any]) -> dict[str, str]:
    unknown = set(body) - {"name", "ip_anonymisation", "allowed_origins"}
    if unknown:
        raise ValueError(f"unknown field: {sorted(unknown)[0]}")
    changes: dict[str, str] = {}
    if "name" in body:
        changes["name"] = project_name(_string(body, "name"))
    if "ip_anonymisation" in body:
        changes["ip_anonymisation"] = _string(body, "ip_anonymisation")
    if "allowed_origins" in body:
        changes["allowed_origins"] = _origins_text(body["allowed_origins"])
    return changes


def project_api_routes(runtime: Runtime) -> list[BaseRoute]:
    meta = runtime.meta

    async def create_project(request: Request) -> Response:
        checked = await require_api(request, runtime, write=True)
        if isinstance(checked, Response):
            return checked
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            changes = _settings_changes({"name": "", **body})
            project = meta.create_project(changes.pop("name"), changes.get("ip_anonymisation", "truncate"))
        except ValueError as exc:
            return _error(400, str(exc))
        if checked.user_id is not None:
            accounts.add_member(meta, project.id, checked.user_id, "owner")
        if changes:
            project = meta.update_project(project.id, **changes)
        runtime.projects.invalidate()
        return _json(project_json(project), 201)

    async def project(request: Request) -> Response:
        pid = request.path_params["project_id"]
        checked = await require_api(request, runtime, pid, write=request.method == "PATCH")
        if isinstance(checked, Response):
            return checked
        found = meta.project(pid)
        if found is None:
            return _error(404, "no such project")
        if request.method == "PATCH":
            if not can_manage(checked, runtime, pid):
                return _error(403, "only the project's owners can change its settings")
            body = await _body(request)
            if isinstance(body, Response):
                return body
            try:
                found = meta.update_project(pid, **_settings_changes(body))
            except ValueError as exc:
                return _error(400, str(exc))
            runtime.projects.invalidate()
        members = [{"email": user.email, "role": role} for user, role in accounts.members_of(meta, pid)]
        return _json({**project_json(found), "members": members})

    def own_user(principal: Principal) -> int | Response:
        if principal.user_id is None:
            return _error(400, "the local admin token has no personal API tokens")
        return principal.user_id

    async def tokens(request: Request) -> Response:
        checked = await require_api(request, runtime, write=request.method == "POST")
        if isinstance(checked, Response):
            return checked
        user_id = own_user(checked)
        if isinstance(user_id, Response):
            return user_id
        if request.method != "POST":
            return _json([token_json(t) for t in accounts.api_tokens_of(meta, user_id)])
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            name, scope = (_string({"name": "", "scope": "", **body}, field) for field in ("name", "scope"))
            token, plaintext = accounts.create_api_token(meta, user_id, name, scope)
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({**token_json(token), "token": plaintext}, 201)

    async def revoke_token(request: Request) -> Response:
        checked = await require_api(request, runtime, write=True)
        if isinstance(checked, Response):
            return checked
        user_id = own_user(checked)
        if isinstance(user_id, Response):
            return user_id
        if not accounts.revoke_api_token(meta, user_id, request.path_params["token_id"], now_of(runtime)):
            return _error(404, "no such token")
        return Response(status_code=204)

    return [
        Route("/api/v1/projects", create_project, methods=["POST"]),
        Route("/api/v1/projects/{project_id:int}", project, methods=["GET", "PATCH"]),
        Route("/api/v1/tokens", tokens, methods=["GET", "POST"]),
        Route("/api/v1/tokens/{token_id:int}", revoke_token, methods=["DELETE"]),
    ]
