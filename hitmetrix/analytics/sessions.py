"""Sessions: list recent ones, dump one session's events, read its recording.

Every query is scoped by project id; callers have already checked access.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import zstandard

from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import DATABASE

_MS = "toUnixTimestamp64Milli"


def recent_sessions(store: EventStore, project_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """Newest sessions first, one summary row each."""
    return store.query(
        f"""
        SELECT session_id,
               {_MS}(min(ts)) AS started_at,
               {_MS}(max(ts)) - {_MS}(min(ts)) AS duration_ms,
               countIf(type = 'pageview') AS pageviews,
               countIf(type = 'click') AS clicks,
               countIf(type = 'error') AS errors,
               count() AS events,
               argMin(url, ts) AS entry_url,
               any(country) AS country,
               any(browser) AS browser,
               any(os) AS os,
               any(device_type) AS device_type,
               argMax(user_id, ts) AS user_id
        FROM {DATABASE}.events
        WHERE project_id = {{project_id:UInt32}}
        GROUP BY session_id
        ORDER BY started_at DESC, session_id DESC
        LIMIT {{limit:UInt32}}
        """,
        {"project_id": project_id, "limit": limit},
    )


def session_events(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """Every event of one session in time order."""
    return store.query(
        f"""
        SELECT toString(event_id) AS event_id, type, name, {_MS}(ts) AS ts, url, title, referrer,
               selector, tag, text, x, y, viewport_w, viewport_h, props, user_id, anonymous_id,
               ip, country, asn, browser, browser_version, os, os_version, device_type
        FROM {DATABASE}.events
        WHERE project_id = {{project_id:UInt32}} AND session_id = {{session_id:String}}
        ORDER BY ts, event_id
        """,
        {"project_id": project_id, "session_id": session_id},
    )


def recording_chunks(store: EventStore, project_id: int, session_id: str) -> list[dict[str, Any]]:
    """The session's recording chunk index, in order (client retries collapsed)."""
    return store.query(
        f"""
        SELECT seq, {_MS}(first_ts) AS first_ts, {_MS}(last_ts) AS last_ts,
               event_count, bytes, raw_bytes, path
        FROM {DATABASE}.recordings FINAL
        WHERE project_id = {{project_id:UInt32}} AND session_id = {{session_id:String}}
        ORDER BY seq
        """,
        {"project_id": project_id, "session_id": session_id},
    )


def iter_recording_json(blobs: BlobStore, chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    """The recording as one JSON array of rrweb events, streamed chunk by chunk."""
    decompressor = zstandard.ZstdDecompressor()
    yield b"["
    first = True
    for chunk in chunks:
        raw = decompressor.decompress(blobs.get(chunk["path"]))
        inner = raw.strip()[1:-1].strip()  # each chunk is itself a JSON array
        if not inner:
            continue
        if not first:
            yield b","
        yield inner
        first = False
    yield b"]"
