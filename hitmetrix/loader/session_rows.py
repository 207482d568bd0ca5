"""One row per session: the loader rewrites the ``sessions`` row of every session a load touched.

A session's row is aggregated from all of its ``session_segments`` rows (every
spool segment it appeared in), so a session that spans segments, days or a
date filter's boundary is one row with its real start, entry page and
duration. Rows are versioned: a newer version replaces an older one, and a
start that moved (a late segment with earlier events) leaves a tombstone
under the old start. Run after a segment's summaries are in and before its
ledger row: a crash in between reloads the segment, which refreshes again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable

from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.system_queries import LOG_SESSION_STARTS, MAX_SESSION_VERSION, WRITE_SESSIONS

SessionKey = tuple[int, str]
_MAX_UINT32 = 2**32 - 1
# Sessions per refresh statement: bounds the JSON parameter and the IN set.
REFRESH_CHUNK = 5000


def session_key(project_id: int, session_id: str) -> SessionKey:
    # The project id as the events table stores it (clamped to UInt32).
    return (min(max(project_id, 0), _MAX_UINT32), session_id)


class SessionRows:
    def __init__(self, store: EventStore, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self._clock_ns = clock_ns
        self._last_version: int | None = None
        self._lock = threading.Lock()

    def refresh(self, keys: Iterable[SessionKey]) -> None:
        """Rewrite these sessions' rows from their segments' summaries (all of them, whenever loaded)."""
        touched = sorted(set(keys))
        for start in range(0, len(touched), REFRESH_CHUNK):
            chunk = touched[start : start + REFRESH_CHUNK]
            # chDB cannot bind an array of tuples: the keys travel as one JSON string, read with backslash
            # escapes, and ASCII-only JSON has no other character to escape.
            params = {"keys": json.dumps(chunk, ensure_ascii=True).replace("\\", "\\\\")}
            self.store.execute(LOG_SESSION_STARTS, params)
            self.store.execute(WRITE_SESSIONS, {**params, "version": self._next_version()})

    def _next_version(self) -> int:
        """Above every version written before, even by an earlier process whose clock ran ahead."""
        with self._lock:
            if self._last_version is None:
                rows = self.store.query(MAX_SESSION_VERSION)
                self._last_version = int(rows[0]["v"]) if rows and rows[0]["v"] is not None else 0
            self._last_version = max(self._clock_ns(), self._last_version + 1)
            return self._last_version
