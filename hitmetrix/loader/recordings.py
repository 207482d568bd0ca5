"""The chunk worker: recording chunks from the inbox into the blob store and the recordings index.

It takes turns across projects, each turn working through at most
``project_bytes_per_round`` of one project's decompressed recordings, the
project with the least waiting first; a turn also ends, after at least one
chunk, as soon as a light project (a little waiting, less than this one: a
small chunk that just came in) has chunks, and it has the next turn. So a
project sending heavy chunks waits for itself, a light one waits for at most
one chunk of it, and heavy projects share the worker a budget each per round. Per chunk: inflate
(capped) and check as capture did, recompress with zstd, write the blob;
per turn, one insert of index rows, then the turn's inbox files are removed. A
chunk that fails on its own bytes goes to quarantine with the reason; a store
or disk failure puts the turn back for a retry with back-off.

Crash points: after a blob write, before the index insert, the chunk is redone
(same key, same bytes); after the insert, before the inbox file is removed, it
is redone too, and the second index row collapses with the first
(``recordings`` is a ReplacingMergeTree on project, session, seq, read FINAL).

Large texts (stylesheets) leave the chunk for the project's text store, each
written and synced before the chunk that refers to it. Once a session has had no
chunk for ``unit_idle_s``, its chunk files are compacted into one zstd unit
(``BlobStore.compact_session``: the unit is durable before they are deleted);
the index keeps the chunk keys, and readers find a compacted chunk in its unit.
Sessions left loose by a restart are found by a lazy walk of the blob store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from hitmetrix.loader.chunks import ChunkRecoder, warm_up
from hitmetrix.loader.counters import LoaderCounters
from hitmetrix.loader.inbox import ChunkInbox, FileVersion, InboxChunk, InboxEntry, decode_chunk
from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.loader.rows import RecordingRow, recording_table
from hitmetrix.model import StoredChunk
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.schema import DATABASE

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# A project with at most 1/16 of the budget waiting (compressed bytes, a few MiB inflated at the
# default) is light: it may cut a heavy project's turn short.
LIGHT_WAITING_DIVISOR = 16
# A session with no new chunk for this long is compacted into a unit (a visitor who comes back later gets a
# second unit, merged with the first at the next compaction).
UNIT_IDLE_S = 300.0
# Per idle moment of the worker: sessions compacted, and sessions of the walk for loose chunks looked at.
UNITS_PER_IDLE_ROUND = 8
LOOSE_SESSIONS_PER_IDLE_ROUND = 64
# The walk for loose sessions pauses while this many sessions wait for their unit (memory stays bounded).
MAX_SESSIONS_TRACKED = 10_000
# Under constant load the worker is never idle: it compacts at least this often anyway.
COMPACT_EVERY_S = 30.0


class ChunkWorker:
    def __init__(
        self,
        inbox: ChunkInbox,
        blobs: BlobStore,
        store: EventStore,
        quarantine: Quarantine,
        counters: LoaderCounters,
        *,
        max_chunk_json_bytes: int,
        max_json_depth: int,
        project_bytes_per_round: int,
        poll_interval_s: float = 1.0,
        unit_idle_s: float = UNIT_IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.blobs = blobs
        self.store = store
        self.quarantine = quarantine
        self.counters = counters
        self.project_bytes_per_round = max(1, project_bytes_per_round)
        self.poll_interval_s = poll_interval_s
        self._recoder = ChunkRecoder(max_chunk_json_bytes, max_json_depth)
        self._round_lock = threading.Lock()  # the thread and ``drain`` never work at once (one recoder)
        self._first_project = 0  # whose turn comes first in the next round
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stored_listeners: list[Callable[[list[RecordingRow]], None]] = []
        self.unit_idle_s = unit_idle_s
        self.clock = clock
        self._last_chunk_at: dict[tuple[int, str], float] = {}  # sessions with loose chunks: their last write
        self._loose_walk: Iterator[tuple[int, str]] | None = None
        self._compacted_at = clock()

    def add_stored_listener(self, listener: Callable[[list[RecordingRow]], None]) -> None:
        """Call ``listener`` with the index rows of the chunks of each turn, once they are durably stored.

        It runs on this worker's thread, so it must only hand the rows over (the asset worker queues them).
        """
        self._stored_listeners.append(listener)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("chunk worker already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hitmetrix-chunk-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the chunk in hand and the turn's insert, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        warm_up()
        backoff_s = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                handled = self.run_round(self._stop.is_set)
                if not handled or self.clock() - self._compacted_at >= COMPACT_EVERY_S:
                    self.compact_quiet_sessions(self._stop.is_set)
                backoff_s = 0.0
            except Exception:
                backoff_s = min(MAX_BACKOFF_S, 2 * backoff_s or FIRST_BACKOFF_S)
                log.exception("storing recording chunks failed; retrying in %.1f s", backoff_s)
                self._stop.wait(backoff_s)
                continue
            if not handled:
                self._wake.wait(self.poll_interval_s)

    def drain(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Work rounds until the inbox is empty; returns how many chunks were handled."""
        total = 0
        while not stopping() and (handled := self.run_round(stopping)):
            total += handled
        return total

    def run_round(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """One turn per project with chunks waiting; returns how many chunks were handled."""
        with self._round_lock:
            waiting = self.inbox.waiting_bytes()
            if not waiting:
                return 0
            # Least waiting first: a project with one small chunk is not kept behind a flood's turn. Ties
            # go round the project ids, starting one further on each round.
            rotated = sorted(waiting, key=lambda p: (p < self._first_project, p))
            self._first_project = rotated[0] + 1
            order = sorted(rotated, key=waiting.__getitem__)
            handled = 0
            for project_id in order:
                if stopping():
                    break
                handled += self._turn(project_id, stopping)
            return handled

    def compact_quiet_sessions(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Compact up to ``UNITS_PER_IDLE_ROUND`` sessions quiet for ``unit_idle_s``; returns how many.

        Also walks a little further through the blob store for sessions left loose by an earlier run: they
        count as written now, and are compacted once that is ``unit_idle_s`` ago.
        """
        with self._round_lock:
            now = self._compacted_at = self.clock()
            if self._loose_walk is None:
                self._loose_walk = self.blobs.sessions_with_loose_chunks()
            for _ in range(LOOSE_SESSIONS_PER_IDLE_ROUND if len(self._last_chunk_at) < MAX_SESSIONS_TRACKED else 0):
                found = next(self._loose_walk, None)
                if found is None:
                    break
                self._last_chunk_at.setdefault(found, now)
            quiet = [s for s, at in self._last_chunk_at.items() if now - at >= self.unit_idle_s]
            done = 0
            for project_id, session_id in sorted(quiet, key=self._last_chunk_at.__getitem__)[:UNITS_PER_IDLE_ROUND]:
                if stopping():
                    break
                try:
                    chunks = self.blobs.compact_session(project_id, session_id)
                except Exception:  # noqa: BLE001 - a unit is an optimisation: its chunks stay readable loose
                    log.exception("compacting session %r of project %d failed", session_id, project_id)
                    chunks = 0
                del self._last_chunk_at[(project_id, session_id)]
                self.counters.add("units_written", 1 if chunks else 0)
                self.counters.add("chunks_compacted", chunks)
                done += 1
            return done

    def _light_project_waiting(self, project_id: int) -> bool:
        """Has another project a little waiting, less than this one (e.g. a small chunk that just came in)?

        Heavy projects do not cut each other's turns: each gets its budget per round.
        """
        waiting = self.inbox.waiting_bytes()
        mine = waiting.get(project_id, 0)
        light_bytes = self.project_bytes_per_round // LIGHT_WAITING_DIVISOR
        return any(size < mine and size <= light_bytes for other, size in waiting.items() if other != project_id)

    def _turn(self, project_id: int, stopping: Callable[[], bool]) -> int:
        """Up to the budget of one project's chunks, cut short when a light project has some waiting."""
        used_bytes = 0
        taken: list[tuple[InboxEntry, FileVersion]] = []
        rows: list[RecordingRow] = []
        try:
            while used_bytes < self.project_bytes_per_round and not stopping():
                if taken and self._light_project_waiting(project_id):
                    break
                entry = self.inbox.take(project_id)
                if entry is None:
                    break
                found = self.inbox.read(entry)
                if found is None:
                    continue
                data, version = found
                taken.append((entry, version))
                used_bytes += self._store_blob(entry, data, rows)
            if rows:
                self.blobs.sync_dirs([row.path for row in rows])
                self.store.insert_arrow(f"{DATABASE}.recordings", recording_table(rows))
        except BaseException:
            self.inbox.put_back([entry for entry, _ in taken])
            raise
        for entry, version in taken:
            self.inbox.remove(entry, version)
        self._announce_stored(rows)
        self.counters.add("chunks_stored", len(rows))
        self.counters.add("chunk_json_bytes_stored", sum(row.raw_bytes for row in rows))
        return len(taken)

    def _announce_stored(self, rows: list[RecordingRow]) -> None:
        for listener in self._stored_listeners if rows else ():
            try:
                listener(rows)
            except Exception:  # noqa: BLE001 - a listener's bug must not undo or repeat a stored turn
                log.exception("a stored-chunk listener failed")

    def _store_blob(self, entry: InboxEntry, data: bytes, rows: list[RecordingRow]) -> int:
        """Write one chunk's blob and add its index row, or quarantine it; returns the bytes it cost."""
        try:
            chunk = decode_chunk(data)
        except Exception as exc:  # a damaged inbox file: keep its bytes for a person to look at
            self._quarantine(_unreadable(entry, data), "inbox", exc)
            return len(data)
        try:
            key = BlobStore.chunk_key(chunk.project_id, chunk.session_id, chunk.seq)
            recoded = self._recoder.recode_deduplicated(chunk.data)
        except Exception as exc:  # the chunk's own bytes: never retried, never holding others back
            self._quarantine(chunk, "chunk", exc)
            return len(chunk.data)
        # An OSError here is the disk's, not the chunk's: the turn is retried. Texts first: a chunk on disk
        # never refers to a text that is not.
        for text in recoded.texts.values():
            self.blobs.put_text(chunk.project_id, text)
        blob, raw_bytes = recoded.blob, recoded.raw_bytes
        self.blobs.put(key, blob)
        self._last_chunk_at[(chunk.project_id, chunk.session_id)] = self.clock()
        rows.append(
            RecordingRow(
                chunk.project_id,
                chunk.session_id,
                chunk.seq,
                chunk.first_ts,
                chunk.last_ts,
                chunk.count,
                len(blob),
                raw_bytes,
                key,
                chunk.received_at,
                chunk.segment_id,
            )
        )
        return raw_bytes

    def _quarantine(self, chunk: InboxChunk, stage: str, exc: BaseException) -> None:
        stored = StoredChunk(
            seq=chunk.seq, first_ts=chunk.first_ts, last_ts=chunk.last_ts, count=chunk.count, data=chunk.data
        )
        item = self.quarantine.put_chunk(
            stored,
            stage,
            exc,
            chunk.segment_id,
            project_id=chunk.project_id,
            session_id=chunk.session_id,
            batch_id=chunk.batch_id,
            received_at=chunk.received_at,
        )
        log.warning(
            "recording chunk %d of session %r (project %d, batch %r, segment %d) quarantined as %s: %s: %s",
            chunk.seq,
            chunk.session_id,
            chunk.project_id,
            chunk.batch_id,
            chunk.segment_id,
            item,
            type(exc).__name__,
            exc,
        )


def _unreadable(entry: InboxEntry, data: bytes) -> InboxChunk:
    """What an unreadable inbox file's name still tells (project, session, seq), and its bytes."""
    session_id, _, rest = entry.name.partition(".")
    seq_text = rest.split(".", 1)[0]
    seq = int(seq_text) if seq_text.isdigit() else 0
    return InboxChunk(
        project_id=entry.project_id,
        session_id=session_id,
        seq=seq,
        first_ts=0,
        last_ts=0,
        count=0,
        received_at=0,
        segment_id=0,
        batch_id="",
        data=data,
    )
