"""Everything before the store for one segment: read and decode its batches, move their
recording chunks to the inbox, build the events table.

Runs a segment ahead of the inserts in its own thread, so Python work overlaps chDB's.
Each item stands alone: a record that does not decode, a chunk that cannot be named,
a batch whose rows cannot be built goes to quarantine with its reason, and the rest
of the segment goes on. A segment whose framing is damaged loads its intact records
and is itself quarantined. Only the disk failing (OSError) fails the whole segment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from hitmetrix.loader.counters import LoaderCounters
from hitmetrix.loader.inbox import ChunkInbox, InboxChunk, entry_for
from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.loader.rows import event_table, without_unstorable
from hitmetrix.model import StoredBatch, StoredChunk, decode_batch
from hitmetrix.spool.segment import CorruptSegmentError, scan_records
from hitmetrix.store.schema import EVENT_RETENTION_DAYS, storable_ts_range_ms

log = logging.getLogger(__name__)

# Each event row's batch (an index into PreparedSegment.batches), dropped before the insert.
BATCH_COLUMN = "_batch"


class SegmentSource(Protocol):
    """What the loader needs of a spool (the embedded ``Spool`` today, JetStream at scale)."""

    def sealed_segments(self) -> list[int]: ...

    def read_segment(self, segment_id: int) -> Iterator[bytes]: ...

    def segment_bytes(self, segment_id: int) -> bytes: ...

    def remove_segment(self, segment_id: int) -> None: ...

    def sealed_backlog(self) -> tuple[int, float]: ...

    def quarantined_files(self) -> list[Path]: ...


@dataclass
class PreparedSegment:
    """A segment ready to insert. ``batches`` have their chunk data dropped (it is in the inbox)."""

    segment_id: int
    batches: list[StoredBatch]
    records: list[int]  # each batch's record number in the segment, to find its bytes again
    events: pa.Table  # the events of ``kept`` batches, with BATCH_COLUMN
    chunks: int  # moved to the inbox
    kept: list[int]  # the batches this segment stores
    duplicates: int = 0  # batches dropped as copies of stored ones

    @property
    def stored_batches(self) -> list[StoredBatch]:
        return [self.batches[index] for index in self.kept]

    def keep(self, indexes: list[int]) -> None:
        """Store only these of the kept batches (the others: copies of stored batches, or quarantined)."""
        wanted = set(indexes)
        self.kept = [index for index in self.kept if index in wanted]
        self._filter_events()

    def rows(self, index: int | None = None) -> pa.Table:
        """The events to insert: all kept ones, or one batch's."""
        events = self.events
        if index is not None:
            events = events.filter(pc.equal(events.column(BATCH_COLUMN), index))
        return events.drop_columns([BATCH_COLUMN])

    def _filter_events(self) -> None:
        if self.events.num_rows:
            kept = pa.array(self.kept, pa.int32())
            self.events = self.events.filter(pc.is_in(self.events.column(BATCH_COLUMN), value_set=kept))


def read_records(spool: SegmentSource, segment_id: int) -> tuple[list[bytes], CorruptSegmentError | None]:
    """A segment's records; of a damaged segment, the intact ones before the damage and the error."""
    try:
        return list(spool.read_segment(segment_id)), None
    except CorruptSegmentError as exc:
        payloads, _, _ = scan_records(spool.segment_bytes(segment_id))
        return payloads, exc


class SegmentPreparer:
    def __init__(
        self,
        spool: SegmentSource,
        inbox: ChunkInbox,
        quarantine: Quarantine,
        *,
        wall_clock: Callable[[], float] = time.time,
        on_chunks: Callable[[], None] = lambda: None,
        deleted_projects: Callable[[set[int]], set[int]] = lambda ids: set(),
        counters: LoaderCounters | None = None,
    ) -> None:
        self.spool = spool
        self.inbox = inbox
        self.quarantine = quarantine
        self._wall_clock = wall_clock
        self._on_chunks = on_chunks
        self._deleted_projects = deleted_projects
        self._counters = counters if counters is not None else LoaderCounters()

    def prepare(self, segment_id: int) -> PreparedSegment:
        payloads, damage = read_records(self.spool, segment_id)
        if damage is not None:
            item = self.quarantine.put_segment(self.spool.segment_bytes(segment_id), damage, segment_id)
            log.error(
                "spool segment %d is damaged (%s): loading its %d intact records; quarantined as %s",
                segment_id,
                damage,
                len(payloads),
                item,
            )
        decoded: list[tuple[int, StoredBatch]] = []
        for record, payload in enumerate(payloads):
            try:
                decoded.append((record, decode_batch(payload)))
            except Exception as exc:  # any exception: DecodeError, UnicodeDecodeError, RecursionError, ...
                self._quarantine_batch(payload, "decode", exc, segment_id, None)
        decoded = self._without_deleted_projects(segment_id, decoded)
        chunks = self._move_chunks(segment_id, [batch for _, batch in decoded])
        decoded, events = self._events(segment_id, decoded, payloads)
        batches = [batch for _, batch in decoded]
        batch_of_row = chain.from_iterable(repeat(index, len(batch.events)) for index, batch in enumerate(batches))
        events = events.append_column(BATCH_COLUMN, pa.array(batch_of_row, pa.int32()))
        now_ms = int(self._wall_clock() * 1000)
        events, dropped = without_unstorable(events, *storable_ts_range_ms(now_ms, EVENT_RETENTION_DAYS))
        if dropped:
            # The store's TTL would delete them at once, and they would spoil the loader's count check.
            log.warning("spool segment %d: %d events past retention or out of range not loaded", segment_id, dropped)
        records = [record for record, _ in decoded]
        return PreparedSegment(segment_id, batches, records, events, chunks, kept=list(range(len(batches))))

    def _without_deleted_projects(
        self, segment_id: int, decoded: list[tuple[int, StoredBatch]]
    ) -> list[tuple[int, StoredBatch]]:
        """Batches of projects deleted since they were acknowledged (still in the spool, or requeued) are
        not stored: deleting a project deletes its data, also what arrives late."""
        deleted = self._deleted_projects({batch.project_id for _, batch in decoded}) if decoded else set()
        if not deleted:
            return decoded
        kept = [(record, batch) for record, batch in decoded if batch.project_id not in deleted]
        dropped = len(decoded) - len(kept)
        self._counters.add("batches_of_deleted_projects", dropped)
        log.info("spool segment %d: %d batches of deleted projects %s not stored", segment_id, dropped, sorted(deleted))
        return kept

    def _move_chunks(self, segment_id: int, batches: list[StoredBatch]) -> int:
        """Every nameable chunk to the inbox, durably; the batches keep only their chunks' metadata."""
        moving: list[InboxChunk] = []
        for batch in batches:
            for chunk in batch.recording:
                try:
                    entry_for(batch.project_id, batch.session_id, chunk.seq)
                except Exception as exc:
                    item = self.quarantine.put_chunk(
                        chunk,
                        "inbox",
                        exc,
                        segment_id,
                        project_id=batch.project_id,
                        session_id=batch.session_id,
                        batch_id=batch.batch_id,
                        received_at=batch.received_at,
                    )
                    log.warning(
                        "spool segment %d: recording chunk %d quarantined as %s: %s", segment_id, chunk.seq, item, exc
                    )
                    continue
                moving.append(
                    InboxChunk(
                        project_id=batch.project_id,
                        session_id=batch.session_id,
                        seq=chunk.seq,
                        first_ts=chunk.first_ts,
                        last_ts=chunk.last_ts,
                        count=chunk.count,
                        received_at=batch.received_at,
                        segment_id=segment_id,
                        batch_id=batch.batch_id,
                        data=chunk.data,
                    )
                )
            # Held until the segment is finished, possibly with 63 others: keep the metadata only.
            batch.recording = [
                StoredChunk(seq=c.seq, first_ts=c.first_ts, last_ts=c.last_ts, count=c.count, data=b"")
                for c in batch.recording
            ]
        if not moving:
            return 0
        moved = self.inbox.put_many(moving)
        self._on_chunks()
        return moved

    def _events(
        self, segment_id: int, decoded: list[tuple[int, StoredBatch]], payloads: list[bytes]
    ) -> tuple[list[tuple[int, StoredBatch]], pa.Table]:
        """The events table, and ``decoded`` minus the batches whose rows cannot be built (quarantined)."""
        try:
            return decoded, event_table([batch for _, batch in decoded], segment_id)
        except Exception:  # find the culprits: one batch at a time
            pass
        buildable = []
        for record, batch in decoded:
            try:
                event_table([batch], segment_id)
            except Exception as exc:
                self._quarantine_batch(payloads[record], "rows", exc, segment_id, batch)
                continue
            buildable.append((record, batch))
        return buildable, event_table([batch for _, batch in buildable], segment_id)

    def _quarantine_batch(
        self, payload: bytes, stage: str, exc: BaseException, segment_id: int, batch: StoredBatch | None
    ) -> None:
        context = {} if batch is None else _batch_context(batch)
        item = self.quarantine.put_batch(payload, stage, exc, segment_id, **context)
        log.error(
            "spool segment %d: a batch %sfailed at %s and was quarantined as %s: %s: %s",
            segment_id,
            f"(session {batch.session_id!r}, id {batch.batch_id!r}) " if batch is not None else "",
            stage,
            item,
            type(exc).__name__,
            exc,
        )


def _batch_context(batch: StoredBatch) -> dict[str, int | str]:
    return {"project_id": batch.project_id, "session_id": batch.session_id, "batch_id": batch.batch_id}
