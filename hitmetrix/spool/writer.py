"""The spool: a durable append-only log of capture batches, one writer thread with group commit.

``await spool.append(payload)`` returns only once the payload is durable under
the fsync policy; the loader reads sealed segments and removes them once stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hitmetrix.spool.active import ActiveSegment, SegmentFile, TornWriteError, open_segment_file
from hitmetrix.spool.pending import Pending, settle
from hitmetrix.spool.segment import (
    QUARANTINE_DIR,
    parse_segment_name,
    read_records,
    recover_open_segment,
    segment_path,
    write_file_durably,
)

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "interval", "never")
INTERVAL_FSYNC_S = 0.1
NEXT_ID_FILE = "next_id"
DONE_DIR = "done"  # segments the loader is done with, kept while another consumer still needs them
LOCK_FILE = "lock"
_TICK_S = 0.05  # how often a writer with a timer pending re-reads the (possibly fake) clock


class SpoolUnavailableError(Exception):
    """The spool cannot take an append now (disk full, I/O error, queue full): answer 503."""


class SpoolClosedError(SpoolUnavailableError):
    """The spool is closed or closing."""


class Spool:
    """Append-only segment files in ``directory``; appends from any thread or event loop.

    ``fsync``: 'always' acknowledges after fsync, one write and one fsync for every
    group of appends that queued up meanwhile; 'interval' after write(), fsyncing
    at most every 100 ms; 'never' after write() (tests). The active segment is
    sealed at ``segment_max_bytes`` or, once non-empty, after ``segment_max_age_s``
    by ``clock``. ``open_file`` lets tests stand in a failing disk.
    """

    def __init__(
        self,
        directory: Path,
        fsync: str = "always",
        segment_max_bytes: int = 16 * 1024 * 1024,
        segment_max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_queued_bytes: int = 256 * 1024 * 1024,
        open_file: Callable[[Path], SegmentFile] = open_segment_file,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        if segment_max_bytes < 64:
            raise ValueError("segment_max_bytes must be at least 64")
        self.directory = Path(directory)
        self.fsync = fsync
        self._durable = fsync != "never"
        self._max_bytes = segment_max_bytes
        self._max_age_s = segment_max_age_s
        self._clock = clock
        self._max_queued_bytes = max_queued_bytes
        self._open_file = open_file
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._queued_bytes = 0
        self._state = "new"  # -> running -> closing -> closed
        self._failure: str | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._retain_removed = False  # see retain_removed_segments
        self._next_id = 1  # from here on owned by the writer thread, like _active
        self._active: ActiveSegment | None = None

    @property
    def failure(self) -> str | None:
        """Why the spool stopped taking appends until restarted (None while healthy)."""
        return self._failure

    @property
    def closed(self) -> bool:
        """True from the moment ``close()`` begins: appends are refused with SpoolClosedError."""
        return self._state in ("closing", "closed")

    def start(self) -> None:
        """Lock the directory, recover segments a crash left open, start the writer thread."""
        with self._cond:
            if self._state != "new":
                raise RuntimeError("spool already started")
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_directory()
            self._next_id = self._recover_next_id()
            for path in sorted(self.directory.glob("*.open")):
                if parse_segment_name(path.name) is not None:
                    recover_open_segment(path, durable=self._durable)
            self._state = "running"
            self._thread = threading.Thread(target=self._run, name="hitmetrix-spool-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write every queued append, seal the active segment, stop the writer."""
        with self._cond:
            if self._state in ("new", "closed"):
                self._state = "closed"
                return
            self._state = "closing"
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            self._state = "closed"
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def add_seal_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(segment_id)`` after each seal, in the writer thread: keep it quick."""
        self._listeners.append(callback)

    async def append(self, payload: bytes) -> None:
        """Return once ``payload`` is durable under the fsync policy; SpoolUnavailableError if it cannot be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(Pending(payload, future, loop))
        await future

    def append_blocking(self, payload: bytes, timeout_s: float | None = None) -> None:
        """``append`` for threads without an event loop (after a timeout the append may still land)."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._enqueue(Pending(payload, future, None))
        future.result(timeout_s)

    def _enqueue(self, item: Pending) -> None:
        with self._cond:
            if self._state in ("closing", "closed"):
                raise SpoolClosedError("spool is closed")
            if self._state != "running":
                raise SpoolUnavailableError("spool is not started")
            if self._failure is not None:
                raise SpoolUnavailableError(self._failure)
            if self._queue and self._queued_bytes + item.size > self._max_queued_bytes:
                raise SpoolUnavailableError("spool write queue is full")
            self._queue.append(item)
            self._queued_bytes += item.size
            self._cond.notify()

    # -- the loader's side: sealed segments only, never the one being written ----------

    def sealed_segments(self) -> list[int]:
        ids = []
        for entry in os.scandir(self.directory):
            parsed = parse_segment_name(entry.name)
            if parsed is not None and parsed[1]:
                ids.append(parsed[0])
        return sorted(ids)

    def read_segment(self, segment_id: int) -> Iterator[bytes]:
        """The payloads of a sealed segment in append order (CorruptSegmentError if damaged)."""
        return read_records(segment_path(self.directory, segment_id, sealed=True))

    def retain_removed_segments(self) -> Path:
        """From now on ``remove_segment`` moves segments to ``done/`` instead of deleting them: a consumer
        reading the spool on its own (detection) deletes them there once it no longer needs them."""
        done = self.directory / DONE_DIR
        done.mkdir(parents=True, exist_ok=True)
        self._retain_removed = True
        return done

    def remove_segment(self, segment_id: int) -> None:
        path = segment_path(self.directory, segment_id, sealed=True)
        if self._retain_removed:
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, self.directory / DONE_DIR / path.name)
            return
        path.unlink(missing_ok=True)

    def segment_bytes(self, segment_id: int) -> bytes:
        """A sealed segment's file as it is, for salvaging and keeping a damaged one."""
        return segment_path(self.directory, segment_id, sealed=True).read_bytes()

    def sealed_backlog(self) -> tuple[int, float]:
        """How many sealed segments wait for the loader, and the oldest one's age in seconds (0.0 if none).

        The age is wall-clock time since the segment's last write, i.e. roughly since it was sealed.
        """
        oldest_mtime: float | None = None
        count = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:  # never started on this data directory
            return 0, 0.0
        for entry in entries:
            parsed = parse_segment_name(entry.name)
            if parsed is None or not parsed[1]:
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:  # loaded meanwhile
                continue
            count += 1
            oldest_mtime = mtime if oldest_mtime is None else min(oldest_mtime, mtime)
        if oldest_mtime is None:
            return 0, 0.0
        return count, max(0.0, time.time() - oldest_mtime)

    def quarantined_files(self) -> list[Path]:
        """Files that start-up recovery moved aside (an open segment without our magic)."""
        directory = self.directory / QUARANTINE_DIR
        return sorted(directory.iterdir()) if directory.is_dir() else []

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        batch: list[Pending] = []
        try:
            while True:
                with self._cond:
                    while not self._queue and self._state == "running" and not self._timer_due():
                        self._cond.wait(_TICK_S if self._active is not None else None)
                    batch, self._queue, self._queued_bytes = self._queue, [], 0
                    stopping = self._state != "running"
                if batch:
                    self._write_batch(batch)
                self._run_timers()
                if stopping and not batch:
                    if self._failure is None:
                        self._seal()
                    if self._active is not None:
                        self._active.abandon()  # left .open for the next start() to recover
                    return
        except Exception as exc:  # a bug: fail loudly, but never leave a waiter hanging
            log.exception("spool writer crashed")
            self._fail(f"spool writer crashed: {exc!r}")
            with self._cond:
                batch += self._queue
                self._queue = []
            settle(batch, SpoolUnavailableError(self._failure or ""))
            if self._active is not None:
                self._active.abandon()

    def _timer_due(self) -> bool:
        active = self._active
        if active is None or self._failure is not None:
            return False
        now = self._clock()
        if active.records and now - active.opened_at >= self._max_age_s:
            return True
        return self.fsync == "interval" and active.dirty and now - active.last_fsync_at >= INTERVAL_FSYNC_S

    def _run_timers(self) -> None:
        if self._timer_due():
            assert self._active is not None
            if self._clock() - self._active.opened_at >= self._max_age_s:
                self._seal()
            else:
                self._fsync_active()

    def _write_batch(self, batch: list[Pending]) -> None:
        start = 0
        while start < len(batch):
            if self._failure is not None:
                settle(batch[start:], SpoolUnavailableError(self._failure))
                return
            if self._active is None:
                try:
                    self._open_segment()
                except OSError as exc:
                    log.error("spool cannot open a new segment: %s", exc)
                    settle(batch[start:], SpoolUnavailableError(f"spool cannot open a segment: {exc}"))
                    return
            active = self._active
            assert active is not None
            room = self._max_bytes - active.size
            end, size = start, 0
            while end < len(batch) and (size + batch[end].size <= room or (end == start and not active.records)):
                size += batch[end].size
                end += 1
            if end == start:  # the next record does not fit: seal and start a new segment
                self._seal()
                continue
            self._write_group(active, batch[start:end])
            start = end

    def _write_group(self, active: ActiveSegment, group: list[Pending]) -> None:
        """One write() and, under 'always', one fsync for many appends, then wake them all."""
        parts: list[bytes] = []
        for item in group:
            parts += (item.header, item.payload)
        good_size = active.size
        try:
            active.write(b"".join(parts), len(group))
        except OSError as exc:  # ENOSPC and friends: the file is cut back, the spool goes on
            log.error("spool write failed, %d appends refused: %s", len(group), exc)
            if isinstance(exc, TornWriteError):
                self._fail(str(exc))
            settle(group, SpoolUnavailableError(f"spool write failed: {exc}"))
            return
        if self.fsync == "always":
            try:
                active.fsync(self._clock())
            except OSError as exc:  # the kernel may have dropped the pages: trust nothing unsynced
                self._fail(f"spool fsync failed: {exc}")
                with contextlib.suppress(OSError):
                    active.truncate_unsynced(good_size, exc)
                settle(group, SpoolUnavailableError(f"spool fsync failed: {exc}"))
                return
        settle(group, None)
        if self.fsync == "interval" and self._clock() - active.last_fsync_at >= INTERVAL_FSYNC_S:
            self._fsync_active()
        if active.size >= self._max_bytes:
            self._seal()

    def _fsync_active(self) -> None:
        assert self._active is not None
        try:
            self._active.fsync(self._clock())
        except OSError as exc:
            self._fail(f"spool fsync failed: {exc}")

    def _open_segment(self) -> None:
        segment_id = self._next_id
        # Persist the high-water mark first: an id is never reused, even after its segment is gone.
        write_file_durably(self.directory / NEXT_ID_FILE, f"{segment_id + 1}\n".encode(), durable=self._durable)
        self._active = ActiveSegment.create(self.directory, segment_id, self._open_file, self._clock(), self._durable)
        self._next_id = segment_id + 1

    def _seal(self) -> None:
        active = self._active
        if active is None or self._failure is not None:
            return
        try:
            sealed = active.seal()
        except OSError as exc:
            self._fail(f"spool cannot seal segment {active.segment_id}: {exc}")
            return
        self._active = None
        if sealed:
            for listener in self._listeners:
                try:
                    listener(active.segment_id)
                except Exception:
                    log.exception("spool seal listener failed")

    def _fail(self, reason: str) -> None:
        log.error("spool refuses appends until restarted: %s", reason)
        with self._cond:
            if self._failure is None:
                self._failure = reason

    def _lock_directory(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolUnavailableError(f"spool directory {self.directory} is in use by another process") from None
        self._lock_fd = fd

    def _recover_next_id(self) -> int:
        """One past every id ever used: the high-water file, segments left, segments quarantined."""
        highest = 0
        with contextlib.suppress(FileNotFoundError, ValueError):
            highest = int((self.directory / NEXT_ID_FILE).read_text().strip()) - 1
        for directory in (self.directory, self.directory / QUARANTINE_DIR):
            if directory.is_dir():
                for entry in os.scandir(directory):
                    if entry.name[:16].isdigit():
                        highest = max(highest, int(entry.name[:16]))
        return highest + 1
