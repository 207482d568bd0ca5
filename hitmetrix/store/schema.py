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
PROJECT_TABLES = frozenset({"events", "recordings", "session_segments", "sessions", "session_starts", "seen_batches"})

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
