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

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import overview
from hitmetrix.analytics.frustration_query import pages_with_most_frustration
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_chrome import Links, chrome_context, finish_range
from hitmetrix.web.auth import guard, now_of, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates

# A visitor is "here now" with an event in the last five minutes (Plausible's "current visitors").
VISITORS_NOW_WINDOW_MS = 5 * 60_000
# Which filter a row of each list adds. Pages filter by "path contains", the only page filter the query has.
ROW_FILTERS = {
    "top_pages": "url", "entry_pages": "url", "exit_pages": "url", "referrers": "referrer",
    "utm_sources": "utm_source", "utm_mediums": "utm_medium", "utm_campaigns": "utm_campaign",
    "countries": "country", "browsers": "browser", "oses": "os", "devices": "device",
}
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
    context = chrome_context(request, "overview", compare=False)
    runtime, project, links = runtime_of(request), context["project"], context["links"]
    context["api_url"] = f"/api/v1/projects/{project.id}/overview"
    status = 200
    try:
        query = overview.OverviewQuery.from_query(request.query_params, context["today"])
        query = await resolve_cohort(request, query)
        answer = await run(timed("overview", overview.overview), runtime.store, project.id, query, context["time_zone"])
    except BadParameter as exc:
        context["error"] = str(exc)
        context["error_field"] = exc.parameter
        status = 400
    else:
        finish_range(context, query.date_from, query.date_to)
        now_ms = int(now_of(runtime).timestamp() * 1000)
        context["visitors_now"] = await run(timed("visitors_now", visitors_now), runtime.store, project.id, now_ms)
        context["frustration"] = await run(
            timed("frustration", pages_with_most_frustration), runtime.store, project.id, query, context["time_zone"]
        )
        context["answer"] = answer
        context["kpis"] = kpis(answer)
        context["lists"] = rows_of(answer, links)
        countries = next(item for item in context["lists"] if item["key"] == "countries")
        context["island"] = {
            "overview": answer,
            "country_urls": {row["value"]: row["view_url"] for row in countries["rows"]},
        }
    return templates.TemplateResponse(request, "overview.html", context, status_code=status)


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/overview", overview_page, methods=["GET"]),
]
