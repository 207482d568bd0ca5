"""Frustration signals as the dashboard reads them: the pages with most, and one session's marks for its replay.

What each signal is, is decided once in ``hitmetrix.analytics.frustration``; the loader computes them per session
at load time (``hitmetrix.store.schema`` step 5: ``frustration_marks``, a count per signal and per page), so these
reads touch ``sessions`` rows, or the few ``session_segments`` rows of one session, never raw events.

A view counts the signals of the sessions the overview's range and filters pick (``overview.scoped_sessions``), by
the page the signal happened on: a click's page, the page left by a quick back, the page scrolled or moused on.
"""

from __future__ import annotations

from typing import Any

from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms
from hitmetrix.analytics.overview import OverviewQuery, scoped_sessions
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import FRUSTRATION_COUNT_COLUMNS, FRUSTRATION_KINDS, SESSION_FRUSTRATION_COLUMNS

SIGNALS = FRUSTRATION_KINDS
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"
_MARKS = {name: expression for name, _, expression, _ in SESSION_FRUSTRATION_COLUMNS}["frustration_marks"]
# Marks whose key is the event that raised them (the click, or the tracker's own event); a quick back's is not one.
_EVENT_KEYED = frozenset(SIGNALS) - {"quick_back"}
_ANY_SIGNAL = " + ".join(FRUSTRATION_COUNT_COLUMNS) + " > 0"


def _totals_columns(q: ScopedSelect, query: OverviewQuery, zone: str) -> None:
    start_ms, _ = day_range_ms(query.date_from, None, zone)
    now = f"started_at >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')"
    for prefix, when in (("", now), ("prev_", f"NOT ({now})")):
        q.select(f"countIf({when}) AS {prefix}session_count")
        q.select(f"countIf({when} AND {_ANY_SIGNAL}) AS {prefix}frustrated")
        q.select(*(f"sumIf({column}, {when}) AS {prefix}{column}" for column in FRUSTRATION_COUNT_COLUMNS))


def totals_query(project_id: int, query: OverviewQuery, zone: str) -> ScopedSelect:
    """Sessions, frustrated sessions and each signal's count, of the range and of the previous period."""
    q = scoped_sessions(project_id, query, query.previous[0], zone)
    _totals_columns(q, query, zone)
    return q


def pages_query(project_id: int, query: OverviewQuery, zone: str) -> ScopedSelect:
    """Pages by signals raised on them: each signal's count, their sum and the sessions that raised any."""
    q = scoped_sessions(project_id, query, query.date_from, zone)
    q.select(
        "(arrayJoin(frustration_pages) AS fp).1 AS page",
        "sum(fp.3) AS total",
        "uniqExact(session_id) AS session_count",
        *(f"sumIf(fp.3, fp.2 = '{kind}') AS {kind}" for kind in SIGNALS),
    )
    q.group_by.append("page")
    q.order_by += ["total DESC", "session_count DESC", "page"]
    q.limit = query.limit
    return q


def _totals(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    sessions = int(row.get(f"{prefix}session_count") or 0)
    frustrated = int(row.get(f"{prefix}frustrated") or 0)
    return {
        "sessions": sessions,
        "frustrated_sessions": frustrated,
        "frustrated_rate": round(100 * frustrated / sessions, 1) if sessions else 0.0,
        "signals": {kind: int(row.get(f"{prefix}{column}") or 0) for column, kind in FRUSTRATION_COUNT_COLUMNS.items()},
    }


def pages_with_most_frustration(
    store: EventStore, project_id: int, query: OverviewQuery, zone: str = DEFAULT_TIME_ZONE
) -> dict[str, Any]:
    """The frustration signals of ``query``'s sessions (the caller checked access): totals beside the previous
    period's, and the ``query.limit`` pages with most signals, each signal counted."""
    totals_q = totals_query(project_id, query, zone)
    rows = store.query(totals_q.sql() + "\n" + _SETTINGS, totals_q.params)
    row = rows[0] if rows else {}
    pages_q = pages_query(project_id, query, zone)
    pages = store.query(pages_q.sql() + "\n" + _SETTINGS, pages_q.params)
    previous_from, previous_to = query.previous
    return {
        "range": {"from": query.date_from.isoformat(), "to": query.date_to.isoformat(), "time_zone": zone},
        "signals": list(SIGNALS),
        "totals": _totals(row),
        "previous": {"from": previous_from.isoformat(), "to": previous_to.isoformat(), "totals": _totals(row, "prev_")},
        "pages": [
            {
                "path": page["page"],
                "total": int(page["total"]),
                "sessions": int(page["session_count"]),
                "signals": {kind: int(page[kind]) for kind in SIGNALS},
            }
            for page in pages
        ],
    }


def session_marks(store: EventStore, project_id: int, session_id: str) -> dict[str, Any] | None:
    """One session's signals in time order (what its replay timeline marks) and their counts; None if no such
    session. Aggregated from its session_segments rows exactly as the loader writes its sessions row."""
    q = ScopedSelect(project_id).from_("session_segments", final=True)
    q.select("session_id", f"arrayMap(m -> (toUnixTimestamp64Milli(m.1), m.2, m.3, m.4), {_MARKS}) AS marks")
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.group_by.append("session_id")
    rows = store.query(q.sql() + "\n" + _SETTINGS, q.params)
    if not rows:
        return None
    marks = [
        {"ts": int(ts), "kind": kind, "path": path, "event_id": key if kind in _EVENT_KEYED else ""}
        for ts, kind, path, key in rows[0]["marks"]
    ]
    counts = {kind: sum(1 for m in marks if m["kind"] == kind) for kind in SIGNALS}
    return {"session_id": session_id, "counts": counts, "marks": marks}
