"""Durability: every acknowledged event and recording chunk is stored exactly once, across repeated kill -9.

Posters send batches (events and a recording chunk) concurrently; the server is
killed with SIGKILL at random moments (after a random number of acknowledged
batches), restarted on the same data directory, and in the end every
acknowledged event must be in the store exactly once, no event at all may be
stored twice, and every acknowledged chunk must be stored and readable.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import httpx
import pytest

from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.integration

KILLS = 12
POSTERS = 6
EVENTS_PER_BATCH = 20


class Posters:
    def __init__(self, server: ServerProcess, key: str) -> None:
        self.server = server
        self.key = key
        self.acked: set[str] = set()
        self.acked_sessions: set[str] = set()  # each batch has its own session and one chunk
        self.acked_batches = 0
        self.attempted = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(POSTERS)]

    def run(self, n: int) -> None:
        seq = 0
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                seq += 1
                names = [f"p{n}-{seq}-{i}" for i in range(EVENTS_PER_BATCH)]
                batch = make_batch(names=names, chunks=1)
                with self.lock:
                    self.attempted += 1
                try:
                    answer = client.post(self.server.url + "/api/v1/batch", params={"key": self.key}, json=batch)
                except httpx.HTTPError:
                    self.stop.wait(0.01)  # server down: back off briefly, then retry with new events
                    continue
                if answer.status_code == 200:
                    with self.lock:
                        self.acked.update(names)
                        self.acked_sessions.add(batch["session_id"])
                        self.acked_batches += 1

    def batches(self) -> int:
        with self.lock:
            return self.acked_batches


def test_acknowledged_events_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("durable")
    meta.close()
    server = ServerProcess(data_dir, demo=False, env={"HITMETRIX_RATE_LIMIT_RPS": "100000"})
    server.start()
    posters = Posters(server, project.public_key)
    for t in posters.threads:
        t.start()
    rng = random.Random(20261127)
    try:
        for _ in range(KILLS):
            target = posters.batches() + rng.randint(5, 80)
            wait_for(lambda target=target: posters.batches() >= target, 60, what="acknowledged batches")
            server.kill9()
            server.start()
        target = posters.batches() + 20
        wait_for(lambda: posters.batches() >= target, 60, what="acknowledged batches after the last restart")
    finally:
        posters.stop.set()
        for t in posters.threads:
            t.join(30)

    def drained() -> bool:
        health = httpx.get(server.url + "/healthz").json()
        return health["loader_lag_segments"] == 0 and health["recording_inbox_chunks"] == 0

    wait_for(drained, 60, what="loader drained")
    server.stop()

    store = ChdbStore(data_dir / "clickhouse")
    try:
        rows = store.query(
            "SELECT name, count() AS n FROM hitmetrix.events WHERE project_id = {p:UInt32} GROUP BY name",
            {"p": project.id},
        )
        chunks = store.query(
            "SELECT session_id, path FROM hitmetrix.recordings FINAL WHERE project_id = {p:UInt32}", {"p": project.id}
        )
    finally:
        store.close()
    chunk_paths = {row["session_id"]: row["path"] for row in chunks}
    lost_chunks = posters.acked_sessions - chunk_paths.keys()
    assert not lost_chunks, f"{len(lost_chunks)} acknowledged recording chunks lost, e.g. {sorted(lost_chunks)[:5]}"
    assert len(chunks) == len(chunk_paths), "a chunk indexed twice"
    unreadable = [path for path in chunk_paths.values() if not (data_dir / "recordings" / path).is_file()]
    assert not unreadable, unreadable[:5]
    counts = {r["name"]: r["n"] for r in rows}
    duplicated = {name: n for name, n in counts.items() if n > 1}
    lost = posters.acked - counts.keys()
    assert not duplicated, f"{len(duplicated)} events stored more than once, e.g. {list(duplicated.items())[:5]}"
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
    assert len(posters.acked) >= KILLS * 5 * EVENTS_PER_BATCH
    print(
        f"\nacknowledged {len(posters.acked)} events and {len(posters.acked_sessions)} recording chunks in"
        f" {posters.acked_batches} batches ({posters.attempted} attempted) across {KILLS} kill -9;"
        f" stored {len(counts)} events, {len(chunk_paths)} chunks; 0 lost, 0 duplicated"
    )
    leftover = [p.name for p in (data_dir / "spool").iterdir() if p.suffix in (".seg", ".open")]
    assert not leftover, leftover
    assert not [p for p in (data_dir / "inbox").rglob("*") if p.is_file()]
