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
            "enum": ["pageview", "click", "submit", "scroll", "error", "pageleave", "custom", "identify"],
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
_PAGE_SIZE: dict[str, Any] = {"minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}
_SECONDS: dict[str, Any] = {"minimum": 0, "exclusiveMaximum": MAX_DURATION_S}
SESSION_FILTER_PARAMETERS: list[dict[str, Any]] = [
    _query("cursor", "next_cursor of the previous page", maxLength=MAX_CURSOR_CHARS),
    _query("from", f"first day (UTC) a session may start on, {_DAYS}", format="date"),
    _query("to", f"last day (UTC) a session may start on, {_DAYS}", format="date"),
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


PROJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "public_key": {"type": "string"},
        "ip_anonymisation": {"type": "string", "enum": ["none", "truncate", "hash"]},
        "allowed_origins": {"type": "array", "items": {"type": "string"}, "description": "empty: any origin"},
        "created_at": {"type": "string", "format": "date-time"},
        "members": {"type": "array", "items": {"type": "object"}},
    },
}

_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "not only spaces"}
PROJECT_CHANGES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "ip_anonymisation": {"type": "string", "enum": ["none", "truncate", "hash"]},
        "allowed_origins": {"type": "array", "items": {"type": "string", "description": "scheme://host[:port]"}},
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
                    "summary": "Change a project's name, allowed origins or IP anonymisation (owners, write scope)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer")],
                    "requestBody": {"required": False, "content": _json_of("ProjectChanges")},  # none: no change
                    "responses": {
                        "200": _ok("Project"),
                        "400": _BAD_BODY,
                        **{code: _ERR for code in ("401", "403", "404", "413")},
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
            "/api/v1/projects/{project_id}/sessions": {
                "get": {
                    "summary": "Sessions, newest first, filtered; keyset pagination with next_cursor",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        _query("limit", "sessions per page", "integer", **_PAGE_SIZE),
                        *SESSION_FILTER_PARAMETERS,
                    ],
                    "responses": {"200": {"description": "ok"}, "400": _BAD_PARAMETER, "401": _ERR, "404": _ERR},
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
            "/api/v1/projects/{project_id}/sessions/{session_id}/recording/{seq}": {
                "get": {
                    "summary": "One recording chunk's rrweb events (for progressive loading)",
                    "security": _BEARER,
                    "parameters": [_id("project_id", "integer"), _id("session_id"), _id("seq", "integer")],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "404": _ERR},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a personal API token (hm_pat_…) or the data directory's admin token",
                }
            },
            "schemas": {
                "Batch": BATCH_SCHEMA,
                "Event": EVENT_SCHEMA,
                "Chunk": CHUNK_SCHEMA,
                "Project": PROJECT_SCHEMA,
                "ProjectChanges": PROJECT_CHANGES_SCHEMA,
                "NewProject": NEW_PROJECT_SCHEMA,
                "NewToken": NEW_TOKEN_SCHEMA,
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
