"""The chunk worker on real chDB: turns across projects within a byte budget, bad chunks quarantined, store
failures retried with every chunk kept."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.loader.counters import LoaderCounters
from hitmetrix.loader.inbox import ChunkInbox, InboxChunk
from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.loader.recordings import ChunkWorker
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.ch_migrations import create_statements
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.loader.helpers import rrweb_like
from tests.support import wait_for

MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path / "store")
    yield s
    s.close()


def rrweb_chunk(raw_bytes: int, rng: random.Random) -> bytes:
    return gzip.compress(rrweb_like(rng, raw_bytes))


def chunk(project_id: int, session_id: str, seq: int, data: bytes) -> InboxChunk:
    return InboxChunk(
        project_id=project_id,
        session_id=session_id,
        seq=seq,
        first_ts=1_700_000_000_000,
        last_ts=1_700_000_001_000,
        count=10,
        received_at=1_700_000_002_000,
        segment_id=9,
        batch_id=f"batch-{session_id}",
        data=data,
    )


def worker(tmp_path: Path, store: ChdbStore, **kwargs: int) -> ChunkWorker:
    counters = LoaderCounters()
    return ChunkWorker(
        ChunkInbox(tmp_path / "inbox"),
        BlobStore(tmp_path / "recordings"),
        store,
        Quarantine(tmp_path / "quarantine", counters=counters),
        counters,
        max_chunk_json_bytes=kwargs.get("max_chunk_json_bytes", 8 * MIB),
        max_json_depth=512,
        project_bytes_per_round=kwargs.get("project_bytes_per_round", 4 * MIB),
        poll_interval_s=60.0,
    )


def stored_seqs(store: ChdbStore, project_id: int) -> list[int]:
    rows = store.query(
        "SELECT seq FROM hitmetrix.recordings FINAL WHERE project_id = {p:UInt32} ORDER BY seq", {"p": project_id}
    )
    return [row["seq"] for row in rows]


def test_a_flooding_project_waits_for_itself_not_for_others(tmp_path: Path, store: ChdbStore) -> None:
    rng = random.Random(7)
    heavy = rrweb_chunk(3 * MIB, rng)
    chunks_worker = worker(tmp_path, store, project_bytes_per_round=4 * MIB)
    chunks_worker.inbox.put_many([chunk(1, "flood-session", seq, heavy) for seq in range(12)])
    chunks_worker.inbox.put_many([chunk(2, "quiet-session", 0, rrweb_chunk(20_000, rng))])

    waiting = chunks_worker.inbox.backlog()[0]
    chunks_worker.run_round(lambda: chunks_worker.inbox.backlog()[0] < waiting)  # stop after the first turn
    assert stored_seqs(store, 2) == [0] and stored_seqs(store, 1) == []  # the least waiting goes first
    chunks_worker.run_round()
    # One turn each: project 1 got through its budget (two 3 MiB chunks).
    assert stored_seqs(store, 1) == [0, 1]
    chunks_worker.drain()
    assert stored_seqs(store, 1) == list(range(12))
    assert chunks_worker.inbox.backlog() == (0, 0)
    assert chunks_worker.counters.snapshot()["chunks_stored"] == 13


def test_a_project_with_less_waiting_cuts_a_heavy_turn_short(tmp_path: Path, store: ChdbStore) -> None:
    rng = random.Random(10)
    heavy = rrweb_chunk(2 * MIB, rng)
    chunks_worker = worker(tmp_path, store, project_bytes_per_round=64 * MIB)  # the budget alone would not stop it
    chunks_worker.inbox.put_many([chunk(1, "flood-session", seq, heavy) for seq in range(6)])
    waiting = chunks_worker.inbox.backlog()[0]
    arrived: list[bool] = []

    def b_arrives_during_the_turn() -> bool:
        if not arrived and chunks_worker.inbox.backlog()[0] < waiting:  # one chunk of project 1 done
            chunks_worker.inbox.put_many([chunk(2, "quiet-session", 0, rrweb_chunk(5000, rng))])
            arrived.append(True)
        return False

    chunks_worker.run_round(b_arrives_during_the_turn)
    assert stored_seqs(store, 1) == [0] and stored_seqs(store, 2) == []
    with_b = chunks_worker.inbox.backlog()[0]
    chunks_worker.run_round(lambda: chunks_worker.inbox.backlog()[0] < with_b)  # stop after the first turn
    assert stored_seqs(store, 2) == [0] and stored_seqs(store, 1) == [0]


def test_heavy_projects_share_the_worker_a_budget_each(tmp_path: Path, store: ChdbStore) -> None:
    rng = random.Random(11)
    heavy = rrweb_chunk(2 * MIB, rng)
    chunks_worker = worker(tmp_path, store, project_bytes_per_round=4 * MIB)
    chunks_worker.inbox.put_many([chunk(1, "flood-one", seq, heavy) for seq in range(10)])
    chunks_worker.inbox.put_many([chunk(3, "flood-two", seq, heavy) for seq in range(9)])
    chunks_worker.run_round()
    assert (stored_seqs(store, 1), stored_seqs(store, 3)) == ([0, 1], [0, 1])
    chunks_worker.run_round()
    assert (stored_seqs(store, 1), stored_seqs(store, 3)) == ([0, 1, 2, 3], [0, 1, 2, 3])


def test_turns_rotate_among_projects_with_as_much_waiting(tmp_path: Path, store: ChdbStore) -> None:
    rng = random.Random(8)
    chunks_worker = worker(tmp_path, store, project_bytes_per_round=1)  # one chunk per turn
    same = rrweb_chunk(1000, rng)  # the same bytes waiting for each: only the rotation decides
    for project_id in (1, 2, 3):
        chunks_worker.inbox.put_many([chunk(project_id, f"sess-{project_id}", 0, same)])
    first_turns = []
    for seq in range(1, 5):
        waiting = chunks_worker.inbox.backlog()[0]
        before = {p: len(stored_seqs(store, p)) for p in (1, 2, 3)}
        # Stop the round after its first turn: whose turn was it?
        chunks_worker.run_round(lambda waiting=waiting: chunks_worker.inbox.backlog()[0] < waiting)
        (first,) = [p for p in (1, 2, 3) if len(stored_seqs(store, p)) > before[p]]
        first_turns.append(first)
        chunks_worker.inbox.put_many([chunk(first, f"sess-{first}", seq, same)])  # as much waiting again
    assert first_turns == [1, 2, 3, 1]


def test_bad_chunks_are_quarantined_and_a_failing_store_keeps_every_chunk(tmp_path: Path, store: ChdbStore) -> None:
    rng = random.Random(9)
    chunks_worker = worker(tmp_path, store)
    good = rrweb_chunk(5000, rng)
    chunks_worker.inbox.put_many(
        [chunk(1, "sess-a", 0, good), chunk(1, "sess-a", 1, gzip.compress(b"[" * 2000 + b"]" * 2000))]
    )
    (tmp_path / "inbox" / "1" / "sess-a.0000000002.chunk").write_bytes(b"\x00 not an inbox file")
    store.execute(SYSTEM_QUERY("DROP TABLE hitmetrix.recordings"))
    with pytest.raises(Exception, match="recordings"):
        chunks_worker.run_round()
    assert chunks_worker.inbox.backlog()[0] == 2  # the unreadable file was only found by a restart

    for statement in create_statements():
        store.execute(SYSTEM_QUERY(statement))
    restarted = worker(tmp_path, store)
    restarted.start()
    try:
        restarted.wake()
        wait_for(lambda: restarted.inbox.backlog() == (0, 0), 30, what="the inbox drained")
    finally:
        restarted.stop(30)
    assert stored_seqs(store, 1) == [0]
    reasons = {item.seq: (item.stage, item.reason) for item in restarted.quarantine.items()}
    assert reasons[1] == ("chunk", "ChunkCheckError: JSON nested deeper than 512 levels")
    assert reasons[2] == ("inbox", "ValidationError: Expected `array`, got `int`")
