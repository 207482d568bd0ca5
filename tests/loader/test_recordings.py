"""The chunk worker on real chDB: turns across projects within a byte budget, bad chunks quarantined, store
failures retried with every chunk kept."""

from __future__ import annotations

import gzip
import json
import os
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


SHARED_CSS = ".grid { display: grid; grid-template-columns: repeat(4, 1fr) } " * 80
CONSTRUCTED = ".alert { --pad: 16px 24px; padding: var(--pad); padding-bottom: 20px } " * 30


def snapshot_chunk(session: str, page: int) -> bytes:
    """A page view's full snapshot: the site's stylesheet (a <link>'s text), a constructed sheet, a mutation."""
    link = {"type": 2, "tagName": "link", "attributes": {"rel": "stylesheet", "_cssText": SHARED_CSS}, "id": 3}
    body = {"type": 2, "tagName": "body", "attributes": {}, "id": 4, "childNodes": [
        {"type": 3, "textContent": f"{session} page {page}", "id": 5}]}
    events = [
        {"type": 4, "timestamp": 1_700_000_000_000 + page, "data": {"href": f"https://shop.example/{page}"}},
        {"type": 2, "timestamp": 1_700_000_000_001 + page, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "tagName": "html", "attributes": {}, "id": 2, "childNodes": [link, body]}]}}},
        {"type": 3, "timestamp": 1_700_000_000_002 + page, "data": {"source": 8, "id": 7, "replaceSync": CONSTRUCTED}},
        {"type": 3, "timestamp": 1_700_000_000_003 + page, "data": {"source": 0, "texts": [], "removes": [],
         "attributes": [{"id": 4, "attributes": {"class": "short"}}], "adds": []}},
    ]
    return gzip.compress(json.dumps(events).encode())


def test_two_sessions_with_the_same_stylesheet_store_it_once(tmp_path: Path, store: ChdbStore) -> None:
    chunks_worker = worker(tmp_path, store)
    sent = {(sid, seq): snapshot_chunk(sid, seq) for sid in ("sess-one", "sess-two") for seq in range(2)}
    chunks_worker.inbox.put_many([chunk(1, sid, seq, data) for (sid, seq), data in sent.items()])
    chunks_worker.inbox.put_many([chunk(2, "sess-three", 0, snapshot_chunk("sess-three", 0))])
    assert chunks_worker.drain() == 5
    texts = sorted(p.relative_to(tmp_path / "recordings") for p in (tmp_path / "recordings").rglob("texts/*/*"))
    assert [t.parts[0] for t in texts] == ["1", "1", "2", "2"], "each text once per project, in each project"
    blobs = chunks_worker.blobs
    for (sid, seq), data in sent.items():
        key = blobs.chunk_key(1, sid, seq)
        stored = blobs.stored_json(key)
        assert SHARED_CSS.encode() not in stored and CONSTRUCTED.encode() not in stored
        assert len(stored) < len(gzip.decompress(data)) / 4
        assert json.loads(blobs.chunk_json(key)) == json.loads(gzip.decompress(data)), "readers get it all back"
    assert stored_seqs(store, 1) == [0, 0, 1, 1]


def test_a_quiet_session_is_compacted_into_one_unit_and_still_reads(tmp_path: Path, store: ChdbStore) -> None:
    now = [1000.0]
    counters = LoaderCounters()
    chunks_worker = ChunkWorker(
        ChunkInbox(tmp_path / "inbox"),
        BlobStore(tmp_path / "recordings"),
        store,
        Quarantine(tmp_path / "quarantine", counters=counters),
        counters,
        max_chunk_json_bytes=8 * MIB,
        max_json_depth=512,
        project_bytes_per_round=4 * MIB,
        unit_idle_s=300,
        clock=lambda: now[0],
    )
    rng = random.Random(11)
    sent = {seq: rrweb_chunk(20_000, rng) for seq in range(6)}
    chunks_worker.inbox.put_many([chunk(1, "sess-quiet", seq, data) for seq, data in sent.items()])
    chunks_worker.drain()
    session_dir = tmp_path / "recordings" / chunks_worker.blobs.session_dir_key(1, "sess-quiet")
    assert chunks_worker.compact_quiet_sessions() == 0 and len(os.listdir(session_dir)) == 6, "not quiet yet"
    now[0] += 301
    assert chunks_worker.compact_quiet_sessions() == 1
    assert [n.split("-")[0] for n in os.listdir(session_dir)] == ["unit"]
    assert counters.snapshot()["chunks_compacted"] == 6
    for seq, data in sent.items():
        assert chunks_worker.blobs.stored_json(chunks_worker.blobs.chunk_key(1, "sess-quiet", seq)) == gzip.decompress(
            data
        )
    # A restarted worker finds sessions a crash left loose, and compacts them once quiet.
    restarted = worker(tmp_path, store)
    restarted.inbox.put_many([chunk(1, "sess-quiet", 6, rrweb_chunk(5000, rng))])
    restarted.drain()
    restarted.unit_idle_s = 0
    assert restarted.compact_quiet_sessions() == 1
    assert len(os.listdir(session_dir)) == 1
    assert stored_seqs(store, 1) == list(range(7))
