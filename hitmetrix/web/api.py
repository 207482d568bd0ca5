"""Read API under /api/v1 (bearer-token protected): projects, sessions, events, recordings.

Every answer is ``Cache-Control: no-store``: recordings and session data are
private, and a browser shared by two users must not keep one's for the other.
A bad query parameter is a 400 ``{"error": …, "field": NAME}``. The JSON
helpers here (answers, errors, bodies) serve the other API modules too.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import params, sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.web.auth import guard, principal_of, project_of, record, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
NO_STORE = {"Cache-Control": "no-store"}
MAX_JSON_BYTES = 64 * 1024


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code, NO_STORE, media_type="application/json")


def error(status_code: int, message: str) -> Response:
    return json_response({"error": message}, status_code)


def bad_parameter(exc: BadParameter) -> Response:
    """400 naming the query parameter and what is wrong with it."""
    return json_response({"error": str(exc), "field": exc.parameter}, 400)


async def json_body(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object (at most MAX_JSON_BYTES; none is {}), or the 400 / 413 to answer."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            return error(413, f"the body may have at most {MAX_JSON_BYTES} bytes")
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return error(400, "the body is not JSON")
    except RecursionError:  # msgspec gives up past ~1000 levels of [ or {
        return error(400, "the body is nested too deeply")
    if not isinstance(body, dict):
        return error(400, "the body must be a JSON object")
    return body


@guard(api=True)
async def list_projects(request: Request) -> Response:
    principal = principal_of(request)
    projects = await run(runtime_of(request).meta.projects)
    return json_response(
        [
            {"id": p.id, "name": p.name, "public_key": p.public_key, "ip_anonymisation": p.ip_anonymisation}
            for p in projects
            if principal.can_access(p.id)
        ]
    )


@guard("viewer", api=True)
async def list_sessions(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    query = request.query_params
    cursor = query.get("cursor") or None
    try:
        limit = params.whole_number(query, "limit", sessions.DEFAULT_PAGE_SIZE, 1, sessions.MAX_PAGE_SIZE)
        filters = sessions.SessionFilters.from_query(query)
        if dict(filters.analytics).get("cohort"):
            resolved = await resolve_cohort(request, filters.overview_query())
            filters = dataclasses.replace(filters, cohort=resolved.cohort)
        rows, next_cursor = await run(
            timed("session_list", sessions.list_sessions),
            runtime.store,
            project.id,
            filters,
            cursor,
            limit,
            project.time_zone,
        )
    except BadParameter as exc:  # a bad filter, limit or cursor, in words a person can act on
        return bad_parameter(exc)
    return json_response({"sessions": rows, "next_cursor": next_cursor})


def session_id_of(request: Request) -> str | None:
    """The path's session id when it is plausible; None means 404."""
    sid: str = request.path_params["session_id"]
    return sid if _SESSION_ID.match(sid) else None


@guard("viewer", api=True)
async def get_session(request: Request) -> Response:
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    summary = await run(timed("session_summary", sessions.session_summary), runtime.store, pid, sid)
    events = await run(timed("session_events", sessions.session_events), runtime.store, pid, sid)
    chunks = await run(timed("recording_chunks", sessions.recording_chunks), runtime.store, pid, sid)
    if not events and not chunks:
        return error(404, "no such session")
    for chunk in chunks:
        chunk.pop("path", None)
    return json_response({"session_id": sid, "summary": summary, "events": events, "recording_chunks": chunks})


@guard("viewer", api=True, replay=True)
async def get_chunk(request: Request) -> Response:
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    seq = request.path_params["seq"]
    chunks = await run(timed("recording_chunks", sessions.recording_chunks), runtime.store, pid, sid)
    chunk = next((c for c in chunks if c["seq"] == seq), None)
    if chunk is None:
        return error(404, "no such recording chunk")
    if request.headers.get("x-hitmetrix-texts") == "refs":  # the replay page: it fetches each text once
        body = await run(runtime.blobs.stored_json, chunk["path"])
    else:
        body = await run(sessions.chunk_json, runtime.blobs, chunk)
    # Never cached, though it never changes: after sign-out the next user of this browser must not read it.
    return Response(body, media_type="application/json", headers=NO_STORE)


@guard("viewer", api=True, replay=True)
async def get_recording(request: Request) -> Response:
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    chunks = await run(timed("recording_chunks", sessions.recording_chunks), runtime.store, pid, sid)
    if not chunks:
        return error(404, "no recording for this session")
    await record(request, "replay_viewed", pid, sid, {"via": "api"})
    return StreamingResponse(
        sessions.iter_recording_json(runtime.blobs, chunks), media_type="application/json", headers=NO_STORE
    )


_SESSION = "/api/v1/projects/{project_id:int}/sessions/{session_id}"
ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects", list_projects, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/sessions", list_sessions, methods=["GET"]),
    Route(_SESSION, get_session, methods=["GET"]),
    Route(_SESSION + "/recording", get_recording, methods=["GET"]),
    Route(_SESSION + "/recording/{seq:int}", get_chunk, methods=["GET"]),
]
