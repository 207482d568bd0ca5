"""Steps 1–2 of loading a segment, everything before the store: decode its batches, put its
recording chunks in the blob store, and build the Arrow tables to insert.

Runs a segment ahead of the inserts in its own thread, so Python work overlaps chDB's.
A segment that cannot be read or decoded is quarantined here, never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec
import pyarrow as pa

from hitmetrix.loader.chunks import MAX_CHUNK_JSON_BYTES, ChunkRecoder, ChunkRejectedError
from hitmetrix.loader.rows import (
    RecordingRow,
    event_table,
    recording_table,
    storable_ts_range_ms,
    without_unstorable,
)
from hitmetrix.model import StoredBatch, decode_batch
from hitmetrix.spool.segment import CorruptSegmentError
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.schema import EVENT_RETENTION_DAYS

log = logging.getLogger(__name__)


class SegmentSource(Protocol):
    """What the loader needs of a spool (the embedded ``Spool`` today, JetStream at scale)."""

    def sealed_segments(self) -> list[int]: ...

    def read_segment(self, segment_id: int) -> Iterator[bytes]: ...

    def remove_segment(self, segment_id: int) -> None: ...

    def quarantine_segment(self, segment_id: int) -> Path: ...

    def quarantine_records(self, segment_id: int, payloads: list[bytes]) -> Path: ...


@dataclass
class PreparedSegment:
    segment_id: int
    batches: list[StoredBatch]
    recordings: pa.Table  # chunks already in the blob store
    events: pa.Table


class SegmentPreparer:
    """Not thread-safe (one zstd compressor): one preparer per loading thread."""

    def __init__(
        self,
        spool: SegmentSource,
        blobs: BlobStore,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_chunk_json_bytes: int = MAX_CHUNK_JSON_BYTES,
    ) -> None:
        self.spool = spool
        self.blobs = blobs
        self._wall_clock = wall_clock
        self._recoder = ChunkRecoder(max_chunk_json_bytes)

    def prepare(self, segment_id: int) -> PreparedSegment | None:
        """The segment ready to insert, or None if it went to quarantine."""
        batches = self._decode(segment_id)
        if batches is None:
            return None
        recordings = recording_table(self._store_chunks(segment_id, batches))
        now_ms = int(self._wall_clock() * 1000)
        events, dropped = without_unstorable(
            event_table(batches, segment_id), *storable_ts_range_ms(now_ms, EVENT_RETENTION_DAYS)
        )
        if dropped:
            # The store's TTL would delete them at once, and they would spoil the loader's count check.
            log.warning("spool segment %d: %d events past retention or out of range not loaded", segment_id, dropped)
        return PreparedSegment(segment_id, batches, recordings, events)

    def _decode(self, segment_id: int) -> list[StoredBatch] | None:
        try:
            payloads = list(self.spool.read_segment(segment_id))
        except CorruptSegmentError as exc:
            target = self.spool.quarantine_segment(segment_id)
            log.error("spool segment %d is damaged (%s); moved to %s", segment_id, exc, target)
            return None
        batches: list[StoredBatch] = []
        bad: list[bytes] = []
        for payload in payloads:
            try:
                batches.append(decode_batch(payload))
            except (msgspec.DecodeError, msgspec.ValidationError):
                bad.append(payload)
        if bad and not batches:
            target = self.spool.quarantine_segment(segment_id)
            log.error("spool segment %d holds no decodable batch; moved to %s", segment_id, target)
            return None
        if bad:
            target = self.spool.quarantine_records(segment_id, bad)
            log.error("spool segment %d: %d undecodable batches kept in %s", segment_id, len(bad), target)
        return batches

    def _store_chunks(self, segment_id: int, batches: list[StoredBatch]) -> list[RecordingRow]:
        """Every storable chunk as a zstd blob, fsynced with its directory; one index row each."""
        rows: list[RecordingRow] = []
        for batch in batches:
            for chunk in batch.recording:
                try:
                    key = BlobStore.chunk_key(batch.project_id, batch.session_id, chunk.seq)
                    blob, raw_bytes = self._recoder.recode(chunk.data)
                except (ChunkRejectedError, ValueError) as exc:
                    log.warning(
                        "recording chunk %d of session %r (batch %s, segment %d) skipped: %s",
                        chunk.seq,
                        batch.session_id,
                        batch.batch_id,
                        segment_id,
                        exc,
                    )
                    continue
                self.blobs.put(key, blob)
                rows.append(
                    RecordingRow(
                        batch.project_id,
                        batch.session_id,
                        chunk.seq,
                        chunk.first_ts,
                        chunk.last_ts,
                        chunk.count,
                        len(blob),
                        raw_bytes,
                        key,
                        batch.received_at,
                        segment_id,
                    )
                )
        if rows:
            self.blobs.sync_dirs([row.path for row in rows])
        return rows
