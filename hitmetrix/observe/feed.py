"""The live feed: short summaries of the batches capture just accepted, per project, for live views.

Capture calls ``publish`` right after the spool append returned, on the event
loop. Publishing never waits: for a project somebody watches (a live view
opened in the last ``WATCH_S``), a summary goes into the project's ring (the
newest ``ring_size``) and wakes whoever is waiting on that project; for the
others it only notes that data arrived, so unwatched projects cost capture
next to nothing. Readers keep the id of the last summary they saw and read
what is newer; one that fell more than a ring behind (or whose project went
unwatched meanwhile) is told it missed some (a gap) instead of slowing anyone
down.

Best-effort by design: the spool is what is durable. The feed lives in memory,
starts empty with each process, and drops what a slow reader did not read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hitmetrix.model import StoredBatch

log = logging.getLogger(__name__)

RING_SIZE = 100
WATCH_S = 600.0  # summaries are kept this long after a reader last asked for a project's
MAX_EVENTS_SHOWN = 5  # per batch summary: a feed line, not the batch
MAX_TEXT_CHARS = 300


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def summarise(batch: StoredBatch, batch_id: int) -> dict[str, Any]:
    """What a live view shows of one accepted batch (the visitor's address is never part of it)."""
    shown = [
        {"type": e.type, "name": _short(e.name), "url": _short(e.url), "ts": e.ts}
        for e in batch.events[:MAX_EVENTS_SHOWN]
    ]
    return {
        "id": batch_id,
        "session_id": batch.session_id,
        "received_at": batch.received_at,
        "events": len(batch.events),
        "chunks": len(batch.recording),
        "shown": shown,
        "user_id": _short(batch.user_id),
        "country": batch.country,
        "browser": batch.browser,
        "os": batch.os,
        "device_type": batch.device_type,
    }


class LiveFeed:
    """Rings of recent batch summaries per project, and waiting readers to wake. Event-loop thread only."""

    def __init__(self, ring_size: int = RING_SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        self.ring_size = ring_size
        self._clock = clock
        self._watched_until: dict[int, float] = {}  # project -> clock time its summaries are kept until
        self._rings: dict[int, deque[dict[str, Any]]] = {}
        self._dropped_upto: dict[int, int] = {}  # project -> id of the newest summary pushed out of its ring
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._first_ms: dict[int, int] = {}  # project -> when data was first seen (here or in the store)
        self._last_id = 0
        # Names this process's ids: a browser resuming with an id of another (restarted) server starts over.
        self.epoch = secrets.token_hex(4)
        self._closed = False
        self.readers = 0  # open live streams, for /metrics
        self.swallowed_errors = 0  # publish never raises into capture; what it swallowed is counted here

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_id(self) -> int:
        return self._last_id

    def publish(self, batch: StoredBatch) -> None:
        """Called by capture after the spool append: O(1) in the feed, never raises."""
        try:
            self._last_id += 1
            pid = batch.project_id
            if pid not in self._first_ms:
                self._first_ms[pid] = batch.received_at
            if self._watched_until.get(pid, 0.0) < self._clock():
                self._dropped_upto[pid] = self._last_id  # a reader resuming across this learns of the gap
                return
            summary = summarise(batch, self._last_id)
            ring = self._rings.get(pid)
            if ring is None:
                ring = self._rings[pid] = deque(maxlen=self.ring_size)
            if len(ring) == ring.maxlen:
                self._dropped_upto[pid] = ring[0]["id"]
            ring.append(summary)
            waiters = self._waiters.pop(pid, None)
            if waiters:
                for waiter in waiters:
                    waiter.set()
        except Exception:  # noqa: BLE001 - a live view must never fail a capture request
            self.swallowed_errors += 1
            if self.swallowed_errors == 1:
                log.exception("live feed: publishing failed (counted from now on, not logged again)")

    def watch(self, project_id: int) -> None:
        """A reader wants the project's summaries: keep them for the next ``WATCH_S``."""
        self._watched_until[project_id] = self._clock() + WATCH_S

    def since(self, project_id: int, after_id: int) -> tuple[list[dict[str, Any]], bool]:
        """The project's summaries newer than ``after_id``, oldest first, and whether some were missed."""
        missed = after_id < self._dropped_upto.get(project_id, 0)
        ring = self._rings.get(project_id)
        if not ring or ring[-1]["id"] <= after_id:
            return [], missed
        return [s for s in ring if s["id"] > after_id], missed

    def recent(self, project_id: int, count: int) -> list[dict[str, Any]]:
        """The project's newest ``count`` summaries, oldest first."""
        ring = self._rings.get(project_id)
        return list(ring)[-count:] if ring and count > 0 else []

    async def wait(self, project_id: int, after_id: int, timeout_s: float) -> bool:
        """Wait until the project has a summary newer than ``after_id`` (True), or ``timeout_s`` passed or the
        feed closed (False)."""
        if self._closed:
            return False
        ring = self._rings.get(project_id)
        if ring and ring[-1]["id"] > after_id:
            return True
        waiter = asyncio.Event()
        self._waiters.setdefault(project_id, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            waiting = self._waiters.get(project_id)
            if waiting is not None:
                waiting.discard(waiter)
                if not waiting:
                    del self._waiters[project_id]
        return not self._closed

    def first_seen_ms(self, project_id: int) -> int | None:
        """When this process first saw data for the project (or was told of older data), else None."""
        return self._first_ms.get(project_id)

    def note_data(self, project_id: int, at_ms: int) -> None:
        """Remember that the project has data (found in the store), so nobody asks the store again."""
        self._first_ms.setdefault(project_id, at_ms)

    def close(self) -> None:
        """Wake every reader for good: live streams end so that the server can stop."""
        self._closed = True
        waiters = [w for group in self._waiters.values() for w in group]
        self._waiters.clear()
        for waiter in waiters:
            waiter.set()
