"""What the loader has done since it started, counted by name: for /healthz now, /metrics later."""

from __future__ import annotations

import threading
from collections import Counter

# Every counter the loader keeps; a name outside this list is a bug.
COUNTER_NAMES = (
    "segments_loaded",
    "batches_loaded",
    "batches_duplicate",
    "batches_of_deleted_projects",
    "events_loaded",
    "chunks_inboxed",
    "chunks_stored",
    "chunk_json_bytes_stored",
    "units_written",
    "chunks_compacted",
    "batches_quarantined",
    "chunks_quarantined",
    "segments_quarantined",
    "segment_failures",
    "segments_split",
    "items_requeued",
)


class LoaderCounters:
    """Monotonic counts, safe to bump from the loader's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter(dict.fromkeys(COUNTER_NAMES, 0))

    def add(self, name: str, amount: int = 1) -> None:
        if name not in self._values:
            raise KeyError(f"unknown loader counter {name!r}")
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)
