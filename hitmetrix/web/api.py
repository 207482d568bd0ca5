"""Read API under /api/v1 (bearer-token protected): projects, sessions, events, recordings.

Every answer is ``Cache-Control: no-store``: recordings and session data are
private, and a browser shared by two users must not keep one's for the other.
A bad query parameter is a 400 ``{"error": …, "field": NAME}``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hitmetrix.analytics import params, sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.runtime import Runtime
from hitmetrix.web.auth import Principal, require_api

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
NO_STORE = {"Cache-Control": "no-store"}


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code, NO_STORE, media_type="application/json")


def error(status_code: int, message: str) -> Response:
    return json_response({"error": message}, status_code)


def bad_parameter(exc: BadParameter) -> Response:
    """400 naming the query parameter and what is wrong with it."""
    return json_response({"error": str(exc), "field": exc.parameter}, 400)


def api_routes(runtime: Runtime) -> list[Route]:
    def guarded(handler):  # type: ignore[no-untyped-def]
        """Authenticate, check read access to the path's project, then run the handler."""

        async def endpoint(request: Request) -> Response:
            pid = request.path_params.get("project_id")
            checked = await require_api(request, runtime, pid)
            if isinstance(checked, Response):
                return checked
            request.state.principal = checked
            return await handler(request)

        return endpoint

    def project_id(request: Request) -> int | None:
        """The path's project id if that project exists (access was checked by `guarded`)."""
        pid: int = request.path_params["project_id"]
        return pid if runtime.meta.project(pid) is not None else None

    async def list_projects(request: Request) -> Response:
        principal: Principal = request.state.principal
        return json_response(
            [
                {"id": p.id, "name": p.name, "public_key": p.public_key, "ip_anonymisation": p.ip_anonymisation}
                for p in runtime.meta.projects()
                if principal.can_access(p.id)
            ]
        )

    async def list_sessions(request: Request) -> Response:
        pid = project_id(request)
        if pid is None:
            return error(404, "no such project")
        query = request.query_params
        cursor = query.get("cursor") or None
        try:
            limit = params.whole_number(query, "limit", sessions.DEFAULT_PAGE_SIZE, 1, sessions.MAX_PAGE_SIZE)
            filters = sessions.SessionFilters.from_query(query)
            rows, next_cursor = await to_thread.run_sync(
                sessions.list_sessions, runtime.store, pid, filters, cursor, limit
            )
        except BadParameter as exc:  # a bad filter, limit or cursor, in words a person can act on
            return bad_parameter(exc)
        return json_response({"sessions": rows, "next_cursor": next_cursor})

    def session_of(request: Request) -> tuple[int, str] | None:
        """The path's (project id, session id) when both are plausible; None means 404."""
        pid = project_id(request)
        sid = request.path_params["session_id"]
        return (pid, sid) if pid is not None and _SESSION_ID.match(sid) else None

    async def get_session(request: Request) -> Response:
        if (found := session_of(request)) is None:
            return error(404, "no such session")
        pid, sid = found
        summary = await to_thread.run_sync(sessions.session_summary, runtime.store, pid, sid)
        events = await to_thread.run_sync(sessions.session_events, runtime.store, pid, sid)
        chunks = await to_thread.run_sync(sessions.recording_chunks, runtime.store, pid, sid)
        if not events and not chunks:
            return error(404, "no such session")
        for chunk in chunks:
            chunk.pop("path", None)
        return json_response({"session_id": sid, "summary": summary, "events": events, "recording_chunks": chunks})

    async def get_chunk(request: Request) -> Response:
        if (found := session_of(request)) is None:
            return error(404, "no such session")
        pid, sid = found
        seq = request.path_params["seq"]
        chunks = await to_thread.run_sync(sessions.recording_chunks, runtime.store, pid, sid)
        chunk = next((c for c in chunks if c["seq"] == seq), None)
        if chunk is None:
            return error(404, "no such recording chunk")
        body = await to_thread.run_sync(sessions.chunk_json, runtime.blobs, chunk)
        # Never cached, though it never changes: after sign-out the next user of this browser must not read it.
        return Response(body, media_type="application/json", headers=NO_STORE)

    async def get_recording(request: Request) -> Response:
        if (found := session_of(request)) is None:
            return error(404, "no such session")
        pid, sid = found
        chunks = await to_thread.run_sync(sessions.recording_chunks, runtime.store, pid, sid)
        if not chunks:
            return error(404, "no recording for this session")
        return StreamingResponse(
            sessions.iter_recording_json(runtime.blobs, chunks), media_type="application/json", headers=NO_STORE
        )

    return [
        Route("/api/v1/projects", guarded(list_projects), methods=["GET"]),
        Route("/api/v1/projects/{project_id:int}/sessions", guarded(list_sessions), methods=["GET"]),
        Route("/api/v1/projects/{project_id:int}/sessions/{session_id}", guarded(get_session), methods=["GET"]),
        Route(
            "/api/v1/projects/{project_id:int}/sessions/{session_id}/recording",
            guarded(get_recording),
            methods=["GET"],
        ),
        Route(
            "/api/v1/projects/{project_id:int}/sessions/{session_id}/recording/{seq:int}",
            guarded(get_chunk),
            methods=["GET"],
        ),
    ]
