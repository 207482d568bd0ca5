"""The overview (Plausible's one page): visitors, sessions, pageviews, bounce rate, duration, a time series and
the top pages, entries, exits, sources, places and devices of a date range, with the previous period beside it.

What the numbers mean — decided here, once:

- A **session** is a row of ``sessions`` (one per session, the loader's load-time aggregate) with at least one
  pageview: server requests alone are not a visit. It belongs to the range, and to a bucket of the series, by
  its START (its first event), like the session list (``hitmetrix.analytics.sessions``); everything else about
  it (pageviews, duration, exit page) counts whole, also what happened after the range ended.
- **Visitors** are distinct ``anonymous_id`` (the tracker's per-browser id) of those sessions (``VISITOR``).
- A **bounce** is a session with exactly one pageview. **Duration** is its last event minus its first.
- **Entry** / **exit** page: the path of its first / last pageview; **referrer**: the domain (without www.) of
  the entry pageview's referrer, "" (direct) when none or the site itself; **UTM** tags: from the entry
  pageview's URL. All parsed once per session at load time (``hitmetrix.store.schema.SESSION_ANALYTICS_COLUMNS``).
- **Filters** pick sessions; the breakdowns then count all of those sessions' values (a ``url`` filter keeps
  the sessions that viewed a matching page, and their other pages too).
- Days and buckets are those of the project's time zone; the bucket is an hour (ranges of 1–2 days), a day (up
  to 92 days) or a week starting on Monday. Buckets are labelled with local time, so the repeated hour at the
  end of daylight saving time is one bucket.
- The previous period is the same number of days just before ``from``.

A view reads ``sessions`` rows in the date range, never events.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms, time_zone
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366  # longer ranges are a typo, and would read every session twice (with the previous period)
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_TEXT_CHARS = 500
_HOUR_MS = 3_600_000
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"
# Text filters: URL parameter -> sessions column, compared exactly.
_EXACT = {
    "browser": "browser",
    "os": "os",
    "referrer": "referrer_domain",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}
# Breakdowns: name in the answer -> sessions column. "" values are left out, except for referrers (direct).
BREAKDOWNS = {
    "entry_pages": "entry_path",
    "exit_pages": "exit_path",
    "referrers": "referrer_domain",
    "utm_sources": "utm_source",
    "utm_mediums": "utm_medium",
    "utm_campaigns": "utm_campaign",
    "countries": "country",
    "browsers": "browser",
    "oses": "os",
    "devices": "device_type",
}


MAX_COHORT_ID = 2**31 - 1


class SessionCondition(Protocol):
    """A filter the caller resolved, as a condition over ``sessions`` rows (hitmetrix.analytics.cohorts)."""

    def condition(self, q: ScopedSelect, zone: str) -> str: ...


@dataclass(frozen=True)
class OverviewQuery:
    """A date range (days of the project's zone, inclusive), filters and how many rows each list shows."""

    date_from: dt.date
    date_to: dt.date
    filters: tuple[tuple[str, str], ...] = ()
    limit: int = DEFAULT_LIMIT
    # The `cohort` filter (its id is in ``filters``) as the web layer resolved it from the metadata store:
    # parsing has no store, so a view must resolve it (hitmetrix.web.cohort_filter.resolve_cohort) before querying.
    cohort: SessionCondition | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> OverviewQuery:
        """Parse URL parameters (``today`` in the project's zone is the default end); BadParameter if wrong."""
        date_to = param.day(params, "to") or today
        date_from = param.day(params, "from") or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
        if date_from > date_to:
            raise BadParameter("from", "from must be on or before to")
        if (date_to - date_from).days >= MAX_DAYS:
            raise BadParameter("from", f"a range may span at most {MAX_DAYS} days")
        if date_from - dt.timedelta(days=(date_to - date_from).days + 1) < param.MIN_DATE:
            raise BadParameter("from", f"the previous period would start before {param.MIN_DATE}")
        filters: dict[str, str] = {}
        country = param.text(params, "country", 64).upper()
        if country and not _COUNTRY.match(country):
            raise BadParameter("country", "country must be a two-letter code like DE")
        filters["country"] = country
        filters["device"] = param.choice(params, "device", DEVICE_TYPES)
        filters["identified"] = param.choice(params, "identified", ("yes", "no"))
        for name in ("url", *_EXACT, "prop_key", "prop_value"):
            filters[name] = param.text(params, name, MAX_TEXT_CHARS)
        if filters["prop_value"] and not filters["prop_key"]:
            raise BadParameter("prop_value", "prop_value needs prop_key (the property's name)")
        cohort = param.whole_number(params, "cohort", 0, 1, MAX_COHORT_ID)
        filters["cohort"] = str(cohort) if cohort else ""
        limit = param.whole_number(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        return cls(date_from, date_to, tuple((k, v) for k, v in filters.items() if v), limit)

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    @property
    def previous(self) -> tuple[dt.date, dt.date]:
        return self.date_from - dt.timedelta(days=self.days), self.date_from - dt.timedelta(days=1)

    @property
    def bucket(self) -> str:
        return "hour" if self.days <= 2 else "day" if self.days <= 92 else "week"


def scoped_sessions(project_id: int, query: OverviewQuery, first: dt.date, zone: str) -> ScopedSelect:
    """Sessions of the project with a pageview, started from ``first`` to the query's last day, filtered.

    Funnels, retention and paths start from it too, so a filter means the same in every view."""
    q = ScopedSelect(project_id).from_("sessions", final=True)
    start_ms, end_ms = day_range_ms(first, query.date_to, zone)
    q.where("is_deleted = 0")
    q.where("pageviews > 0")
    q.where(f"started_at >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"started_at < fromUnixTimestamp64Milli({q.bind(end_ms, 'Int64')}, 'UTC')")
    filters = dict(query.filters)
    for name, column in (("country", "country"), ("device", "device_type")) + tuple(_EXACT.items()):
        if filters.get(name):
            q.where(f"{column} = {q.bind(filters[name], 'String')}")
    if filters.get("url"):
        needle = q.bind(filters["url"], "String")
        q.where(f"arrayExists(p -> positionCaseInsensitive(p, {needle}) > 0, pageview_paths)")
    if filters.get("identified"):
        q.where("user_id != ''" if filters["identified"] == "yes" else "user_id = ''")
    if filters.get("prop_key"):
        key = q.bind(filters["prop_key"], "String")
        if filters.get("prop_value"):
            value = q.bind(filters["prop_value"], "String")
            q.where(f"arrayExists(p -> p.2 = {key} AND p.3 = {value}, event_props)")
        else:
            q.where(f"arrayExists(p -> p.2 = {key}, event_props)")
    if filters.get("cohort"):
        if query.cohort is None:  # a view that skipped resolving it: refuse rather than ignore the filter
            raise BadParameter("cohort", "this view cannot filter by cohort")
        q.where(query.cohort.condition(q, zone))
    return q


# Visitors are counted by their number (``visitor_num``: 1, 2, 3, … per project, given by the loader, schema step
# 10) in a bitmap per row of a list: a few kilobytes that stay in the CPU's cache, where a hash set of 64-bit
# visitor hashes per row grew to megabytes for the big rows and cost a cache miss per session. Both are exact (two
# visitors share a number only if their ids share a 64-bit hash: a chance of about one in 10^7 among a million).
VISITOR = "visitor_num"


def _in_range(q: ScopedSelect, query: OverviewQuery, zone: str) -> str:
    """A condition: the session started in the query's own range (not the previous period)."""
    start_ms, _ = day_range_ms(query.date_from, None, zone)
    return f"started_at >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')"


def totals_query(project_id: int, query: OverviewQuery, zone: str) -> ScopedSelect:
    """The range's and the previous period's sums, and the range's series, in one read of the sessions.

    Rows: one per period (``is_total``; ``in_range`` 1 for the range, 0 for the previous period), then one per
    bucket of either period (the previous period's are left unused: a week bucket may hold days of both)."""
    q = scoped_sessions(project_id, query, query.previous[0], zone)
    q.select(
        f"{_in_range(q, query, zone)} AS in_range",
        f"{_bucket_sql(q, query.bucket, zone)} AS bucket",
        "grouping(bucket) AS is_total",
        f"groupBitmap({VISITOR}) AS visitors",
        "count() AS sessions",
        "sum(pageviews) AS pageview_sum",
        "countIf(pageviews = 1) AS bounces",
        "sum(duration_ms) AS duration_sum",
    )
    q.group_by.append("GROUPING SETS ((in_range), (in_range, bucket))")
    return q


def _bucket_sql(q: ScopedSelect, bucket: str, zone: str) -> str:
    tz = q.bind(zone, "String")
    if bucket == "hour":
        return f"formatDateTime(toStartOfHour(started_at, {tz}), '%Y-%m-%d %H:00', {tz})"
    if bucket == "day":
        return f"toString(toDate(started_at, {tz}))"
    return f"toString(toMonday(started_at, {tz}))"


def top_pages_query(project_id: int, query: OverviewQuery, zone: str) -> ScopedSelect:
    # A row per page of each session (``page_names``, with its views in ``page_counts``: schema step 9), not per
    # pageview: a page viewed again in the same session adds nothing to its visitors.
    sessions = scoped_sessions(project_id, query, query.date_from, zone)
    sessions.select(VISITOR, "page_names", "page_counts")
    q = sessions.nested().from_select(sessions, array_join="page_names AS value, page_counts AS views")
    q.select("value", f"groupBitmap({VISITOR}) AS visitors", "sum(views) AS pageview_sum")
    q.group_by.append("value")
    q.order_by += ["visitors DESC", "pageview_sum DESC", "value"]
    q.limit = query.limit
    return q


def breakdowns_query(project_id: int, query: OverviewQuery, zone: str) -> tuple[ScopedSelect, str]:
    """Every breakdown in one read, a grouping set each: (SQL builder, the LIMIT BY clause to append after its
    ORDER BY)."""
    sessions = scoped_sessions(project_id, query, query.date_from, zone)
    sessions.select(VISITOR, *dict.fromkeys(BREAKDOWNS.values()))
    q = sessions.nested().from_select(sessions)
    # grouping(c) is 0 in the rows of c's own grouping set (standard SQL; ClickHouse's default since 22.11).
    kind = ", ".join(f"grouping({column}) = 0, '{name}'" for name, column in BREAKDOWNS.items())
    value = ", ".join(f"grouping({column}) = 0, toString({column})" for column in BREAKDOWNS.values())
    q.select(
        f"multiIf({kind}, '') AS kind",
        f"multiIf({value}, '') AS value",
        f"groupBitmap({VISITOR}) AS visitors",
        "count() AS session_count",
    )
    q.group_by.append("GROUPING SETS (" + ", ".join(f"({column})" for column in BREAKDOWNS.values()) + ")")
    q.having("kind = 'referrers' OR value != ''")
    q.order_by += ["kind", "visitors DESC", "session_count DESC", "value"]
    return q, f"LIMIT {int(query.limit)} BY kind"


def _totals(row: Mapping[str, Any]) -> dict[str, Any]:
    sessions = int(row.get("sessions") or 0)
    pageviews = int(row.get("pageview_sum") or 0)
    bounces = int(row.get("bounces") or 0)
    duration_ms = int(row.get("duration_sum") or 0)
    return {
        "visitors": int(row.get("visitors") or 0),
        "sessions": sessions,
        "pageviews": pageviews,
        "views_per_session": round(pageviews / sessions, 2) if sessions else 0.0,
        "bounce_rate": round(100 * bounces / sessions, 1) if sessions else 0.0,
        "avg_duration_ms": round(duration_ms / sessions) if sessions else 0,
    }


def bucket_labels(query: OverviewQuery, zone: str) -> list[str]:
    """Every bucket of the range, in order, as the series labels them (local time of ``zone``)."""
    tz = time_zone(zone)
    start_ms, end_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert start_ms is not None and end_ms is not None
    labels: dict[str, None] = {}
    # Half-hour steps: zones that are off UTC by 30 or 45 minutes still start an hour in each step.
    for ms in range(start_ms, end_ms, _HOUR_MS // 2):
        local = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(tz)
        if query.bucket == "hour":
            labels[local.strftime("%Y-%m-%d %H:00")] = None
        else:
            day = local.date()
            labels[(day - dt.timedelta(days=day.weekday()) if query.bucket == "week" else day).isoformat()] = None
    return list(labels)


def overview(
    store: EventStore, project_id: int, query: OverviewQuery, zone: str = DEFAULT_TIME_ZONE
) -> dict[str, Any]:
    """The overview of ``query`` for one project (the caller checked access), days of the zone ``zone``."""
    totals_q = totals_query(project_id, query, zone)
    totals_rows: dict[int, dict[str, Any]] = {}
    by_bucket: dict[str, dict[str, Any]] = {}
    for row in store.query(totals_q.sql() + "\n" + _SETTINGS, totals_q.params):
        if int(row["is_total"]):
            totals_rows[int(row["in_range"])] = row
        elif int(row["in_range"]):
            by_bucket[row["bucket"]] = row
    pages_q = top_pages_query(project_id, query, zone)
    pages = store.query(pages_q.sql() + "\n" + _SETTINGS, pages_q.params)
    breakdowns_q, limit_by = breakdowns_query(project_id, query, zone)
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in BREAKDOWNS}
    for row in store.query(breakdowns_q.sql() + "\n" + limit_by + "\n" + _SETTINGS, breakdowns_q.params):
        lists[row["kind"]].append(
            {"value": row["value"], "visitors": int(row["visitors"]), "sessions": int(row["session_count"])}
        )
    previous_from, previous_to = query.previous
    series = []
    for label in bucket_labels(query, zone):
        row = by_bucket.get(label, {})
        series.append(
            {
                "bucket": label,
                "visitors": int(row.get("visitors") or 0),
                "sessions": int(row.get("sessions") or 0),
                "pageviews": int(row.get("pageview_sum") or 0),
            }
        )
    return {
        "range": {
            "from": query.date_from.isoformat(),
            "to": query.date_to.isoformat(),
            "time_zone": zone,
            "bucket": query.bucket,
        },
        "totals": _totals(totals_rows.get(1, {})),
        "previous": {
            "from": previous_from.isoformat(),
            "to": previous_to.isoformat(),
            "totals": _totals(totals_rows.get(0, {})),
        },
        "series": series,
        "top_pages": [
            {"value": row["value"], "visitors": int(row["visitors"]), "pageviews": int(row["pageview_sum"])}
            for row in pages
        ],
        **lists,
    }
