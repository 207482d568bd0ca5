"""Stored batches as Arrow tables in the store's column order, built a column at a time.

Batch-level fields (who, where, which browser) are built once per batch and
repeated per event with one ``take``; integers are clamped to their column type
so one odd value can never make a whole segment unloadable. What cannot be
clamped raises ValueError, and the loader quarantines that batch alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from hitmetrix.model import StoredBatch, StoredEvent
from hitmetrix.store.schema import EVENT_COLUMNS, EVENTS_ARROW, RECORDING_COLUMNS, RECORDINGS_ARROW

_EVENT_FIELDS: tuple[str, ...] = StoredEvent.__struct_fields__
_BATCH_FIELDS: frozenset[str] = frozenset(StoredBatch.__struct_fields__)
# Event columns whose source field has another name.
_RENAMED = {"viewport_w": "vw", "viewport_h": "vh"}
_UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_EVENT_ID_COLUMN = [name for name, _, _ in EVENT_COLUMNS].index("event_id")


class RecordingRow(NamedTuple):
    """One row of ``recordings``, fields in RECORDING_COLUMNS order."""

    project_id: int
    session_id: str
    seq: int
    first_ts: int
    last_ts: int
    event_count: int
    bytes: int
    raw_bytes: int
    path: str
    received_at: int
    segment_id: int


assert RecordingRow._fields == tuple(name for name, _, _ in RECORDING_COLUMNS)


def event_table(batches: Sequence[StoredBatch], segment_id: int) -> pa.Table:
    """Every event of ``batches`` as one row, batch-level fields copied to each."""
    with_events = [batch for batch in batches if batch.events]
    events = [event for batch in with_events for event in batch.events]
    if not events:
        return EVENTS_ARROW.empty_table()
    # One list per field, not a tuple per event: nothing new for the garbage collector to scan.
    per_event = {field: list(map(attrgetter(field), events)) for field in _EVENT_FIELDS}
    batch_of_event = pa.array(
        chain.from_iterable(repeat(i, len(batch.events)) for i, batch in enumerate(with_events)), pa.int32()
    )
    arrays: list[pa.Array] = []
    for name, _, arrow_type in EVENT_COLUMNS:
        source = _RENAMED.get(name, name)
        if source in per_event:
            arrays.append(_array(per_event[source], arrow_type))
        elif source in _BATCH_FIELDS:
            values = [getattr(batch, source) for batch in with_events]
            arrays.append(_array(values, arrow_type).take(batch_of_event))
        elif name == "path":
            arrays.append(_paths(per_event["url"]))
        elif name == "segment_id":
            arrays.append(pa.repeat(pa.scalar(segment_id, arrow_type), len(events)))
        else:
            raise AssertionError(f"events column {name} has no source")
    _check_event_ids(arrays[_EVENT_ID_COLUMN])
    return pa.Table.from_arrays(arrays, schema=EVENTS_ARROW)


def _check_event_ids(ids: pa.Array) -> None:
    """ClickHouse would store any other string as the nil UUID, silently merging unrelated events."""
    valid = pc.match_substring_regex(ids, _UUID)
    if not pc.all(valid).as_py():
        bad = ids.filter(pc.invert(valid))[0].as_py()
        raise ValueError(f"event_id {bad[:80]!r} is not a UUID")


def without_unstorable(events: pa.Table, low_ms: int, high_ms: int) -> tuple[pa.Table, int]:
    """``events`` minus rows whose ts is outside ``[low_ms, high_ms]``, and how many those were.

    The store's TTL would delete them at its next merge; loading them would make
    the loader's count of a segment's events disagree with the store's.
    """
    if not events.num_rows:
        return events, 0
    ts = events.column("ts").cast(pa.int64())
    bounds = pc.min_max(ts)
    if bounds["min"].as_py() >= low_ms and bounds["max"].as_py() <= high_ms:
        return events, 0
    kept = events.filter(pc.and_(pc.greater_equal(ts, low_ms), pc.less_equal(ts, high_ms)))
    return kept, events.num_rows - kept.num_rows


def recording_table(rows: Sequence[RecordingRow]) -> pa.Table:
    if not rows:
        return RECORDINGS_ARROW.empty_table()
    columns = zip(*rows, strict=True)
    arrays = [_array(values, arrow_type) for values, (_, _, arrow_type) in zip(columns, RECORDING_COLUMNS, strict=True)]
    return pa.Table.from_arrays(arrays, schema=RECORDINGS_ARROW)


def url_path(url: str) -> str:
    """The path of a page URL ("/" for a bare origin); "" when there is no URL or it cannot be parsed."""
    if not url:
        return ""
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return ""


def _paths(urls: Sequence[str]) -> pa.Array:
    # Pages repeat a lot: parse each distinct URL once.
    encoded = pa.array(urls, pa.string()).dictionary_encode()
    distinct = pa.array([url_path(url) for url in encoded.dictionary.to_pylist()], pa.string())
    return distinct.take(encoded.indices)


def _array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    bounds = _int_bounds(arrow_type)
    if bounds is not None:
        low, high = bounds
        if values and (min(values) < low or max(values) > high):
            values = [low if v < low else high if v > high else v for v in values]
    return pa.array(values, arrow_type)


def _int_bounds(arrow_type: pa.DataType) -> tuple[int, int] | None:
    if pa.types.is_timestamp(arrow_type):
        return -(2**63), 2**63 - 1
    if not pa.types.is_integer(arrow_type):
        return None
    bits = arrow_type.bit_width
    if pa.types.is_signed_integer(arrow_type):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1
