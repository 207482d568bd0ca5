"""Exactly once from the client: the batches the store already holds, by (project, session, batch id).

A tracker that lost a response sends the same batch again (same batch id, same
event ids), maybe into another spool segment. ``seen_batches`` remembers which
segment stored each batch; a batch is stored by the first segment that checks
it, and every later copy is dropped. A segment loaded again after a crash finds
its own id there and keeps its batches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from hitmetrix.model import StoredBatch
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import DATABASE
from hitmetrix.store.system_queries import SEEN_BATCH_OWNERS

BatchKey = tuple[int, str, str]
_MAX_UINT32 = 2**32 - 1
_SEEN_ARROW = pa.schema(
    [
        ("project_id", pa.uint32()),
        ("session_id", pa.string()),
        ("batch_id", pa.string()),
        ("segment_id", pa.uint64()),
        ("seen_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def batch_key(batch: StoredBatch) -> BatchKey:
    # The project id as the events table stores it (clamped to UInt32).
    return (min(max(batch.project_id, 0), _MAX_UINT32), batch.session_id, batch.batch_id)


class SeenBatches:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def keep(self, batches: Sequence[StoredBatch], segment_id: int) -> list[int]:
        """Indexes of the batches this segment stores: neither stored by another segment, nor resent
        earlier in this one. A batch without an id (none is ever made empty) is always kept."""
        keys = [batch_key(batch) for batch in batches]
        owners = self._owners({key for key in keys if key[2]})
        kept: list[int] = []
        first_copies: set[BatchKey] = set()
        for index, key in enumerate(keys):
            if key[2]:
                if key in first_copies:
                    continue
                first_copies.add(key)
                stored_by = owners.get(key)
                if stored_by and segment_id not in stored_by:
                    continue
            kept.append(index)
        return kept

    def record(self, batches: Sequence[StoredBatch], segment_id: int, now_ms: int) -> None:
        """Mark batches as stored by ``segment_id``; a repeat after a crash collapses (ReplacingMergeTree)."""
        keys = [batch_key(batch) for batch in batches if batch.batch_id]
        if not keys:
            return
        table = pa.table(
            [
                pa.array([key[0] for key in keys], pa.uint32()),
                pa.array([key[1] for key in keys], pa.string()),
                pa.array([key[2] for key in keys], pa.string()),
                pa.array([segment_id] * len(keys), pa.uint64()),
                pa.array([now_ms] * len(keys), pa.timestamp("ms", tz="UTC")),
            ],
            schema=_SEEN_ARROW,
        )
        self.store.insert_arrow(f"{DATABASE}.seen_batches", table)

    def probe(self, now_ms: int) -> None:
        """A one-row write that no real batch can match (there is no project 0): is the store writable?"""
        probe = StoredBatch(batch_id="loader-probe", project_id=0, received_at=now_ms, session_id="", anonymous_id="")
        self.record([probe], 0, now_ms)

    def _owners(self, keys: set[BatchKey]) -> dict[BatchKey, set[int]]:
        if not keys:
            return {}
        # chDB cannot bind an array of strings, so the keys travel as one JSON string. A string
        # parameter is read with backslash escapes, and ASCII-only JSON has no other character to escape.
        text = json.dumps(sorted(keys), ensure_ascii=True).replace("\\", "\\\\")
        owners: dict[BatchKey, set[int]] = {}
        for row in self.store.query(SEEN_BATCH_OWNERS, {"keys": text}):
            key = (int(row["project_id"]), row["session_id"], row["batch_id"])
            owners.setdefault(key, set()).add(int(row["segment_id"]))
        return owners
