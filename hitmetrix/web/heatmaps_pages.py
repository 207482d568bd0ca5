"""The heatmap page: a page's clicks, rage clicks, dead clicks or scroll depth drawn over the page as a recording
shows it, with the shared analytics bar, width bucket tabs and the list of the most clicked elements.

The page renders from the same query as ``GET /api/v1/projects/{id}/heatmaps`` (``hitmetrix.analytics.heatmaps``)
and embeds the answer as a data island; ``static/dashboard/heatmaps.js`` replays the backdrop pageview's recording
in the replay page's sandboxed, sanitised iframe and draws the overlay. So the page is served with the replay
page's headers: the same CSP (resources only from the dashboard and the project's allowed origins) and no
referrer. A viewer whose project withholds replays sees the overlay on a blank page of the recorded size.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import heatmaps, overview
from hitmetrix.analytics.params import BadParameter
from hitmetrix.observe.metrics import timed
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.web.analytics_chrome import FILTER_PARAMS, RANGE_PARAMS, chrome_context, finish_range
from hitmetrix.web.auth import guard, runtime_of
from hitmetrix.web.cohort_filter import resolve_cohort
from hitmetrix.web.offload import run
from hitmetrix.web.render import templates
from hitmetrix.web.security import replay_origins, replay_page_headers

VIEW_PARAMS = ("page", "width", "kind", "at")
KIND_LABELS = (("clicks", "Clicks"), ("rage", "Rage clicks"), ("dead", "Dead clicks"), ("scroll", "Scroll depth"))
WIDTH_LABELS = (
    ("desktop", "Desktop", "≥ 1024 px"), ("tablet", "Tablet", "768–1023 px"), ("mobile", "Mobile", "< 768 px"),
)
# Widths the backdrop may be replayed at besides the recorded one (px): the buckets' usual screens.
REPLAY_WIDTHS = (1440, 1280, 1024, 820, 768, 414, 375)
SUGGESTED_PAGES = 10


def top_pages(store: EventStore, project_id: int, query: overview.OverviewQuery, zone: str) -> list[str]:
    """The most viewed paths of the range: one-click starting points when no page is chosen yet."""
    q = overview.top_pages_query(project_id, query, zone)
    q.limit = SUGGESTED_PAGES
    return [row["value"] for row in store.query(q.sql() + "\nSETTINGS prefer_column_name_to_alias = 1", q.params)]


@guard("viewer")
async def heatmap_page(request: Request) -> Response:
    context = chrome_context(request, "heatmaps", view_params=VIEW_PARAMS, compare=False)
    runtime, project, principal = runtime_of(request), context["project"], context["principal"]
    zone = context["time_zone"]
    params = request.query_params
    media_origins = replay_origins(project.origins())
    context.update(
        api_url=f"/api/v1/projects/{project.id}/heatmaps",
        kinds=KIND_LABELS,
        widths=WIDTH_LABELS,
        replay_widths=REPLAY_WIDTHS,
        page_pattern=(params.get("page") or "").strip(),
        kind=(params.get("kind") or "clicks").strip().lower(),
        width=(params.get("width") or "desktop").strip().lower(),
        at=(params.get("at") or "").strip(),
        suggestions=[],
        form_keep=context["links"].hidden(keep=(*RANGE_PARAMS, *FILTER_PARAMS, "width")),
        answer=None,
    )
    status = 200
    try:
        base = await resolve_cohort(request, overview.OverviewQuery.from_query(params, context["today"]))
        finish_range(context, base.date_from, base.date_to)
        if not context["page_pattern"]:
            context["suggestions"] = await run(timed("heatmap_pages", top_pages), runtime.store, project.id, base, zone)
        else:
            query = await resolve_cohort(request, heatmaps.HeatmapQuery.from_query(params, context["today"]))
            answer = await run(timed("heatmap", heatmaps.heatmap), runtime.store, project.id, query, zone)
            context["answer"] = answer
            role = principal.role_in(project.id)
            context["island"] = {
                "heatmap": answer,
                "project": project.id,
                "can_replay": role != "viewer" or project.viewers_can_replay,
                "media_origins": media_origins,
                "at": context["at"],
            }
            context["page_sessions_url"] = context["links"].sessions(url=query.page) if "*" not in query.page else None
    except BadParameter as exc:
        context["error"] = str(exc)
        context["error_field"] = exc.parameter
        status = 400
    return templates.TemplateResponse(request, "heatmaps.html", context, status_code=status,
                                      headers=replay_page_headers(media_origins))


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/heatmaps", heatmap_page, methods=["GET"]),
]
