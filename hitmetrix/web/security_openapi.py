"""The security API's part of the OpenAPI document (``hitmetrix.web.openapi`` merges it in)."""

from __future__ import annotations

from typing import Any

from hitmetrix.detect.detectors.base import ENTITY_KINDS
from hitmetrix.store.security import ALERT_STATES, ALLOW_KINDS, DECISION_ACTIONS, DECISION_SCOPES, SEVERITIES
from hitmetrix.web.security_data import MAX_PAGE, MAX_SINCE_MS, WINDOWS

_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_BAD = {
    "description": "a parameter or body field is wrong: `field` names it, `error` says what is wrong",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_BASE = "/api/v1/projects/{project_id}/security"
_MAX_ID = 10**18 - 1


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0,
                                                                      "maximum": _MAX_ID}}


def _q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, params: list[dict[str, Any]], ok: str, codes: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "ok"} if ok != "204" else {"description": "done"}}
    for code in codes:
        responses[code] = _BAD if code == "400" else _ERR
    return {"summary": summary, "security": _BEARER, "parameters": [_path_id("project_id"), *params],
            "responses": responses, **extra}


_CURSOR = _q("cursor", "next_cursor of the previous page", {"type": "string", "maxLength": 20})
_LIMIT = _q("limit", "items per page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50})
_TTL = {"type": ["number", "null"], "minimum": 0, "maximum": 365 * 86400,
        "description": "seconds the decision lasts; 0 or null: until revoked; default detect_block_ttl_s"}
_READ = ("401", "404")
_WRITE = ("400", "401", "403", "404", "413")

OPENAPI_PATHS: dict[str, Any] = {
    f"{_BASE}/overview": {"get": _op(
        "Security overview: alerts over time by rule, open alerts by severity, top entities, networks, countries",
        [_q("window", "how far back", {"type": "string", "enum": list(WINDOWS), "default": "24h"})],
        "200", ("400", *_READ))},
    f"{_BASE}/alerts": {"get": _op(
        "Alerts, newest first, filtered; keyset pagination with next_cursor",
        [_q("state", "alert state", {"type": "string", "enum": list(ALERT_STATES)}),
         _q("rule", "detector name", {"type": "string", "maxLength": 64, "pattern": "^[a-z][a-z0-9_]*$"}),
         _q("severity", "severity", {"type": "string", "enum": list(SEVERITIES)}),
         _q("entity_kind", "kind of entity", {"type": "string", "enum": list(ENTITY_KINDS)}),
         _q("since", "last seen at or after, ms since the epoch", {"type": "integer", "minimum": 0,
                                                                   "maximum": MAX_SINCE_MS}),
         _CURSOR, _LIMIT],
        "200", ("400", *_READ))},
    f"{_BASE}/alerts/{{alert_id}}": {
        "get": _op("One alert: reasons, numbers, risk, evidence sessions (replay URL at the moment, request "
                   "timeline) and its decisions", [_path_id("alert_id")], "200", _READ),
        "patch": _op("Label an alert (analysts, write scope)", [_path_id("alert_id")], "200", _WRITE,
                     requestBody=_body({"state": {"type": "string", "enum": list(ALERT_STATES)}}, ["state"])),
    },
    f"{_BASE}/alerts/{{alert_id}}/decision": {"post": _op(
        "Decide on the alert's entity: block, challenge or allow for a time (analysts, write scope)",
        [_path_id("alert_id")], "201", _WRITE,
        requestBody=_body({"action": {"type": "string", "enum": list(DECISION_ACTIONS)}, "ttl_s": _TTL,
                           "reason": {"type": "string", "maxLength": 1000}}, ["action"]))},
    f"{_BASE}/decisions": {
        "get": _op("Decisions, newest first (active, expired and revoked)",
                   [_q("active", "only active ones", {"type": "boolean"}), _CURSOR, _LIMIT], "200", ("400", *_READ)),
        "post": _op("Make a decision by hand (analysts, write scope); an ip is named in the clear", [], "201", _WRITE,
                    requestBody=_body({"scope": {"type": "string", "enum": list(DECISION_SCOPES)},
                                       "value": {"type": "string", "minLength": 1, "maxLength": 500},
                                       "action": {"type": "string", "enum": list(DECISION_ACTIONS)},
                                       "reason": {"type": "string", "maxLength": 1000}, "ttl_s": _TTL},
                                      ["scope", "value", "action"])),
    },
    f"{_BASE}/decisions/{{decision_id}}": {"delete": _op(
        "Revoke a decision (analysts, write scope)", [_path_id("decision_id")], "204", ("401", "403", "404"))},
    f"{_BASE}/allowlist": {
        "get": _op("The allow-list: entries detection never alerts on", [], "200", _READ),
        "post": _op("Add an allow-list entry (analysts, write scope)", [], "201", _WRITE,
                    requestBody=_body({"kind": {"type": "string", "enum": list(ALLOW_KINDS)},
                                       "value": {"type": "string", "minLength": 1, "maxLength": 500},
                                       "note": {"type": "string", "maxLength": 1000}}, ["kind", "value"])),
    },
    f"{_BASE}/allowlist/{{entry_id}}": {"delete": _op(
        "Remove an allow-list entry (analysts, write scope)", [_path_id("entry_id")], "204", ("401", "403", "404"))},
    f"{_BASE}/entities/{{kind}}/{{value}}": {"get": _op(
        "An entity's risk and timeline: alerts, decisions, sessions and request / auth events",
        [{"name": "kind", "in": "path", "required": True, "schema": {"type": "string", "enum": list(ENTITY_KINDS)}},
         {"name": "value", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 500},
          "description": "as the alert names it: ip_key, CIDR, AS64500, user id, user key, device hash, session"}],
        "200", ("400", *_READ))},
    f"{_BASE}/webhooks": {
        "get": _op("The project's webhooks with their signing secrets (owners)", [], "200", ("401", "403", "404")),
        "post": _op("Add a webhook: every new alert is POSTed to it, signed (owners, write scope)", [], "201",
                    _WRITE, requestBody=_body({"url": {"type": "string", "maxLength": 2000,
                                                       "description": "http(s), not the dashboard itself"}},
                                              ["url"])),
    },
    f"{_BASE}/webhooks/{{webhook_id}}": {"delete": _op(
        "Remove a webhook (owners, write scope)", [_path_id("webhook_id")], "204", ("401", "403", "404"))},
    f"{_BASE}/webhooks/{{webhook_id}}/test": {"post": _op(
        "Send a signed test delivery now: {ok, status, error} (owners, write scope)", [_path_id("webhook_id")],
        "200", ("401", "403", "404"))},
}
