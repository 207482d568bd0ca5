"""Trends (PostHog's Trends): up to five event series on one chart over time, each counted as events, unique
visitors or events per session, broken down by a property, with the previous period beside them.

What a trend means — decided here, once:

- A **series** is an event definition, the same as a funnel step (``hitmetrix.analytics.funnels``): a pageview
  whose path is ``exact``-ly, starts with (``prefix``) or matches (``regex``) a pattern; a click on a selector
  and/or a text; a form submit (optionally its selector); a custom event by name with property values.
- An **event counts** when it happened in the range (its own time, days of the project's zone) in a session that
  passes the overview's filters (``overview.scoped_sessions``: a session with a pageview, so server requests
  alone are not a visit). A session is looked at if it started at most ``SESSION_LOOKBACK_DAYS`` before the
  range's first day: a visit that crosses midnight counts on both days, a "visit" longer than that does not.
  An event that fits two series counts in both.
- **Math**: ``total`` is the number of events; ``visitors`` the distinct ``anonymous_id`` of their sessions;
  ``per_session`` the events divided by the sessions that had at least one (rounded to 2 places). Each is
  computed per bucket and over the whole range (visitors over the range are not the sum of the buckets').
- **Interval**: ``hour``, ``day``, ``week`` (starting Monday) or ``month``, in local time of the project's zone;
  by default the overview's bucket for the range (hour up to 2 days, day up to 92, week beyond). Buckets are
  labelled with local time, so the repeated hour at the end of daylight saving time is one bucket; the first
  week or month is labelled with its own first day even when the range starts later.
- **Breakdown**: a session property (country, device, browser, os, referrer, utm_*, entry page), the event's
  own page ``path``, or ``prop:<key>``, a custom event's property (strings unquoted, numbers and booleans as
  their JSON text; "" for events without it). Per series, the ``breakdown_limit`` values with the most events
  in the range, then one "other" line with the rest (its visitors counted distinct, not summed).
- **Compare**: the previous period, the same number of days just before ``from``, with the same rules (its own
  look-back) and its own bucket labels; the chart lines them up by position.

Reads: from ``events`` only the time, the session and the columns the series look at (plus the breakdown's), of
the range's days (and the previous period's), only rows of the series' event types; joined to the filtered
``sessions`` rows (id, anonymous id and the breakdown column). The type and time conditions are the ones
ClickHouse moves to PREWHERE.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import funnels, overview
from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import day_range_ms, time_zone

# The step parsing and matching SQL are the funnels' (one definition of "an event like this" for both views).
# _step and _condition are private there; they are imported rather than copied so the two cannot drift apart.
from hitmetrix.analytics.funnels import Step, _condition, _step
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

MAX_SERIES = 5
MAX_SERIES_CHARS = funnels.MAX_DEFINITION_CHARS
MATHS = ("total", "visitors", "per_session")
INTERVALS = ("hour", "day", "week", "month")
MAX_HOUR_DAYS = 31  # 744 hourly points is already more than a chart can show
DEFAULT_BREAKDOWN_LIMIT = 5
MAX_BREAKDOWN_LIMIT = 25
MAX_PAGE = 200
# A line's session replays from this long before its first such event: the event is seen happening (as funnels do).
REPLAY_LEAD_MS = 2_000
SESSION_LOOKBACK_DAYS = 1
PROP_PREFIX = "prop:"
# Breakdowns by a column of the session: the funnels' list (country, device, …, entry_path).
SESSION_BREAKDOWNS: Mapping[str, str] = funnels.BREAKDOWNS
# Breakdowns by a column of the event itself.
EVENT_BREAKDOWNS = {"path": "path"}
BREAKDOWNS = (*SESSION_BREAKDOWNS, *EVENT_BREAKDOWNS)
_HOUR_MS = 3_600_000
# A series' own fields in the ``series`` JSON; the rest of the object is its step, parsed by the funnels.
_SERIES_FIELDS = {"math"}


@dataclass(frozen=True)
class Series:
    step: Step
    math: str = "total"

    @property
    def label(self) -> str:
        """A short human name: what the chart's legend and the table show."""
        s = self.step
        if s.kind == "pageview":
            if s.match == "prefix":
                return f"Pageview {s.path or '/'}*" if s.path not in ("", "/") else "Pageview (any page)"
            return f"Pageview {'~ ' if s.match == 'regex' else ''}{s.path}"
        if s.kind == "click":
            return "Click " + " ".join(p for p in (s.selector, f"“{s.text}”" if s.text else "") if p)
        if s.kind == "submit":
            return f"Submit {s.selector}" if s.selector else "Form submit"
        props = ", ".join(f"{k}={v}" for k, v in s.props)
        return f"{s.name} ({props})" if props else s.name

    def to_json(self) -> dict[str, Any]:
        """The series as the ``series`` parameter writes it (only the fields that are set)."""
        s = self.step
        out: dict[str, Any] = {"kind": s.kind}
        if s.kind == "pageview":
            out.update(match=s.match, path=s.path)
        for name in ("selector", "text", "name"):
            if getattr(s, name):
                out[name] = getattr(s, name)
        if s.props:
            out["props"] = dict(s.props)
        out["math"] = self.math
        return out


ALL_PAGEVIEWS = Series(Step("pageview", match="prefix", path=""))


def parse_series(raw: str) -> tuple[Series, ...]:
    """The ``series`` parameter (a JSON list of step objects with an optional ``math``); all pageviews when
    absent. BadParameter naming the field (``series[1].path``) when wrong."""
    if not raw.strip():
        return (ALL_PAGEVIEWS,)
    if len(raw) > MAX_SERIES_CHARS:
        raise BadParameter("series", f"series is too long (at most {MAX_SERIES_CHARS} characters)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadParameter("series", "series must be a JSON list of event definitions") from None
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_SERIES:
        raise BadParameter("series", f"series must be a JSON list of 1 to {MAX_SERIES} event definitions")
    out = []
    for i, item in enumerate(data):
        field_name = f"series[{i}]"
        if not isinstance(item, dict):
            raise BadParameter(field_name, "a series must be an object")
        math = item.get("math", "total")
        if math not in MATHS:
            raise BadParameter(f"{field_name}.math", f"math must be one of {', '.join(MATHS)}")
        step = _step({k: v for k, v in item.items() if k not in _SERIES_FIELDS}, field_name)
        out.append(Series(step, math))
    return tuple(out)


@dataclass(frozen=True)
class TrendDefinition:
    """The series and how to draw them; the range and filters are the ``OverviewQuery`` beside it."""

    series: tuple[Series, ...] = (ALL_PAGEVIEWS,)
    interval: str = "day"
    breakdown: str = ""
    breakdown_limit: int = DEFAULT_BREAKDOWN_LIMIT
    compare: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str], query: overview.OverviewQuery) -> TrendDefinition:
        """Parse ``series``, ``interval``, ``breakdown``, ``breakdown_limit`` and ``compare`` (``previous``)."""
        series = parse_series(params.get("series") or "")
        interval = param.choice(params, "interval", INTERVALS) or query.bucket
        if interval == "hour" and query.days > MAX_HOUR_DAYS:
            raise BadParameter("interval", f"an hourly trend may span at most {MAX_HOUR_DAYS} days")
        breakdown = param.text(params, "breakdown", funnels.MAX_TEXT_CHARS + len(PROP_PREFIX))
        if breakdown.startswith(PROP_PREFIX):
            if not breakdown[len(PROP_PREFIX):]:
                raise BadParameter("breakdown", "prop: needs a custom event property's name, like prop:plan")
        elif breakdown and breakdown not in BREAKDOWNS:
            raise BadParameter("breakdown", f"breakdown must be one of {', '.join(BREAKDOWNS)} or prop:<key>")
        limit = param.whole_number(params, "breakdown_limit", DEFAULT_BREAKDOWN_LIMIT, 1, MAX_BREAKDOWN_LIMIT)
        compare = param.choice(params, "compare", ("previous",)) == "previous"
        return cls(series, interval, breakdown, limit, compare)

    def series_json(self) -> str:
        return json.dumps([s.to_json() for s in self.series], ensure_ascii=False, separators=(",", ":"))


def _check_regexes(store: EventStore, project_id: int, definition: TrendDefinition) -> None:
    """A pattern re2 refuses is a 400 naming the series (the funnels' check, its field names renamed)."""
    steps = tuple(s.step for s in definition.series)
    try:
        funnels._check_regexes(store, project_id, funnels.FunnelDefinition(steps))
    except BadParameter as exc:
        raise BadParameter(exc.parameter.replace("definition.steps", "series"), str(exc)) from None


# --- SQL ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Period:
    first: dt.date
    last: dt.date
    start_ms: int
    end_ms: int
    lookback_ms: int  # sessions that started before this are not looked at


def _period(first: dt.date, last: dt.date, zone: str) -> _Period:
    start_ms, end_ms = day_range_ms(first, last, zone)
    lookback_ms, _ = day_range_ms(first - dt.timedelta(days=SESSION_LOOKBACK_DAYS), None, zone)
    assert start_ms is not None and end_ms is not None and lookback_ms is not None
    return _Period(first, last, start_ms, end_ms, lookback_ms)


def _bucket_sql(q: ScopedSelect, interval: str, zone: str) -> str:
    tz = q.bind(zone, "String")
    return {
        "hour": f"formatDateTime(toStartOfHour(ts, {tz}), '%Y-%m-%d %H:00', {tz})",
        "day": f"toString(toDate(ts, {tz}))",
        "week": f"toString(toMonday(ts, {tz}))",
        "month": f"toString(toStartOfMonth(ts, {tz}))",
    }[interval]


def _ms(q: ScopedSelect, ms: int) -> str:
    return f"fromUnixTimestamp64Milli({q.bind(ms, 'Int64')}, 'UTC')"


def _joined(project_id: int, query: overview.OverviewQuery, definition: TrendDefinition, zone: str,
            periods: list[_Period]) -> tuple[ScopedSelect, str]:
    """(the builder holding every bound parameter, the FROM of the matching events joined to their filtered
    sessions): columns ``series`` (1-based), ``ts``, ``session_id``, ``anonymous_id``, ``started_at`` (the
    session's) and ``value`` (the breakdown's, '' without one)."""
    first = min(p.first for p in periods)
    sq = overview.scoped_sessions(project_id, query, first - dt.timedelta(days=SESSION_LOOKBACK_DAYS), zone)
    sq.where(f"ended_at >= {_ms(sq, min(p.start_ms for p in periods))}")
    session_value = SESSION_BREAKDOWNS.get(definition.breakdown)
    sq.select("session_id", "anonymous_id", "started_at",
              f"toString({session_value}) AS session_value" if session_value else "'' AS session_value")
    # Every value of both halves of the join is bound through the sessions query: one set of parameters.
    eq = ScopedSelect(project_id).from_("events")
    conditions = [_condition(sq, s.step) for s in definition.series]
    marks = ", ".join(f"if({c}, {i + 1}, 0)" for i, c in enumerate(conditions))
    if definition.breakdown.startswith(PROP_PREFIX):
        k = sq.bind(definition.breakdown[len(PROP_PREFIX):], "String")
        event_value = (f"if(type = 'custom' AND JSONHas(props, {k}), if(JSONType(props, {k}) = 'String', "
                       f"JSONExtractString(props, {k}), JSONExtractRaw(props, {k})), '')")
    else:
        event_value = EVENT_BREAKDOWNS.get(definition.breakdown, "''")
    eq.select("session_id", "ts", f"arrayJoin(arrayFilter(i -> i > 0, [{marks}])) AS series",
              f"{event_value} AS event_value")
    kinds = sorted({s.step.kind for s in definition.series})
    eq.where("type IN (" + ", ".join(f"'{k}'" for k in kinds) + ")")  # kinds are from funnels.KINDS, not input
    eq.where(" OR ".join(f"({c})" for c in conditions))
    eq.where(" OR ".join(f"(ts >= {_ms(sq, p.start_ms)} AND ts < {_ms(sq, p.end_ms)})" for p in periods))
    value = "s.session_value" if session_value else "e.event_value"
    # Each period looks back from its own first day (comparing must not change the chosen period's numbers).
    looked_back = " OR ".join(
        f"(e.ts >= {_ms(sq, p.start_ms)} AND e.ts < {_ms(sq, p.end_ms)} AND s.started_at >= {_ms(sq, p.lookback_ms)})"
        for p in periods
    )
    source = (f"(SELECT e.series AS series, e.ts AS ts, e.session_id AS session_id,"
              f" s.anonymous_id AS anonymous_id, s.started_at AS started_at, {value} AS value\n"
              f"FROM ({eq.sql()}) AS e\nINNER JOIN ({sq.sql()}) AS s ON e.session_id = s.session_id\n"
              f"WHERE {looked_back})")
    return sq, source


def _top_values(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: TrendDefinition,
                zone: str, period: _Period) -> dict[int, list[str]]:
    """Per series (1-based), the breakdown values with the most events in the period, most first."""
    q, source = _joined(project_id, query, definition, zone, [period])
    sql = (f"SELECT series, value, count() AS events FROM {source}\nGROUP BY series, value\n"
           f"ORDER BY series, events DESC, value\nLIMIT {int(definition.breakdown_limit)} BY series")
    top: dict[int, list[str]] = {}
    for row in store.query(sql, q.params):
        top.setdefault(int(row["series"]), []).append(row["value"])
    return top


def _shown_value(q: ScopedSelect, top: Mapping[int, list[str]]) -> str:
    """SQL: 1 when the row's value is one of its series' top values (then shown as itself), else 0 ("other")."""
    arms = []
    for series, values in sorted(top.items()):
        if values:
            arms.append(f"series = {int(series)}, value IN ({', '.join(q.bind(v, 'String') for v in values)})")
    return f"multiIf({', '.join(arms)}, 0)" if arms else "0"


def counts_query(project_id: int, query: overview.OverviewQuery, definition: TrendDefinition, zone: str,
                 top: Mapping[int, list[str]] | None = None) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters) of rows (period 0 now / 1 before, series, bucket ('' for the period's total), shown
    value, is_other, events, visitors, sessions): every period, bucket and total in one read."""
    periods = periods_of(query, definition, zone)
    q, source = _joined(project_id, query, definition, zone, periods)
    period = f"if(ts >= {_ms(q, periods[0].start_ms)}, 0, 1)" if len(periods) > 1 else "0"
    if top is None:
        shown, other = "''", "0"
    else:
        in_top = _shown_value(q, top)
        shown, other = f"if({in_top}, value, '')", f"1 - {in_top}"
    sql = (f"SELECT {period} AS period, series, {_bucket_sql(q, definition.interval, zone)} AS bucket,"
           f" {shown} AS shown, toUInt8({other}) AS is_other,\n"
           "       count() AS events, uniqExact(anonymous_id) AS visitors, uniqExact(session_id) AS sessions\n"
           f"FROM {source}\n"
           "GROUP BY GROUPING SETS ((period, series, bucket, shown, is_other), (period, series, shown, is_other))")
    return sql, q.params


def periods_of(query: overview.OverviewQuery, definition: TrendDefinition, zone: str) -> list[_Period]:
    """The range, and the previous period when comparing."""
    periods = [_period(query.date_from, query.date_to, zone)]
    if definition.compare:
        periods.append(_period(*query.previous, zone))
    return periods


def bucket_labels(first: dt.date, last: dt.date, zone: str, interval: str) -> list[str]:
    """Every bucket of the days, in order, labelled in local time of ``zone`` as the SQL labels them."""
    labels: dict[str, None] = {}
    if interval == "hour":
        tz = time_zone(zone)
        start_ms, end_ms = day_range_ms(first, last, zone)
        assert start_ms is not None and end_ms is not None
        # Half-hour steps: zones off UTC by 30 or 45 minutes still start an hour in each step.
        for ms in range(start_ms, end_ms, _HOUR_MS // 2):
            labels[dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(tz).strftime("%Y-%m-%d %H:00")] = None
        return list(labels)
    day = first
    while day <= last:
        if interval == "week":
            labels[(day - dt.timedelta(days=day.weekday())).isoformat()] = None
        elif interval == "month":
            labels[day.replace(day=1).isoformat()] = None
        else:
            labels[day.isoformat()] = None
        day += dt.timedelta(days=1)
    return list(labels)


_METRICS = ("total", "visitors", "sessions", "per_session")


def _metrics(events: int, visitors: int, sessions: int) -> dict[str, Any]:
    return {"total": events, "visitors": visitors, "sessions": sessions,
            "per_session": round(events / sessions, 2) if sessions else 0.0}


def _lines(rows: list[dict[str, Any]], period_index: int, definition: TrendDefinition, labels: list[str],
           top: Mapping[int, list[str]] | None) -> list[dict[str, Any]]:
    """One line per series (per series and breakdown value), in series order, then top values in rank order,
    then "other"; each with its points in the series' math and its totals."""
    points: dict[tuple[int, str, int], dict[str, dict[str, Any]]] = {}
    totals: dict[tuple[int, str, int], dict[str, Any]] = {}
    for row in rows:
        if int(row["period"]) != period_index:
            continue
        key = (int(row["series"]), row["shown"], int(row["is_other"]))
        m = _metrics(int(row["events"]), int(row["visitors"]), int(row["sessions"]))
        if row["bucket"] == "":
            totals[key] = m
        else:
            points.setdefault(key, {})[row["bucket"]] = m
    lines = []
    empty = _metrics(0, 0, 0)
    for n, series in enumerate(definition.series, start=1):
        if top is None:
            keys = [(n, "", 0)]
        else:
            keys = [(n, v, 0) for v in top.get(n, [])] + ([(n, "", 1)] if (n, "", 1) in totals else [])
        for key in keys:
            by_bucket = points.get(key, {})
            line: dict[str, Any] = {
                "series": n - 1,
                "label": series.label,
                "math": series.math,
                "data": [by_bucket.get(label, empty)[series.math] for label in labels],
                # Every math per bucket, as arrays beside ``labels`` (a long range is thousands of points).
                "values": {m: [by_bucket.get(label, empty)[m] for label in labels] for m in _METRICS},
                "totals": totals.get(key, empty),
            }
            if top is not None:
                line["breakdown_value"] = None if key[2] else key[1]
                line["other"] = bool(key[2])
            lines.append(line)
    return lines


def trend(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: TrendDefinition,
          zone: str = "UTC") -> dict[str, Any]:
    """The trend of each series (and breakdown value) over the range, with the previous period when asked."""
    _check_regexes(store, project_id, definition)
    periods = periods_of(query, definition, zone)
    now = periods[0]
    top = _top_values(store, project_id, query, definition, zone, now) if definition.breakdown else None
    rows = store.query(*counts_query(project_id, query, definition, zone, top))
    labels = bucket_labels(now.first, now.last, zone, definition.interval)
    answer: dict[str, Any] = {
        "range": {"from": now.first.isoformat(), "to": now.last.isoformat(), "time_zone": zone,
                  "interval": definition.interval},
        "definition": [s.to_json() for s in definition.series],
        "breakdown": ({"property": definition.breakdown, "limit": definition.breakdown_limit}
                      if definition.breakdown else None),
        "labels": labels,
        "lines": _lines(rows, 0, definition, labels, top),
        "previous": None,
    }
    if definition.compare:
        before = periods[1]
        previous_labels = bucket_labels(before.first, before.last, zone, definition.interval)
        answer["previous"] = {
            "from": before.first.isoformat(), "to": before.last.isoformat(), "labels": previous_labels,
            "lines": _lines(rows, 1, definition, previous_labels, top),
        }
    return answer


def trend_sessions(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: TrendDefinition,
                   series: int, value: str | None, offset: int, limit: int, zone: str = "UTC") -> dict[str, Any]:
    """The sessions behind one line of the trend (``series`` 0-based; with a breakdown, ``value`` one of its
    values or None for "other"), in the range, by their first such event, paged; each replay link opens a
    moment before that event."""
    if not 0 <= series < len(definition.series):
        raise BadParameter("index", f"index must be from 0 to {len(definition.series) - 1}")
    _check_regexes(store, project_id, definition)
    now = _period(query.date_from, query.date_to, zone)
    q, source = _joined(project_id, query, definition, zone, [now])
    conditions = [f"series = {series + 1}"]
    if definition.breakdown:
        if value is None:
            top = _top_values(store, project_id, query, definition, zone, now).get(series + 1, [])
            if top:
                conditions.append(f"value NOT IN ({', '.join(q.bind(v, 'String') for v in top)})")
        else:
            conditions.append(f"value = {q.bind(value, 'String')}")
    sql = (f"SELECT session_id, any(anonymous_id) AS anonymous_id, toUnixTimestamp64Milli(min(ts)) AS first_ms,"
           " toUnixTimestamp64Milli(any(started_at)) AS started_ms, count() AS events, count() OVER () AS total\n"
           f"FROM {source}\nWHERE {' AND '.join(conditions)}\n"
           f"GROUP BY session_id\nORDER BY first_ms, session_id\nLIMIT {int(limit)} OFFSET {int(offset)}")
    rows = store.query(sql, q.params)
    total = int(rows[0]["total"]) if rows else 0
    if not rows and offset:
        # Past the last page: the window total is not there to read, so count again.
        count_sql = f"SELECT uniqExact(session_id) AS n FROM {source}\nWHERE {' AND '.join(conditions)}"
        total = int(store.query(count_sql, q.params)[0]["n"])
    listed = []
    for r in rows:
        at_s = max(0, (int(r["first_ms"]) - REPLAY_LEAD_MS - int(r["started_ms"])) // 1000)
        listed.append({
            "session_id": r["session_id"], "anonymous_id": r["anonymous_id"], "started_at_ms": int(r["started_ms"]),
            "first_event_ms": int(r["first_ms"]), "events": int(r["events"]), "replay_at_s": at_s,
            "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}?t={at_s}",
        })
    return {
        "series": series,
        "label": definition.series[series].label,
        "breakdown_value": value,
        "total": total,
        "sessions": listed,
        "next_offset": offset + limit if offset + limit < total else None,
    }
