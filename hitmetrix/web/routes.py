"""The route table: every URL of the app, in one list.

Each feature module holds its handlers at module level and exposes them as a
list ``ROUTES``; a feature's routes join the app with one line here. Every
handler carries its access rule (``hitmetrix.web.auth.guard`` or ``public``),
and the access matrix test walks this table and fails on a route without one.
Handlers find the runtime in ``request.app.state.runtime`` (``app.build_app``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from hitmetrix.capture import CaptureContext, capture_routes
from hitmetrix.capture.server import server_capture_routes
from hitmetrix.runtime import Runtime
from hitmetrix.web import (
    account_pages,
    analytics_api,
    analytics_pages,
    api,
    asset_routes,
    decisions_api,
    frustration_api,
    funnels_api,
    funnels_pages,
    heatmaps_api,
    heatmaps_pages,
    live,
    member_api,
    member_pages,
    metrics,
    node,
    pages,
    project_api,
    project_pages,
    recording_texts,
    retention_api,
    retention_pages,
    saved_api,
    saved_pages,
    security_api,
    security_pages,
    session_pages,
    team_api,
    team_pages,
    tracker_config,
    trends_api,
    trends_pages,
    vitals_api,
    vitals_pages,
)
from hitmetrix.web.auth import public


def routes(runtime: Runtime, capture: CaptureContext) -> list[BaseRoute]:
    """The app's routes, in the order they are matched."""
    table: list[BaseRoute] = [
        *node.ROUTES,
        *capture_api(capture),
        *server_capture_api(capture),  # POST /api/v1/server/batch: SDK middleware and ingest-log
        *api.ROUTES,
        *decisions_api.ROUTES,  # verdicts for the protected site, read with its server key
        *security_api.ROUTES, *security_pages.ROUTES,  # alerts, decisions, entities, webhooks: JSON and pages
        *tracker_config.ROUTES,  # the optional tracker features a project turned on
        *project_api.ROUTES,
        *analytics_api.ROUTES, *analytics_pages.ROUTES,  # behaviour analytics: the overview, JSON and page
        *frustration_api.ROUTES,  # frustration signals: the pages with most, one session's for its replay (JSON)
        *funnels_api.ROUTES,  # funnels: steps, breakdown, trend and each step's sessions (JSON)
        *heatmaps_api.ROUTES, *heatmaps_pages.ROUTES,  # heatmaps: clicks and scroll over a replayed page
        *funnels_pages.ROUTES,  # the funnel builder page and the sessions behind each conversion and drop-off
        *retention_api.ROUTES,  # retention cohorts, paths (Sankey) and an edge's sessions (JSON)
        *saved_api.ROUTES, *saved_pages.ROUTES,  # saved views and cohorts (a cohort filters every view)
        *retention_pages.ROUTES,  # the retention and paths pages
        *trends_api.ROUTES, *trends_pages.ROUTES,  # trends: event series over time, breakdown, a line's sessions
        *vitals_api.ROUTES, *vitals_pages.ROUTES,  # web vitals (p75 per page), JS error groups: JSON and pages
        *member_api.ROUTES,
        *pages.ROUTES,
        *project_pages.ROUTES,
        *member_pages.ROUTES,
        *session_pages.ROUTES,
        *asset_routes.ROUTES,  # captured stylesheets, images and fonts of replays, and each session's map
        *recording_texts.ROUTES,  # stylesheets kept once per project, which recordings refer to by hash
        *team_pages.ROUTES, *account_pages.ROUTES, *team_api.ROUTES,  # users, invitations, account, audit log
        *live.ROUTES, *metrics.ROUTES,  # live feed (SSE), first-event check, newer sessions; Prometheus
        *node.STATIC_ROUTES,
    ]
    if runtime.settings.demo:
        table += node.DEMO_ROUTES
    return table


def capture_api(capture: CaptureContext) -> list[BaseRoute]:
    """``POST /api/v1/batch``: anyone with a project's public key may send (and a browser preflight it)."""
    found = capture_routes(capture)
    for route in found:
        public("capture, with the project's public key")(route.endpoint)
    return list(found)


def server_capture_api(capture: CaptureContext) -> list[BaseRoute]:
    found = server_capture_routes(capture)
    for route in found:
        public("server sources, with the project's server key")(route.endpoint)
    return list(found)
