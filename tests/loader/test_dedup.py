"""Exactly once from the client: a batch resent with the same batch id is stored once, within a segment,
across segments, and across a kill -9 of the loader between inserting its events and its ledger row."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.analytics import sessions
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.spool.segment import segment_path
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.loader.helpers import World, make_batch
from tests.support import REPO


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def resent(batch: StoredBatch, received_at_delta_ms: int = 1500) -> StoredBatch:
    """The tracker's retry: same batch id, same event ids; capture stamps a new received time."""
    again = copy.deepcopy(batch)
    again.received_at += received_at_delta_ms
    return again


def stored_once(store: ChdbStore, *batches: StoredBatch) -> None:
    for batch in batches:
        rows = sessions.session_events(store, batch.project_id, batch.session_id)
        assert sorted(row["event_id"] for row in rows) == sorted(e.event_id for e in batch.events), batch.session_id
        summary = sessions.session_summary(store, batch.project_id, batch.session_id)
        assert summary is not None and summary["events"] == len(batch.events), summary
        chunks = sessions.recording_chunks(store, batch.project_id, batch.session_id)
        assert [chunk["seq"] for chunk in chunks] == [chunk.seq for chunk in batch.recording]


def listed_sessions(store: ChdbStore, project_id: int) -> list[str]:
    rows, _ = sessions.list_sessions(store, project_id, sessions.SessionFilters(), limit=1000)
    return [row["session_id"] for row in rows]


def test_a_batch_resent_into_the_same_segment_is_stored_once(world: World) -> None:
    first, other = make_batch(n_events=3, chunks=2), make_batch(n_events=2)
    world.segment(first, other, resent(first), resent(other), resent(first))
    loader = world.loader()
    assert loader.load_once() == 1
    stored_once(world.store, first, other)
    assert sorted(listed_sessions(world.store, 7)) == sorted([first.session_id, other.session_id])
    # The detectors see each batch once, the first copy.
    assert [b.received_at for b in world.handed_over[0]] == [first.received_at, other.received_at]
    counters = loader.counters.snapshot()
    assert (counters["batches_loaded"], counters["batches_duplicate"], counters["events_loaded"]) == (2, 3, 5)


def test_a_batch_resent_into_later_segments_is_stored_once(world: World) -> None:
    first, second = make_batch(n_events=3, chunks=1), make_batch(n_events=4)
    world.segment(first)
    world.loader().load_once()
    world.segment(resent(first), second)
    world.segment(resent(second, 5000), resent(first, 5000))  # the same group as the segment before
    assert world.loader().load_once() == 2
    stored_once(world.store, first, second)
    assert sorted(listed_sessions(world.store, 7)) == sorted([first.session_id, second.session_id])
    owners = world.store.query(
        SYSTEM_QUERY("SELECT batch_id, segment_id FROM hitmetrix.seen_batches FINAL WHERE project_id = 7")
    )
    assert sorted((r["batch_id"], r["segment_id"]) for r in owners) == sorted(
        [(first.batch_id, 1), (second.batch_id, 2)]
    )


def test_the_same_batch_id_in_another_session_or_project_is_another_batch(world: World) -> None:
    batch = make_batch(n_events=2)
    elsewhere = make_batch(n_events=2, batch_id=batch.batch_id)
    other_project = make_batch(n_events=2, batch_id=batch.batch_id, session_id=batch.session_id, project_id=8)
    world.segment(batch, elsewhere, other_project)
    world.loader().load_once()
    stored_once(world.store, batch, elsewhere, other_project)


def test_a_segment_loaded_again_keeps_its_own_batches(world: World) -> None:
    """Crash after the batch ids are marked, before the ledger row: the retry must not drop them as copies."""
    batch = make_batch(n_events=3, chunks=1)
    sid = world.segment(batch, resent(batch))
    copy_of_segment = segment_path(world.spool.directory, sid, sealed=True).read_bytes()
    world.loader().load_once()
    world.store.execute(SYSTEM_QUERY("DELETE FROM hitmetrix.loaded_segments WHERE segment_id = {s:UInt64}"), {"s": sid})
    segment_path(world.spool.directory, sid, sealed=True).write_bytes(copy_of_segment)
    loader = world.loader()
    assert loader.load_once() == 1
    stored_once(world.store, batch)
    assert loader.counters.snapshot()["batches_loaded"] == 1
    assert [len(batches) for batches in world.handed_over] == [1, 1]


def _load_in_a_child(data_dir: Path, kill_after_events_of: int | None) -> str:
    child = subprocess.run(
        [sys.executable, "-m", "tests.loader.loader_child", str(data_dir)]
        + ([str(kill_after_events_of)] if kill_after_events_of is not None else []),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f"exit {child.returncode}\n{child.stdout}"


def test_kill_9_between_the_events_and_the_ledger_still_stores_each_batch_once(tmp_path: Path) -> None:
    first, second, third = make_batch(n_events=5, chunks=1), make_batch(n_events=2), make_batch(n_events=1)
    segments = [[first, second], [resent(first), third], [resent(second), resent(first, 9000), resent(third)]]
    for batches in segments:
        spool = Spool(tmp_path / "spool", fsync="never", segment_max_age_s=3600)
        spool.start()
        for batch in batches:
            spool.append_blocking(encode_batch(batch), 10.0)
        spool.close()

    # Killed after segment 1's events are in (not marked, no ledger row), then after segment 2's.
    for segment_id in (1, 2):
        outcome = _load_in_a_child(tmp_path, segment_id)
        assert outcome.startswith("exit -9") and f"killed after the events of segment {segment_id}" in outcome
    assert _load_in_a_child(tmp_path, None).startswith("exit 0")

    store = ChdbStore(tmp_path / "store")
    spool = Spool(tmp_path / "spool", fsync="never")
    spool.start()
    try:
        assert spool.sealed_segments() == []
        Loader(spool, store, BlobStore(tmp_path / "recordings")).load_once()
        stored_once(store, first, second, third)
        assert sorted(listed_sessions(store, 7)) == sorted(b.session_id for b in (first, second, third))
        ledger = store.query(SYSTEM_QUERY("SELECT segment_id FROM hitmetrix.loaded_segments FINAL ORDER BY segment_id"))
        assert [row["segment_id"] for row in ledger] == [1, 2, 3]
    finally:
        spool.close()
        store.close()


def test_late_data_of_a_deleted_project_is_not_stored(world: World) -> None:
    """Batches acknowledged before their project was deleted (still in the spool, or requeued later) are dropped;
    the other projects' batches of the same segment are stored."""
    kept, late = make_batch(n_events=2, chunks=1, project_id=7), make_batch(n_events=3, chunks=2, project_id=8)
    asked: list[set[int]] = []

    def deleted_projects(ids: set[int]) -> set[int]:
        asked.append(set(ids))
        return ids & {8}

    segment = world.segment(kept, late)
    loader = world.loader(deleted_projects=deleted_projects)
    assert loader.load_once() == 1
    loader.chunk_worker.drain()
    assert asked == [{7, 8}], "one question per segment, naming the projects in it"
    stored_once(world.store, kept)
    assert world.events(segment) == 2
    assert sessions.session_events(world.store, 8, late.session_id) == []
    assert sessions.recording_chunks(world.store, 8, late.session_id) == [], "its chunks never reached the inbox"
    assert listed_sessions(world.store, 8) == []
    assert loader.counters.snapshot()["batches_of_deleted_projects"] == 1
