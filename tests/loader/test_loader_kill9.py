"""The loader's promise under kill -9 at any moment: every spooled batch ends up stored exactly once."""

from __future__ import annotations

import gzip
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hitmetrix.analytics.sessions import SessionFilters, list_sessions
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredChunk, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.support import REPO

SEGMENTS = 24
BATCHES_PER_SEGMENT = 10
EVENTS_PER_BATCH = 50
NOW_MS = int(time.time() * 1000)
CHUNK = gzip.compress(json.dumps([{"type": 3, "timestamp": NOW_MS, "data": {"source": 1}}]).encode())


def _batch(segment: int, n: int) -> StoredBatch:
    session = f"sess{segment:04d}"
    return StoredBatch(
        batch_id=f"b{segment}-{n}",
        project_id=1,
        received_at=NOW_MS,
        session_id=session,
        anonymous_id="a",
        events=[
            StoredEvent(
                event_id=f"00000000-0000-4000-8000-{segment:04d}{n:04d}{e:04d}",
                type="click",
                ts=NOW_MS,
                client_ts=NOW_MS,
            )
            for e in range(EVENTS_PER_BATCH)
        ],
        recording=[StoredChunk(seq=n, first_ts=NOW_MS, last_ts=NOW_MS, count=1, data=CHUNK)],
    )


def _fill_spool(directory: Path) -> None:
    for segment in range(SEGMENTS):
        spool = Spool(directory, fsync="never", segment_max_age_s=3600)
        spool.start()
        for n in range(BATCHES_PER_SEGMENT):
            spool.append_blocking(encode_batch(_batch(segment, n)), 10.0)
        spool.close()


def _run_and_kill(data_dir: Path, loaded_before_kill: int, extra_delay_s: float) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.loader.loader_child", str(data_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    try:
        loaded = 0
        for line in child.stdout:
            if line.startswith("loaded"):
                loaded += 1
            if (line.startswith("ready") and loaded_before_kill == 0) or loaded >= loaded_before_kill > 0:
                break
        # Land the kill somewhere inside the next steps: decoding, blob writes, inserts, the ledger.
        timer = threading.Timer(extra_delay_s, child.send_signal, (signal.SIGKILL,))
        timer.start()
        child.wait(60)
        timer.cancel()
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()


def test_kill_9_at_any_step_still_stores_every_batch_exactly_once(tmp_path: Path) -> None:
    _fill_spool(tmp_path / "spool")
    rng = random.Random(99)
    for _ in range(3):
        _run_and_kill(tmp_path, rng.randrange(0, 4), rng.uniform(0.0, 0.4))

    spool = Spool(tmp_path / "spool", fsync="never")
    spool.start()
    store = ChdbStore(tmp_path / "store")
    try:
        Loader(spool, store, BlobStore(tmp_path / "recordings")).load_once()
        total = SEGMENTS * BATCHES_PER_SEGMENT * EVENTS_PER_BATCH
        counts = store.query(SYSTEM_QUERY("SELECT count() AS n, uniqExact(event_id) AS u FROM hitmetrix.events"))[0]
        assert (counts["n"], counts["u"]) == (total, total)
        chunks = store.query(SYSTEM_QUERY("SELECT count() AS n FROM hitmetrix.recordings FINAL"))[0]["n"]
        assert chunks == SEGMENTS * BATCHES_PER_SEGMENT
        ledger = store.query(SYSTEM_QUERY("SELECT uniqExact(segment_id) AS n FROM hitmetrix.loaded_segments"))[0]["n"]
        assert ledger == SEGMENTS
        assert spool.sealed_segments() == []
        assert len(list((tmp_path / "recordings").rglob("*.json.zst"))) == SEGMENTS * BATCHES_PER_SEGMENT
        # One row per session in the list, whichever step the kills cut short.
        listed, _ = list_sessions(store, 1, SessionFilters(), limit=100)
        assert sorted((row["session_id"], row["events"]) for row in listed) == [
            (f"sess{segment:04d}", BATCHES_PER_SEGMENT * EVENTS_PER_BATCH) for segment in range(SEGMENTS)
        ]
    finally:
        store.close()
        spool.close()
