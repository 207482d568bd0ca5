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


def retention_sql(project_id: int, query: RetentionQuery, zone: str) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters): rows of (cohort, offset, visitors); offset 0 is the cohort's size."""
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
