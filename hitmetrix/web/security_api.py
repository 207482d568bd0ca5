"""JSON API of the security pages under /api/v1/projects/{project_id}/security.

Reading (overview, alerts, an alert with its evidence, decisions, the
allow-list, an entity's timeline) needs a viewer; labelling alerts, making or
revoking decisions and editing the allow-list need an analyst; webhooks (their
secrets and where alerts go) are the owners'. Every change is in the audit log.
Another project's alert, decision, entry or webhook is a 404, as if it did not
exist. A bad query parameter or body field is a 400 ``{"error", "field"}``.

A decision for an address names it in the clear (``value``); it is stored as
detection knows addresses, the keyed hash, with the plain address as its
``match`` so the site's middleware can enforce it from its cache.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics.params import BadParameter, choice, flag, whole_number
from hitmetrix.detect import webhooks
from hitmetrix.detect.keys import install_secret, ip_key
from hitmetrix.store import security
from hitmetrix.web import security_data as data
from hitmetrix.web.api import bad_parameter, error, json_body, json_response
from hitmetrix.web.auth import guard, principal_of, project_of, record, runtime_of
from hitmetrix.web.offload import run

BASE = "/api/v1/projects/{project_id:int}/security"
MAX_TTL_S = 365 * 86400
MAX_NOTE_CHARS = security.MAX_REASON_CHARS
# An alert's entity → the scope of a decision about it (a username or a whole AS is never decided on: that
# would lock out the victim, or everyone behind a provider).
DECISION_SCOPE_OF = {"ip": "ip", "net": "net", "user": "user", "session": "session", "device": "device"}


class BadField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def bad_field(exc: BadField) -> Response:
    return json_response({"error": str(exc), "field": exc.field}, 400)


def now_ms_of(request: Request) -> int:
    return int(runtime_of(request).clock() * 1000)


def secret_of(request: Request) -> bytes:
    state = request.app.state
    secret: bytes | None = getattr(state, "install_secret", None)
    if secret is None:
        secret = state.install_secret = install_secret(runtime_of(request).data_dir)
    return secret


def string_field(body: dict[str, Any], name: str, max_chars: int, *, required: bool = True, default: str = "") -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise BadField(name, f"{name} is required")
        return default
    if not isinstance(value, str):
        raise BadField(name, f"{name} must be a string")
    value = value.strip()
    if len(value) > max_chars or "\x00" in value:
        raise BadField(name, f"{name} has at most {max_chars} characters, and no NUL")
    if required and not value:
        raise BadField(name, f"{name} must not be empty")
    return value


def choice_field(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        raise BadField(name, f"{name} must be one of {', '.join(allowed)}")
    return value


def ttl_field(body: dict[str, Any], default_s: float) -> float | None:
    """``ttl_s``: seconds the decision lasts; 0 or null: until revoked."""
    if "ttl_s" not in body:
        return default_s
    value = body["ttl_s"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadField("ttl_s", "ttl_s must be a number of seconds (0 or null: until revoked)")
    if not 0 <= value <= MAX_TTL_S:
        raise BadField("ttl_s", f"ttl_s must be between 0 and {MAX_TTL_S} seconds")
    return float(value) or None


def default_ttl_s(request: Request) -> float:
    return float(getattr(runtime_of(request).settings, "detect_block_ttl_s", 3600.0))


# --- overview and alerts -------------------------------------------------------------------------------


@guard("viewer", api=True)
async def overview(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    try:
        window = choice(request.query_params, "window", tuple(data.WINDOWS)) or "24h"
    except BadParameter as exc:
        return bad_parameter(exc)
    answer = await run(data.overview, runtime.meta, runtime.store, project.id, now_ms_of(request), window)
    return json_response(answer)


@guard("viewer", api=True)
async def list_alerts(request: Request) -> Response:
    runtime, project, query = runtime_of(request), project_of(request), request.query_params
    try:
        filters = data.AlertFilters.from_query(query)
        limit = whole_number(query, "limit", data.DEFAULT_PAGE, 1, data.MAX_PAGE)
        cursor = data.page_cursor(query)
    except BadParameter as exc:
        return bad_parameter(exc)
    rows, next_cursor = await run(data.alert_page, runtime.meta, project.id, filters, limit, cursor)
    return json_response({"alerts": [data.alert_summary(a, project.id) for a in rows], "next_cursor": next_cursor})


@guard("viewer", api=True)
async def get_alert(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    found = await run(security.alert, runtime.meta, project.id, request.path_params["alert_id"])
    if found is None:
        return error(404, "no such alert")
    answer = await run(data.alert_detail, runtime.meta, runtime.store, project.id, found, now_ms_of(request))
    return json_response(answer)


async def set_state(request: Request, state: str) -> Response | None:
    """Label the path's alert (None when done; the 404 otherwise); shared with the pages."""
    runtime, project, principal = runtime_of(request), project_of(request), principal_of(request)
    alert_id = request.path_params["alert_id"]
    try:
        await run(security.set_alert_state, runtime.meta, project.id, alert_id, state, principal.user_id)
    except KeyError:
        return error(404, "no such alert")
    await record(request, "alert_state_changed", project.id, str(alert_id), {"state": state})
    return None


@guard("analyst", api=True)
async def change_alert(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        state = choice_field(body, "state", security.ALERT_STATES)
    except BadField as exc:
        return bad_field(exc)
    refused = await set_state(request, state)
    if refused is not None:
        return refused
    runtime, project = runtime_of(request), project_of(request)
    found = await run(security.alert, runtime.meta, project.id, request.path_params["alert_id"])
    assert found is not None
    return json_response(data.alert_summary(found, project.id))


async def decide_on_alert(request: Request, action: str, ttl_s: float | None, reason: str) -> security.Decision:
    """A decision about the path's alert's entity: KeyError (no alert) or BadField (its kind cannot be)."""
    runtime, project, principal = runtime_of(request), project_of(request), principal_of(request)
    found = await run(security.alert, runtime.meta, project.id, request.path_params["alert_id"])
    if found is None:
        raise KeyError("alert")
    scope = DECISION_SCOPE_OF.get(found.entity_kind)
    if scope is None:
        raise BadField("entity", f"a decision cannot be made about a {found.entity_kind}: decide on an ip or network")
    match = found.entity_value if scope == "net" else ""
    reason = reason or f"{found.rule}: alert {found.id}"
    decision = await run(
        security.add_decision, runtime.meta, project.id, scope, found.entity_value, action, reason, ttl_s, "manual",
        found.id, principal.user_id, match=match, at_ms=now_ms_of(request),
    )
    await record(request, "decision_made", project.id, f"{scope}:{found.entity_label or found.entity_value}"[:300],
                 {"action": action, "ttl_s": ttl_s, "alert_id": found.id, "decision_id": decision.id})
    return decision


@guard("analyst", api=True)
async def alert_decision(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        action = choice_field(body, "action", security.DECISION_ACTIONS)
        ttl_s = ttl_field(body, default_ttl_s(request))
        reason = string_field(body, "reason", MAX_NOTE_CHARS, required=False)
        decision = await decide_on_alert(request, action, ttl_s, reason)
    except BadField as exc:
        return bad_field(exc)
    except KeyError:
        return error(404, "no such alert")
    return json_response(data.decision_json(decision, now_ms_of(request)), 201)


# --- decisions ---------------------------------------------------------------------------------------


@guard("viewer", api=True)
async def list_decisions(request: Request) -> Response:
    runtime, project, query = runtime_of(request), project_of(request), request.query_params
    try:
        active_only = flag(query, "active")
        limit = whole_number(query, "limit", data.DEFAULT_PAGE, 1, data.MAX_PAGE)
        cursor = data.page_cursor(query)
    except BadParameter as exc:
        return bad_parameter(exc)
    now = now_ms_of(request)
    rows = await run(security.decisions, runtime.meta, project.id, limit=limit + 1, before_id=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    shown = [data.decision_json(d, now) for d in rows if d.active(now) or not active_only]
    return json_response({"decisions": shown, "next_cursor": str(rows[-1].id) if more and rows else None})


def decision_target(scope: str, value: str, secret: bytes) -> tuple[str, str]:
    """(stored value, match) for a decision a person names; BadField when the value cannot be one."""
    if scope == "ip":
        try:
            address = str(ipaddress.ip_address(value))
        except ValueError:
            raise BadField("value", "value must be an IPv4 or IPv6 address for scope ip") from None
        return ip_key(secret, address), address
    if scope == "net":
        try:
            network = str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise BadField("value", "value must be a network like 203.0.113.0/24 for scope net") from None
        return network, network
    return value, ""


@guard("analyst", api=True)
async def add_decision(request: Request) -> Response:
    runtime, project, principal = runtime_of(request), project_of(request), principal_of(request)
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        scope = choice_field(body, "scope", security.DECISION_SCOPES)
        value = string_field(body, "value", security.MAX_VALUE_CHARS)
        action = choice_field(body, "action", security.DECISION_ACTIONS)
        reason = string_field(body, "reason", MAX_NOTE_CHARS, required=False)
        ttl_s = ttl_field(body, default_ttl_s(request))
        stored, match = decision_target(scope, value, secret_of(request))
    except BadField as exc:
        return bad_field(exc)
    decision = await run(
        security.add_decision, runtime.meta, project.id, scope, stored, action, reason or "by hand", ttl_s, "manual",
        None, principal.user_id, match=match, at_ms=now_ms_of(request),
    )
    await record(request, "decision_made", project.id, f"{scope}:{value}"[:300],
                 {"action": action, "ttl_s": ttl_s, "decision_id": decision.id})
    return json_response(data.decision_json(decision, now_ms_of(request)), 201)


@guard("analyst", api=True)
async def revoke_decision(request: Request) -> Response:
    runtime, project, principal = runtime_of(request), project_of(request), principal_of(request)
    decision_id = request.path_params["decision_id"]
    try:
        await run(security.revoke_decision, runtime.meta, project.id, decision_id, principal.user_id)
    except KeyError:
        return error(404, "no such decision")
    await record(request, "decision_revoked", project.id, str(decision_id))
    return Response(status_code=204)


# --- allow-list ------------------------------------------------------------------------------------------


def allow_json(entry: security.AllowEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "kind": entry.kind, "value": entry.value, "note": entry.note, "created_ms": entry.created_ms
    }


@guard("viewer", api=True)
async def list_allow(request: Request) -> Response:
    entries = await run(security.allow_entries, runtime_of(request).meta, project_of(request).id)
    return json_response({"entries": [allow_json(e) for e in entries]})


@guard("analyst", api=True)
async def add_allow(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        kind = choice_field(body, "kind", security.ALLOW_KINDS)
        value = string_field(body, "value", security.MAX_VALUE_CHARS)
        note = string_field(body, "note", MAX_NOTE_CHARS, required=False)
        entry = await run(security.add_allow_entry, runtime.meta, project.id, kind, value, note)
    except BadField as exc:
        return bad_field(exc)
    except ValueError as exc:
        return bad_field(BadField("value", str(exc)))
    await record(request, "allow_entry_added", project.id, f"{kind}:{entry.value}"[:300])
    return json_response(allow_json(entry), 201)


@guard("analyst", api=True)
async def remove_allow(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    entry_id = request.path_params["entry_id"]
    if not await run(security.remove_allow_entry, runtime.meta, project.id, entry_id):
        return error(404, "no such allow-list entry")
    await record(request, "allow_entry_removed", project.id, str(entry_id))
    return Response(status_code=204)


# --- entities -----------------------------------------------------------------------------------------------


@guard("viewer", api=True)
async def get_entity(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    kind, value = request.path_params["kind"], request.path_params["value"]
    try:
        data.check_entity(kind, value)
    except BadParameter as exc:
        return bad_parameter(exc)
    answer = await run(data.entity, runtime.meta, runtime.store, project.id, kind, value, now_ms_of(request))
    return json_response(answer)


# --- webhooks -----------------------------------------------------------------------------------------------


def webhook_json(hook: security.Webhook) -> dict[str, Any]:
    return {
        "id": hook.id, "url": hook.url, "secret": hook.secret, "enabled": hook.enabled, "created_ms": hook.created_ms
    }


def is_dashboard(url: str, request: Request) -> bool:
    """Does the URL point at this dashboard (its own address, or this server's port on a local name)?"""
    host, port = webhooks.host_port(url)
    if (host, port) == webhooks.host_port(str(request.base_url)):
        return True
    settings = runtime_of(request).settings
    local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", str(settings.host).lower()}
    return host in local and port == int(settings.port)


async def create_webhook(request: Request, url: str) -> security.Webhook:
    """BadField for a URL that cannot be a webhook."""
    runtime, project = runtime_of(request), project_of(request)
    try:
        url = webhooks.check_url(url)
    except ValueError as exc:
        raise BadField("url", str(exc)) from None
    if is_dashboard(url, request):
        raise BadField("url", "url points at this dashboard: give the address of the receiving service")
    try:
        hook = await run(webhooks.add_webhook, runtime.meta, project.id, url, now_ms_of(request))
    except ValueError as exc:
        raise BadField("url", str(exc)) from None
    await record(request, "webhook_added", project.id, url[:300])
    return hook


@guard("owner", api=True)
async def list_webhooks(request: Request) -> Response:
    hooks = await run(webhooks.webhooks, runtime_of(request).meta, project_of(request).id)
    return json_response({"webhooks": [webhook_json(h) for h in hooks]})


@guard("owner", api=True)
async def add_webhook(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        hook = await create_webhook(request, string_field(body, "url", webhooks.MAX_URL_CHARS))
    except BadField as exc:
        return bad_field(exc)
    return json_response(webhook_json(hook), 201)


@guard("owner", api=True)
async def remove_webhook(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    webhook_id = request.path_params["webhook_id"]
    if not await run(webhooks.remove_webhook, runtime.meta, project.id, webhook_id):
        return error(404, "no such webhook")
    await record(request, "webhook_removed", project.id, str(webhook_id))
    return Response(status_code=204)


@guard("owner", api=True)
async def test_webhook(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    hook = await run(webhooks.webhook, runtime.meta, project.id, request.path_params["webhook_id"])
    if hook is None:
        return error(404, "no such webhook")
    result = await run(webhooks.send_test, hook, runtime.clock())
    return json_response({"ok": result.ok, "status": result.status, "error": result.error})


ROUTES: list[BaseRoute] = [
    Route(BASE + "/overview", overview, methods=["GET"]),
    Route(BASE + "/alerts", list_alerts, methods=["GET"]),
    Route(BASE + "/alerts/{alert_id:int}", get_alert, methods=["GET"]),
    Route(BASE + "/alerts/{alert_id:int}", change_alert, methods=["PATCH"]),
    Route(BASE + "/alerts/{alert_id:int}/decision", alert_decision, methods=["POST"]),
    Route(BASE + "/decisions", list_decisions, methods=["GET"]),
    Route(BASE + "/decisions", add_decision, methods=["POST"]),
    Route(BASE + "/decisions/{decision_id:int}", revoke_decision, methods=["DELETE"]),
    Route(BASE + "/allowlist", list_allow, methods=["GET"]),
    Route(BASE + "/allowlist", add_allow, methods=["POST"]),
    Route(BASE + "/allowlist/{entry_id:int}", remove_allow, methods=["DELETE"]),
    Route(BASE + "/entities/{kind}/{value:path}", get_entity, methods=["GET"]),
    Route(BASE + "/webhooks", list_webhooks, methods=["GET"]),
    Route(BASE + "/webhooks", add_webhook, methods=["POST"]),
    Route(BASE + "/webhooks/{webhook_id:int}", remove_webhook, methods=["DELETE"]),
    Route(BASE + "/webhooks/{webhook_id:int}/test", test_webhook, methods=["POST"]),
]
