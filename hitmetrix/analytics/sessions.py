"""Sessions: the filterable list, one session's summary and events, its recording.

Every query is built with `ScopedSelect`, so it is scoped to one project;
callers have already checked that the caller may see that project.

Which sessions a date range holds — decided here, once: a session is in the
range if it STARTED in it (its first event, whatever segment it was loaded
in), like Plausible. Its row counts every event of every segment, including
those after the range ends, so a session that crosses midnight or the range's
end is listed whole (its real start, entry page and duration). Days are days of
the project's time zone (``days.day_range_ms``).

The list reads ``sessions``, one row per session in the order the list shows
(newest first): a page reads a page. The loader rewrites a session's row when
new segments touch it, so a few stale versions may exist until ClickHouse merges
them; the list therefore finds candidate rows in order without FINAL (cheap),
then reads just those rows with FINAL (the newest version, tombstones dropped)
and applies the filters again to what it got.

Filters are conditions on that one row: its own values, the frustration signals
the loader counted for it (``frustration=rage,dead``: any of them), and every
filter of the overview (referrer, UTM tags, identified, a property, a cohort…),
parsed by ``OverviewQuery`` and turned into SQL by ``overview.scoped_sessions``,
so an analytics view's "matching sessions" link lists exactly its sessions. The
list keeps its own ``url`` filter (a visited URL contains the text, its query
string included), a superset of the overview's (a visited path contains it).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import zstandard

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE, day_range_ms
from hitmetrix.analytics.overview import OverviewQuery, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import (
    FRUSTRATION_COUNT_COLUMNS,
    FRUSTRATION_KINDS,
    SESSION_AGGREGATES,
    SESSION_FRUSTRATION_COLUMNS,
)

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")
_MS = "toUnixTimestamp64Milli"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURSOR_MS = re.compile(r"^-?[0-9]{1,19}$")
MAX_CURSOR_CHARS = 200  # a real cursor is under 120
MAX_DURATION_S = 10**7
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# What the list and the summary show of a session; names are the API's field names.
_SHOWN = (
    "started_at",
    "duration_ms",
    "pageviews",
    "clicks",
    "errors",
    "events",
    "entry_url",
    "country",
    "browser",
    "os",
    "device_type",
    "user_id",
)
_AGGREGATE = dict(SESSION_AGGREGATES)
_MARKS = {name: expression for name, _, expression, _ in SESSION_FRUSTRATION_COLUMNS}["frustration_marks"]
# One session aggregated from its session_segments rows (the same aggregates as the loader's rows).
_SUMMARY_COLUMNS = (
    "session_id",
    *(
        f"{_MS}({_AGGREGATE[name]}) AS {name}" if name == "started_at" else f"{_AGGREGATE[name]} AS {name}"
        for name in _SHOWN
    ),
    *(f"arrayCount(m -> m.2 = '{kind}', {_MARKS}) AS {name}" for name, kind in FRUSTRATION_COUNT_COLUMNS.items()),
)
# A row of the sessions table as the API shows it (the frustration counts: one per signal, from the load).
_ROW_COLUMNS = (
    "session_id",
    *(f"{_MS}(started_at) AS started_at" if n == "started_at" else n for n in _SHOWN),
    *FRUSTRATION_COUNT_COLUMNS,
)
# The frustration signals a list can be filtered by (`frustration=rage,dead`: sessions with any of them).
FRUSTRATION_SIGNALS = FRUSTRATION_KINDS
_SIGNAL_COLUMN = {kind: name for name, kind in FRUSTRATION_COUNT_COLUMNS.items()}
# The list's own parameters; every other one is an overview filter (OverviewQuery parses it, so a filter added
# there works here too).
LIST_PARAMS = frozenset({
    "from", "to", "url", "country", "device", "browser", "os", "min_duration", "max_duration", "has_errors",
    "user", "frustration", "frustration_page", "cursor", "limit",
})
# Candidates read per round before checking them (times the page size), and the most rounds a page takes.
_CANDIDATES_PER_ROW = 2
_MAX_CANDIDATES = 100_000
_MAX_ROUNDS = 8
# Sessions (newest first) whose values the filter menus offer.
OPTIONS_FROM_SESSIONS = 100_000
# Aliases shadow column names (sum(errors) AS errors): make columns win inside expressions.
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"


@dataclass(frozen=True)
class SessionFilters:
    """What the session list can be narrowed by; parsed from and written back to a URL query."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    url: str = ""
    country: str = ""
    device: str = ""
    browser: str = ""
    os: str = ""
    min_duration: float | None = None
    max_duration: float | None = None
    has_errors: bool = False
    user: str = ""
    # Sessions with any of these signals; with frustration_page, any of them (all when none named) on that page.
    frustration: tuple[str, ...] = ()
    frustration_page: str = ""
    # The overview's filters the list has no field of its own for (referrer, UTM tags, identified, a property…),
    # as OverviewQuery parsed them: they mean here what they mean in every analytics view.
    analytics: tuple[tuple[str, str], ...] = ()
    # The `cohort` filter among them, as the web layer resolved it (``overview.OverviewQuery.cohort``).
    cohort: Any = field(default=None, compare=False)

    _QUERY_NAMES: ClassVar[dict[str, str]] = {"date_from": "from", "date_to": "to"}

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> SessionFilters:
        """Parse URL parameters; raise BadParameter with a message a person can act on."""
        country = param.text(params, "country", 64).upper()
        if country and not _COUNTRY.match(country):
            raise BadParameter("country", "country must be a two-letter code like DE")
        filters = cls(
            date_from=param.day(params, "from"),
            date_to=param.day(params, "to"),
            url=param.text(params, "url", 500),
            country=country,
            device=param.choice(params, "device", DEVICE_TYPES),
            browser=param.text(params, "browser", 64),
            os=param.text(params, "os", 64),
            min_duration=param.seconds(params, "min_duration", MAX_DURATION_S),
            max_duration=param.seconds(params, "max_duration", MAX_DURATION_S),
            has_errors=param.flag(params, "has_errors"),
            user=param.text(params, "user", 256),
            frustration=_signals(params),
            frustration_page=param.text(params, "frustration_page", 500),
            analytics=_overview_filters(params),
        )
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            raise BadParameter("from", "from must not be after to")
        return filters

    def overview_query(self) -> OverviewQuery:
        """The overview filters as an OverviewQuery (its days unused): what ``resolve_cohort`` takes."""
        day = dt.date(2000, 1, 1)
        return OverviewQuery(day, day, self.analytics, cohort=self.cohort)

    def to_query(self) -> dict[str, str]:
        """The non-empty filters as URL parameters (inverse of from_query)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, "", False, ()) or f.name == "cohort":
                continue
            if f.name == "frustration":
                out[f.name] = ",".join(value)
                continue
            if f.name == "analytics":
                out.update(value)
                continue
            name = self._QUERY_NAMES.get(f.name, f.name)
            if isinstance(value, bool):
                out[name] = "1"
            elif isinstance(value, float):
                out[name] = f"{value:g}"
            else:
                out[name] = str(value)
        return out


def _signals(params: Mapping[str, str]) -> tuple[str, ...]:
    """``frustration``: signal names separated by commas (or the parameter repeated: a form's checkboxes), or
    ``any`` for all of them."""
    getlist = getattr(params, "getlist", None)
    given = ",".join(getlist("frustration")) if getlist is not None else params.get("frustration") or ""
    names = [name.strip() for name in param.text({"frustration": given}, "frustration", 200).lower().split(",")]
    names = [name for name in names if name]
    if "any" in names:
        return FRUSTRATION_SIGNALS
    unknown = [name for name in names if name not in FRUSTRATION_SIGNALS]
    if unknown:
        raise BadParameter(
            "frustration", f"frustration must name signals among {', '.join(FRUSTRATION_SIGNALS)} (or any)"
        )
    return tuple(sorted(set(names), key=FRUSTRATION_SIGNALS.index))


def _overview_filters(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The overview's filters among ``params`` that are not the list's own (their range is the list's)."""
    rest = {name: value for name, value in params.items() if name not in LIST_PARAMS}
    if not rest:
        return ()
    query = OverviewQuery.from_query(rest, dt.date(2000, 1, 1))
    return tuple((name, value) for name, value in query.filters if name not in LIST_PARAMS)


_BOUND = re.compile(r"\{(p[0-9]+):")


def _overview_conditions(q: ScopedSelect, filters: SessionFilters, time_zone: str) -> None:
    """The overview's conditions for the overview filters (``overview.scoped_sessions``: the same SQL in every
    view), each parameter bound again under a name of its own in ``q``."""
    day = dt.date(2000, 1, 1)
    bare = scoped_sessions(q.project_id, OverviewQuery(day, day), day, time_zone)
    filtered = scoped_sessions(q.project_id, filters.overview_query(), day, time_zone)
    if filtered.wheres[: len(bare.wheres)] == bare.wheres:
        added = filtered.wheres[len(bare.wheres) :]
    else:  # filters not after the view's own conditions: keep what the bare query lacks
        added = [w for w in filtered.wheres if w not in bare.wheres]
    prefix = f"ov{len(q.params)}_"
    for condition in added:
        q.where(_BOUND.sub(lambda m: "{" + prefix + m.group(1) + ":", condition))
        for name in _BOUND.findall(condition):
            q.params[prefix + name] = filtered.params[name]


def encode_cursor(started_at_ms: int, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at_ms}:{session_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (started_at ms, session id) a page continues after; BadParameter for anything else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, sid = raw.partition(":")
        if not _CURSOR_MS.match(ts) or not _SESSION_ID.match(sid) or not -(2**63) <= int(ts) < 2**63:
            raise ValueError
        return int(ts), sid
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", "cursor is not valid (copy the link again)") from None


def _filter_conditions(q: ScopedSelect, filters: SessionFilters, time_zone: str) -> None:
    """The filters as conditions on a sessions row: its own start, duration, counts and values."""
    start_ms, end_ms = day_range_ms(filters.date_from, filters.date_to, time_zone)
    if start_ms is not None:
        # In range = started in range (the module docstring says why): a condition on the sort key.
        q.where(f"started_at >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    if end_ms is not None:
        q.where(f"started_at < fromUnixTimestamp64Milli({q.bind(end_ms, 'Int64')}, 'UTC')")
    if filters.url:
        q.where(f"arrayExists(u -> positionCaseInsensitive(u, {q.bind(filters.url, 'String')}) > 0, urls)")
    for column, value in (
        ("country", filters.country),
        ("device_type", filters.device),
        ("browser", filters.browser),
        ("os", filters.os),
        ("user_id", filters.user),
    ):
        if value:
            q.where(f"{column} = {q.bind(value, 'String')}")
    if filters.min_duration is not None:
        q.where(f"duration_ms >= {q.bind(int(filters.min_duration * 1000), 'Int64')}")
    if filters.max_duration is not None:
        q.where(f"duration_ms <= {q.bind(int(filters.max_duration * 1000), 'Int64')}")
    if filters.has_errors:
        q.where("errors > 0")
    if filters.frustration_page:
        kinds = filters.frustration or FRUSTRATION_SIGNALS
        listed = ", ".join(f"'{kind}'" for kind in kinds)  # names from FRUSTRATION_SIGNALS only
        page = q.bind(filters.frustration_page, "String")
        q.where(f"arrayExists(p -> p.1 = {page} AND p.2 IN ({listed}), frustration_pages)")
    elif filters.frustration:
        q.where(" OR ".join(f"{_SIGNAL_COLUMN[kind]} > 0" for kind in filters.frustration))
    if filters.analytics:
        _overview_conditions(q, filters, time_zone)


def sessions_query(
    project_id: int,
    filters: SessionFilters,
    cursor: str | tuple[int, str] | None,
    limit: int,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> ScopedSelect:
    """Candidate rows for a page, newest first: (started_at ms, session id) of up to ``limit`` rows
    that match the filters, read in the table's order without FINAL (a session may appear more than once)."""
    if not 1 <= limit <= _MAX_CANDIDATES:
        raise ValueError(f"read 1 to {_MAX_CANDIDATES} candidates at a time, not {limit}")
    q = ScopedSelect(project_id).select(f"{_MS}(started_at) AS started_ms", "session_id").from_("sessions")
    q.where("is_deleted = 0")
    _filter_conditions(q, filters, time_zone)
    if cursor:
        ts, sid = decode_cursor(cursor) if isinstance(cursor, str) else cursor
        after = q.bind(ts, "Int64")
        # The first condition narrows the primary key range; the second is the exact keyset bound.
        q.where(f"started_at <= fromUnixTimestamp64Milli({after}, 'UTC')")
        q.where(f"(started_at, session_id) < (fromUnixTimestamp64Milli({after}, 'UTC'), {q.bind(sid, 'String')})")
    q.order_by += ["started_at DESC", "session_id DESC"]
    q.limit = limit
    return q


def session_rows_query(
    project_id: int, filters: SessionFilters, keys: list[tuple[int, str]], time_zone: str = DEFAULT_TIME_ZONE
) -> ScopedSelect:
    """The newest version of the candidate rows ``keys`` ((started_at ms, session id), newest first)
    that still match the filters: FINAL over a few primary-key ranges, not the whole table."""
    q = ScopedSelect(project_id).select(*_ROW_COLUMNS).from_("sessions", final=True)
    newest, oldest = keys[0][0], keys[-1][0]
    q.where(
        f"started_at BETWEEN fromUnixTimestamp64Milli({q.bind(oldest, 'Int64')}, 'UTC')"
        f" AND fromUnixTimestamp64Milli({q.bind(newest, 'Int64')}, 'UTC')"
    )
    # chDB cannot bind an array of tuples: the keys travel as one JSON string.
    keys_json = q.bind(json.dumps(keys, ensure_ascii=True), "String")
    q.where(
        f"({_MS}(started_at), session_id) IN"
        f" (SELECT arrayJoin(JSONExtract({keys_json}, 'Array(Tuple(Int64, String))')))"
    )
    _filter_conditions(q, filters, time_zone)
    q.order_by += ["started_at DESC", "session_id DESC"]
    return q


def list_sessions(
    store: EventStore,
    project_id: int,
    filters: SessionFilters,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest sessions first, one summary row each, and the cursor of the next page (or None).

    ``time_zone`` (the project's) says which instants the filter's days are.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadParameter("limit", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    after: tuple[int, str] | None = decode_cursor(cursor) if cursor else None
    found: list[dict[str, Any]] = []
    batch = _CANDIDATES_PER_ROW * (limit + 1)
    for _ in range(_MAX_ROUNDS):
        q = sessions_query(project_id, filters, after, batch, time_zone)
        candidates = store.query(q.sql(), q.params)
        keys = list(dict.fromkeys((int(row["started_ms"]), str(row["session_id"])) for row in candidates))
        if keys:
            rows_q = session_rows_query(project_id, filters, keys, time_zone)
            found += store.query(rows_q.sql() + "\n" + _SETTINGS, rows_q.params)
        if len(found) > limit:
            last_shown = found[limit - 1]
            return found[:limit], encode_cursor(int(last_shown["started_at"]), last_shown["session_id"])
        if len(candidates) < batch:
            return found, None
        # Stale versions and tombstoned starts took places in this round: read on, more at a time.
        last = candidates[-1]
        after = (int(last["started_ms"]), str(last["session_id"]))
        batch = min(batch * 4, _MAX_CANDIDATES)
    # Rounds used up (a table full of stale rows): show what was checked, continue after the last candidate.
    return found, encode_cursor(*after) if after is not None else None


def session_summary(store: EventStore, project_id: int, session_id: str) -> dict[str, Any] | None:
    q = ScopedSelect(project_id).select(*_SUMMARY_COLUMNS).from_("session_segments", final=True)
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.group_by.append("session_id")
    rows = store.query(q.sql() + "\n" + _SETTINGS, q.params)
    return rows[0] if rows else None


def filter_options(store: EventStore, project_id: int) -> dict[str, list[str]]:
    """Values seen in the project's newest sessions, to offer in the list's filter menus.

    The newest OPTIONS_FROM_SESSIONS rows only (read in the table's order), so the menus cost the same
    at any size; a value seen only longer ago can still be typed into the URL's filter.
    """
    recent = ScopedSelect(project_id).select("country", "browser", "os", "device_type").from_("sessions")
    recent.order_by += ["started_at DESC", "session_id DESC"]
    recent.limit = OPTIONS_FROM_SESSIONS
    sql = f"""SELECT arraySort(groupUniqArrayIf(200)(country, country != '')) AS countries,
       arraySort(groupUniqArrayIf(200)(browser, browser != '')) AS browsers,
       arraySort(groupUniqArrayIf(200)(os, os != '')) AS oses,
       arraySort(groupUniqArrayIf(20)(device_type, device_type != '')) AS device_types
FROM ({recent.sql()})"""
    rows = store.query(sql, recent.params)
    return rows[0] if rows else {"countries": [], "browsers": [], "oses": [], "device_types": []}


def session_events(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """Every event of one session in time order."""
    q = (
        ScopedSelect(project_id)
        .from_("events")
        .select(
            "toString(event_id) AS event_id",
            "type",
            "name",
            f"{_MS}(ts) AS ts",
            f"{_MS}(client_ts) AS client_ts",
            "url",
            "title",
            "referrer",
            "selector",
            "tag",
            "text",
            "x",
            "y",
            "viewport_w",
            "viewport_h",
            "props",
            "user_id",
            "anonymous_id",
            "ip",
            "country",
            "asn",
            "as_org",
            "browser",
            "browser_version",
            "os",
            "os_version",
            "device_type",
        )
    )
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by += ["ts", "event_id"]
    return store.query(q.sql(), q.params)


def recording_chunks(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """The session's recording chunk index, in order (client retries collapsed)."""
    q = (
        ScopedSelect(project_id)
        .from_("recordings", final=True)
        .select(
            "seq",
            f"{_MS}(first_ts) AS first_ts",
            f"{_MS}(last_ts) AS last_ts",
            "event_count",
            "bytes",
            "raw_bytes",
            "path",
        )
    )
    q.where(f"session_id = {q.bind(session_id, 'String')}")
    q.order_by.append("seq")
    return store.query(q.sql(), q.params)


def chunk_json(blobs: BlobStore, chunk: Mapping[str, Any]) -> bytes:
    """One chunk's rrweb events as a JSON array."""
    return zstandard.ZstdDecompressor().decompress(blobs.get(chunk["path"]))


def iter_recording_json(blobs: BlobStore, chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    """The whole recording as one JSON array of rrweb events, streamed chunk by chunk."""
    yield b"["
    first = True
    for chunk in chunks:
        inner = chunk_json(blobs, chunk).strip()[1:-1].strip()  # each chunk is itself a JSON array
        if not inner:
            continue
        if not first:
            yield b","
        yield inner
        first = False
    yield b"]"
