"""The ClickHouse schema, declared once.

Column lists are shared with the loader, which builds Arrow tables in exactly
this order. Plain ClickHouse SQL only: the same DDL runs on chDB and on a
ClickHouse server.
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


def _columns_sql(columns: tuple[tuple[str, str, pa.DataType], ...]) -> str:
    return ",\n    ".join(f"{name} {ch_type}" for name, ch_type, _ in columns)


# Retention: `expires_at` is a TTL column (default: keep for ten years) so a
# per-project retention can later be set at load time without a schema change.
# The loader reads this too: it does not load events the TTL would delete at once.
EVENT_RETENTION_DAYS = 3650
# How long the loader remembers a stored batch id: a client retry comes within minutes, an
# operator's requeue within days; an id older than this would be stored again.
SEEN_BATCH_RETENTION_DAYS = 30

DDL: tuple[str, ...] = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.events (
    {_columns_sql(EVENT_COLUMNS)},
    expires_at DateTime('UTC') DEFAULT toDateTime(ts) + toIntervalDay({EVENT_RETENTION_DAYS}),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_segment segment_id TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, toDate(ts), session_id, ts)
TTL expires_at DELETE
SETTINGS non_replicated_deduplication_window = 10000""",
    # Client retries of an already-stored chunk collapse on (project, session, seq).
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.recordings (
    {_columns_sql(RECORDING_COLUMNS)}
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(first_ts)
ORDER BY (project_id, session_id, seq)
SETTINGS non_replicated_deduplication_window = 10000""",
    # One row per (session, spool segment): what that segment's events say about
    # the session. The session list aggregates these rows, not raw events. A
    # reload of a segment replaces its rows (same key), so nothing counts twice.
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.session_segments (
    project_id UInt32,
    session_id String,
    segment_id UInt64,
    first_ts DateTime64(3, 'UTC'),
    last_ts DateTime64(3, 'UTC'),
    pageviews UInt32,
    clicks UInt32,
    errors UInt32,
    events UInt32,
    entry Tuple(DateTime64(3, 'UTC'), String),
    last_user Tuple(DateTime64(3, 'UTC'), String),
    country LowCardinality(String),
    browser LowCardinality(String),
    os LowCardinality(String),
    device_type LowCardinality(String),
    urls Array(String),
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(first_ts)
ORDER BY (project_id, session_id, segment_id)""",
    # Exactly once from the client: the segment that stored each (project, session, batch id).
    # The loader inserts a row only once the batch's events are in.
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.seen_batches (
    project_id UInt32,
    session_id String,
    batch_id String,
    segment_id UInt64,
    seen_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (project_id, session_id, batch_id)
TTL toDateTime(seen_at) + toIntervalDay({SEEN_BATCH_RETENTION_DAYS}) DELETE""",
    # The loader's ledger: a segment listed here is fully stored.
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.loaded_segments (
    segment_id UInt64,
    loaded_at DateTime64(3, 'UTC'),
    events UInt32,
    chunks UInt32
) ENGINE = ReplacingMergeTree
ORDER BY segment_id""",
)


# Summarise one segment's events per session into session_segments.
SUMMARISE_SEGMENT = f"""INSERT INTO {DATABASE}.session_segments
    (project_id, session_id, segment_id, first_ts, last_ts, pageviews, clicks, errors, events,
     entry, last_user, country, browser, os, device_type, urls)
SELECT project_id, session_id, any(segment_id), min(ts), max(ts),
       countIf(type = 'pageview'), countIf(type = 'click'), countIf(type = 'error'), count(),
       min((ts, url)),
       max((if(user_id = '', toDateTime64(0, 3, 'UTC'), ts), user_id)),
       anyIf(country, country != ''), any(browser), any(os), any(device_type),
       arraySlice(groupUniqArrayIf(url, type = 'pageview'), 1, 100)
FROM {DATABASE}.events
WHERE segment_id = {{segment_id:UInt64}}
GROUP BY project_id, session_id"""
