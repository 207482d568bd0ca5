"""The ClickHouse schema's names and column lists, declared once.

Column lists are shared with the loader, which builds Arrow tables in exactly
this order. The tables themselves are made and changed by the versioned steps
in ``ch_migrations``; ``PROJECT_TABLES`` is what the tenancy check guards.
"""

from __future__ import annotations

import pyarrow as pa

DATABASE = "hitmetrix"

_TS = pa.timestamp("ms", tz="UTC")

# (name, ClickHouse type with codec, Arrow type)
EVENT_COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("project_id", "UInt32", pa.uint32()),
    ("ts", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))", _TS),
    ("session_id", "String CODEC(ZSTD(1))", pa.string()),
    ("event_id", "UUID", pa.string()),
    ("type", "LowCardinality(String)", pa.string()),
    ("name", "LowCardinality(String)", pa.string()),
    ("client_ts", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))", _TS),
    ("received_at", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))", _TS),
    ("anonymous_id", "String CODEC(ZSTD(1))", pa.string()),
    ("user_id", "String CODEC(ZSTD(1))", pa.string()),
    ("url", "String CODEC(ZSTD(1))", pa.string()),
    ("path", "String CODEC(ZSTD(1))", pa.string()),
    ("referrer", "String CODEC(ZSTD(1))", pa.string()),
    ("title", "String CODEC(ZSTD(1))", pa.string()),
    ("selector", "String CODEC(ZSTD(1))", pa.string()),
    ("tag", "LowCardinality(String)", pa.string()),
    ("text", "String CODEC(ZSTD(1))", pa.string()),
    ("x", "Int32", pa.int32()),
    ("y", "Int32", pa.int32()),
    ("viewport_w", "UInt16", pa.uint16()),
    ("viewport_h", "UInt16", pa.uint16()),
    ("props", "String CODEC(ZSTD(3))", pa.string()),
    ("ip", "String CODEC(ZSTD(1))", pa.string()),
    ("country", "LowCardinality(String)", pa.string()),
    ("asn", "UInt32", pa.uint32()),
    ("as_org", "LowCardinality(String)", pa.string()),
    ("browser", "LowCardinality(String)", pa.string()),
    ("browser_version", "LowCardinality(String)", pa.string()),
    ("os", "LowCardinality(String)", pa.string()),
    ("os_version", "LowCardinality(String)", pa.string()),
    ("device_type", "LowCardinality(String)", pa.string()),
    ("user_agent", "String CODEC(ZSTD(3))", pa.string()),
    ("batch_id", "String CODEC(ZSTD(1))", pa.string()),
    ("segment_id", "UInt64", pa.uint64()),
)

RECORDING_COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("project_id", "UInt32", pa.uint32()),
    ("session_id", "String", pa.string()),
    ("seq", "UInt32", pa.uint32()),
    ("first_ts", "DateTime64(3, 'UTC')", _TS),
    ("last_ts", "DateTime64(3, 'UTC')", _TS),
    ("event_count", "UInt32", pa.uint32()),
    ("bytes", "UInt32", pa.uint32()),
    ("raw_bytes", "UInt32", pa.uint32()),
    ("path", "String", pa.string()),
    ("received_at", "DateTime64(3, 'UTC')", _TS),
    ("segment_id", "UInt64", pa.uint64()),
)


def arrow_schema(columns: tuple[tuple[str, str, pa.DataType], ...]) -> pa.Schema:
    return pa.schema([(name, arrow_type) for name, _, arrow_type in columns])


EVENTS_ARROW = arrow_schema(EVENT_COLUMNS)
RECORDINGS_ARROW = arrow_schema(RECORDING_COLUMNS)


def columns_sql(columns: tuple[tuple[str, str, pa.DataType], ...]) -> str:
    return ",\n    ".join(f"{name} {ch_type}" for name, ch_type, _ in columns)


# Tables with a project_id column: read only through the project condition (``tenancy``).
PROJECT_TABLES = frozenset(
    {"events", "recordings", "session_segments", "sessions", "session_starts", "seen_batches", "visitors"}
)

# Retention: `expires_at` is a TTL column (default: keep for ten years) so a
# per-project retention can later be set at load time without a schema change.
# The loader reads this too: it does not load events the TTL would delete at once.
EVENT_RETENTION_DAYS = 3650
_DAY_MS = 86_400_000
_DATETIME_END_MS = 2**32 * 1000  # ClickHouse DateTime ends in 2106


def storable_ts_range_ms(now_ms: int, retention_days: int = EVENT_RETENTION_DAYS) -> tuple[int, int]:
    """Event times the store keeps: not already past retention (a day to spare), and not so late
    that ``expires_at`` (a 32-bit DateTime) would wrap around into the past. Capture refuses times
    outside it; the loader filters by it too, as a last safety net."""
    return now_ms - (retention_days - 1) * _DAY_MS, _DATETIME_END_MS - (retention_days + 1) * _DAY_MS


# How long the loader remembers a stored batch id: a client retry comes within minutes, an
# operator's requeue within days; an id older than this would be stored again.
SEEN_BATCH_RETENTION_DAYS = 30
# Distinct pageview URLs kept per session for the list's "URL contains" filter.
MAX_SESSION_URLS = 200

# One session from its session_segments rows, column by column of the sessions table: the loader's
# refresh, the migration that fills the table and the one-session summary all aggregate this way.
# Every segment counts, whatever day it fell on.
SESSION_AGGREGATES: tuple[tuple[str, str], ...] = (
    ("started_at", "min(first_ts)"),
    ("ended_at", "max(last_ts)"),
    ("duration_ms", "toUnixTimestamp64Milli(max(last_ts)) - toUnixTimestamp64Milli(min(first_ts))"),
    ("pageviews", "sum(pageviews)"),
    ("clicks", "sum(clicks)"),
    ("errors", "sum(errors)"),
    ("events", "sum(events)"),
    ("entry_url", "min(entry).2"),
    # The first segment's values: deterministic, and what the session looked like when it began.
    ("country", "argMinIf(country, first_ts, country != '')"),
    ("browser", "argMin(browser, first_ts)"),
    ("os", "argMin(os, first_ts)"),
    ("device_type", "argMin(device_type, first_ts)"),
    ("user_id", "max(last_user).2"),
    ("urls", f"groupUniqArrayArray({MAX_SESSION_URLS})(urls)"),
)

# Pageviews of a session kept in order for paths and funnels (a longer session keeps its first ones).
MAX_SESSION_PAGEVIEWS = 500
# Custom event properties (event name, key, value) kept per session for the property filter.
MAX_SESSION_EVENT_PROPS = 200

# What step 4 adds to session_segments: per segment, what analytics needs of a session's pageviews.
# (name, ClickHouse type, SELECT expression over that segment's events)
SEGMENT_ANALYTICS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("anonymous_id", "String", "argMin(anonymous_id, ts)"),
    (
        "pageview_seq",
        "Array(Tuple(DateTime64(3, 'UTC'), String))",
        f"arraySlice(arraySort(groupArrayIf((ts, path), type = 'pageview')), 1, {MAX_SESSION_PAGEVIEWS})",
    ),
    ("entry_page", "Tuple(DateTime64(3, 'UTC'), String, String)", "minIf((ts, url, referrer), type = 'pageview')"),
    ("exit_page", "Tuple(DateTime64(3, 'UTC'), String)", "maxIf((ts, path), type = 'pageview')"),
    (
        "event_props",
        "Array(Tuple(String, String, String))",
        # String values unquoted; numbers and booleans as their JSON text.
        "arraySlice(arrayDistinct(arrayFlatten(groupArrayIf(arrayMap(kv -> (name, kv.1,"
        " if(JSONType(props, kv.1) = 'String', JSONExtractString(props, kv.1), kv.2)),"
        " JSONExtractKeysAndValuesRaw(props)), type = 'custom'))), 1, "
        f"{MAX_SESSION_EVENT_PROPS})",
    ),
)

# The entry pageview (time, URL, referrer) of a session, over its segments that had pageviews.
_ENTRY = "minIf(entry_page, pageviews > 0)"
# What step 4 adds to sessions: (name, ClickHouse type, aggregate over session_segments, a tombstone's value).
# Referrer and UTM tags are parsed here, once per session, from the entry pageview; a referrer from the
# entry page's own site is not a referrer.
SESSION_ANALYTICS_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("anonymous_id", "String CODEC(ZSTD(1))", "argMin(anonymous_id, first_ts)", "''"),
    (
        "pageview_paths",
        "Array(String) CODEC(ZSTD(1))",
        f"arrayMap(p -> p.2, arraySlice(arraySort(groupArrayArray(pageview_seq)), 1, {MAX_SESSION_PAGEVIEWS}))",
        "[]",
    ),
    ("entry_path", "String CODEC(ZSTD(1))", "minIf(pageview_seq[1], pageviews > 0).2", "''"),
    ("exit_path", "String CODEC(ZSTD(1))", "maxIf(exit_page, pageviews > 0).2", "''"),
    (
        "referrer_domain",
        "LowCardinality(String)",
        f"if(domainWithoutWWW({_ENTRY}.3) = domainWithoutWWW({_ENTRY}.2), '', domainWithoutWWW({_ENTRY}.3))",
        "''",
    ),
    *(
        (
            f"utm_{tag}",
            "LowCardinality(String)",
            f"decodeURLFormComponent(extractURLParameter({_ENTRY}.2, 'utm_{tag}'))",
            "''",
        )
        for tag in ("source", "medium", "campaign")
    ),
    (
        "event_props",
        "Array(Tuple(String, String, String)) CODEC(ZSTD(1))",
        f"groupUniqArrayArray({MAX_SESSION_EVENT_PROPS})(event_props)",
        "[]",
    ),
)

# --- step 5: frustration signals (hitmetrix.analytics.frustration says what each one is) ---------------------
# Per segment, one array of what the session's signals need from that segment's events alone, in time order: the
# marks its own events carry, and its clicks, errors and pageviews (an error within 1 s of a click in another
# segment still makes an error click; quick backs are read off the whole session's pageviews). Per session, one
# array of marks (time, kind, path, key) aggregated from all of them, each signal once; the counts are read off it.
MAX_SEGMENT_FRUSTRATION_ITEMS = 2000
# Per session, the signals come from its first items (in time order) up to this many: the marks are found by
# comparing items with each other, so without a bound one session kept alive for hours (a bot) would make every
# refresh of its row slower than the last (20,000 items: 125 ms a refresh; 5,000: 31 ms). A person's session
# has far fewer clicks, errors and pageviews.
MAX_SESSION_FRUSTRATION_ITEMS = 5000
FRUSTRATION_KINDS = ("rage", "dead", "error", "quick_back", "excessive_scroll", "thrashed_cursor")
ERROR_CLICK_WINDOW_MS = 1000
QUICK_BACK_MS = 5000
_MARK = "Tuple(DateTime64(3, 'UTC'), String, String, String)"  # time, kind, path, key (the click's event id)


def _truthy(key: str) -> str:
    """A props value the tracker means as set: true, or a number other than 0 (as ``frustration._truthy``): its
    JSON text, read once (a string's text starts with a quote, so "1" is no number)."""
    return f"(toFloat64OrZero(JSONExtractRaw(props, '{key}')) != 0 OR JSONExtractRaw(props, '{key}') = 'true')"


def _reference(name: str) -> str:
    return f"(name = '{name}' AND JSONType(props, 'click') = 'String')"


_EVENT_ID = "toString(event_id)"
# What tells a pageview's page from others of the same path, as ``frustration.page_key``: its hash route, if any
# (an in-page anchor is the same page).
_HASH_ROUTE = "if(match(fragment(url), '^!?/'), concat('#', fragment(url)), '')"
# A click's own flags (rage from the tracker; dead / err accepted the same way), read only where its props name one.
_CLICK_FLAGS = (
    "if(position(props, 'rage') + position(props, 'dead') + position(props, 'err') = 0, [], arrayFilter(m -> m.2 != '',"
    f" [(ts, if({_truthy('rage')}, 'rage', ''), path, {_EVENT_ID}),"
    f" (ts, if({_truthy('dead')}, 'dead', ''), path, {_EVENT_ID}),"
    f" (ts, if({_truthy('err')}, 'error', ''), path, {_EVENT_ID})]))"
)
# One event's items: a pageview (kind 'pageview', key: its hash route), a click ('click', key: its id) and its
# flags, a JS error ('js_error'), or the tracker's custom events: $dead_click / $error_click name a click by its
# id (key), $excessive_scroll / $thrashed_cursor are marks themselves.
_EVENT_ITEMS = (
    f"multiIf(type = 'pageview', [(ts, 'pageview', path, {_HASH_ROUTE})],"
    f" type = 'click', arrayPushFront({_CLICK_FLAGS}, (ts, 'click', path, {_EVENT_ID})),"
    " type = 'error', [(ts, 'js_error', path, '')],"
    f" arrayFilter(m -> m.2 != '', [(ts, multiIf({_reference('$dead_click')}, 'dead',"
    f" {_reference('$error_click')}, 'error', name = '$excessive_scroll', 'excessive_scroll',"
    " name = '$thrashed_cursor', 'thrashed_cursor', ''), path,"
    f" if(name IN ('$dead_click', '$error_click'), JSONExtractString(props, 'click'), {_EVENT_ID}))]))"
)
_ITEM_EVENTS = (
    "type IN ('pageview', 'click', 'error') OR (type = 'custom' AND name IN ('$dead_click', '$error_click',"
    " '$excessive_scroll', '$thrashed_cursor'))"
)

SEGMENT_FRUSTRATION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        "frustration_items",
        f"Array({_MARK})",
        # Built only for the events that may matter (short-circuit `if`): the JSON is read of those alone.
        f"arraySlice(arraySort(arrayFlatten(groupArrayIf(if({_ITEM_EVENTS}, {_EVENT_ITEMS}, []), {_ITEM_EVENTS}))),"
        f" 1, {MAX_SEGMENT_FRUSTRATION_ITEMS})",
    ),
)

_MS = "toUnixTimestamp64Milli"
# Neighbours of each element of an array: the one before (after), a sentinel that matches nothing at the ends.
# Different at each end: a session's only pageview has no page before it and none after, not the same one.
_NO_PAGE_BEFORE = "(toDateTime64(0, 3, 'UTC'), '\\0before', '')"
_NO_PAGE_AFTER = "(toDateTime64(0, 3, 'UTC'), '\\0after', '')"
_NO_MARK = "(toDateTime64(0, 3, 'UTC'), '', '', '')"


def _shifted(array: str, sentinel: str, push: str, pop: str) -> str:
    """``array`` moved one place (each element beside its neighbour), the sentinel at the open end; [] stays []."""
    return f"arrayResize({push}({pop}({array}), {sentinel}), length({array}))"


def _bind(names: dict[str, str], body: str) -> str:
    """``body`` with each name standing for its expression, each computed once (a lambda applied to one-element
    arrays: ClickHouse SQL has no ``let`` inside an expression)."""
    return f"arrayMap(({', '.join(names)}) -> {body}, {', '.join(f'[{e}]' for e in names.values())})[1]"


# The session's clicks C, errors E, its segments' own marks M and its pageviews P (ordered, by page key), then:
# a reference to a click of another segment takes that click's time and page; an error within 1 s after a click
# makes the latest click before it an error click; A → B → A with B shown less than 5 s marks B's pageview.
_RESOLVED = (
    "arrayMap(m -> if(m.2 IN ('dead', 'error') AND arrayExists(c -> c.2 = m.4, C),"
    " (arrayFirst(c -> c.2 = m.4, C).1, m.2, arrayFirst(c -> c.2 = m.4, C).3, m.4), m), M)"
)
_ERROR_CLICKS = (
    "arrayMap(c -> (c.1, 'error', c.3, c.2), arrayFilter(c -> c.2 != '', arrayMap(e -> arrayLast(c -> c.1 <= e"
    f" AND {_MS}(e) - {_MS}(c.1) <= {ERROR_CLICK_WINDOW_MS}, C), E)))"
)
_QUICK_BACKS = (
    f"arrayMap(m -> (m.1, 'quick_back', m.3, concat('pageview ', toString({_MS}(m.1)), m.2)),"
    f" arrayFilter((m, before, after) -> before.2 = after.2 AND m.2 != after.2"
    f" AND {_MS}(after.1) - {_MS}(m.1) < {QUICK_BACK_MS},"
    f" P, {_shifted('P', _NO_PAGE_BEFORE, 'arrayPushFront', 'arrayPopBack')},"
    f" {_shifted('P', _NO_PAGE_AFTER, 'arrayPushBack', 'arrayPopFront')}))"
)
# Each (kind, key) once, at its earliest time (a click the tracker flagged and an error event also named), in
# time order.
_UNIQUE_MARKS = _bind(
    {"A": f"arraySort(m -> (m.2, m.4, m.1), arrayConcat({_RESOLVED}, {_ERROR_CLICKS}, {_QUICK_BACKS}))"},
    f"arraySort(arrayFilter((m, before) -> m.2 != before.2 OR m.4 != before.4, A,"
    f" {_shifted('A', _NO_MARK, 'arrayPushFront', 'arrayPopBack')}))",
)
_SESSION_MARKS = _bind(
    {"I": f"arraySlice(arraySort(groupArrayArray(frustration_items)), 1, {MAX_SESSION_FRUSTRATION_ITEMS})"},
    _bind(
        {
            "C": "arrayMap(i -> (i.1, i.4, i.3), arrayFilter(i -> i.2 = 'click', I))",
            "E": "arrayMap(i -> i.1, arrayFilter(i -> i.2 = 'js_error', I))",
            "M": f"arrayFilter(i -> i.2 IN {FRUSTRATION_KINDS}, I)",
            "P": f"arraySlice(arrayMap(i -> (i.1, concat(i.3, i.4), i.3), arrayFilter(i -> i.2 = 'pageview', I)), 1,"
            f" {MAX_SESSION_PAGEVIEWS})",
        },
        _UNIQUE_MARKS,
    ),
)
# What step 5 adds to sessions, written by the loader: (name, ClickHouse type, aggregate, a tombstone's value).
SESSION_FRUSTRATION_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    (
        "frustration_marks",
        f"Array({_MARK}) CODEC(ZSTD(1))",
        _SESSION_MARKS,
        "[]",
    ),
)
# Counts per signal, and per (page, signal), read off the marks by ClickHouse itself (MATERIALIZED: never inserted).
FRUSTRATION_COUNT_COLUMNS: dict[str, str] = {
    "rage_clicks": "rage",
    "dead_clicks": "dead",
    "error_clicks": "error",
    "quick_backs": "quick_back",
    "excessive_scrolls": "excessive_scroll",
    "thrashed_cursors": "thrashed_cursor",
}
SESSION_FRUSTRATION_MATERIALIZED: tuple[tuple[str, str], ...] = (
    *(
        (name, f"UInt32 MATERIALIZED toUInt32(arrayCount(m -> m.2 = '{kind}', frustration_marks))")
        for name, kind in FRUSTRATION_COUNT_COLUMNS.items()
    ),
    (
        "frustration_pages",
        "Array(Tuple(String, String, UInt32)) MATERIALIZED arrayMap(k -> (k.1, k.2,"
        " toUInt32(arrayCount(m -> m.3 = k.1 AND m.2 = k.2, frustration_marks))),"
        " arrayDistinct(arrayMap(m -> (m.3, m.2), frustration_marks)))",
    ),
)

# --- step 7: funnel step sequences (hitmetrix.analytics.funnels reads them) ---------------------------------
# Per session, its pageviews (path) and custom events (name) in time order: what a funnel of pageview and
# custom-event steps looks at, so it reads one column of the range's sessions rows instead of raw events.
# A longer session keeps its first ones (funnels.py says so where it reads them).
MAX_SESSION_STEP_EVENTS = 2000
_STEP_ITEM = "Tuple(DateTime64(3, 'UTC'), LowCardinality(String), String)"  # time, kind, path or event name
SEGMENT_STEP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        "step_seq",
        f"Array({_STEP_ITEM})",
        "arraySlice(arraySort(groupArrayIf((ts, type, if(type = 'pageview', path, name)),"
        f" type IN ('pageview', 'custom'))), 1, {MAX_SESSION_STEP_EVENTS})",
    ),
)
# What step 7 adds to sessions, written by the loader: (name, ClickHouse type, aggregate, a tombstone's value).
SESSION_STEP_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    (
        "step_seq",
        f"Array({_STEP_ITEM}) CODEC(ZSTD(1))",
        f"arraySlice(arraySort(groupArrayArray(step_seq)), 1, {MAX_SESSION_STEP_EVENTS})",
        "[]",
    ),
)

# --- step 8: funnel step keys (hitmetrix.analytics.funnels reads them) -----------------------------------------
# ``step_seq`` again as two arrays of numbers, computed by ClickHouse from it whenever a row is written
# (MATERIALIZED: never inserted): each item's time in ms and a 64-bit hash of its kind and path or name. A funnel
# whose steps are exact pages and custom events by name compares numbers instead of reading every item's text:
# reading these takes about a third of the time of reading ``step_seq``. A step's page shares its hash with one of a
# million other pages with a chance of about one in 10^13.
SESSION_STEP_KEY_MATERIALIZED: tuple[tuple[str, str], ...] = (
    # T64 (then LZ4): half the read time of Delta for times that jump between sessions, at a smaller size.
    ("step_ms", "Array(Int64) MATERIALIZED arrayMap(x -> toUnixTimestamp64Milli(x.1), step_seq) CODEC(T64, LZ4)"),
    ("step_key", "Array(UInt64) MATERIALIZED arrayMap(x -> cityHash64(x.2, x.3), step_seq) CODEC(LZ4)"),
)

# --- step 9: overview keys (hitmetrix.analytics.overview reads them) -------------------------------------------
# Computed by ClickHouse whenever a sessions row is written (MATERIALIZED: never inserted). ``visitor``: the
# 64-bit hash the overview counts visitors by, hashed once here instead of once per row of every query.
# ``page_names`` / ``page_counts``: each page the session viewed once, with how many times (the top pages read a
# row per page and session, not per pageview: about 40 % fewer rows, each adding the visitor to a page's set).
_PAGE_COUNTS = "arrayReduce('sumMap', [pageview_paths], [arrayMap(p -> toUInt64(1), pageview_paths)])"
SESSION_OVERVIEW_MATERIALIZED: tuple[tuple[str, str], ...] = (
    ("visitor", "UInt64 MATERIALIZED cityHash64(anonymous_id)"),
    ("page_names", f"Array(String) MATERIALIZED ({_PAGE_COUNTS}).1 CODEC(ZSTD(1))"),
    ("page_counts", f"Array(UInt32) MATERIALIZED arrayMap(c -> toUInt32(c), ({_PAGE_COUNTS}).2) CODEC(ZSTD(1))"),
)

# --- step 10: visitor numbers (hitmetrix.analytics.overview counts them) ------------------------------------------
# Each visitor (``visitor``, per project) gets a small number of its own, 1, 2, 3, … in the order visitors first
# came (an id a session stops showing keeps its number unused), kept in the ``visitors`` table; a sessions row
# carries its visitor's number (``visitor_num``), written with the row by the loader
# (hitmetrix.loader.session_rows). Counting distinct visitors is then setting bits in a bitmap (``groupBitmap``)
# that stays in the CPU's cache, instead of inserting 64-bit hashes into a hash set per row of a breakdown: exact,
# and the overview's main cost before (memory latency).
SESSION_VISITOR_NUMBER: tuple[tuple[str, str], ...] = (("visitor_num", "UInt32"),)
# Step 10 also stores the pages the overview groups by as LowCardinality strings (a dictionary of the paths per part
# and a small number per value): grouping then goes by those numbers instead of hashing each path's text, and reads
# a fifth of the bytes. Columns whose type it changes, with their new type:
SESSION_LOW_CARDINALITY_V10: tuple[tuple[str, str], ...] = (
    ("page_names", f"Array(LowCardinality(String)) MATERIALIZED ({_PAGE_COUNTS}).1"),
    ("entry_path", "LowCardinality(String)"),
    ("exit_path", "LowCardinality(String)"),
)
# The visitor of one session_segments row (the session's own is one of its segments' anonymous ids).
SEGMENT_VISITOR = "cityHash64(anonymous_id)"
# One key per (project, visitor): a session's number is looked up by it when its row is written.
VISITOR_KEY = "cityHash64(project_id, {visitor})"
