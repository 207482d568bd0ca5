"""Heatmaps of one page: where visitors clicked (all clicks, rage clicks, dead clicks), how far down they scrolled,
and which recorded pageview to replay underneath, for one device width bucket.

What a heatmap means — decided here, once:

- **Sessions** are those the overview's filters pick, started in the range (``overview.scoped_sessions``); their
  clicks and scroll reports count when they happened on a page that ``page`` matches, up to a day after the range
  ends (a session over midnight keeps its clicks). ``page`` is a path (``/pricing``) or, with a scheme, a URL
  without its query (``https://shop.example/pricing``); ``*`` matches any run of characters, the rest is literal,
  and the whole path (or URL) must match.
- The **width bucket** is the viewport width when the event happened (``vw`` from the tracker): ``desktop``
  1024 px and wider, ``tablet`` 768–1023 px, ``mobile`` under 768 px. Events without a width are in none.
- A click is placed on the **element** clicked (its CSS path, ``selector``) at the click's offset as a fraction
  of that element's box (``fx``, ``fy``), which lands on the same spot of the element at any width; and, for
  a page where the selector finds nothing, at its **document position** as fractions of the document's width
  and height then (``x / dw``, ``y / dh``).
- A **rage click** carries the tracker's ``rage`` flag (the click completing 3 clicks in 1 s within 30 px); a
  **dead click** is a click a ``$dead_click`` event names (or with a ``dead`` flag): see
  ``hitmetrix.analytics.frustration``.
- **Scroll depth** is per pageview: the deepest ``depth`` (bottom of the viewport as % of the page height) of
  the pageview's scroll reports (the tracker sends one at the end of every pageview, naming it as ``pv``;
  reports without ``pv`` count per session). ``reached[d]`` is the share of those pageviews that got to ``d``%.
- The **backdrop** is the latest matching pageview in the bucket of a session with a recording (of any bucket
  when the bucket has none): the page replays that session's recording up to just after it.

Reads ``events`` only for the rows and columns above (type, time, path, width, selector, position, props), and
the ``sessions`` and ``recordings`` rows that decide which sessions count. ClickHouse moves the cheap column
conditions into PREWHERE itself (``optimize_move_to_prewhere``; a test reads the plan).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

# Viewport widths of each bucket, inclusive (px).
WIDTHS: dict[str, tuple[int, int]] = {"desktop": (1024, 65535), "tablet": (768, 1023), "mobile": (1, 767)}
KINDS = ("clicks", "rage", "dead", "scroll")
DEFAULT_ELEMENTS = 50
MAX_ELEMENTS = 200
# Offset cells kept per element (fractions rounded to 1/100 of the box) and document cells kept in all.
MAX_OFFSET_CELLS = 300
MAX_POSITION_CELLS = 3000
MAX_BACKDROPS = 5
# A session started in the range may go on past its last day: its events count this long after it.
SESSION_TAIL_MS = 24 * 3_600_000
# A $dead_click is sent a second after its click: look this much further for the last ones.
DEAD_CLICK_DELAY_MS = 60_000
DEPTH_STEP = 5
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"
_KIND_COLUMN = {"clicks": "clicks", "rage": "rage_clicks", "dead": "dead_clicks", "scroll": "clicks"}


@dataclass(frozen=True)
class HeatmapQuery:
    base: OverviewQuery
    page: str
    width: str = "desktop"
    kind: str = "clicks"
    elements: int = DEFAULT_ELEMENTS

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> HeatmapQuery:
        """Parse URL parameters (the overview's range and filters too); BadParameter naming the wrong one."""
        base = OverviewQuery.from_query(params, today)
        page = param.text(params, "page", MAX_TEXT_CHARS)
        if not page:
            raise BadParameter("page", "page is required: a path like /pricing (* matches anything)")
        if not page.startswith(("/", "*", "http://", "https://")):
            raise BadParameter("page", "page must be a path starting with / (or *), or a URL with http(s)://")
        width = param.choice(params, "width", tuple(WIDTHS)) or "desktop"
        kind = param.choice(params, "kind", KINDS) or "clicks"
        elements = param.whole_number(params, "limit", DEFAULT_ELEMENTS, 1, MAX_ELEMENTS)
        return cls(base, page, width, kind, elements)


def like_pattern(page: str) -> str:
    """``page`` as a LIKE pattern: ``*`` is any run of characters, everything else (``%``, ``_``, ``\\``) literal."""
    escaped = page.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def width_bucket(viewport_w: int) -> str:
    """The bucket of a viewport width ('' when the width is unknown)."""
    return next((name for name, (low, high) in WIDTHS.items() if low <= viewport_w <= high), "")


def _events(project_id: int, query: HeatmapQuery, zone: str, types: str, *, bucket: bool = True) -> ScopedSelect:
    """``events`` of the matching page (and bucket) in the sessions the range and filters pick."""
    sessions = scoped_sessions(project_id, query.base, query.base.date_from, zone).select("session_id")
    # One parameter namespace: the sessions' conditions are bound in the same query.
    q = sessions.nested().from_("events")
    start_ms, end_ms = day_range_ms(query.base.date_from, query.base.date_to, zone)
    assert start_ms is not None and end_ms is not None
    q.where(f"type IN ({types})")
    q.where(f"ts >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"ts < fromUnixTimestamp64Milli({q.bind(end_ms + SESSION_TAIL_MS, 'Int64')}, 'UTC')")
    target = "cutQueryStringAndFragment(url)" if query.page.startswith("http") else "path"
    q.where(f"{target} LIKE {q.bind(like_pattern(query.page), 'String')}")
    if bucket:
        low, high = WIDTHS[query.width]
        q.where(f"viewport_w BETWEEN {q.bind(low, 'UInt16')} AND {q.bind(high, 'UInt16')}")
    q.where(f"session_id IN ({sessions.sql()})")
    return q


def _truthy(q: ScopedSelect, key: str) -> str:
    """A JSON props flag as the frustration reading has it: true, or a number other than 0."""
    k = q.bind(key, "String")
    return (f"(JSONType(props, {k}) = 'Bool' AND JSONExtractBool(props, {k}))"
            f" OR (JSONType(props, {k}) IN ('Int64', 'UInt64', 'Double') AND JSONExtractFloat(props, {k}) != 0)")


def clicks_query(project_id: int, query: HeatmapQuery, zone: str) -> ScopedSelect:
    """The matching clicks with their flags and geometry: the rows the aggregates below group."""
    q = _events(project_id, query, zone, "'click'")
    start_ms, end_ms = day_range_ms(query.base.date_from, query.base.date_to, zone)
    assert start_ms is not None and end_ms is not None
    dead_from = q.bind(start_ms, "Int64")
    dead_to = q.bind(end_ms + SESSION_TAIL_MS + DEAD_CLICK_DELAY_MS, "Int64")
    dead_events = (
        f"type = 'custom' AND name = '$dead_click' AND ts >= fromUnixTimestamp64Milli({dead_from}, 'UTC')"
        f" AND ts < fromUnixTimestamp64Milli({dead_to}, 'UTC')"
    )
    dead_ref = q.in_subquery("event_id", "events", "toUUIDOrZero(JSONExtractString(props, 'click'))", dead_events)
    dw, dh = "JSONExtractFloat(props, 'dw')", "JSONExtractFloat(props, 'dh')"
    q.select(
        "session_id",
        "toUnixTimestamp64Milli(ts) AS ms",
        "selector",
        "tag",
        "text",
        f"toUInt8({_truthy(q, 'rage')}) AS is_rage",
        f"toUInt8(({_truthy(q, 'dead')}) OR {dead_ref}) AS is_dead",
        "least(1, greatest(0, JSONExtractFloat(props, 'fx'))) AS fx",
        "least(1, greatest(0, JSONExtractFloat(props, 'fy'))) AS fy",
        f"if({dw} > 0, least(1, greatest(0, x / {dw})), 0) AS xf",
        f"if({dh} > 0, least(1, greatest(0, y / {dh})), 0) AS yf",
    )
    return q


def _kind_filter(kind: str) -> str:
    return {"rage": "is_rage", "dead": "is_dead"}.get(kind, "1")


def _run(store: EventStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return store.query(sql + "\n" + _SETTINGS, params)


def _elements(store: EventStore, clicks: ScopedSelect, query: HeatmapQuery) -> list[dict[str, Any]]:
    order = _KIND_COLUMN[query.kind]
    sql = (
        "SELECT selector, count() AS clicks, sum(is_rage) AS rage_clicks, sum(is_dead) AS dead_clicks,"
        " uniqExact(session_id) AS sessions, argMax(tag, ms) AS tag, argMax(text, ms) AS text,"
        " argMax(session_id, ms) AS latest_session, max(ms) AS latest_ms"
        f" FROM ({clicks.sql()}) WHERE selector != '' GROUP BY selector HAVING {order} > 0"
        f" ORDER BY {order} DESC, clicks DESC, selector LIMIT {int(query.elements)}"
    )
    return _run(store, sql, clicks.params)


def _offsets(store: EventStore, clicks: ScopedSelect, query: HeatmapQuery, selectors: list[str]
             ) -> dict[str, list[list[float]]]:
    """Per selector: [fx, fy, clicks, xf, yf] cells (offset in the box; the cell's mean document position)."""
    if not selectors:
        return {}
    wanted = ", ".join(clicks.bind(s, "String") for s in selectors)
    sql = (
        "SELECT selector, round(fx, 2) AS cx, round(fy, 2) AS cy, count() AS n, avg(xf) AS mx, avg(yf) AS my"
        f" FROM ({clicks.sql()}) WHERE ({_kind_filter(query.kind)}) AND selector IN ({wanted})"
        " GROUP BY selector, cx, cy ORDER BY selector, n DESC, cx, cy"
        f" LIMIT {MAX_OFFSET_CELLS} BY selector"
    )
    out: dict[str, list[list[float]]] = {}
    for row in _run(store, sql, clicks.params):
        out.setdefault(row["selector"], []).append(
            [float(row["cx"]), float(row["cy"]), int(row["n"]), round(float(row["mx"]), 4),
             round(float(row["my"]), 4)]
        )
    return out


def _positions(store: EventStore, clicks: ScopedSelect, query: HeatmapQuery) -> list[list[float]]:
    """[xf, yf, clicks] cells of every click of the kind by document position (fractions, 1/200 of the page)."""
    sql = (
        "SELECT round(xf * 200) / 200 AS cx, round(yf * 200) / 200 AS cy, count() AS n"
        f" FROM ({clicks.sql()}) WHERE {_kind_filter(query.kind)}"
        f" GROUP BY cx, cy ORDER BY n DESC, cx, cy LIMIT {MAX_POSITION_CELLS}"
    )
    return [[float(r["cx"]), float(r["cy"]), int(r["n"])] for r in _run(store, sql, clicks.params)]


def _totals(store: EventStore, clicks: ScopedSelect) -> dict[str, int]:
    sql = (
        "SELECT count() AS clicks, sum(is_rage) AS rage_clicks, sum(is_dead) AS dead_clicks,"
        f" uniqExact(session_id) AS sessions FROM ({clicks.sql()})"
    )
    rows = _run(store, sql, clicks.params)
    row = rows[0] if rows else {}
    return {k: int(row.get(k) or 0) for k in ("clicks", "rage_clicks", "dead_clicks", "sessions")}


def scroll_query(project_id: int, query: HeatmapQuery, zone: str) -> ScopedSelect:
    """Per pageview (``pv``; a session's reports without one together): its deepest scroll, 0–100."""
    q = _events(project_id, query, zone, "'scroll'")
    q.select(
        "session_id",
        "JSONExtractString(props, 'pv') AS pv",
        "least(100, greatest(0, max(JSONExtractFloat(props, 'depth')))) AS depth",
    )
    q.group_by += ["session_id", "pv"]
    return q


def scroll_depth(store: EventStore, project_id: int, query: HeatmapQuery, zone: str) -> dict[str, Any]:
    """How many pageviews reached each depth (every DEPTH_STEP %), and the mean of their deepest scroll."""
    q = scroll_query(project_id, query, zone)
    sql = f"SELECT toUInt8(floor(depth)) AS d, count() AS n, sum(depth) AS total FROM ({q.sql()}) GROUP BY d"
    rows = _run(store, sql, q.params)
    by_depth = {int(r["d"]): int(r["n"]) for r in rows}
    pageviews = sum(by_depth.values())
    total = sum(float(r["total"]) for r in rows)
    reached = []
    for depth in range(0, 101, DEPTH_STEP):
        n = sum(count for d, count in by_depth.items() if d >= depth)
        reached.append({"depth": depth, "pageviews": n, "percent": round(100 * n / pageviews, 1) if pageviews else 0.0})
    return {
        "pageviews": pageviews,
        "average_depth": round(total / pageviews, 1) if pageviews else None,
        "reached": reached,
    }


def backdrops_query(project_id: int, query: HeatmapQuery, zone: str, *, bucket: bool) -> ScopedSelect:
    """The latest matching pageviews of sessions with a recording: the candidates to replay underneath."""
    q = _events(project_id, query, zone, "'pageview'", bucket=bucket)
    q.where(q.in_subquery("session_id", "recordings", "session_id", "1"))
    q.select(
        "session_id",
        "toString(event_id) AS event_id",
        "toUnixTimestamp64Milli(ts) AS ts_ms",
        "toUnixTimestamp64Milli(client_ts) AS client_ts_ms",
        "url",
        "viewport_w",
        "viewport_h",
    )
    q.order_by += ["ts DESC", "session_id"]
    q.limit = MAX_BACKDROPS
    return q


def backdrops(store: EventStore, project_id: int, query: HeatmapQuery, zone: str) -> list[dict[str, Any]]:
    """Pageviews to replay as the backdrop, best first; ``in_bucket`` is false for ones of another width."""
    for in_bucket in (True, False):
        q = backdrops_query(project_id, query, zone, bucket=in_bucket)
        rows = _run(store, q.sql(), q.params)
        if rows:
            return [
                {
                    "session_id": r["session_id"],
                    "event_id": r["event_id"],
                    "ts_ms": int(r["ts_ms"]),
                    "client_ts_ms": int(r["client_ts_ms"]),
                    "url": r["url"],
                    "viewport_w": int(r["viewport_w"]),
                    "viewport_h": int(r["viewport_h"]),
                    "in_bucket": in_bucket and width_bucket(int(r["viewport_w"])) == query.width,
                    "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}",
                }
                for r in rows
            ]
    return []


def heatmap(store: EventStore, project_id: int, query: HeatmapQuery, zone: str = DEFAULT_TIME_ZONE) -> dict[str, Any]:
    """The heatmap of ``query`` for one project (the caller checked access), days of the zone ``zone``."""
    clicks = clicks_query(project_id, query, zone)
    elements = _elements(store, clicks, query)
    offsets = _offsets(store, clicks, query, [row["selector"] for row in elements])
    low, high = WIDTHS[query.width]
    return {
        "range": {"from": query.base.date_from.isoformat(), "to": query.base.date_to.isoformat(), "time_zone": zone},
        "page": query.page,
        "width": query.width,
        "widths": {name: {"min_px": lo, "max_px": hi if hi < 65535 else None} for name, (lo, hi) in WIDTHS.items()},
        "width_px": {"min": low, "max": high if high < 65535 else None},
        "kind": query.kind,
        "totals": _totals(store, clicks),
        "elements": [
            {
                "selector": row["selector"],
                "tag": row["tag"],
                "text": row["text"],
                "clicks": int(row["clicks"]),
                "rage_clicks": int(row["rage_clicks"]),
                "dead_clicks": int(row["dead_clicks"]),
                "sessions": int(row["sessions"]),
                "latest": {"session_id": row["latest_session"], "ts_ms": int(row["latest_ms"]),
                           "replay_url": f"/projects/{project_id}/sessions/{row['latest_session']}"},
                "offsets": offsets.get(row["selector"], []),
            }
            for row in elements
        ],
        "positions": _positions(store, clicks, query),
        "scroll": scroll_depth(store, project_id, query, zone),
        "backdrops": backdrops(store, project_id, query, zone),
    }
