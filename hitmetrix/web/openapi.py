"""The OpenAPI document of the JSON API, and a human-readable page made from it."""

from __future__ import annotations

import html
from typing import Any

from hitmetrix import __version__
from hitmetrix.analytics.params import MAX_DATE, MIN_DATE
from hitmetrix.analytics.sessions import (
    DEFAULT_PAGE_SIZE,
    DEVICE_TYPES,
    MAX_CURSOR_CHARS,
    MAX_DURATION_S,
    MAX_PAGE_SIZE,
)
from hitmetrix.web.analytics_api import OPENAPI_PATHS as ANALYTICS_PATHS
from hitmetrix.web.decisions_api import OPENAPI_PATHS as DECISIONS_PATHS
from hitmetrix.web.decisions_api import SERVER_KEY_SCHEME
from hitmetrix.web.frustration_api import OPENAPI_PATHS as FRUSTRATION_PATHS
from hitmetrix.web.frustration_api import SESSION_LIST_PARAMETERS as FRUSTRATION_LIST_PARAMETERS
from hitmetrix.web.funnels_api import OPENAPI_PATHS as FUNNELS_PATHS
from hitmetrix.web.heatmaps_api import OPENAPI_PATHS as HEATMAPS_PATHS
from hitmetrix.web.retention_api import OPENAPI_PATHS as RETENTION_PATHS
from hitmetrix.web.saved_api import OPENAPI_PATHS as SAVED_PATHS
from hitmetrix.web.security_openapi import OPENAPI_PATHS as SECURITY_PATHS
from hitmetrix.web.trends_api import OPENAPI_PATHS as TRENDS_PATHS
from hitmetrix.web.vitals_api import OPENAPI_PATHS as VITALS_PATHS

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERR = {"description": "error", "content": _ERROR_CONTENT}
_BAD_PARAMETER = {
    "description": "a query parameter is malformed or out of range: `field` names it, `error` says what is wrong",
    "content": _ERROR_CONTENT,
}
_BAD_BODY = {
    "description": "the body is not a JSON object (or nested too deeply), or a field is wrong: `error` says which",
    "content": _ERROR_CONTENT,
}
_LAST_OWNER = {
    "description": "the change would leave the project without an owner",
    "content": _ERROR_CONTENT,
}
_LOCAL_ADMIN = {"description": "the local admin token has no personal API tokens", "content": _ERROR_CONTENT}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
MAX_ID = 10**18 - 1  # hitmetrix.web.paths: longer ids match no route


def _id(name: str, kind: str = "string") -> dict[str, Any]:
    if kind == "integer":
        schema: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        described = {"description": "at most 18 digits; a longer number matches no route (404)"}
    else:
        schema, described = {"type": kind}, {}
    return {"name": name, "in": "path", "required": True, "schema": schema, **described}


EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "ts"],
    "properties": {
        "type": {
            "type": "string",
            "enum": ["pageview", "click", "submit", "scroll", "error", "pageleave", "custom", "identify", "signals"],
        },
        "ts": {"type": "integer", "description": "client time, ms since epoch"},
        "url": {"type": "string", "maxLength": 2048},
        "title": {"type": "string", "maxLength": 512},
        "referrer": {"type": "string", "maxLength": 2048},
        "name": {"type": "string", "maxLength": 200},
        "selector": {"type": "string", "maxLength": 512},
        "tag": {"type": "string", "maxLength": 32},
        "text": {"type": "string", "maxLength": 256},
        "x": {"type": "integer"},
        "y": {"type": "integer"},
        "vw": {"type": "integer"},
        "vh": {"type": "integer"},
        "props": {"type": "object", "description": "at most 16 KiB as JSON"},
    },
}

SERVER_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "id", "ts"],
    "properties": {
        "type": {"type": "string", "enum": ["request", "auth"]},
        "id": {"type": "string", "format": "uuid"},
        "ts": {"type": "integer", "description": "ms since epoch"},
        "ip": {"type": "string", "maxLength": 64, "description": "the end client's address"},
        "user_agent": {"type": "string", "maxLength": 1024},
        "session_id": {"type": "string", "maxLength": 64, "description": "the tracker's hm_sid cookie, or empty"},
        "user_id": {"type": "string", "maxLength": 256},
        "method": {"type": "string", "maxLength": 32},
        "path": {"type": "string", "maxLength": 2048},
        "query": {"type": "string", "maxLength": 4096},
        "route": {"type": "string", "maxLength": 512},
        "status": {"type": "integer", "minimum": 0, "maximum": 999},
        "duration_ms": {"type": "number", "minimum": 0},
        "bytes": {"type": "integer", "minimum": 0},
        "referrer": {"type": "string", "maxLength": 2048},
        "kind": {"type": "string", "enum": ["signin", "signup", "reset", "signout"]},
        "ok": {"type": "boolean"},
        "username": {"type": "string", "maxLength": 320, "description": "stored only as a keyed hash"},
        "reason": {"type": "string", "maxLength": 200},
    },
}
SERVER_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["batch_id", "source", "events"],
    "properties": {
        "batch_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "sent_at": {"type": "integer", "description": "the sender's clock, ms since epoch"},
        "source": {"type": "string", "enum": ["middleware", "log"]},
        "events": {"type": "array", "items": SERVER_EVENT_SCHEMA},
    },
}

CHUNK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["seq", "first_ts", "last_ts", "count", "data"],
    "properties": {
        "seq": {"type": "integer", "minimum": 0},
        "first_ts": {"type": "integer"},
        "last_ts": {"type": "integer"},
        "count": {"type": "integer"},
        "data": {"type": "string", "format": "byte", "description": "base64 of gzip of a JSON array of rrweb events"},
    },
}

BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "anonymous_id"],
    "properties": {
        "key": {"type": "string", "description": "public project key (or ?key= / X-Hitmetrix-Key)"},
        "session_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "anonymous_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "user_id": {"type": "string", "maxLength": 200},
        "sent_at": {"type": "integer"},
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "maxItems": 1000},
        "recording": {"type": "array", "items": {"$ref": "#/components/schemas/Chunk"}, "maxItems": 50},
    },
}


def _query(name: str, description: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, **extra}}


_DAYS = f"between {MIN_DATE} and {MAX_DATE}"
_ZONE_DAYS = (
    "a day of the project's time zone (its time_zone setting, default UTC; e.g. in Pacific/Kiritimati "
    "2 December runs from 10:00 UTC on 1 December). A session is in the range if it started in it, "
    "and is listed whole (every event, also those after the range)"
)
_PAGE_SIZE: dict[str, Any] = {"minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}
_SECONDS: dict[str, Any] = {"minimum": 0, "exclusiveMaximum": MAX_DURATION_S}
SESSION_FILTER_PARAMETERS: list[dict[str, Any]] = [
    _query("cursor", "next_cursor of the previous page", maxLength=MAX_CURSOR_CHARS),
    _query("from", f"first day a session may start on, {_DAYS}; {_ZONE_DAYS}", format="date"),
    _query("to", f"last day a session may start on (inclusive), {_DAYS}; {_ZONE_DAYS}", format="date"),
    _query("url", "a visited URL contains this (case-insensitive)", maxLength=500),
    _query("country", "two-letter country code", pattern="^[A-Za-z]{2}$"),
    _query("device", "device type", enum=list(DEVICE_TYPES)),
    _query("browser", "browser family", maxLength=64),
    _query("os", "operating system family", maxLength=64),
    _query("min_duration", "shortest duration, seconds", "number", **_SECONDS),
    _query("max_duration", "longest duration, seconds", "number", **_SECONDS),
    _query("has_errors", "only sessions with a JavaScript error", "boolean"),
    _query("user", "identified user id", maxLength=256),
]


AUDIT_PARAMETERS: list[dict[str, Any]] = [
    _query("before", "next_before of the previous page: entries older than this id", "integer", minimum=1,
           maximum=MAX_ID),
    _query("action", "only this action", maxLength=64),
    _query("limit", "entries per page", "integer", minimum=1, maximum=200, default=50),
]

# Optional recording features, off by default: the tracker loads their code only when on.
RECORDING_FEATURES: dict[str, Any] = {
    "record_console": {"type": "boolean", "description": "record the visitor's console messages"},
    "record_network": {"type": "boolean", "description": "record fetch / XHR requests (never bodies or headers)"},
    "record_vitals": {"type": "boolean", "description": "send web vitals as a $web_vitals event per page"},
}
PROJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "public_key": {"type": "string"},
        "ip_anonymisation": {"type": "string", "enum": ["none", "truncate", "hash"]},
        "allowed_origins": {
            "type": "array",
            "items": {"type": "string"},
            "description": "sites that may send (empty: any); a replay may load images, fonts and styles from "
            "these hosts only (empty: none but the dashboard)",
        },
        "allowed_query_keys": {
            "type": "array",
            "items": {"type": "string"},
            "description": "query keys kept in URLs: their values are stored (utm_* always are); others masked",
        },
        "viewers_can_replay": {"type": "boolean", "description": "false: viewers may not watch replays"},
        "time_zone": {"type": "string", "description": "IANA time zone: the dashboard's times and filter days"},
        "server_key": {"type": "string", "description": "secret of server sources; shown to owners only"},
        "auth_rules": {"type": "string", "description": "JSON array: how ingest-log tells failed sign-ins"},
        **RECORDING_FEATURES,
        "created_at": {"type": "string", "format": "date-time"},
        "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
    },
}
_ROLE = {"type": "string", "enum": ["owner", "analyst", "viewer"]}
MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"user_id": {"type": "integer"}, "email": {"type": "string"}, "role": _ROLE},
}
NEW_MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "description": "an existing user's email"},
        "role": {**_ROLE, "default": "viewer"},
    },
}
MEMBER_CHANGE_SCHEMA: dict[str, Any] = {"type": "object", "required": ["role"], "properties": {"role": _ROLE}}

_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "not only spaces"}
PROJECT_CHANGES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "ip_anonymisation": {"type": "string", "enum": ["none", "truncate", "hash"]},
        "allowed_origins": {"type": "array", "items": {"type": "string", "description": "scheme://host[:port]"}},
        "allowed_query_keys": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-\\[\\]]{1,64}$"},
            "maxItems": 100,
        },
        "viewers_can_replay": {"type": "boolean"},
        "time_zone": {"type": "string", "maxLength": 64, "description": "an IANA name, e.g. Europe/Berlin"},
        "auth_rules": {
            "type": ["string", "array"],
            "description": "sign-in rules for access logs (docs/server-sources.md); empty for the built-in ones",
        },
        **RECORDING_FEATURES,
    },
}
NEW_PROJECT_SCHEMA: dict[str, Any] = {**PROJECT_CHANGES_SCHEMA, "required": ["name"]}

NEW_TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "scope"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"},
        "scope": {"type": "string", "enum": ["read", "write"]},
    },
}


AUDIT_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time", "description": "UTC"},
        "actor_user_id": {"type": ["integer", "null"], "description": "null: signed out, or the local admin"},
        "actor": {"type": "string", "description": "the actor's email ('' when none)"},
        "action": {"type": "string", "description": "e.g. sign_in, user_invited, member_added, token_used"},
        "project_id": {"type": ["integer", "null"]},
        "target": {"type": "string", "description": "whom or what the action was about"},
        "details": {"type": "object"},
        "client_ip": {"type": "string"},
    },
}
AUDIT_PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
        "next_before": {"type": ["integer", "null"], "description": "pass as `before` for the next page"},
    },
}

SESSION_ASSETS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["assets", "failed", "pending"],
    "properties": {
        "assets": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "original URL → the dashboard path of its captured copy (/projects/{id}/assets/{sha256})",
        },
        "failed": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["url", "reason"],
                "properties": {"url": {"type": "string"}, "reason": {"type": "string"}},
            },
            "description": "URLs on the project's allowed origins that could not be fetched; replays load them live",
        },
        "pending": {"type": "integer", "minimum": 0, "description": "URLs not fetched yet"},
    },
}


def _json_of(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": _json_of(schema)}


def _ok(schema: str) -> dict[str, Any]:
    return {"description": "ok", "content": _json_of(schema)}


def openapi_document() -> dict[str, Any]:
    capture_answers = {
        "200": {"description": "the batch is durably stored in the spool"},
        **{code: _ERR for code in ("400", "401", "403", "413", "415", "429", "503")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hitmetrix API", "version": __version__},
        "paths": {
            **DECISIONS_PATHS,  # the protected site reads verdicts with its server key
            **ANALYTICS_PATHS,  # behaviour analytics (hitmetrix.web.analytics_api)
            **FRUSTRATION_PATHS,  # frustration signals: pages with most, one session's (hitmetrix.web.frustration_api)
            **FUNNELS_PATHS,  # funnels (hitmetrix.web.funnels_api)
            **HEATMAPS_PATHS,  # heatmaps (hitmetrix.web.heatmaps_api)
            **RETENTION_PATHS,  # retention and paths (hitmetrix.web.retention_api)
            **SAVED_PATHS,  # saved views and cohorts (hitmetrix.web.saved_api)
            **SECURITY_PATHS,  # alerts, decisions, allow-list, entities, webhooks (hitmetrix.web.security_api)
            **TRENDS_PATHS,  # trends (hitmetrix.web.trends_api)
            **VITALS_PATHS,  # web vitals and JS errors (hitmetrix.web.vitals_api)
            "/api/v1/batch": {
                "post": {
                    "summary": "Send a batch of events and recording chunks (public project key)",
                    "parameters": [{"name": "key", "in": "query", "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Batch"}},
                            "text/plain": {"schema": {"$ref": "#/components/schemas/Batch"}},
                        },
                    },
                    "responses": capture_answers,
                }
            },
            "/api/v1/tracker-config": {
                "get": {
                    "summary": "Which optional tracker features (console, network, vitals) the project turned on",
                    "parameters": [{**_query("key", "the project's public key", maxLength=64), "required": True}],
                    "responses": {
                        "200": {"description": "{console, network, vitals}: booleans"},
                        "400": _ERR,
                        "404": _ERR,
                    },
                }
            },
            "/api/v1/server/batch": {
                "post": {
                    "summary": "Send requests and sign-in outcomes from the site's server (project server key)",
                    "description": "Used by the SDK middleware and `hitmetrix ingest-log`; see docs/capture-api.md.",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServerBatch"}}},
                    },
                    "responses": {
                        "200": {"description": "every event is durably stored in the spool"},
                        **{code: _ERR for code in ("400", "401", "405", "413", "415", "503")},
                    },
                }
            },
            "/api/v1/projects": {
                "get": {
                    "summary": "List the projects the caller is a member of",
                    "security": _BEARER,
                    "responses": {"200": {"description": "ok"}, "401": _ERR},
                },
                "post": {
                    "summary": "Create a project; the caller becomes its owner (write scope)",
                    "security": _BEARER,
                    "requestBody": _json_body("NewProject"),
                    "responses": {"201": _ok("Project"), "400": _BAD_BODY, **{c: _ERR for c in ("401", "403", "413")}},
                },
            },
            "/api/v1/projects/{project_id}": {
                "get": {
                    "summary": "One project's settings and members",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer")],
                    "responses": {"200": _ok("Project"), "401": _ERR, "404": _ERR},
                },
                "patch": {
                    "summary": "Change a project's settings (owners, write scope)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer")],
                    "requestBody": {"required": False, "content": _json_of("ProjectChanges")},  # none: no change
                    "responses": {
                        "200": _ok("Project"),
                        "400": _BAD_BODY,
                        **{code: _ERR for code in ("401", "403", "404", "413")},
                    },
                },
                "delete": {
                    "summary": "Delete a project and all of its data (owners, write scope); confirm with its name",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        {**_query("confirm", "the project's name, exactly", maxLength=200), "required": True},
                    ],
                    "responses": {
                        "204": {"description": "deleted, with its sessions, events and recordings"},
                        "400": {"description": "confirm is not the project's name", "content": _ERROR_CONTENT},
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                },
            },
            "/api/v1/projects/{project_id}/server-key": {
                "post": {
                    "summary": "Make a new server key for the project (owners, write scope); the old one stops working",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer")],
                    "responses": {
                        "200": {"description": "{server_key}: the new key"},
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                }
            },
            "/api/v1/projects/{project_id}/members": {
                "post": {
                    "summary": "Add an existing user to the project by email, with a role (owners, write scope)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer")],
                    "requestBody": _json_body("NewMember"),
                    "responses": {
                        "201": _ok("Member"),
                        "400": _BAD_BODY,
                        "409": _LAST_OWNER,
                        **{code: _ERR for code in ("401", "403", "404", "413")},
                    },
                }
            },
            "/api/v1/projects/{project_id}/members/{user_id}": {
                "patch": {
                    "summary": "Change a member's role (owners, write scope); the last owner stays owner",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("user_id", "integer")],
                    "requestBody": _json_body("MemberChange"),
                    "responses": {
                        "200": _ok("Member"),
                        "400": _BAD_BODY,
                        "409": _LAST_OWNER,
                        **{code: _ERR for code in ("401", "403", "404", "413")},
                    },
                },
                "delete": {
                    "summary": "Remove a member (owners, write scope); the last owner cannot leave",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("user_id", "integer")],
                    "responses": {
                        "204": {"description": "removed"},
                        "409": _LAST_OWNER,
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                },
            },
            "/api/v1/tokens": {
                "get": {
                    "summary": "The caller's personal API tokens (never their secrets)",
                    "security": _BEARER,
                    "responses": {"200": {"description": "ok"}, "400": _LOCAL_ADMIN, "401": _ERR},
                },
                "post": {
                    "summary": "Create a personal API token; the answer holds the token, shown once (write scope)",
                    "security": _BEARER,
                    "requestBody": _json_body("NewToken"),
                    "responses": {
                        "201": {"description": "created"},
                        "400": _BAD_BODY,
                        **{code: _ERR for code in ("401", "403", "413")},
                    },
                },
            },
            "/api/v1/tokens/{token_id}": {
                "delete": {
                    "summary": "Revoke one of the caller's tokens (write scope)",
                    "security": _BEARER,
                    "parameters": [_id("token_id", "integer")],
                    "responses": {
                        "204": {"description": "revoked"},
                        "400": _LOCAL_ADMIN,
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                }
            },
            "/api/v1/projects/{project_id}/audit": {
                "get": {
                    "summary": "The project's audit log, newest first (owners)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), *AUDIT_PARAMETERS],
                    "responses": {
                        "200": _ok("AuditPage"),
                        "400": _BAD_PARAMETER,
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                }
            },
            "/api/v1/admin/audit": {
                "get": {
                    "summary": "Every audit entry, newest first: sign-ins, users, tokens, every project (admins)",
                    "security": _BEARER,
                    "parameters": AUDIT_PARAMETERS,
                    "responses": {"200": _ok("AuditPage"), "400": _BAD_PARAMETER, "401": _ERR, "403": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions": {
                "get": {
                    "summary": "Sessions, newest first, filtered; keyset pagination with next_cursor",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        _query("limit", "sessions per page", "integer", **_PAGE_SIZE),
                        *SESSION_FILTER_PARAMETERS,
                        *FRUSTRATION_LIST_PARAMETERS,  # signals and the overview's filters
                    ],
                    "responses": {"200": {"description": "ok"}, "400": _BAD_PARAMETER, "401": _ERR, "404": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/live": {
                "get": {
                    "summary": "Batches as capture accepts them: a JSON snapshot, or a stream of server-sent events",
                    "description": "With `Accept: text/event-stream`: one `batch` event per accepted batch (its "
                    "summary as JSON, its id as the event id; send `Last-Event-ID` to resume), `gap` when some "
                    "were missed; the stream ends after 5 minutes (reconnect). Otherwise a snapshot: `has_data` "
                    "(the first-event check), `first_seen_at`, `last_id` and the newest `batches`. Best-effort, "
                    "in memory: what is stored is in the sessions API.",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        _query("backlog", "newest batches to start with", "integer", minimum=0, maximum=100),
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
                        },
                        "400": _BAD_PARAMETER,
                        "401": _ERR,
                        "404": _ERR,
                        "503": _ERR,
                    },
                }
            },
            "/api/v1/projects/{project_id}/sessions/{session_id}": {
                "get": {
                    "summary": "One session's events and recording chunk index",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("session_id")],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "404": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions/{session_id}/recording": {
                "get": {
                    "summary": "The session's rrweb events as one JSON array",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("session_id")],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "404": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions/{session_id}/recording/chunks": {
                "get": {
                    "summary": "The recording's chunk index after `since`, whether the session is live, and the "
                    "server clock (for following a session in progress)",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        _id("session_id"),
                        _query("since", "only chunks with a greater seq", "integer", minimum=0, maximum=2**32 - 1),
                    ],
                    "responses": {"200": {"description": "ok"}, "400": _BAD_PARAMETER, "401": _ERR, "404": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions/{session_id}/recording/{seq}": {
                "get": {
                    "summary": "One recording chunk's rrweb events (for progressive loading)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("session_id"), _id("seq", "integer")],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "404": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions/{session_id}/assets": {
                "get": {
                    "summary": "The session's captured assets: original URL → dashboard asset URL, and the URLs "
                    "that could not be fetched, with the reason",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("session_id")],
                    "responses": {
                        "200": {"description": "ok", "content": _json_of("SessionAssets")},
                        **{code: _ERR for code in ("401", "403", "404")},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a personal API token (hm_pat_…) or the data directory's admin token",
                },
                "serverKey": SERVER_KEY_SCHEME,
            },
            "schemas": {
                "Batch": BATCH_SCHEMA,
                "ServerBatch": SERVER_BATCH_SCHEMA,
                "Event": EVENT_SCHEMA,
                "Chunk": CHUNK_SCHEMA,
                "Project": PROJECT_SCHEMA,
                "ProjectChanges": PROJECT_CHANGES_SCHEMA,
                "NewProject": NEW_PROJECT_SCHEMA,
                "NewToken": NEW_TOKEN_SCHEMA,
                "AuditEntry": AUDIT_ENTRY_SCHEMA,
                "AuditPage": AUDIT_PAGE_SCHEMA,
                "Member": MEMBER_SCHEMA,
                "NewMember": NEW_MEMBER_SCHEMA,
                "MemberChange": MEMBER_CHANGE_SCHEMA,
                "SessionAssets": SESSION_ASSETS_SCHEMA,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "description": "what is wrong, in words a person can act on"},
                        "field": {"type": "string", "description": "the body field or query parameter at fault"},
                    },
                },
            },
        },
    }


def docs_page() -> str:
    doc = openapi_document()
    rows = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            auth = "bearer token" if op.get("security") else "public key"
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{auth}</td><td>{codes}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>Hitmetrix API</title>"
        "<style>body{font:15px system-ui;margin:2em;max-width:70em}td,th{padding:.3em .6em;"
        "border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>Hitmetrix API {doc['info']['version']}</h1>"
        "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a>. "
        "The capture wire format and error contract are described in docs/capture-api.md.</p>"
        "<table><tr><th>endpoint</th><th>what</th><th>auth</th><th>answers</th></tr>" + "".join(rows) + "</table>"
    )
