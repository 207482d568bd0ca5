"""JS errors: grouped by message and top stack frame, with counts over time, affected sessions and visitors, and
for one group the sessions it happened in, each with a replay link that opens at the error.

What an error group means — decided here, once:

- An **error** is an ``error`` event of the tracker (``{message, source, line, col, stack}`` in its props). It
  belongs to the sessions the overview's filters pick, and to the range and a bucket of the series by its
  session's START, as every view counts sessions (``overview.scoped_sessions``).
- Its **group** is (normalised message, normalised top frame):
  - the message, with URLs' query strings and fragments cut, UUIDs made ``<id>`` and runs of 4+ digits made
    ``<n>``, white space collapsed and trimmed, Chrome's ``Uncaught`` prefix dropped, at most 300 characters
    (``(no message)`` when empty);
  - the top frame: the stack's first ``at …`` line (Chrome), else its first ``function@url:line:col`` line
    (Firefox, Safari), written ``function (file)``; line and column numbers, URLs' query strings, build hashes
    in script names (``main.3f2a9c1b.js`` → ``main.*.js``) and runs of 4+ digits are dropped, so a redeploy or
    a cache-busting parameter keeps the group. Without a stack frame, the script's URL (``source``) cleaned
    alike; else empty.
  - the group id: the first 16 hex digits of MD5(message + newline + frame).
- **first / last seen** are the group's earliest and latest error in the range; the previous period's count
  says whether a group is new.
- A session's replay opens at its first error of the group: ``?t=`` is the error's time less the session's start,
  in seconds (the replay's offset 0 is the session's first event).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery, bucket_labels, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.analytics.vitals import picked_events
from hitmetrix.store.clickhouse import EventStore

MAX_GROUP_CHARS = 300
NO_MESSAGE = "(no message)"
SORTS = ("count", "sessions", "visitors", "last_seen", "first_seen")
DEFAULT_GROUPS = 50
MAX_GROUPS = 200
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE = 10_000
GROUP_ID = re.compile(r"^[0-9a-f]{16}$")
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"

# The rules, as (RE2 pattern, replacement) pairs; the same patterns mean the same in Python's ``re``, which the
# tests use to compute the groups independently. Only ASCII classes: RE2 and Python agree on those.
_URL_TAIL = (r"([a-zA-Z][a-zA-Z0-9+.-]*://[^ \t\r\n?#]*)[?#][^ \t\r\n]*", r"\1")
_UUID = (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<id>")
_LONG_NUMBER = (r"[0-9]{4,}", "<n>")
_SPACES = (r"[ \t\r\n]+", " ")
MESSAGE_RULES = (_URL_TAIL, _UUID, _LONG_NUMBER, _SPACES)
# Chrome prefixes an uncaught error's message, Firefox does not: one error, one group.
_UNCAUGHT = (r"^Uncaught ", "")
CHROME_FRAME = r"^at [^ ]"
OTHER_FRAME = r"^[^@]*@.*:[0-9]+(:[0-9]+)?$"
_EDGE_SPACE = (r"^[ \t\r]+|[ \t\r]+$", "")
# A Chrome line loses "at "; a Firefox one reads "function (url…)", or just the url without a function name.
CHROME_RULES = ((r"^at ", ""),)
OTHER_RULE = (r"^([^@]+)@(.*)$", r"\1 (\2)")
FRAME_RULES = (
    (r":[0-9]+(:[0-9]+)?(\)?)$", r"\2"),  # line and column
    (r"([a-zA-Z][a-zA-Z0-9+.-]*://[^ ?#()]*)[?#][^ ()]*", r"\1"),  # query string, fragment
    (r"([./-])[0-9a-fA-F]{8,}(\.m?js)", r"\1*\2"),  # a build hash in the script's name
    _LONG_NUMBER,
)
SOURCE_RULES = FRAME_RULES[1:]


@dataclass(frozen=True)
class ErrorsQuery:
    base: OverviewQuery
    search: str = ""
    sort: str = "count"
    groups: int = DEFAULT_GROUPS

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> ErrorsQuery:
        base = OverviewQuery.from_query(params, today)
        search = param.text(params, "search", MAX_TEXT_CHARS)
        sort = param.choice(params, "sort", SORTS) or "count"
        groups = param.whole_number(params, "groups", DEFAULT_GROUPS, 1, MAX_GROUPS)
        return cls(base, search, sort, groups)


def parse_group(value: str) -> str:
    """A group id of an answer (16 hex digits); BadParameter otherwise."""
    value = value.strip().lower()
    if not GROUP_ID.match(value):
        raise BadParameter("group", "group must be a group id of the errors answer (16 hex digits)")
    return value


def _rules(q: ScopedSelect, expr: str, rules: tuple[tuple[str, str], ...], once: bool = False) -> str:
    fn = "replaceRegexpOne" if once else "replaceRegexpAll"
    for pattern, replacement in rules:
        expr = f"{fn}({expr}, {q.bind(pattern, 'String')}, {q.bind(replacement, 'String')})"
    return expr


def message_sql(q: ScopedSelect, raw: str) -> str:
    cleaned = _rules(q, f"trimBoth({_rules(q, raw, MESSAGE_RULES)})", (_UNCAUGHT,), once=True)
    return f"leftUTF8({cleaned}, {MAX_GROUP_CHARS})"


def frame_sql(q: ScopedSelect, stack: str, source: str) -> str:
    lines = f"arrayMap(l -> {_rules(q, 'l', (_EDGE_SPACE,))}, splitByChar('\\n', {stack}))"
    chrome = f"arrayFirst(l -> match(l, {q.bind(CHROME_FRAME, 'String')}), {lines})"
    other = f"arrayFirst(l -> match(l, {q.bind(OTHER_FRAME, 'String')}), {lines})"
    frame = (f"multiIf({chrome} != '', {_rules(q, chrome, CHROME_RULES, once=True)},"
             f" startsWith({other}, '@'), substring({other}, 2),"
             f" {other} != '', {_rules(q, other, (OTHER_RULE,), once=True)}, '')")
    frame = _rules(q, frame, FRAME_RULES[:1], once=True)
    frame = _rules(q, frame, FRAME_RULES[1:])
    from_source = _rules(q, source, SOURCE_RULES)
    return f"leftUTF8(if({frame} != '', {frame}, {from_source}), {MAX_GROUP_CHARS})"


def _prop(key: str) -> str:
    return f"JSONExtractString(props, '{key}')"


def _errors_sql(project_id: int, query: OverviewQuery, zone: str, search: str = "",
                session_columns: tuple[str, ...] = ()) -> tuple[str, dict[str, Any], ScopedSelect]:
    """One row per error of the picked sessions, with its group (see the module's docstring)."""
    from_sql, params, e = picked_events(
        project_id, query, zone, "type = 'error'",
        ("toUnixTimestamp64Milli(ts) AS error_ms", "path", f"{_prop('message')} AS raw_message",
         f"{_prop('stack')} AS stack", f"{_prop('source')} AS source",
         "JSONExtractInt(props, 'line') AS line", "JSONExtractInt(props, 'col') AS col"),
        session_columns,
    )
    message = message_sql(e, "raw_message")
    frame = frame_sql(e, "stack", "source")
    inner = (f"SELECT *, if(message_norm = '', '{NO_MESSAGE}', message_norm) AS message,"
             " substring(lower(hex(MD5(concat(message, '\\n', frame)))), 1, 16) AS group_id\n"
             f"FROM (SELECT *, {message} AS message_norm, {frame} AS frame FROM {from_sql})")
    if search:
        inner = f"SELECT * FROM ({inner}) WHERE positionCaseInsensitiveUTF8(message, {e.bind(search, 'String')}) > 0"
    return inner, params, e


_ORDER = {"count": "error_count DESC", "sessions": "session_count DESC", "visitors": "visitor_count DESC",
          "last_seen": "last_seen_ms DESC", "first_seen": "first_seen_ms DESC"}
_GROUP_COLUMNS = (
    "any(message) AS message",
    "any(frame) AS frame",
    "countIf(in_range) AS error_count",
    "uniqExactIf(session_id, in_range) AS session_count",
    "uniqExactIf(visitor, in_range) AS visitor_count",
    "minIf(error_ms, in_range) AS first_seen_ms",
    "maxIf(error_ms, in_range) AS last_seen_ms",
    "countIf(NOT in_range) AS previous_count",
    "sumMapIf([bucket], [toUInt64(1)], in_range) AS by_bucket",
    "argMaxIf((raw_message, stack, source, line, col, path), (error_ms, session_id), in_range) AS latest",
)


def _group(row: Mapping[str, Any], labels: list[str], project_id: int) -> dict[str, Any]:
    counts = dict(zip(row["by_bucket"][0], row["by_bucket"][1], strict=True))
    raw_message, stack, source, line, col, path = row["latest"]
    return {
        "group": row["group_id"],
        "message": row["message"],
        "frame": row["frame"],
        "count": int(row["error_count"]),
        "sessions": int(row["session_count"]),
        "visitors": int(row["visitor_count"]),
        "first_seen_ms": int(row["first_seen_ms"]),
        "last_seen_ms": int(row["last_seen_ms"]),
        "previous_count": int(row["previous_count"]),
        "new": int(row["previous_count"]) == 0,
        "series": [int(counts.get(label, 0)) for label in labels],
        "latest": {"message": raw_message, "stack": stack, "source": source, "line": int(line), "col": int(col),
                   "path": path},
        "url": f"/api/v1/projects/{project_id}/errors/{row['group_id']}",
    }


def errors(store: EventStore, project_id: int, query: ErrorsQuery, zone: str = DEFAULT_TIME_ZONE) -> dict[str, Any]:
    """The error groups of ``query`` for one project (the caller checked access), days of the zone ``zone``."""
    base = query.base
    inner, params, _ = _errors_sql(project_id, query.base, zone, query.search)
    labels = bucket_labels(base, zone)
    groups_sql = (f"SELECT group_id, {', '.join(_GROUP_COLUMNS)}\nFROM ({inner})\nGROUP BY group_id\n"
                  f"HAVING error_count > 0\nORDER BY {_ORDER[query.sort]}, error_count DESC, group_id\n"
                  f"LIMIT {int(query.groups) + 1}\n{_SETTINGS}")
    rows = store.query(groups_sql, params)
    totals_sql = (
        "SELECT countIf(in_range) AS error_count, uniqExactIf(session_id, in_range) AS session_count,"
        " uniqExactIf(visitor, in_range) AS visitor_count, uniqExactIf(group_id, in_range) AS group_count,"
        " countIf(NOT in_range) AS prev_error_count, uniqExactIf(session_id, NOT in_range) AS prev_session_count,"
        " uniqExactIf(group_id, NOT in_range) AS prev_group_count,"
        " sumMapIf([bucket], [toUInt64(1)], in_range) AS by_bucket"
        f"\nFROM ({inner})\n{_SETTINGS}"
    )
    totals_rows = store.query(totals_sql, params)
    t = totals_rows[0] if totals_rows else {}
    by_bucket = dict(zip(*(t.get("by_bucket") or ([], [])), strict=True))
    sessions_in_range = _session_count(store, project_id, base, zone)
    previous_from, previous_to = base.previous
    return {
        "range": {"from": base.date_from.isoformat(), "to": base.date_to.isoformat(), "time_zone": zone,
                  "bucket": base.bucket},
        "search": query.search,
        "sort": query.sort,
        "totals": {"errors": int(t.get("error_count") or 0), "sessions": int(t.get("session_count") or 0),
                   "visitors": int(t.get("visitor_count") or 0), "groups": int(t.get("group_count") or 0),
                   "sessions_in_range": sessions_in_range},
        "previous": {"from": previous_from.isoformat(), "to": previous_to.isoformat(),
                     "totals": {"errors": int(t.get("prev_error_count") or 0),
                                "sessions": int(t.get("prev_session_count") or 0),
                                "groups": int(t.get("prev_group_count") or 0)}},
        "series": [{"bucket": label, "errors": int(by_bucket.get(label, 0))} for label in labels],
        "groups": [_group(row, labels, project_id) for row in rows[: query.groups]],
        "has_more_groups": len(rows) > query.groups,
    }


def _session_count(store: EventStore, project_id: int, base: OverviewQuery, zone: str) -> int:
    q = scoped_sessions(project_id, base, base.date_from, zone)
    q.select("count() AS n")
    found = store.query(q.sql(), q.params)
    return int(found[0]["n"]) if found else 0


def error_group(store: EventStore, project_id: int, query: ErrorsQuery, group: str, page: int, page_size: int,
                zone: str = DEFAULT_TIME_ZONE) -> dict[str, Any] | None:
    """One group (as in ``errors``) and its sessions in the range, latest error first, one page of them, each
    with a replay link at its first error of the group; None when the group has no error in the range."""
    inner, params, e = _errors_sql(project_id, query.base, zone, "",
                                   ("browser", "os", "country", "device_type"))
    wanted = e.bind(group, "String")
    labels = bucket_labels(query.base, zone)
    group_sql = (f"SELECT group_id, {', '.join(_GROUP_COLUMNS)}\nFROM ({inner})\nWHERE group_id = {wanted}\n"
                 f"GROUP BY group_id\nHAVING error_count > 0\n{_SETTINGS}")
    rows = store.query(group_sql, params)
    if not rows:
        return None
    first = (page - 1) * page_size
    sessions_sql = (
        "SELECT session_id, any(visitor) AS visitor_id, any(started) AS started_ms, min(error_ms) AS first_error_ms,"
        " max(error_ms) AS last_error_ms, count() AS error_count, argMin(path, error_ms) AS page,"
        " any(browser) AS browser_name, any(os) AS os_name, any(country) AS country_code,"
        " any(device_type) AS device\n"
        f"FROM ({inner})\nWHERE group_id = {wanted} AND in_range\nGROUP BY session_id\n"
        f"ORDER BY last_error_ms DESC, session_id\nLIMIT {int(first)}, {int(page_size) + 1}\n{_SETTINGS}"
    )
    found = store.query(sessions_sql, params)
    sessions = []
    for r in found[:page_size]:
        offset_ms = max(0, int(r["first_error_ms"]) - int(r["started_ms"]))
        sessions.append({
            "session_id": r["session_id"],
            "visitor": r["visitor_id"],
            "started_ms": int(r["started_ms"]),
            "error_ms": int(r["first_error_ms"]),
            "last_error_ms": int(r["last_error_ms"]),
            "offset_ms": offset_ms,
            "errors": int(r["error_count"]),
            "page": r["page"],
            "browser": r["browser_name"],
            "os": r["os_name"],
            "country": r["country_code"],
            "device": r["device"],
            "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}?t={seek_seconds(offset_ms)}",
        })
    return {
        "range": {"from": query.base.date_from.isoformat(), "to": query.base.date_to.isoformat(),
                  "time_zone": zone, "bucket": query.base.bucket},
        "buckets": labels,
        **_group(rows[0], labels, project_id),
        "page": page,
        "has_more": len(found) > page_size,
        "session_list": sessions,
    }


def seek_seconds(offset_ms: int) -> str:
    """The replay's ``?t=`` for an offset: seconds, with the milliseconds when there are any."""
    seconds, ms = divmod(offset_ms, 1000)
    return f"{seconds}.{ms:03d}" if ms else str(seconds)
