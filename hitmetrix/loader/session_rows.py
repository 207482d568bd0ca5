"""One row per session: the loader rewrites the ``sessions`` row of every session a load touched.

A session's row is aggregated from all of its ``session_segments`` rows (every
spool segment it appeared in), so a session that spans segments, days or a
date filter's boundary is one row with its real start, entry page and
duration. Rows are versioned: a newer version replaces an older one, and a
start that moved (a late segment with earlier events) leaves a tombstone
under the old start. Run after a segment's summaries are in and before its
ledger row: a crash in between reloads the segment, which refreshes again.
Each row carries its visitor's number (schema step 10): a visitor seen for the
first time is numbered, and the number stored, before the row is written.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.system_queries import (
    ADD_VISITORS,
    LOG_SESSION_STARTS,
    MAX_SESSION_VERSION,
    SESSION_VISITORS,
    TOP_VISITOR_NUMBERS,
    VISITOR_NUMBERS,
    WRITE_SESSIONS,
)

log = logging.getLogger(__name__)

SessionKey = tuple[int, str]
_MAX_UINT32 = 2**32 - 1
# Sessions per refresh statement: bounds the JSON parameter and the IN set.
REFRESH_CHUNK = 5000
# Visitors are numbered by one refresh at a time in this process (and chDB allows one process per data directory):
# no number is given to two visitors. A ClickHouse server shared by several loaders would need one per project.
_NUMBERING = threading.Lock()


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
            visitor_keys, visitor_nums = self._visitor_numbers(params)
            self.store.execute(
                WRITE_SESSIONS,
                {**params, "version": self._next_version(), "visitor_keys": visitor_keys, "visitor_nums": visitor_nums},
            )

    def _visitor_numbers(self, params: dict[str, str]) -> tuple[list[int], list[int]]:
        """The visitor key and number of every visitor of these sessions; a visitor seen for the first time
        gets the next number of its project, stored before any row carries it (a crash after that finds it)."""
        visitors = self.store.query(SESSION_VISITORS, params)
        if not visitors:
            return [], []
        projects = sorted({int(row["project_id"]) for row in visitors})
        pairs = {"projects": projects, "visitors": sorted({int(row["visitor"]) for row in visitors})}
        with _NUMBERING:
            numbers = {
                (int(row["project_id"]), int(row["visitor"])): int(row["num"])
                for row in self.store.query(VISITOR_NUMBERS, pairs)
            }
            new = sorted(
                (int(row["project_id"]), int(row["first_ms"]), int(row["visitor"]))
                for row in visitors
                if (int(row["project_id"]), int(row["visitor"])) not in numbers
            )
            if new:
                tops = {
                    int(row["project_id"]): int(row["top"])
                    for row in self.store.query(TOP_VISITOR_NUMBERS, {"projects": projects})
                }
                stored = []
                for project, _, visitor in new:
                    num = tops.get(project, 0) + 1
                    if num > _MAX_UINT32:  # past UInt32 it would wrap to numbers real visitors hold: leave 0
                        numbers[(project, visitor)] = 0
                        continue
                    tops[project] = numbers[(project, visitor)] = num
                    stored.append((project, visitor, num))
                if len(stored) < len(new):
                    log.warning("%d visitors left without a number: their project used every number",
                                len(new) - len(stored))
                if stored:
                    self.store.execute(
                        ADD_VISITORS,
                        {
                            "projects": [project for project, _, _ in stored],
                            "visitors": [visitor for _, visitor, _ in stored],
                            "nums": [num for _, _, num in stored],
                        },
                    )
        return (
            [int(row["key"]) for row in visitors],
            [numbers[(int(row["project_id"]), int(row["visitor"]))] for row in visitors],
        )

    def _next_version(self) -> int:
        """Above every version written before, even by an earlier process whose clock ran ahead."""
        with self._lock:
            if self._last_version is None:
                rows = self.store.query(MAX_SESSION_VERSION)
                self._last_version = int(rows[0]["v"]) if rows and rows[0]["v"] is not None else 0
            self._last_version = max(self._clock_ns(), self._last_version + 1)
            return self._last_version
