"""A child process for the kill -9 test: loads a data directory's spool, printing each segment stored.

Run as ``python -m tests.loader.loader_child DATA_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore


def main(data_dir: Path) -> None:
    spool = Spool(data_dir / "spool", fsync="never")
    spool.start()
    store = ChdbStore(data_dir / "store")

    def report(batches: list[StoredBatch]) -> None:
        sys.stdout.write(f"loaded {batches[0].batch_id}\n")
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
    main(Path(sys.argv[1]))
