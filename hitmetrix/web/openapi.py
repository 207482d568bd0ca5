"""The OpenAPI document of the JSON API, and a human-readable page made from it."""

from __future__ import annotations

import html
from typing import Any

from hitmetrix import __version__

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _id(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


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
                    "summary": "List projects",
                    "security": _BEARER,
                    "responses": {"200": {"description": "ok"}, "401": _ERR},
                }
            },
            "/api/v1/projects/{project_id}/sessions": {
                "get": {
                    "summary": "Recent sessions, newest first",
                    "security": _BEARER,
                    "parameters": [
                        _id("project_id", "integer"),
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
                    ],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "404": _ERR},
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
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Batch": BATCH_SCHEMA,
                "Event": EVENT_SCHEMA,
                "Chunk": CHUNK_SCHEMA,
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
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
