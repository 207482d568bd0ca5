"""The loader: sealed spool segments into the store, exactly once, then on to the detectors.

Per segment, in order: decode; recording chunks to the blob store (fsynced);
recordings rows and events inserted with per-segment dedup tokens; event counts
checked; a ledger row in ``loaded_segments``; the segment removed; ``on_loaded``.
Every step may be repeated after a crash without storing anything twice. The
next segment is decoded while this one is inserted (chDB releases the GIL).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from hitmetrix.loader.chunks import MAX_CHUNK_JSON_BYTES
from hitmetrix.loader.prepare import PreparedSegment, SegmentPreparer, SegmentSource
from hitmetrix.model import StoredBatch
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import DATABASE, SUMMARISE_SEGMENT

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
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
    """Loads the spool's sealed segments, one insert per table per segment.

    ``max_batch_segments`` segments share one ledger look-up, one count check and
    one ledger insert; ``on_loaded`` gets each stored segment's batches (the
    detectors' feed: a crash may skip a segment there, never store one twice).
    """

    def __init__(
        self,
        spool: SegmentSource,
        store: EventStore,
        blobs: BlobStore,
        *,
        max_batch_segments: int = 64,
        poll_interval_s: float = 0.2,
        on_loaded: Callable[[list[StoredBatch]], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        max_chunk_json_bytes: int = MAX_CHUNK_JSON_BYTES,
    ) -> None:
        self.spool = spool
        self.store = store
        self.blobs = blobs
        self.max_batch_segments = max(1, max_batch_segments)
        self.poll_interval_s = poll_interval_s
        self.on_loaded = on_loaded
        self._wall_clock = wall_clock
        self._preparer = SegmentPreparer(spool, blobs, wall_clock=wall_clock, max_chunk_json_bytes=max_chunk_json_bytes)
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
        self._thread = threading.Thread(target=self._run, name="hitmetrix-loader", daemon=True)
        self._thread.start()

    def wake(self, segment_id: int | None = None) -> None:
        """Look for sealed segments now (pass this to ``Spool.add_seal_listener``)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the segment in hand, then stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._load(self._stop.is_set)
                backoff_s = 0.0
            except Exception:
                backoff_s = min(MAX_BACKOFF_S, 2 * backoff_s or FIRST_BACKOFF_S)
                log.exception("loading failed; retrying in %.1f s", backoff_s)
            if backoff_s:
                self._stop.wait(backoff_s)
            else:
                self._wake.wait(self.poll_interval_s)

    # -- loading -----------------------------------------------------------------------

    def load_once(self) -> int:
        """Store every segment sealed now, oldest first; return how many left the spool stored.

        Raises LoadError when some could not be stored (they stay and are retried next time).
        """
        return self._load(lambda: False)

    def _load(self, stopping: Callable[[], bool]) -> int:
        with self._load_lock:
            ids = self.spool.sealed_segments()
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
        ledger = self.store.query(
            f"SELECT segment_id FROM {DATABASE}.loaded_segments WHERE segment_id IN {{ids:Array(UInt64)}}",
            {"ids": ids},
        )
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
                    if prepared is None:  # quarantined
                        continue
                    self._insert(prepared)
                except Exception:
                    log.exception("spool segment %d could not be stored", segment_id)
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
    ) -> Iterator[tuple[int, Future[PreparedSegment | None]]]:
        """Each segment's preparation, the next one already under way while this one is inserted."""
        queued: deque[tuple[int, Future[PreparedSegment | None]]] = deque()
        for segment_id in ids:
            if stopping():
                break
            queued.append((segment_id, pool.submit(self._preparer.prepare, segment_id)))
            if len(queued) > 1:
                yield queued.popleft()
        yield from queued

    def _insert(self, prepared: PreparedSegment) -> None:
        """Steps 3–4, each insert with a token of its own so a retry is dropped, not doubled."""
        segment_id = prepared.segment_id
        if prepared.recordings.num_rows:
            self.store.insert_arrow(f"{DATABASE}.recordings", prepared.recordings, f"seg{segment_id}-rec")
        if prepared.events.num_rows:
            self.store.insert_arrow(f"{DATABASE}.events", prepared.events, f"seg{segment_id}-ev")
            self._summarise(segment_id)

    def _summarise(self, segment_id: int) -> None:
        """Per-session summary rows of the segment; a rerun replaces them (ReplacingMergeTree key)."""
        self.store.execute(SUMMARISE_SEGMENT, {"segment_id": segment_id})

    def _finish(self, stored: list[PreparedSegment]) -> int:
        """Steps 5–7 for segments whose rows are in: verify, ledger, remove, hand over."""
        verified = self._verify_event_counts(stored)
        if verified:
            self._record_in_ledger(verified)
        for item in verified:
            self.spool.remove_segment(item.segment_id)
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
        rows = self.store.query(
            f"SELECT segment_id, count() AS n FROM {DATABASE}.events"
            " WHERE segment_id IN {ids:Array(UInt64)} GROUP BY segment_id",
            {"ids": [item.segment_id for item in stored]},
        )
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
            except Exception:
                log.exception("spool segment %d: replacing its events failed", item.segment_id)
                continue
            verified.append(item)
        return verified

    def _replace_events(self, item: PreparedSegment) -> None:
        params = {"id": item.segment_id}
        self.store.execute(f"DELETE FROM {DATABASE}.events WHERE segment_id = {{id:UInt64}}", params)
        if item.events.num_rows:
            # A fresh token: the old one may still be in the dedup window and would drop this insert.
            token = f"seg{item.segment_id}-ev-{uuid.uuid4().hex[:16]}"
            self.store.insert_arrow(f"{DATABASE}.events", item.events, token)
        rows = self.store.query(f"SELECT count() AS n FROM {DATABASE}.events WHERE segment_id = {{id:UInt64}}", params)
        found = int(rows[0]["n"]) if rows else 0
        if found != item.events.num_rows:
            raise LoadError(f"segment {item.segment_id}: {found} events after repair, {item.events.num_rows} expected")
        self._summarise(item.segment_id)

    def _record_in_ledger(self, items: list[PreparedSegment]) -> None:
        now_ms = int(self._wall_clock() * 1000)
        ledger = pa.table(
            [
                pa.array([item.segment_id for item in items], pa.uint64()),
                pa.array([now_ms] * len(items), pa.timestamp("ms", tz="UTC")),
                pa.array([item.events.num_rows for item in items], pa.uint32()),
                pa.array([item.recordings.num_rows for item in items], pa.uint32()),
            ],
            schema=_LEDGER_ARROW,
        )
        self.store.insert_arrow(f"{DATABASE}.loaded_segments", ledger)

    def _hand_over(self, item: PreparedSegment) -> None:
        if self.on_loaded is None:
            return
        try:
            self.on_loaded(item.batches)
        except Exception:
            log.exception("on_loaded failed for spool segment %d (its data is stored)", item.segment_id)
