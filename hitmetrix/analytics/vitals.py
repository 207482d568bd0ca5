"""Web vitals: the 75th percentile of LCP, INP, CLS, FCP and TTFB, overall, per page and over time, with the share
of good / needs-improvement / poor page loads and the previous period beside it.

What the numbers mean — decided here, once:

- A **measurement** is one ``$web_vitals`` custom event (the tracker's optional vitals chunk sends one per page
  load, when the page is first hidden): ``{lcp, inp, cls, fcp, ttfb}`` in ms (CLS unitless). A metric the page
  never produced is null and is left out of that metric only; a value that is not a finite number ≥ 0 (a bool,
  a string, a negative) counts as not produced. **Pageviews measured** counts the measurements.
- Measurements belong to sessions the overview's filters pick (``overview.scoped_sessions``), and to the range
  and to a bucket of the series by their session's START, as every view counts sessions.
- **p75** is ClickHouse ``quantileExactInclusive(0.75)``: the sorted values x[0..n-1], h = 0.75·(n-1), the
  value x[⌊h⌋] + (h-⌊h⌋)·(x[⌊h⌋+1]-x[⌊h⌋]) — linear interpolation between closest ranks (Python's
  ``statistics.quantiles(method="inclusive")``, numpy's default). Times are rounded to 2 decimals and CLS to 6,
  where interpolating 4-decimal values stays exact.
- **Ratings** by web.dev's thresholds (``THRESHOLDS``): good ≤ good-limit < needs improvement ≤ poor-limit < poor,
  per measurement (the shares, in % of that metric's measurements, 1 decimal) and for the p75 itself.
- A **page** is the measurement's URL path (the page shown when it was sent); with ``strip_ids`` every path
  segment that is a number, a UUID or a hex id becomes ``:id``, then the first ``group`` rule (``REGEX=>TARGET``,
  as in paths) whose regex matches replaces it. ``page`` keeps one (cleaned) page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery, bucket_labels, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.paths import HEX_SEGMENT, ID_SEGMENT, parse_groups
from hitmetrix.analytics.query import ScopedSelect, bound_value
from hitmetrix.store.clickhouse import EventStore

EVENT_NAME = "$web_vitals"
METRICS = ("lcp", "inp", "cls", "fcp", "ttfb")
# web.dev: (good up to and including, poor above); ms except CLS.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "lcp": (2500, 4000),
    "inp": (200, 500),
    "cls": (0.1, 0.25),
    "fcp": (1800, 3000),
    "ttfb": (800, 1800),
}
LABELS = {
    "lcp": "Largest Contentful Paint",
    "inp": "Interaction to Next Paint",
    "cls": "Cumulative Layout Shift",
    "fcp": "First Contentful Paint",
    "ttfb": "Time to First Byte",
}
SORTS = ("pageviews", "page", *METRICS)
DEFAULT_PAGES = 25
MAX_PAGES = 200
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1, join_use_nulls = 0"


def decimals(metric: str) -> int:
    return 6 if metric == "cls" else 2


def rating(metric: str, value: float | None) -> str | None:
    """good, needs-improvement or poor by web.dev's thresholds; None for no value."""
    if value is None:
        return None
    good, poor = THRESHOLDS[metric]
    return "good" if value <= good else "needs-improvement" if value <= poor else "poor"


@dataclass(frozen=True)
class VitalsQuery:
    base: OverviewQuery
    page: str = ""
    strip_ids: bool = True
    groups: tuple[tuple[str, str], ...] = ()
    sort: str = "pageviews"
    descending: bool = True
    pages: int = DEFAULT_PAGES

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> VitalsQuery:
        """Parse URL parameters (``group`` may repeat); BadParameter if wrong."""
        base = OverviewQuery.from_query(params, today)
        page = param.text(params, "page", MAX_TEXT_CHARS)
        strip_ids = param.flag(params, "strip_ids") if (params.get("strip_ids") or "").strip() else True
        getlist = getattr(params, "getlist", None)
        raw_rules: list[str] = getlist("group") if getlist else [params.get("group") or ""]
        groups = parse_groups([r for r in raw_rules if r.strip()])
        sort = param.choice(params, "sort", SORTS) or "pageviews"
        order = param.choice(params, "order", ("asc", "desc"))
        # Worst first for a metric, most measured first for pageviews, A–Z for the page.
        descending = order == "desc" if order else sort != "page"
        pages = param.whole_number(params, "pages", DEFAULT_PAGES, 1, MAX_PAGES)
        return cls(base, page, strip_ids, groups, sort, descending, pages)


def check_groups(store: EventStore, groups: tuple[tuple[str, str], ...]) -> None:
    """BadParameter for a group regex ClickHouse's RE2 refuses (lookaround…) though Python's ``re`` took it."""
    for regex, _ in groups:
        try:
            store.query("SELECT match('', {regex:String}) AS ok", {"regex": bound_value(regex, "String")})
        except RuntimeError as exc:  # chDB's error: the engine's own message says what is wrong
            reason = str(exc).split("error:", 1)[-1].strip().split(".")[0][:80]
            raise BadParameter("group", f"group regex {regex[:40]!r} is not valid: {reason}") from None


def bucket_sql(q: ScopedSelect, bucket: str, zone: str, column: str = "started_at") -> str:
    """The series label of ``column`` (as ``overview.bucket_labels`` writes them)."""
    tz = q.bind(zone, "String")
    if bucket == "hour":
        return f"formatDateTime(toStartOfHour({column}, {tz}), '%Y-%m-%d %H:00', {tz})"
    if bucket == "day":
        return f"toString(toDate({column}, {tz}))"
    return f"toString(toMonday({column}, {tz}))"


def picked_events(project_id: int, base: OverviewQuery, zone: str, event_condition: str,
                  event_columns: tuple[str, ...], session_columns: tuple[str, ...] = ()
                  ) -> tuple[str, dict[str, Any], ScopedSelect]:
    """FROM-clause SQL joining events that meet ``event_condition`` to the sessions the filters pick (started in
    the range or the previous period): each row has the event's ``event_columns`` and the session's
    ``session_id``, ``visitor``, ``started`` (ms), ``bucket``, ``in_range`` (1: this range, 0: previous) and
    the sessions columns ``session_columns``.

    Returns (SQL, its parameters, the events builder, to bind more values into the same parameters)."""
    s = scoped_sessions(project_id, base, base.previous[0], zone)
    range_start_ms, _ = day_range_ms(base.date_from, None, zone)
    prev_start_ms, _ = day_range_ms(base.previous[0], None, zone)
    s.select(
        "session_id AS sid",
        "anonymous_id AS visitor",
        "toUnixTimestamp64Milli(started_at) AS started",
        f"{bucket_sql(s, base.bucket, zone)} AS bucket",
        f"started_at >= fromUnixTimestamp64Milli({s.bind(range_start_ms, 'Int64')}, 'UTC') AS in_range",
        *session_columns,
    )
    # One set of parameters for both halves of the join: the names count on from the sessions' ones.
    e = s.nested().from_("events")
    e.select("session_id", *event_columns)
    e.where(event_condition)
    # A session started in the periods has every event at or after its start.
    e.where(f"ts >= fromUnixTimestamp64Milli({e.bind(prev_start_ms, 'Int64')}, 'UTC')")
    sql = f"({e.sql()}) AS e\nINNER JOIN ({s.sql()}) AS s ON e.session_id = s.sid"
    return sql, s.params, e


def _number(key: str) -> str:
    """A metric of the event's props, NULL unless a finite number ≥ 0."""
    k = f"'{key}'"
    return (f"if(JSONType(props, {k}) IN ('Int64', 'UInt64', 'Double') AND isFinite(JSONExtractFloat(props, {k}))"
            f" AND JSONExtractFloat(props, {k}) >= 0, JSONExtractFloat(props, {k}), NULL)")


def cleaned_page_sql(e: ScopedSelect, query: VitalsQuery, column: str) -> str:
    """The page of ``column`` (a path) after the id stripping and the group rules (see the module's docstring)."""
    cleaned = column
    if query.strip_ids:
        is_id = f"match(seg, '{ID_SEGMENT}') OR (match(seg, '{HEX_SEGMENT}') AND match(seg, '[0-9]'))"
        cleaned = f"arrayStringConcat(arrayMap(seg -> if({is_id}, ':id', seg), splitByChar('/', {cleaned})), '/')"
    if query.groups:
        arms = ", ".join(f"match(x, {e.bind(regex, 'String')}), {e.bind(target, 'String')}"
                         for regex, target in query.groups)
        cleaned = f"arrayMap(x -> multiIf({arms}, x), [{cleaned}])[1]"
    return cleaned


def _measurements(project_id: int, query: VitalsQuery, zone: str) -> tuple[str, dict[str, Any]]:
    """SQL of one row per measurement: in_range, bucket, page and each metric (Nullable)."""
    columns = tuple(f"{_number(m)} AS {m}" for m in METRICS)
    from_sql, params, e = picked_events(project_id, query.base, zone,
                                        f"type = 'custom' AND name = '{EVENT_NAME}'", ("path",) + columns)
    page = cleaned_page_sql(e, query, "path")
    sql = f"SELECT in_range, bucket, {page} AS page, {', '.join(METRICS)}\nFROM {from_sql}"
    if query.page:
        sql = f"SELECT * FROM ({sql}) WHERE page = {e.bind(query.page, 'String')}"
    return sql, params


def _aggregates(prefix: str, when: str) -> list[str]:
    cols = [f"countIf({when}) AS {prefix}pageviews"]
    for m in METRICS:
        good, poor = THRESHOLDS[m]
        cols += [
            f"quantileExactInclusiveIf(0.75)({m}, {when} AND {m} IS NOT NULL) AS {prefix}{m}_p75",
            f"countIf({when} AND {m} IS NOT NULL) AS {prefix}{m}_n",
            f"countIf({when} AND {m} <= {good}) AS {prefix}{m}_good",
            f"countIf({when} AND {m} > {good} AND {m} <= {poor}) AS {prefix}{m}_ni",
            f"countIf({when} AND {m} > {poor}) AS {prefix}{m}_poor",
        ]
    return cols


def _p75(metric: str, value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, decimals(metric))


def _metric(row: Mapping[str, Any], prefix: str, metric: str) -> dict[str, Any]:
    n = int(row.get(f"{prefix}{metric}_n") or 0)
    counts = {k: int(row.get(f"{prefix}{metric}_{k}") or 0) for k in ("good", "ni", "poor")}
    p75 = _p75(metric, row.get(f"{prefix}{metric}_p75")) if n else None
    return {
        "p75": p75,
        "rating": rating(metric, p75),
        "samples": n,
        "good": round(100 * counts["good"] / n, 1) if n else 0.0,
        "needs_improvement": round(100 * counts["ni"] / n, 1) if n else 0.0,
        "poor": round(100 * counts["poor"] / n, 1) if n else 0.0,
    }


def _totals(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    return {"pageviews": int(row.get(f"{prefix}pageviews") or 0),
            **{m: _metric(row, prefix, m) for m in METRICS}}


def _change(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Per metric, the p75's change from the previous period in % (None without both values)."""
    out: dict[str, Any] = {}
    for m in METRICS:
        a, b = now[m]["p75"], before[m]["p75"]
        out[m] = round(100 * (a - b) / b, 1) if a is not None and b else None
    return out


_ORDER_COLUMNS = {"pageviews": "pageviews", "page": "page", **{m: f"{m}_p75" for m in METRICS}}


def vitals(store: EventStore, project_id: int, query: VitalsQuery, zone: str = DEFAULT_TIME_ZONE) -> dict[str, Any]:
    """Web vitals of ``query`` for one project (the caller checked access), days of the zone ``zone``."""
    check_groups(store, query.groups)
    base = query.base
    inner, params = _measurements(project_id, query, zone)
    totals_sql = (f"SELECT {', '.join(_aggregates('', 'in_range') + _aggregates('prev_', 'NOT in_range'))}\n"
                  f"FROM ({inner})\n{_SETTINGS}")
    totals_rows = store.query(totals_sql, params)
    row = totals_rows[0] if totals_rows else {}
    series_sql = (f"SELECT bucket, {', '.join(_aggregates('', '1'))}\nFROM ({inner})\nWHERE in_range\n"
                  f"GROUP BY bucket\n{_SETTINGS}")
    by_bucket = {r["bucket"]: r for r in store.query(series_sql, params)}
    direction = "DESC" if query.descending else "ASC"
    order = _ORDER_COLUMNS[query.sort]
    if query.sort in METRICS:
        # Pages without a value of the sort metric go last either way.
        order_by = f"{query.sort}_n = 0, {order} {direction}, pageviews DESC, page"
    else:
        order_by = f"{order} {direction}, page"
    pages_sql = (f"SELECT page, {', '.join(_aggregates('', '1'))}\nFROM ({inner})\nWHERE in_range\n"
                 f"GROUP BY page\nORDER BY {order_by}\nLIMIT {int(query.pages) + 1}\n{_SETTINGS}")
    page_rows = store.query(pages_sql, params)
    now, before = _totals(row), _totals(row, "prev_")
    previous_from, previous_to = base.previous
    return {
        "range": {"from": base.date_from.isoformat(), "to": base.date_to.isoformat(), "time_zone": zone,
                  "bucket": base.bucket},
        "metrics": [{"key": m, "label": LABELS[m], "unit": "" if m == "cls" else "ms",
                     "good": THRESHOLDS[m][0], "poor": THRESHOLDS[m][1]} for m in METRICS],
        "page": query.page,
        "sort": query.sort,
        "order": "desc" if query.descending else "asc",
        "totals": now,
        "previous": {"from": previous_from.isoformat(), "to": previous_to.isoformat(), "totals": before},
        "change": _change(now, before),
        "series": [
            {"bucket": label, "pageviews": int(by_bucket.get(label, {}).get("pageviews") or 0),
             **{m: _metric(by_bucket.get(label, {}), "", m)["p75"] for m in METRICS}}
            for label in bucket_labels(base, zone)
        ],
        "pages": [{"page": r["page"], **_totals(r)} for r in page_rows[: query.pages]],
        "has_more_pages": len(page_rows) > query.pages,
    }
