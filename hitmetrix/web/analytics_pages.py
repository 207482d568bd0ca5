"""Dashboard pages for behaviour analytics: the overview (Plausible's one page).

The page renders from the same query as ``GET /api/v1/projects/{id}/overview``
(``hitmetrix.analytics.overview``): the tables and KPI tiles are written here,
and the answer is embedded as a JSON data island that ``static/dashboard/overview.js``
(built from ``dashboard/``) draws the time series and the world map from, since
the CSP forbids inline scripts. The range and the filters live in the URL, so any
view is a link; every row links to the view with its value added as a filter, and
to the matching sessions when the session list can filter by all of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import overview
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_api import today_in
from hitmetrix.web.auth import guard, now_of, principal_of, project_of, runtime_of
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates

# A visitor is "here now" with an event in the last five minutes (Plausible's "current visitors").
VISITORS_NOW_WINDOW_MS = 5 * 60_000
RANGE_PARAMS = ("from", "to")
FILTER_PARAMS = (
    "country", "device", "browser", "os", "url", "referrer", "utm_source", "utm_medium", "utm_campaign",
    "identified", "prop_key", "prop_value",
)
FILTER_LABELS = {
    "country": "Country", "device": "Device", "browser": "Browser", "os": "OS", "url": "URL contains",
    "referrer": "Referrer", "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "identified": "Identified", "prop_key": "Event property", "prop_value": "Property value",
}
# Which filter a row of each list adds. Pages filter by "path contains", the only page filter the query has.
ROW_FILTERS = {
    "top_pages": "url", "entry_pages": "url", "exit_pages": "url", "referrers": "referrer",
    "utm_sources": "utm_source", "utm_mediums": "utm_medium", "utm_campaigns": "utm_campaign",
    "countries": "country", "browsers": "browser", "oses": "os", "devices": "device",
}
# The session list's own names for what it can filter by (hitmetrix.analytics.sessions.SessionFilters), with the
# longest value it takes: a view with any other filter has no matching session list, so it gets no link.
SESSION_LIST_FILTERS = {"from": 10, "to": 10, "url": 500, "country": 64, "device": 64, "browser": 64, "os": 64}
LISTS = (
    ("top_pages", "Top pages", "Page"),
    ("entry_pages", "Entry pages", "Page"),
    ("exit_pages", "Exit pages", "Page"),
    ("referrers", "Referrers", "Source"),
    ("utm_sources", "UTM sources", "Source"),
    ("utm_mediums", "UTM mediums", "Medium"),
    ("utm_campaigns", "UTM campaigns", "Campaign"),
    ("countries", "Countries", "Country"),
    ("browsers", "Browsers", "Browser"),
    ("oses", "Operating systems", "OS"),
    ("devices", "Devices", "Device"),
)


def visitors_now(store: EventStore, project_id: int, now_ms: int) -> int:
    """Distinct visitors with an event in the last ``VISITORS_NOW_WINDOW_MS``, as the loader has stored them."""
    q = ScopedSelect(project_id).from_("sessions", final=True)
    q.select("uniqExact(anonymous_id) AS visitors")
    q.where("is_deleted = 0")
    since = q.bind(now_ms - VISITORS_NOW_WINDOW_MS, "Int64")
    q.where(f"ended_at >= fromUnixTimestamp64Milli({since}, 'UTC')")
    # A visitor whose clock runs ahead must not stay "here" for hours.
    q.where(f"started_at <= fromUnixTimestamp64Milli({q.bind(now_ms, 'Int64')}, 'UTC')")
    rows = store.query(q.sql(), q.params)
    return int(rows[0]["visitors"]) if rows else 0


class Links:
    """URLs of the overview and of the session list for the current view, with a filter added or removed."""

    def __init__(self, project_id: int, params: Mapping[str, str]) -> None:
        self.base = f"/projects/{project_id}/overview"
        self.sessions_base = f"/projects/{project_id}/sessions"
        # Only what the page understands is carried on; empty values are left out of links.
        self.params = {k: params[k] for k in (*RANGE_PARAMS, *FILTER_PARAMS) if params.get(k, "").strip()}
        # The range the query settled on (defaults included): the session list has other defaults.
        self.session_range: dict[str, str] = {}

    def view(self, **changes: str | None) -> str:
        merged = dict(self.params)
        for name, value in changes.items():
            if value is None or value == "":
                merged.pop(name, None)
            else:
                merged[name] = value
        if merged.get("prop_value") and not merged.get("prop_key"):
            merged.pop("prop_value")
        return self.base + ("?" + urlencode(merged) if merged else "")

    def sessions(self, **extra: str) -> str | None:
        """The session list with this view's range and filters; None when it cannot filter by all of them."""
        merged = {**self.params, **self.session_range, **extra}
        if any(name not in SESSION_LIST_FILTERS or len(v) > SESSION_LIST_FILTERS[name] for name, v in merged.items()):
            return None
        return self.sessions_base + ("?" + urlencode(merged) if merged else "")


def _change(now: float, before: float, *, points: bool = False) -> dict[str, Any] | None:
    """The change from the previous period: percent, or percentage points for a rate; None with no baseline."""
    if not before and not points:
        return None
    if points:
        return {"value": round(now - before, 1), "unit": "pp"}
    return {"value": round(100 * (now - before) / before), "unit": "%"}


def duration_text(ms: int) -> str:
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def kpis(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tiles: label, shown value, change, and whether going up is good (bounce rate: it is not)."""
    now, before = answer["totals"], answer["previous"]["totals"]
    tiles = [
        ("visitors", "Unique visitors", f"{now['visitors']:,}", False, True),
        ("sessions", "Sessions", f"{now['sessions']:,}", False, True),
        ("pageviews", "Pageviews", f"{now['pageviews']:,}", False, True),
        ("views_per_session", "Views per session", f"{now['views_per_session']:.2f}", False, True),
        ("bounce_rate", "Bounce rate", f"{now['bounce_rate']:.1f}%", True, False),
        ("avg_duration_ms", "Session duration", duration_text(now["avg_duration_ms"]), False, True),
    ]
    return [
        {"key": key, "label": label, "value": shown, "up_is_good": up_is_good,
         # Without sessions before, a rate or an average had nothing to change from (0 % bounce is not a fact).
         "change": _change(now[key], before[key], points=points) if before["sessions"] else None}
        for key, label, shown, points, up_is_good in tiles
    ]


def presets(today: dt.date) -> list[tuple[str, str, str]]:
    """(label, from, to) of the quick ranges, ending today in the project's zone."""
    day = dt.timedelta(days=1)
    return [
        ("Today", today.isoformat(), today.isoformat()),
        ("7 days", (today - 6 * day).isoformat(), today.isoformat()),
        ("30 days", (today - 29 * day).isoformat(), today.isoformat()),
    ]


def rows_of(answer: Mapping[str, Any], links: Links) -> list[dict[str, Any]]:
    """Every list of the overview with, per row, its filtered view and its sessions (or None)."""
    out = []
    for key, title, column in LISTS:
        name = ROW_FILTERS[key]
        rows = []
        for row in answer.get(key, []):
            value = str(row["value"])
            # Direct traffic has no referrer to filter by: "" means "no filter" to the query.
            filterable = value != ""
            rows.append({
                "value": value,
                "label": value or "Direct / none",
                "visitors": row["visitors"],
                "count": row.get("pageviews", row.get("sessions", 0)),
                "view_url": links.view(**{name: value}) if filterable else None,
                "sessions_url": links.sessions(**{name: value}) if filterable else None,
            })
        count_label = "Pageviews" if key == "top_pages" else "Sessions"
        out.append({"key": key, "title": title, "column": column, "count_label": count_label, "rows": rows})
    return out


@guard("viewer")
async def overview_page(request: Request) -> Response:
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    now = now_of(runtime)
    today = today_in(zone, now)
    links = Links(project.id, request.query_params)
    context: dict[str, Any] = {
        "principal": principal,
        "project": project,
        "time_zone": zone,
        "error": None,
        "links": links,
        "params": links.params,
        "filter_params": FILTER_PARAMS,
        "filter_labels": FILTER_LABELS,
        "device_types": overview.DEVICE_TYPES,
        "presets": presets(today),
        "api_url": f"/api/v1/projects/{project.id}/overview",
    }
    status = 200
    try:
        query = overview.OverviewQuery.from_query(request.query_params, today)
        answer = await run(timed("overview", overview.overview), runtime.store, project.id, query, zone)
    except BadParameter as exc:
        context["error"] = str(exc)
        context["error_field"] = exc.parameter
        status = 400
    else:
        links.session_range = {"from": query.date_from.isoformat(), "to": query.date_to.isoformat()}
        now_ms = int(now.timestamp() * 1000)
        context["visitors_now"] = await run(timed("visitors_now", visitors_now), runtime.store, project.id, now_ms)
        context["answer"] = answer
        context["kpis"] = kpis(answer)
        context["lists"] = rows_of(answer, links)
        context["active"] = [(name, FILTER_LABELS[name], links.params[name], links.view(**{name: None}))
                             for name in FILTER_PARAMS if name in links.params]
        context["clear_url"] = links.view(**dict.fromkeys(FILTER_PARAMS))
        context["range_from"], context["range_to"] = query.date_from.isoformat(), query.date_to.isoformat()
        context["sessions_url"] = links.sessions()
        countries = next(item for item in context["lists"] if item["key"] == "countries")
        context["island"] = {
            "overview": answer,
            "country_urls": {row["value"]: row["view_url"] for row in countries["rows"]},
        }
    return templates.TemplateResponse(request, "overview.html", context, status_code=status)


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/overview", overview_page, methods=["GET"]),
]
