"""The loader: sealed spool segments into the store, each batch exactly once, then on to the detectors.

Per segment: (1) prepare, a segment ahead in its own thread: decode, recording
chunks to the inbox (fsynced), events table; bad items to quarantine. (2) Look
up the batch ids in ``seen_batches``: a batch stored by another segment, or
resent earlier in this one, is dropped. (3) Insert the events (per-segment
dedup token) and summarise them per session. (4) Record the batch ids as
stored by this segment. (5) Check the event count, rewrite the ``sessions`` row
of every session touched (``session_rows``), write the ledger row in
``loaded_segments``, remove the segment, hand its batches over. The chunk
worker (``recordings.py``) stores the inbox's chunks on its own schedule. Its
SQL spans projects: each statement is a ``SYSTEM_QUERY`` in ``store.system_queries``.

Crash points (kill -9 between any two steps): during (1), the inbox and the
quarantine are rewritten under the same names. After (3), before (4): the
segment's batches are not marked, so it keeps them all again; the repeated
insert is dropped by its dedup token, and the count check in (5) repairs what
a token cannot. After (4): the segment finds its own id on its batches and
keeps them. After the ledger row, before the removal: the segment is only
removed. Another segment never stores a batch this one marked; one that got
in while this one failed between (3) and (4) makes this one drop the batch on
its retry, and the count check then deletes and re-inserts this segment's
events without it.

Failures: a failed segment is retried with a back-off of its own (0.5 s
doubling to 30 s) while newer segments load as usual; a store that fails before
any segment can be tried backs the whole loader off. A segment that fails while
the store still takes other writes is suspected of its own content; after
``SPLIT_AFTER_FAILURES`` such failures it is loaded batch by batch, and a batch
the store refuses alone goes to quarantine with the store's error. No segment
is retried forever for its content, and none holds back the others.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from hitmetrix.loader.chunks import MAX_CHUNK_JSON_BYTES, MAX_JSON_DEPTH
from hitmetrix.loader.counters import LoaderCounters
from hitmetrix.loader.inbox import ChunkInbox
from hitmetrix.loader.prepare import PreparedSegment, SegmentPreparer, SegmentSource, read_records
from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.loader.recordings import ChunkWorker
from hitmetrix.loader.seen import SeenBatches
from hitmetrix.loader.session_rows import SessionRows, session_key
from hitmetrix.model import StoredBatch
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import DATABASE
from hitmetrix.store.system_queries import (
    DELETE_SEGMENT_EVENTS,
    DELETE_SEGMENT_SUMMARIES,
    EVENTS_PER_SEGMENT,
    EVENTS_PROBE,
    LOADED_SEGMENTS,
    SEGMENT_EVENT_COUNT,
    SUMMARISE_SEGMENT,
)

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
SPLIT_AFTER_FAILURES = 2
INBOX_DIR = "inbox"
QUARANTINE_DIR = "quarantine"
DEFAULT_PROJECT_BYTES_PER_ROUND = 32 * 1024 * 1024
# Inserted-but-unledgered events held in memory before they are verified and handed over.
_FINISH_AT_EVENTS = 250_000
_LEDGER_ARROW = pa.schema(
    [
        ("segment_id", pa.uint64()),
        ("loaded_at", pa.timestamp("ms", tz="UTC")),
        ("events", pa.uint32()),
        ("chunks", pa.uint32()),
    ]
)


class LoadError(RuntimeError):
    """Some segments could not be stored this time; they stay in the spool and are retried."""


class Loader:
    """Loads the spool's sealed segments, one events insert per segment, and runs the chunk worker.

    ``max_batch_segments`` segments share one ledger look-up, one count check and
    one ledger insert; ``on_loaded`` gets each stored segment's batches (the
    detectors' feed: a crash may skip a segment there, never store one twice).
    The inbox and quarantine live under ``data_dir`` (by default beside the
    blob store's directory); ``append`` puts requeued items back in the spool.
    """

    def __init__(
        self,
        spool: SegmentSource,
        store: EventStore,
        blobs: BlobStore,
        *,
        data_dir: Path | None = None,
        max_batch_segments: int = 64,
        poll_interval_s: float = 0.2,
        on_loaded: Callable[[list[StoredBatch]], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        max_chunk_json_bytes: int = MAX_CHUNK_JSON_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
        project_bytes_per_round: int = DEFAULT_PROJECT_BYTES_PER_ROUND,
        append: Callable[[bytes], None] | None = None,
        deleted_projects: Callable[[set[int]], set[int]] = lambda ids: set(),
    ) -> None:
        data_dir = blobs.root.parent if data_dir is None else data_dir
        self.spool = spool
        self.store = store
        self.max_batch_segments = max(1, max_batch_segments)
        self.poll_interval_s = poll_interval_s
        self.on_loaded = on_loaded
        self.counters = LoaderCounters()
        self.quarantine = Quarantine(data_dir / QUARANTINE_DIR, wall_clock=wall_clock, counters=self.counters)
        self.inbox = ChunkInbox(data_dir / INBOX_DIR)
        self.chunk_worker = ChunkWorker(
            self.inbox,
            blobs,
            store,
            self.quarantine,
            self.counters,
            max_chunk_json_bytes=max_chunk_json_bytes,
            max_json_depth=max_json_depth,
            project_bytes_per_round=project_bytes_per_round,
        )
        self.seen = SeenBatches(store)
        self.session_rows = SessionRows(store)
        self._append = append
        self._wall_clock = wall_clock
        self._preparer = SegmentPreparer(
            spool,
            self.inbox,
            self.quarantine,
            wall_clock=wall_clock,
            on_chunks=self.chunk_worker.wake,
            deleted_projects=deleted_projects,
            counters=self.counters,
        )
        self._failures: dict[int, int] = {}  # segment id -> failures while the store took other writes
        self._attempts: dict[int, int] = {}  # segment id -> failed tries in a row
        self._retry_at: dict[int, float] = {}  # segment id -> monotonic time of its next try in the background
        self._load_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running in the background ---------------------------------------------------------

    def start(self) -> None:
        """Load in a background thread every ``poll_interval_s``, and at once when woken."""
        if self._thread is not None:
            raise RuntimeError("loader already started")
        self._stop.clear()
        self.chunk_worker.start()
        self._thread = threading.Thread(target=self._run, name="hitmetrix-loader", daemon=True)
        self._thread.start()

    def wake(self, segment_id: int | None = None) -> None:
        """Look for sealed segments now (pass this to ``Spool.add_seal_listener``)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the segment and the chunk in hand, then stop both threads."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.chunk_worker.stop(timeout_s)

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            self._requeue_requested()
            try:
                self._load(self._stop.is_set, due_only=True)
                backoff_s = 0.0
            except LoadError:  # logged per segment; each waits for its own retry time, the others go on
                backoff_s = 0.0
            except Exception:  # the store failing before any segment could be tried
                backoff_s = min(MAX_BACKOFF_S, 2 * backoff_s or FIRST_BACKOFF_S)
                log.exception("loading failed; retrying in %.1f s", backoff_s)
            if backoff_s:
                self._stop.wait(backoff_s)
            else:
                self._wake.wait(self._next_wait_s())

    def _next_wait_s(self) -> float:
        """Until the next poll, or sooner when a failed segment's retry comes first."""
        if not self._retry_at:
            return self.poll_interval_s
        return max(0.0, min(self.poll_interval_s, min(self._retry_at.values()) - time.monotonic()))

    def _requeue_requested(self) -> None:
        if self._append is None:
            return
        try:
            self.quarantine.requeue_requested(self._append)
        except Exception:  # the spool refusing appends (closing, disk full): the requests wait
            log.exception("requeueing quarantined items failed; will try again")

    # -- what it is doing ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Loader lag, recordings waiting, quarantine counts and counters (reads a few directories)."""
        segments, oldest_s = self.spool.sealed_backlog()
        chunks, chunk_bytes = self.inbox.backlog()
        return {
            "loader_lag_segments": segments,
            "loader_oldest_segment_age_s": round(oldest_s, 3),
            "recording_inbox_chunks": chunks,
            "recording_inbox_bytes": chunk_bytes,
            "quarantine": {**self.quarantine.counts(), "spool_files": len(self.spool.quarantined_files())},
            "loader_counters": self.counters.snapshot(),
        }

    # -- loading -----------------------------------------------------------------------

    def load_once(self, *, drain_recordings: bool = True) -> int:
        """Store every segment sealed now, oldest first, and (by default) every chunk in the inbox;
        return how many segments left the spool stored.

        Raises LoadError when some segments could not be stored (they stay and are retried next time).
        """
        try:
            return self._load(lambda: False)
        finally:
            if drain_recordings:
                self.chunk_worker.drain()

    def _load(self, stopping: Callable[[], bool], *, due_only: bool = False) -> int:
        with self._load_lock:
            ids = self.spool.sealed_segments()
            for gone in self._retry_at.keys() - set(ids):  # loaded or removed meanwhile
                for per_segment in (self._failures, self._attempts, self._retry_at):
                    per_segment.pop(gone, None)
            if due_only:
                now = time.monotonic()
                ids = [segment_id for segment_id in ids if self._retry_at.get(segment_id, 0.0) <= now]
            done = failed = 0
            for start in range(0, len(ids), self.max_batch_segments):
                group_done, group_failed = self._load_group(ids[start : start + self.max_batch_segments], stopping)
                done += group_done
                failed += group_failed
            if failed:
                raise LoadError(f"{failed} spool segments could not be stored; they will be retried")
            return done

    def _load_group(self, ids: list[int], stopping: Callable[[], bool]) -> tuple[int, int]:
        """Up to ``max_batch_segments`` segments: one ledger look-up, one count check per finish."""
        if stopping():
            return 0, 0
        ledger = self.store.query(LOADED_SEGMENTS, {"ids": ids})
        already = {int(row["segment_id"]) for row in ledger}
        for segment_id in sorted(already):
            log.info("spool segment %d was already stored; removing it", segment_id)
            self.spool.remove_segment(segment_id)
        pending: list[PreparedSegment] = []
        done, failed = len(already), 0
        todo = [segment_id for segment_id in ids if segment_id not in already]
        with ThreadPoolExecutor(1, thread_name_prefix="hitmetrix-loader-prepare") as ahead:
            for segment_id, preparing in self._prepared_ahead(todo, ahead, stopping):
                try:
                    prepared = preparing.result()
                except Exception as exc:  # only the disk fails a whole preparation: not the data's fault
                    self._failed(segment_id, exc, blame_data=False)
                    failed += 1
                    continue
                try:
                    self._insert(prepared)
                except Exception as exc:
                    self._failed(segment_id, exc)
                    failed += 1
                    continue
                pending.append(prepared)
                if sum(item.events.num_rows for item in pending) >= _FINISH_AT_EVENTS:
                    finished = self._finish(pending)
                    done, failed, pending = done + finished, failed + len(pending) - finished, []
        finished = self._finish(pending)
        return done + finished, failed + len(pending) - finished

    def _prepared_ahead(
        self, ids: list[int], pool: ThreadPoolExecutor, stopping: Callable[[], bool]
    ) -> Iterator[tuple[int, Future[PreparedSegment]]]:
        """Each segment's preparation, the next one already under way while this one is inserted."""
        queued: deque[tuple[int, Future[PreparedSegment]]] = deque()
        for segment_id in ids:
            if stopping():
                break
            queued.append((segment_id, pool.submit(self._preparer.prepare, segment_id)))
            if len(queued) > 1:
                yield queued.popleft()
        yield from queued

    def _failed(self, segment_id: int, exc: BaseException, *, blame_data: bool = True) -> None:
        """Schedule the segment's retry (back-off of its own); count the failure against its content
        only if the store still takes other writes."""
        self.counters.add("segment_failures")
        attempts = self._attempts[segment_id] = self._attempts.get(segment_id, 0) + 1
        retry_in_s = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempts - 1))
        self._retry_at[segment_id] = time.monotonic() + retry_in_s
        suspect = blame_data and self._store_answers()
        if suspect:
            self._failures[segment_id] = self._failures.get(segment_id, 0) + 1
        log.error(
            "spool segment %d could not be stored (%s: %s)%s; retrying in %.1f s",
            segment_id,
            type(exc).__name__,
            exc,
            f", failure {self._failures[segment_id]} while the store takes other writes" if suspect else "",
            retry_in_s,
            exc_info=exc,
        )

    def _store_answers(self) -> bool:
        """Does the store take a small write and answer for the events table? Then a failure was the data's."""
        try:
            self.store.query(EVENTS_PROBE)
            self.seen.probe(int(self._wall_clock() * 1000))
        except Exception:
            return False
        return True

    def _insert(self, prepared: PreparedSegment) -> None:
        """Steps 2–4: drop copies of stored batches, insert events and their summaries, mark the batches."""
        segment_id = prepared.segment_id
        kept = self.seen.keep(prepared.batches, segment_id)
        prepared.duplicates = len(prepared.kept) - len(kept)
        prepared.keep(kept)
        if self._failures.get(segment_id, 0) >= SPLIT_AFTER_FAILURES:
            self._insert_batch_by_batch(prepared)
        elif prepared.events.num_rows:
            self.store.insert_arrow(f"{DATABASE}.events", prepared.rows(), f"seg{segment_id}-ev")
            self._summarise(segment_id)
        self.seen.record(prepared.stored_batches, segment_id, int(self._wall_clock() * 1000))

    def _insert_batch_by_batch(self, prepared: PreparedSegment) -> None:
        """A segment that keeps failing on its content: each batch alone, quarantining those the store refuses."""
        segment_id = prepared.segment_id
        log.warning("spool segment %d keeps failing; loading it batch by batch", segment_id)
        self.counters.add("segments_split")
        params = {"id": segment_id}
        # Rows of earlier, partly successful tries would be counted twice.
        self.store.execute(DELETE_SEGMENT_EVENTS, params)
        self.store.execute(DELETE_SEGMENT_SUMMARIES, params)
        for index in list(prepared.kept):
            rows = prepared.rows(index)
            if not rows.num_rows:
                continue
            for attempt in (1, 2):  # twice: a passing hiccup must not cost a good batch
                try:
                    # A fresh token each: a token used before the DELETE would drop the insert.
                    token = f"seg{segment_id}-ev-{uuid.uuid4().hex[:16]}"
                    self.store.insert_arrow(f"{DATABASE}.events", rows, token)
                    break
                except Exception as exc:
                    if not self._store_answers():
                        raise LoadError(f"segment {segment_id}: the store is failing") from exc
                    if attempt == 2:
                        self._quarantine_refused(prepared, index, exc)
        self._summarise(segment_id)

    def _quarantine_refused(self, prepared: PreparedSegment, index: int, exc: BaseException) -> None:
        segment_id = prepared.segment_id
        batch = prepared.batches[index]
        payloads, _ = read_records(self.spool, segment_id)
        item = self.quarantine.put_batch(
            payloads[prepared.records[index]],
            "store",
            exc,
            segment_id,
            project_id=batch.project_id,
            session_id=batch.session_id,
            batch_id=batch.batch_id,
        )
        log.error(
            "spool segment %d: the store refused batch %r of session %r; quarantined as %s: %s",
            segment_id,
            batch.batch_id,
            batch.session_id,
            item,
            exc,
        )
        prepared.keep([kept for kept in prepared.kept if kept != index])

    def _summarise(self, segment_id: int) -> None:
        """Per-session summary rows of the segment; a rerun replaces them (ReplacingMergeTree key)."""
        self.store.execute(SUMMARISE_SEGMENT, {"segment_id": segment_id})

    def _finish(self, stored: list[PreparedSegment]) -> int:
        """Step 5 for segments whose rows are in: verify, ledger, remove, hand over."""
        verified = self._verify_event_counts(stored)
        if verified:
            try:
                self._refresh_sessions(verified)
            except Exception as exc:
                for item in verified:
                    self._failed(item.segment_id, exc, blame_data=False)
                return 0
            self._record_in_ledger(verified)
        for item in verified:
            self.spool.remove_segment(item.segment_id)
            for per_segment in (self._failures, self._attempts, self._retry_at):
                per_segment.pop(item.segment_id, None)
            self.counters.add("segments_loaded")
            self.counters.add("batches_loaded", len(item.kept))
            self.counters.add("batches_duplicate", item.duplicates)
            self.counters.add("events_loaded", item.events.num_rows)
            self.counters.add("chunks_inboxed", item.chunks)
        for item in verified:
            self._hand_over(item)
        return len(verified)

    def _verify_event_counts(self, stored: list[PreparedSegment]) -> list[PreparedSegment]:
        """Keep the segments whose events are in the store exactly once, repairing the others.

        A retried insert is normally dropped by its dedup token; past the dedup
        window it would be stored twice, and a token seen before a repair would
        drop it entirely. So count, and on a mismatch delete and insert afresh.
        """
        if not stored:
            return []
        rows = self.store.query(EVENTS_PER_SEGMENT, {"ids": [item.segment_id for item in stored]})
        counts = {int(row["segment_id"]): int(row["n"]) for row in rows}
        verified = []
        for item in stored:
            found = counts.get(item.segment_id, 0)
            if found == item.events.num_rows:
                verified.append(item)
                continue
            log.warning(
                "spool segment %d: %d events in the store, %d expected; replacing them",
                item.segment_id,
                found,
                item.events.num_rows,
            )
            try:
                self._replace_events(item)
            except Exception as exc:
                self._failed(item.segment_id, exc)
                continue
            verified.append(item)
        return verified

    def _replace_events(self, item: PreparedSegment) -> None:
        params = {"id": item.segment_id}
        self.store.execute(DELETE_SEGMENT_EVENTS, params)
        if item.events.num_rows:
            # A fresh token: the old one may still be in the dedup window and would drop this insert.
            token = f"seg{item.segment_id}-ev-{uuid.uuid4().hex[:16]}"
            self.store.insert_arrow(f"{DATABASE}.events", item.rows(), token)
        rows = self.store.query(SEGMENT_EVENT_COUNT, params)
        found = int(rows[0]["n"]) if rows else 0
        if found != item.events.num_rows:
            raise LoadError(f"segment {item.segment_id}: {found} events after repair, {item.events.num_rows} expected")
        self.store.execute(DELETE_SEGMENT_SUMMARIES, params)
        self._summarise(item.segment_id)

    def _refresh_sessions(self, items: list[PreparedSegment]) -> None:
        """Rewrite the one-row-per-session table for every session these segments touched (before the
        ledger: a crash in between reloads the segments, and they refresh again)."""
        keys = {session_key(batch.project_id, batch.session_id) for item in items for batch in item.batches}
        self.session_rows.refresh(keys)

    def _record_in_ledger(self, items: list[PreparedSegment]) -> None:
        now_ms = int(self._wall_clock() * 1000)
        ledger = pa.table(
            [
                pa.array([item.segment_id for item in items], pa.uint64()),
                pa.array([now_ms] * len(items), pa.timestamp("ms", tz="UTC")),
                pa.array([item.events.num_rows for item in items], pa.uint32()),
                pa.array([item.chunks for item in items], pa.uint32()),
            ],
            schema=_LEDGER_ARROW,
        )
        self.store.insert_arrow(f"{DATABASE}.loaded_segments", ledger)

    def _hand_over(self, item: PreparedSegment) -> None:
        if self.on_loaded is None:
            return
        try:
            self.on_loaded(item.stored_batches)
        except Exception:
            log.exception("on_loaded failed for spool segment %d (its data is stored)", item.segment_id)
