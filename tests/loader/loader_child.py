"""A child process for the kill -9 tests: loads a data directory's spool, printing each segment stored.

Run as ``python -m tests.loader.loader_child DATA_DIR [SEGMENT_ID]``. With a segment id, the
child kills itself with SIGKILL right after that segment's events are inserted: after step 3,
before the batch ids are marked and before the ledger row.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore


class KilledAfterEventsOf:
    """The real store, and a kill -9 of this process once one segment's events are in it."""

    def __init__(self, store: ChdbStore, segment_id: int | None) -> None:
        self.store = store
        self.segment_id = segment_id

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.store.query(sql, params)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.store.execute(sql, params)

    def insert_arrow(self, table: str, rows: pa.Table, dedup_token: str | None = None) -> None:
        self.store.insert_arrow(table, rows, dedup_token)
        if self._is_target(table, rows):
            sys.stdout.write(f"killed after the events of segment {self.segment_id}\n")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def _is_target(self, table: str, rows: pa.Table) -> bool:
        if not table.endswith(".events") or self.segment_id is None or not rows.num_rows:
            return False
        return bool(pc.max(rows.column("segment_id")).as_py() == self.segment_id)

    def close(self) -> None:
        self.store.close()


def main(data_dir: Path, kill_after_events_of: int | None) -> None:
    spool = Spool(data_dir / "spool", fsync="never")
    spool.start()
    store = KilledAfterEventsOf(ChdbStore(data_dir / "store"), kill_after_events_of)

    def report(batches: list[StoredBatch]) -> None:
        sys.stdout.write(f"loaded {batches[0].batch_id if batches else '-'}\n")
        sys.stdout.flush()

    loader = Loader(spool, store, BlobStore(data_dir / "recordings"), max_batch_segments=2, on_loaded=report)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while spool.sealed_segments():
        loader.load_once()
    store.close()
    spool.close()
    sys.stdout.write("done\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
