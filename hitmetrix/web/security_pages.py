"""Dashboard pages for security: overview, alert list, alert detail, entity timeline and webhooks.

Server-rendered, no script needed: filters are a GET form kept in the URL,
state buttons, decisions and webhook actions are small POST forms (CSRF token
in each) that redirect back. Everything the attacker controlled (user names,
paths, user agents, reasons) goes through Jinja's autoescape as text. The
replay page refuses to be framed (``frame-ancestors 'none'``), so an evidence
session opens it by link, at the attack's moment (``?t=`` seconds).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics.params import BadParameter, choice, whole_number
from hitmetrix.detect import webhooks
from hitmetrix.store import security
from hitmetrix.web import security_api
from hitmetrix.web import security_data as data
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.csrf import read_form
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page, render

BASE = "/projects/{project_id:int}/security"
CHART_W, CHART_H = 720, 160
RULE_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d")
TTL_CHOICES = ((900, "15 min"), (3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (0, "until revoked"))


def when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def chart(overview: dict[str, Any]) -> dict[str, Any]:
    """Stacked bars per bucket and rule, as coordinates for an inline SVG."""
    buckets: list[int] = overview["buckets"]
    rules = list(overview["by_rule"])
    totals = [sum(overview["by_rule"][r][i] for r in rules) for i in range(len(buckets))]
    peak = max(totals, default=0) or 1
    width = CHART_W / max(1, len(buckets))
    bars = []
    for i in range(len(buckets)):
        y = float(CHART_H)
        for n, rule in enumerate(rules):
            count = overview["by_rule"][rule][i]
            if not count:
                continue
            height = count / peak * (CHART_H - 10)
            y -= height
            bars.append({"x": round(i * width + 1, 1), "y": round(y, 1), "w": round(max(1.0, width - 2), 1),
                         "h": round(height, 1), "colour": RULE_COLOURS[n % len(RULE_COLOURS)],
                         "title": f"{rule}: {count} at {when(buckets[i])}"})
    legend = [{"rule": r, "colour": RULE_COLOURS[n % len(RULE_COLOURS)], "total": sum(overview["by_rule"][r])}
              for n, r in enumerate(rules)]
    return {"bars": bars, "legend": legend, "width": CHART_W, "height": CHART_H, "peak": peak,
            "first": when(buckets[0]) if buckets else "", "last": when(buckets[-1]) if buckets else ""}


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    principal, project = principal_of(request), project_of(request)
    role = principal.role_in(project.id) or "viewer"
    return render(request, template, status_code, principal=principal, project=project, when=when,
                  can_act=role in ("analyst", "owner"), is_owner=role == "owner",
                  can_replay=role != "viewer" or project.viewers_can_replay, **context)


@guard("viewer")
async def overview_page(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    try:
        window = choice(request.query_params, "window", tuple(data.WINDOWS)) or "24h"
    except BadParameter as exc:
        return error_page(request, 400, f"{exc}.", principal_of(request))
    now = security_api.now_ms_of(request)
    found = await run(data.overview, runtime.meta, runtime.store, project.id, now, window)
    latest, _ = await run(data.alert_page, runtime.meta, project.id, data.AlertFilters(state="open"), 10, None)
    return page(request, "security.html", overview=found, chart=chart(found), windows=list(data.WINDOWS),
                latest=[data.alert_summary(a, project.id) for a in latest])


@guard("viewer")
async def alerts_page(request: Request) -> Response:
    runtime, project, query = runtime_of(request), project_of(request), request.query_params
    context: dict[str, Any] = {"filters": data.AlertFilters(), "rows": [], "older_url": None, "error": None,
                               "states": security.ALERT_STATES, "severities": security.SEVERITIES,
                               "kinds": data.ENTITY_KINDS, "rule": query.get("rule", "")[:64]}
    status = 200
    try:
        filters = data.AlertFilters.from_query(query)
        cursor = data.page_cursor(query)
        limit = whole_number(query, "limit", data.DEFAULT_PAGE, 1, data.MAX_PAGE)
    except BadParameter as exc:
        context["error"] = f"{exc}."
        status = 400
    else:
        context["filters"] = filters
        rows, next_cursor = await run(data.alert_page, runtime.meta, project.id, filters, limit, cursor)
        context["rows"] = [data.alert_summary(a, project.id) for a in rows]
        if next_cursor:
            context["older_url"] = "?" + urlencode({**filters.to_query(), "cursor": next_cursor})
    return page(request, "security_alerts.html", status, **context)


@guard("viewer")
async def alert_page(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    found = await run(security.alert, runtime.meta, project.id, request.path_params["alert_id"])
    if found is None:
        return error_page(request, 404, "There is no such alert in this project.", principal_of(request))
    detail = await run(data.alert_detail, runtime.meta, runtime.store, project.id, found,
                       security_api.now_ms_of(request))
    return page(request, "security_alert.html", alert=detail, states=security.ALERT_STATES,
                actions=security.DECISION_ACTIONS, ttls=TTL_CHOICES,
                decidable=found.entity_kind in security_api.DECISION_SCOPE_OF,
                done=request.query_params.get("done", "")[:40], problem=request.query_params.get("error", "")[:200])


def back_to_alert(request: Request, **query: str) -> RedirectResponse:
    url = f"/projects/{project_of(request).id}/security/alerts/{request.path_params['alert_id']}"
    return RedirectResponse(url + ("?" + urlencode(query) if query else ""), 303)


@guard("analyst")
async def alert_state(request: Request) -> Response:
    form = await read_form(request)
    state = form.get("state", "")
    if state not in security.ALERT_STATES:
        return error_page(request, 400, f"State must be one of {', '.join(security.ALERT_STATES)}.",
                          principal_of(request))
    refused = await security_api.set_state(request, state)
    if refused is not None:
        return error_page(request, 404, "There is no such alert in this project.", principal_of(request))
    return back_to_alert(request, done="state")


@guard("analyst")
async def alert_decision(request: Request) -> Response:
    form = await read_form(request)
    action = form.get("action", "")
    if action not in security.DECISION_ACTIONS:
        return error_page(request, 400, f"Action must be one of {', '.join(security.DECISION_ACTIONS)}.",
                          principal_of(request))
    raw_ttl = form.get("ttl_s", "3600").strip()
    if not raw_ttl.isdigit() or int(raw_ttl) > security_api.MAX_TTL_S:
        return error_page(request, 400, "The duration must be a whole number of seconds.", principal_of(request))
    try:
        await security_api.decide_on_alert(request, action, float(raw_ttl) or None, form.get("reason", "")[:1000])
    except KeyError:
        return error_page(request, 404, "There is no such alert in this project.", principal_of(request))
    except security_api.BadField as exc:
        return back_to_alert(request, error=str(exc))
    return back_to_alert(request, done="decision")


@guard("viewer")
async def entity_page(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    kind, value = request.path_params["kind"], request.path_params["value"]
    try:
        data.check_entity(kind, value)
    except BadParameter as exc:
        return error_page(request, 400, f"{exc}.", principal_of(request))
    found = await run(data.entity, runtime.meta, runtime.store, project.id, kind, value,
                      security_api.now_ms_of(request))
    return page(request, "security_entity.html", entity=found)


@guard("owner")
async def webhooks_page(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    context: dict[str, Any] = {"error": None, "notice": None, "url": ""}
    status = 200
    if request.method == "POST":
        form = await read_form(request)
        op = form.get("op", "")
        try:
            if op == "add":
                context["url"] = form.get("url", "")[:2000]
                hook = await security_api.create_webhook(request, form.get("url", ""))
                context["notice"] = f"Webhook {hook.id} added: its signing secret is shown below."
                context["url"] = ""
            elif op in ("delete", "test"):
                raw = form.get("webhook_id", "")
                hook_id = int(raw) if raw.isdigit() and len(raw) < 19 else -1
                if op == "delete":
                    gone = await run(webhooks.remove_webhook, runtime.meta, project.id, hook_id)
                    context["notice"] = "Webhook removed." if gone else None
                    context["error"] = None if gone else "There is no such webhook."
                else:
                    found = await run(webhooks.webhook, runtime.meta, project.id, hook_id)
                    if found is None:
                        context["error"] = "There is no such webhook."
                    else:
                        result = await run(webhooks.send_test, found, runtime.clock())
                        context["notice" if result.ok else "error"] = (
                            f"Test delivered (HTTP {result.status})." if result.ok
                            else f"Test failed: {result.error or 'no answer'}."
                        )
            else:
                context["error"] = "Unknown action."
        except security_api.BadField as exc:
            context["error"] = str(exc)[:1].upper() + str(exc)[1:] + "."
        if context["error"]:
            status = 400
    hooks = await run(webhooks.webhooks, runtime.meta, project.id)
    recent = {h.id: await run(webhooks.deliveries, runtime.meta, h.id, 5) for h in hooks}
    return page(request, "security_webhooks.html", status, hooks=hooks, recent=recent, **context)


ROUTES: list[BaseRoute] = [
    Route(BASE, overview_page, methods=["GET"]),
    Route(BASE + "/alerts", alerts_page, methods=["GET"]),
    Route(BASE + "/alerts/{alert_id:int}", alert_page, methods=["GET"]),
    Route(BASE + "/alerts/{alert_id:int}/state", alert_state, methods=["POST"]),
    Route(BASE + "/alerts/{alert_id:int}/decision", alert_decision, methods=["POST"]),
    Route(BASE + "/entities/{kind}/{value:path}", entity_page, methods=["GET"]),
    Route(BASE + "/webhooks", webhooks_page, methods=["GET", "POST"]),
]
