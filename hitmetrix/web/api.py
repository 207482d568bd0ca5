"""Read API under /api/v1 (bearer-token protected): projects, sessions, events, recordings."""

from __future__ import annotations

import re
import secrets
from typing import Any

import msgspec
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hitmetrix.analytics import sessions
from hitmetrix.runtime import Runtime

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(body), status_code, headers, media_type="application/json")


def error(status_code: int, message: str) -> Response:
    return json_response({"error": message}, status_code)


def _authorised(request: Request, runtime: Runtime) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), runtime.admin_token)


def api_routes(runtime: Runtime) -> list[Route]:
    def guarded(handler):  # type: ignore[no-untyped-def]
        async def endpoint(request: Request) -> Response:
            if not _authorised(request, runtime):
                return error(401, "authentication required: send Authorization: Bearer <token>")
            return await handler(request)

        return endpoint

    def project_id(request: Request) -> int | None:
        pid = request.path_params["project_id"]
        return pid if any(p.id == pid for p in runtime.meta.projects()) else None

    async def list_projects(request: Request) -> Response:
        return json_response(
            [
                {"id": p.id, "name": p.name, "public_key": p.public_key, "ip_anonymisation": p.ip_anonymisation}
                for p in runtime.meta.projects()
            ]
        )

    async def list_sessions(request: Request) -> Response:
        pid = project_id(request)
        if pid is None:
            return error(404, "no such project")
        try:
            limit = min(max(int(request.query_params.get("limit", "50")), 1), 1000)
        except ValueError:
            return error(400, "limit must be an integer")
        rows = await to_thread.run_sync(sessions.recent_sessions, runtime.store, pid, limit)
        return json_response({"sessions": rows})

    async def get_session(request: Request) -> Response:
        pid = project_id(request)
        sid = request.path_params["session_id"]
        if pid is None or not _SESSION_ID.match(sid):
            return error(404, "no such session")
        events = await to_thread.run_sync(sessions.session_events, runtime.store, pid, sid)
        chunks = await to_thread.run_sync(sessions.recording_chunks, runtime.store, pid, sid)
        if not events and not chunks:
            return error(404, "no such session")
        for chunk in chunks:
            chunk.pop("path", None)
        return json_response({"session_id": sid, "events": events, "recording_chunks": chunks})

    async def get_recording(request: Request) -> Response:
        pid = project_id(request)
        sid = request.path_params["session_id"]
        if pid is None or not _SESSION_ID.match(sid):
            return error(404, "no such session")
        chunks = await to_thread.run_sync(sessions.recording_chunks, runtime.store, pid, sid)
        if not chunks:
            return error(404, "no recording for this session")
        return StreamingResponse(sessions.iter_recording_json(runtime.blobs, chunks), media_type="application/json")

    return [
        Route("/api/v1/projects", guarded(list_projects), methods=["GET"]),
        Route("/api/v1/projects/{project_id:int}/sessions", guarded(list_sessions), methods=["GET"]),
        Route("/api/v1/projects/{project_id:int}/sessions/{session_id}", guarded(get_session), methods=["GET"]),
        Route(
            "/api/v1/projects/{project_id:int}/sessions/{session_id}/recording",
            guarded(get_recording),
            methods=["GET"],
        ),
    ]
