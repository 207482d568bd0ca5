"""Decisions for the protected site, read with the project's server key (like a CrowdSec bouncer reads its LAPI).

``GET /api/v1/decisions?ip=&user=&session=``: the verdict for one client —
``{"action": "allow"|"challenge"|"block", "reason", "expires_at", "decision_id"}``.
The address matches ip decisions by its keyed hash (what detection knows) or
as written (manual ones), and every network decision (CIDR) that contains it;
a person's ``allow`` wins over everything, then block over challenge.

``GET /api/v1/decisions/stream?since=<ms>``: the decisions made, extended or
revoked after ``since`` (all active ones for ``since=0``), oldest change first,
with ``next_since`` to poll again with. A bouncer that caches them enforces net
decisions and those with a ``match`` (the plain address or CIDR) locally; an ip
decision made by a rule names the address only by its keyed hash, so for an
address it has not asked about yet the bouncer asks the verdict endpoint.

Both are public routes that check the key themselves: ``Authorization: Bearer
hm_sk_…``, compared in constant time; 401 without a valid one.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.capture.server import KeyCache
from hitmetrix.detect.keys import install_secret, ip_key
from hitmetrix.store import security
from hitmetrix.store.meta import Project
from hitmetrix.web.api import error, json_response
from hitmetrix.web.auth import public, runtime_of
from hitmetrix.web.offload import run

DECISIONS_PATH = "/api/v1/decisions"
STREAM_PATH = "/api/v1/decisions/stream"
SERVER_KEY_PREFIX = "hm_sk_"
MAX_KEY_CHARS = 128
MAX_IP_CHARS = 64
MAX_USER_CHARS = 200
MAX_SESSION_CHARS = 128
MAX_SINCE_MS = 10**15
STREAM_OVERLAP_MS = 5000
STREAM_LIMIT = 1000


def _keys(request: Request) -> KeyCache[Project]:
    state = request.app.state
    cache: KeyCache[Project] | None = getattr(state, "decision_keys", None)
    if cache is None:
        cache = state.decision_keys = KeyCache(runtime_of(request).meta.project_by_server_key)
    return cache


def _secret(request: Request) -> bytes:
    state = request.app.state
    secret: bytes | None = getattr(state, "install_secret", None)
    if secret is None:
        secret = state.install_secret = install_secret(runtime_of(request).data_dir)
    return secret


def _unauthorised(message: str) -> Response:
    answer = error(401, message)
    answer.headers["WWW-Authenticate"] = "Bearer"
    return answer


async def _project(request: Request) -> Project | Response:
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return _unauthorised("the project's server key is required: send Authorization: Bearer hm_sk_…")
    if not key.startswith(SERVER_KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        return _unauthorised("unknown server key")
    project = await run(_keys(request), key)
    # The look-up finds the row by the key; comparing again in constant time keeps the answer's timing
    # from telling how much of a guessed key was right.
    stored = str(getattr(project, "server_key", "") or "") if project is not None else ""
    if project is None or not hmac.compare_digest(stored.encode(), key.encode()):
        return _unauthorised("unknown server key")
    return project


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_ms(request: Request) -> int:
    return int(runtime_of(request).clock() * 1000)


def _parameter(request: Request, name: str, max_chars: int) -> str | Response:
    value = request.query_params.get(name, "")
    if len(value) > max_chars or "\x00" in value:
        return json_response({"error": f"{name} has at most {max_chars} characters", "field": name}, 400)
    return value.strip()


@public("server key: the protected site's middleware reads its verdicts (checked inside, 401 without it)")
async def decision(request: Request) -> Response:
    project = await _project(request)
    if isinstance(project, Response):
        return project
    values: dict[str, str] = {}
    for name, max_chars in (("ip", MAX_IP_CHARS), ("user", MAX_USER_CHARS), ("session", MAX_SESSION_CHARS)):
        value = _parameter(request, name, max_chars)
        if isinstance(value, Response):
            return value
        values[name] = value
    ip = values["ip"]
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            return json_response({"error": "ip must be an IPv4 or IPv6 address", "field": "ip"}, 400)
    found = await run(
        security.verdict,
        runtime_of(request).meta,
        project.id,
        _now_ms(request),
        ip=ip,
        ip_key=ip_key(_secret(request), ip) if ip else "",
        user=values["user"],
        session=values["session"],
    )
    if found is None:
        return json_response({"action": "allow", "reason": "", "expires_at": None, "decision_id": None})
    return json_response(
        {"action": found.action, "reason": found.reason, "expires_at": _iso(found.expires_ms), "decision_id": found.id}
    )


def _stream_item(found: security.Decision, now_ms: int) -> dict[str, Any]:
    return {
        "id": found.id,
        "scope": found.scope,
        "value": found.value,
        "match": found.match,
        "action": found.action,
        "reason": found.reason,
        "origin": found.origin,
        "expires_at": _iso(found.expires_ms),
        "expires_ms": found.expires_ms,
        "active": found.active(now_ms),
        "updated_ms": found.updated_ms,
    }


@public("server key: the protected site's middleware polls decisions made since its last poll (checked inside)")
async def stream(request: Request) -> Response:
    project = await _project(request)
    if isinstance(project, Response):
        return project
    raw = request.query_params.get("since", "0").strip() or "0"
    if not raw.isdigit() or len(raw) > 16 or int(raw) > MAX_SINCE_MS:
        return json_response(
            {"error": f"since must be a time in ms since the epoch, 0 to {MAX_SINCE_MS}", "field": "since"}, 400
        )
    since_ms = int(raw)
    now_ms = _now_ms(request)
    changed = await run(
        security.decisions_changed_since, runtime_of(request).meta, project.id, since_ms, STREAM_LIMIT
    )
    items = [_stream_item(d, now_ms) for d in changed if since_ms > 0 or d.active(now_ms)]
    # A decision stamped just before this poll may commit just after its query: the next poll reads the last
    # few seconds again (a bouncer keeps decisions by id, so a repeat changes nothing).
    next_since = changed[-1].updated_ms if len(changed) >= STREAM_LIMIT else max(since_ms, now_ms - STREAM_OVERLAP_MS)
    return json_response(
        {"now_ms": now_ms, "next_since": next_since, "more": len(changed) >= STREAM_LIMIT, "decisions": items}
    )


ROUTES: list[BaseRoute] = [
    Route(DECISIONS_PATH, decision, methods=["GET"]),
    Route(STREAM_PATH, stream, methods=["GET"]),
]

_SERVER_KEY: list[dict[str, list[str]]] = [{"serverKey": []}]
_ERROR = {
    "description": "error: `error` says what is wrong, `field` names the parameter at fault",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

SERVER_KEY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "a project's server key (hm_sk_…), shown to its owners on the project's settings page",
}

OPENAPI_PATHS: dict[str, Any] = {
    DECISIONS_PATH: {
        "get": {
            "summary": "The verdict for one client of the protected site: allow, challenge or block (server key)",
            "security": _SERVER_KEY,
            "parameters": [
                {"name": "ip", "in": "query", "schema": {"type": "string", "maxLength": MAX_IP_CHARS},
                 "description": "the client's address (IPv4 or IPv6)"},
                {"name": "user", "in": "query", "schema": {"type": "string", "maxLength": MAX_USER_CHARS},
                 "description": "the signed-in user's id"},
                {"name": "session", "in": "query", "schema": {"type": "string", "maxLength": MAX_SESSION_CHARS},
                 "description": "the tracker's session id (cookie hm_sid)"},
            ],
            "responses": {
                "200": {
                    "description": "the decision that applies; action allow with decision_id null when none does",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["action", "reason", "expires_at", "decision_id"],
                        "properties": {
                            "action": {"type": "string", "enum": list(security.DECISION_ACTIONS)},
                            "reason": {"type": "string"},
                            "expires_at": {"type": ["string", "null"], "format": "date-time"},
                            "decision_id": {"type": ["integer", "null"]},
                        },
                    }}},
                },
                "400": _ERROR,
                "401": _ERROR,
            },
        }
    },
    STREAM_PATH: {
        "get": {
            "summary": "Decisions made, extended or revoked since a time, for a bouncer's cache (server key)",
            "security": _SERVER_KEY,
            "parameters": [
                {"name": "since", "in": "query",
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SINCE_MS, "default": 0},
                 "description": "ms since the epoch: the next_since of the previous poll; 0 for every active one"},
            ],
            "responses": {
                "200": {"description": "{now_ms, next_since, more, decisions: [{id, scope, value, match, action, "
                        "reason, origin, expires_at, expires_ms, active, updated_ms}]}"},
                "400": _ERROR,
                "401": _ERROR,
            },
        }
    },
}
