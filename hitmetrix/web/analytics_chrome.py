"""What every analytics page shares: the tabs, the date range, the filters and their chips, the comparison
toggle, and the links that keep all of it in the URL.

A page calls ``chrome_context`` for the template variables that ``templates/_analytics_bar.html`` reads, parses
its own query, then ``finish_range`` with the days the query settled on. ``Links`` builds the page's URL with
one parameter changed (a row's "filter by this"), and the session list's URL for the same view when the list can
filter by all of it, so every number is one click from the sessions behind it and every view is a link.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.routing import Route

from hitmetrix.analytics import overview
from hitmetrix.store import saved
from hitmetrix.web.analytics_api import today_in
from hitmetrix.web.auth import now_of, principal_of, project_of, runtime_of

RANGE_PARAMS = ("from", "to")
# `compare=previous` asks a view for the previous period of the same length beside the chosen one.
COMPARE_PARAM = "compare"
FILTER_PARAMS = (
    "country", "device", "browser", "os", "url", "referrer", "utm_source", "utm_medium", "utm_campaign",
    "identified", "prop_key", "prop_value", "cohort",
)
FILTER_LABELS = {
    "country": "Country", "device": "Device", "browser": "Browser", "os": "OS", "url": "URL contains",
    "referrer": "Referrer", "utm_source": "UTM source", "utm_medium": "UTM medium", "utm_campaign": "UTM campaign",
    "identified": "Identified", "prop_key": "Event property", "prop_value": "Property value", "cohort": "Cohort",
}
# The session list's own names for what it can filter by (hitmetrix.analytics.sessions.SessionFilters), with the
# longest value it takes: a view with any other filter has no matching session list, so it gets no link.
SESSION_LIST_FILTERS = {
    "from": 10, "to": 10, "url": 500, "country": 64, "device": 64, "browser": 64, "os": 64,
    # The overview's filters (the list parses them with OverviewQuery) and the frustration signals.
    "referrer": 500, "utm_source": 500, "utm_medium": 500, "utm_campaign": 500, "identified": 3, "prop_key": 500,
    "prop_value": 500, "cohort": 10, "frustration": 200, "frustration_page": 500,
}
# The analytics pages, in tab order: (path under /projects/{id}/, label). A tab shows when its page is served.
TABS = (
    ("overview", "Overview"),
    ("trends", "Trends"),
    ("funnels", "Funnels"),
    ("retention", "Retention"),
    ("paths", "Paths"),
    ("heatmaps", "Heatmaps"),
    ("vitals", "Web vitals"),
    ("errors", "Errors"),
    ("cohorts", "Cohorts"),
    ("saved", "Saved views"),
)


class Links:
    """URLs of one analytics page and of the session list for the current view, with parameters changed.

    ``view_params`` are the page's own parameters (a funnel's steps, a heatmap's URL), carried on by every link
    the same as the range and the filters."""

    def __init__(
        self, project_id: int, params: Mapping[str, str], page: str = "overview", view_params: Iterable[str] = ()
    ) -> None:
        self.base = f"/projects/{project_id}/{page}"
        self.sessions_base = f"/projects/{project_id}/sessions"
        self.view_params = tuple(view_params)
        carried = (*RANGE_PARAMS, COMPARE_PARAM, *FILTER_PARAMS, *self.view_params)
        # Only what the page understands is carried on; empty values are left out of links.
        self.params = {k: params[k] for k in carried if params.get(k, "").strip()}
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

    def filters(self) -> dict[str, str]:
        """The range and filters of this view, without the page's own parameters or the comparison."""
        return {k: v for k, v in self.params.items() if k in RANGE_PARAMS or k in FILTER_PARAMS}

    def sessions(self, **extra: str) -> str | None:
        """The session list with this view's range and filters; None when it cannot filter by all of them."""
        merged = {**self.filters(), **self.session_range, **extra}
        if any(name not in SESSION_LIST_FILTERS or len(v) > SESSION_LIST_FILTERS[name] for name, v in merged.items()):
            return None
        return self.sessions_base + ("?" + urlencode(merged) if merged else "")

    def hidden(self, *, keep: Iterable[str]) -> list[tuple[str, str]]:
        """(name, value) of the parameters a form must carry as hidden inputs: those in ``keep`` it has a value
        for (a form's own fields are left out of ``keep``, so they replace the old values)."""
        wanted = set(keep)
        return [(k, v) for k, v in self.params.items() if k in wanted]


def presets(today: dt.date) -> list[tuple[str, str, str]]:
    """(label, from, to) of the quick ranges, ending today in the project's zone."""
    day = dt.timedelta(days=1)
    return [
        ("Today", today.isoformat(), today.isoformat()),
        ("7 days", (today - 6 * day).isoformat(), today.isoformat()),
        ("30 days", (today - 29 * day).isoformat(), today.isoformat()),
        ("90 days", (today - 89 * day).isoformat(), today.isoformat()),
    ]


def _served_pages(request: Request) -> set[str]:
    """The analytics page names this app serves (a tab for a page that is not served would be a dead link)."""
    paths = {route.path for route in getattr(request.app, "routes", ()) if isinstance(route, Route)}
    return {name for name, _ in TABS if f"/projects/{{project_id:int}}/{name}" in paths}


def chrome_context(
    request: Request,
    page: str,
    *,
    view_params: Iterable[str] = (),
    compare: bool = True,
) -> dict[str, Any]:
    """The template variables of the shared bar (and the page's principal, project and zone).

    ``compare``: the page can show the previous period beside the chosen one (the toggle is shown)."""
    runtime, principal, project = runtime_of(request), principal_of(request), project_of(request)
    zone = project.time_zone or "UTC"
    today = today_in(zone, now_of(runtime))
    links = Links(project.id, request.query_params, page, view_params)
    served = _served_pages(request)
    # The cohort filter's menu and chip name the project's cohorts (one small metadata read).
    cohorts = [(str(c.id), c.name) for c in saved.cohorts(runtime.meta, project.id)]
    active = [
        (name, FILTER_LABELS[name], dict(cohorts).get(links.params[name], links.params[name]) if name == "cohort"
         else links.params[name], links.view(**{name: None}))
        for name in FILTER_PARAMS
        if name in links.params
    ]
    return {
        "principal": principal,
        "project": project,
        "time_zone": zone,
        "today": today,
        "page": page,
        "tabs": [(name, label, f"/projects/{project.id}/{name}") for name, label in TABS if name in served],
        "error": None,
        "links": links,
        "params": links.params,
        "filter_params": FILTER_PARAMS,
        "filter_labels": FILTER_LABELS,
        "device_types": overview.DEVICE_TYPES,
        "cohorts": cohorts,
        "presets": presets(today),
        "active": active,
        "clear_url": links.view(**dict.fromkeys(FILTER_PARAMS)),
        "compare_supported": compare,
        "comparing": compare and links.params.get(COMPARE_PARAM) == "previous",
        "compare_on_url": links.view(**{COMPARE_PARAM: "previous"}),
        "compare_off_url": links.view(**{COMPARE_PARAM: None}),
        # Hidden inputs of the bar's forms: the range form keeps filters and the page's own parameters, the filter
        # form keeps the range and the page's own parameters.
        "keep_for_range": links.hidden(keep=(COMPARE_PARAM, *FILTER_PARAMS, *links.view_params)),
        "keep_for_filters": links.hidden(keep=(*RANGE_PARAMS, COMPARE_PARAM, *links.view_params)),
        "range_from": None,
        "range_to": None,
        "sessions_url": None,
    }


def finish_range(context: dict[str, Any], date_from: dt.date, date_to: dt.date) -> None:
    """Record the days the page's query settled on (defaults included): shown in the bar and given to the
    session-list links, whose own default range differs."""
    links: Links = context["links"]
    context["range_from"], context["range_to"] = date_from.isoformat(), date_to.isoformat()
    links.session_range = {"from": date_from.isoformat(), "to": date_to.isoformat()}
    context["sessions_url"] = links.sessions()


def wants_compare(params: Mapping[str, str]) -> bool:
    """Whether the view was asked for the previous period too (``compare=previous``)."""
    return params.get(COMPARE_PARAM, "") == "previous"
