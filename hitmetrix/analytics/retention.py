"""Retention: a cohort grid of visitors by the period they were first seen (or first did event X), and how many
of each cohort came back (or did event Y) 1…N periods later.

What the grid means — decided here, once:

- A **visitor** is an ``anonymous_id`` (the tracker's per-browser id), or a ``user_id`` with ``identity=user``
  (sessions of visitors who never identified then count for nobody).
- Sessions are those the overview's filters pick (``hitmetrix.analytics.overview``): a session is in a period by
  its START, in the project's time zone; a period is a day, a week starting on Monday, or a calendar month.
- A visitor's **cohort** is the period of their first session ever (of those the filters pick) that starts the
  cohort: any session ("first seen"), or one that viewed a page matching ``start_page`` / sent the custom
  event ``start_event``. A visitor is in the grid when that first session started within ``from``…``to``.
- Cell k ≥ 1 counts the cohort's visitors with a returning session (any, or one matching ``return_page`` /
  ``return_event``) that started exactly k periods after their cohort's period; cell 0 is the cohort's size.
- A page pattern matches a whole path; ``*`` stands for any run of characters (``/blog/*``).
- Custom events are found through the session's event properties (``sessions.event_props``), so an event
  counts when it carried at least one property.

One read of ``sessions`` (one row per session), never of events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

PERIODS = ("day", "week", "month")
DEFAULT_PERIOD = "week"
DEFAULT_PERIOD_COUNT = 8
MAX_PERIOD_COUNT = 90
MAX_COHORTS = 400  # a daily grid over more than a year is a typo, and a very wide table
IDENTITIES = ("anonymous", "user")
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"
_DIFF = {
    "day": "dateDiff('day', cohort, p)",
    "week": "intDiv(dateDiff('day', cohort, p), 7)",
    "month": "dateDiff('month', cohort, p)",
}


def like_pattern(pattern: str) -> str:
    """A page pattern (``*`` = any characters, the rest literal) as a LIKE pattern over the whole path."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def matches_pattern(pattern: str, path: str) -> bool:
    """What ``like_pattern`` means, in Python (for callers that hold paths already)."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), path, re.DOTALL) is not None


@dataclass(frozen=True)
class Condition:
    """Which sessions start a cohort or count as a return: any (both empty), a page pattern, or a custom event."""

    page: str = ""
    event: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str], prefix: str) -> Condition:
        page = param.text(params, f"{prefix}_page", MAX_TEXT_CHARS)
        event = param.text(params, f"{prefix}_event", MAX_TEXT_CHARS)
        if page and event:
            raise BadParameter(f"{prefix}_event", f"give {prefix}_page or {prefix}_event, not both")
        return cls(page, event)

    def sql(self, q: ScopedSelect) -> str:
        if self.page:
            return f"arrayExists(p -> like(p, {q.bind(like_pattern(self.page), 'String')}), pageview_paths)"
        if self.event:
            return f"arrayExists(e -> e.1 = {q.bind(self.event, 'String')}, event_props)"
        return "1"


@dataclass(frozen=True)
class RetentionQuery:
    """Cohorts of ``base.date_from``…``base.date_to`` (days of the project's zone), with the base's filters."""

    base: OverviewQuery
    period: str = DEFAULT_PERIOD
    periods: int = DEFAULT_PERIOD_COUNT
    identity: str = "anonymous"
    start: Condition = Condition()
    returned: Condition = Condition()

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> RetentionQuery:
        base = OverviewQuery.from_query(params, today)
        period = param.choice(params, "period", PERIODS) or DEFAULT_PERIOD
        periods = param.whole_number(params, "periods", DEFAULT_PERIOD_COUNT, 1, MAX_PERIOD_COUNT)
        identity = param.choice(params, "identity", IDENTITIES) or "anonymous"
        query = cls(base, period, periods, identity, Condition.from_query(params, "start"),
                    Condition.from_query(params, "return"))
        if len(query.cohort_starts()) > MAX_COHORTS:
            raise BadParameter("from", f"at most {MAX_COHORTS} cohorts: a shorter range or a longer period")
        if query.last_day() > param.MAX_DATE:
            raise BadParameter("to", f"the last period would end after {param.MAX_DATE}")
        return query

    def cohort_starts(self) -> list[dt.date]:
        first, last = period_start(self.base.date_from, self.period), period_start(self.base.date_to, self.period)
        starts = [first]
        while starts[-1] < last and len(starts) <= MAX_COHORTS:
            starts.append(add_periods(starts[-1], self.period, 1))
        return starts

    def last_day(self) -> dt.date:
        """The last day of the last cohort's last period: no session after it can count."""
        end = add_periods(period_start(self.base.date_to, self.period), self.period, self.periods + 1)
        return end - dt.timedelta(days=1)


def period_start(day: dt.date, period: str) -> dt.date:
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def add_periods(start: dt.date, period: str, count: int) -> dt.date:
    if period == "day":
        return start + dt.timedelta(days=count)
    if period == "week":
        return start + dt.timedelta(weeks=count)
    months = start.year * 12 + start.month - 1 + count
    return dt.date(months // 12, months % 12 + 1, 1)


def visitor_cohorts(project_id: int, query: RetentionQuery, zone: str) -> tuple[ScopedSelect, str]:
    """The two halves of the grid, as its cells' session lists need them too: the select of the sessions the
    filters pick (``visitor``, ``started_at``, ``period``, ``is_start``, ``is_return``; a caller may add columns
    after), and the SQL of one row per visitor with a cohort in the range (``visitor``, ``cohort``, ``first_at``,
    ``returns``: the periods with a return). Both take the select's ``params``."""
    # Every session the filters pick up to the last period's end: "first seen" needs the visitor's whole past.
    widened = dataclasses.replace(query.base, date_to=query.last_day())
    q = scoped_sessions(project_id, widened, param.MIN_DATE, zone)
    visitor = "user_id" if query.identity == "user" else "anonymous_id"
    tz = q.bind(zone, "String")
    period = {"day": f"toDate(started_at, {tz})", "week": f"toMonday(started_at, {tz})",
              "month": f"toStartOfMonth(started_at, {tz})"}[query.period]
    q.select(f"{visitor} AS visitor", "started_at", f"{period} AS period",
             f"{query.start.sql(q)} AS is_start", f"{query.returned.sql(q)} AS is_return")
    q.where(f"{visitor} != ''")
    from_ms, to_ms = day_range_ms(query.base.date_from, query.base.date_to, zone)
    cohorts = (
        "SELECT visitor, argMinIf(period, started_at, is_start) AS cohort, minIf(started_at, is_start) AS first_at,"
        " groupUniqArrayIf(period, is_return) AS returns"
        f" FROM ({q.sql()}) GROUP BY visitor HAVING countIf(is_start) > 0"
        f" AND first_at >= fromUnixTimestamp64Milli({q.bind(from_ms, 'Int64')}, 'UTC')"
        f" AND first_at < fromUnixTimestamp64Milli({q.bind(to_ms, 'Int64')}, 'UTC')"
    )
    return q, cohorts


def retention_sql(project_id: int, query: RetentionQuery, zone: str) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters): rows of (cohort, offset, visitors); offset 0 is the cohort's size."""
    q, cohorts = visitor_cohorts(project_id, query, zone)
    offsets = (
        f"arrayConcat([0], arrayFilter(o -> o >= 1 AND o <= {int(query.periods)},"
        f" arrayMap(p -> {_DIFF[query.period]}, returns)))"
    )
    sql = (
        "SELECT toString(cohort) AS cohort_day, offset, count() AS visitors"
        f" FROM (SELECT cohort, arrayJoin({offsets}) AS offset FROM ({cohorts}))"
        " GROUP BY cohort_day, offset"
    )
    return sql, q.params


def retention(
    store: EventStore, project_id: int, query: RetentionQuery, zone: str = DEFAULT_TIME_ZONE
) -> dict[str, Any]:
    """The cohort grid of ``query`` for one project (the caller checked access)."""
    sql, params = retention_sql(project_id, query, zone)
    counts = {(row["cohort_day"], int(row["offset"])): int(row["visitors"])
              for row in store.query(sql + "\n" + _SETTINGS, params)}
    cohorts = []
    for start in query.cohort_starts():
        size = counts.get((start.isoformat(), 0), 0)
        cells = []
        for offset in range(query.periods + 1):
            returned = counts.get((start.isoformat(), offset), 0)
            cells.append({"period": offset, "visitors": returned,
                          "percent": round(100 * returned / size, 1) if size else 0.0})
        cohorts.append({"cohort": start.isoformat(), "visitors": size, "cells": cells})
    return {
        "range": {"from": query.base.date_from.isoformat(), "to": query.base.date_to.isoformat(), "time_zone": zone},
        "period": query.period,
        "periods": query.periods,
        "identity": query.identity,
        "start": {"page": query.start.page, "event": query.start.event},
        "return": {"page": query.returned.page, "event": query.returned.event},
        "cohorts": cohorts,
    }


# --- the sessions behind one cell ----------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE = 10_000
# A replay opens this long before the session's first matching page or event: the moment is seen happening.
REPLAY_LEAD_MS = 2_000


def parse_cell(params: Mapping[str, str], query: RetentionQuery) -> tuple[dt.date, int]:
    """The cell a session list is asked for: ``cohort_start`` (the first day of one of the query's cohorts) and
    ``offset`` (0 for the cohort's own period, up to ``periods``)."""
    start = param.day(params, "cohort_start")
    if start is None:
        raise BadParameter("cohort_start", "cohort_start is required: the first day of a cohort, like 2026-09-07")
    if start not in query.cohort_starts():
        first, last = query.cohort_starts()[0], query.cohort_starts()[-1]
        raise BadParameter("cohort_start", f"cohort_start must be the first day of a {query.period} from {first} to "
                           f"{last} (a cohort of this range)")
    if not params.get("offset", "").strip():
        raise BadParameter("offset", f"offset is required: 0 (the cohort's own {query.period}) to {query.periods}")
    offset = param.whole_number(params, "offset", 0, 0, query.periods)
    return start, offset


def cohort_sessions_sql(
    project_id: int, query: RetentionQuery, cohort_start: dt.date, offset: int, page: int, page_size: int, zone: str
) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters): one page of the sessions behind a cell, oldest first, each row with the list's total
    sessions and visitors. Offset 0: the cohort's sessions in its own period that start a cohort (any, or those
    matching the start condition); offset k: their returning sessions that started k periods later — the same
    sessions, and visitors, the grid counts."""
    q, cohorts = visitor_cohorts(project_id, query, zone)
    q.select("session_id", "anonymous_id", "user_id", "toUnixTimestamp64Milli(started_at) AS started_ms",
             "toUnixTimestamp64Milli(ended_at) AS ended_ms", "duration_ms", "pageviews", "country", "device_type",
             "browser", "os", "entry_path")
    counted = "is_start" if offset == 0 else "is_return"
    cohort = q.bind(cohort_start.isoformat(), "String")
    later = q.bind(add_periods(cohort_start, query.period, offset).isoformat(), "String")
    sql = (
        "SELECT session_id, visitor, anonymous_id, user_id, started_ms, ended_ms, duration_ms, pageviews, country,"
        " device_type, browser, os, entry_path, count() OVER () AS total, uniqExact(visitor) OVER () AS visitors"
        f" FROM ({q.sql()})"
        f" WHERE period = toDate({later}) AND {counted}"
        f" AND visitor IN (SELECT visitor FROM ({cohorts}) WHERE cohort = toDate({cohort}))"
        f" ORDER BY started_ms, session_id LIMIT {int(page_size)} OFFSET {int((page - 1) * page_size)}"
    )
    return sql, q.params


def _moments(store: EventStore, project_id: int, condition: Condition, rows: list[dict[str, Any]]) -> dict[str, int]:
    """When each listed session first viewed the condition's page or sent its event (ms), to open its replay
    there; a session's rows in ``sessions`` hold its pages but not their times, so a few of its events are read."""
    if not rows or not (condition.page or condition.event):
        return {}
    q = ScopedSelect(project_id).from_("events")
    q.select("session_id", "toUnixTimestamp64Milli(min(ts)) AS at_ms")
    # The table is ordered by day, then session: the listed sessions' time span keeps the read to their days.
    q.where(f"ts >= fromUnixTimestamp64Milli({q.bind(min(int(r['started_ms']) for r in rows), 'Int64')}, 'UTC')")
    q.where(f"ts <= fromUnixTimestamp64Milli({q.bind(max(int(r['ended_ms']) for r in rows), 'Int64')}, 'UTC')")
    q.where("session_id IN (" + ", ".join(q.bind(r["session_id"], "String") for r in rows) + ")")
    if condition.page:
        q.where(f"type = 'pageview' AND like(path, {q.bind(like_pattern(condition.page), 'String')})")
    else:
        q.where(f"type = 'custom' AND name = {q.bind(condition.event, 'String')}")
    q.group_by.append("session_id")
    return {row["session_id"]: int(row["at_ms"]) for row in store.query(q.sql(), q.params)}


def cohort_sessions(
    store: EventStore, project_id: int, query: RetentionQuery, cohort_start: dt.date, offset: int, page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE, zone: str = DEFAULT_TIME_ZONE,
) -> dict[str, Any]:
    """One page of the sessions behind the cell (``cohort_start``, ``offset``) of ``query``'s grid (see
    ``cohort_sessions_sql``), each with its replay link; with a start (offset 0) or return condition, the replay
    opens a moment before the session's first matching page or event (``?t=`` seconds after its start)."""
    sql, params = cohort_sessions_sql(project_id, query, cohort_start, offset, page, page_size, zone)
    rows = store.query(sql + "\n" + _SETTINGS, params)
    total = int(rows[0]["total"]) if rows else 0
    visitors = int(rows[0]["visitors"]) if rows else 0
    if not rows and page > 1:
        # Past the last page: no row carries the totals, so the first page's do.
        first_sql, first_params = cohort_sessions_sql(project_id, query, cohort_start, offset, 1, 1, zone)
        first = store.query(first_sql + "\n" + _SETTINGS, first_params)
        total, visitors = (int(first[0]["total"]), int(first[0]["visitors"])) if first else (0, 0)
    moments = _moments(store, project_id, query.start if offset == 0 else query.returned, rows)
    listed = []
    for r in rows:
        started_ms = int(r["started_ms"])
        at_s = max(0, (moments[r["session_id"]] - REPLAY_LEAD_MS - started_ms) // 1000) if r["session_id"] in moments \
            else 0
        listed.append({
            "session_id": r["session_id"], "visitor": r["visitor"], "anonymous_id": r["anonymous_id"],
            "user_id": r["user_id"], "started_at_ms": started_ms, "duration_ms": int(r["duration_ms"]),
            "pageviews": int(r["pageviews"]), "country": r["country"], "device_type": r["device_type"],
            "browser": r["browser"], "os": r["os"], "entry_path": r["entry_path"], "replay_at_s": at_s,
            "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}?t={at_s}",
        })
    began = add_periods(cohort_start, query.period, offset)
    return {
        "cohort": cohort_start.isoformat(),
        "offset": offset,
        "period": {"from": began.isoformat(),
                   "to": (add_periods(began, query.period, 1) - dt.timedelta(days=1)).isoformat()},
        "time_zone": zone,
        "total": total,
        "visitors": visitors,
        "page": page,
        "page_size": page_size,
        "has_more": total > page * page_size,
        "sessions": listed,
    }
