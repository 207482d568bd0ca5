"""The loader against a real chDB store, blob directory and spool: values, exactly-once, quarantine."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from hitmetrix.loader import LoadError
from hitmetrix.loader.rows import event_table
from hitmetrix.model import StoredBatch, encode_batch
from hitmetrix.spool.segment import encode_records, segment_path
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.ch_migrations import create_statements
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.loader.helpers import NOW_MS, RRWEB, World, make_batch
from tests.support import wait_for


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_events_and_recordings_land_with_their_values(world: World) -> None:
    batch = make_batch(n_events=2, chunks=1)
    odd = make_batch(n_events=1, session_id="odd")
    odd.events[0].x, odd.events[0].y, odd.events[0].vw, odd.events[0].vh = 2**40, -(2**40), 70_000, -5
    odd.events[0].url = "https://shop.example"
    sid = world.segment(batch, odd)
    assert world.loader().load_once() == 1

    rows = world.store.query(
        SYSTEM_QUERY(
            "SELECT *, toUnixTimestamp64Milli(ts) AS ts_ms, toUnixTimestamp64Milli(client_ts) AS client_ms,"
            " toUnixTimestamp64Milli(received_at) AS received_ms, toString(event_id) AS eid"
            " FROM hitmetrix.events ORDER BY session_id = 'odd', ts"
        )
    )
    assert len(rows) == 3
    first, event = rows[0], batch.events[0]
    assert (first["eid"], first["type"], first["ts_ms"], first["client_ms"]) == (
        event.event_id,
        "click",
        event.ts,
        event.client_ts,
    )
    assert (first["url"], first["path"], first["title"], first["selector"], first["tag"], first["text"]) == (
        "https://shop.example/p/0?q=1#top",
        "/p/0",
        "Shop",
        "button.buy",
        "button",
        "Buy",
    )
    assert (first["x"], first["y"], first["viewport_w"], first["viewport_h"], first["props"]) == (
        10,
        20,
        1280,
        800,
        '{"plan":"pro"}',
    )
    for name in (
        "project_id",
        "session_id",
        "anonymous_id",
        "user_id",
        "ip",
        "country",
        "asn",
        "as_org",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "device_type",
        "user_agent",
        "batch_id",
    ):
        assert first[name] == getattr(batch, name), name
    assert (first["received_ms"], first["segment_id"]) == (NOW_MS, sid)
    clamped = rows[2]
    assert (clamped["x"], clamped["y"], clamped["viewport_w"], clamped["viewport_h"]) == (2**31 - 1, -(2**31), 65535, 0)
    assert clamped["path"] == "/"

    (rec,) = world.store.query(
        SYSTEM_QUERY("SELECT *, toUnixTimestamp64Milli(first_ts) AS first_ms FROM hitmetrix.recordings")
    )
    key = BlobStore.chunk_key(7, batch.session_id, 0)
    raw = json.dumps(RRWEB).encode()
    blob = world.blobs.get(key)
    assert zstandard.ZstdDecompressor().decompress(blob) == raw
    assert (rec["path"], rec["bytes"], rec["raw_bytes"], rec["event_count"], rec["seq"]) == (
        key,
        len(blob),
        len(raw),
        2,
        0,
    )
    assert (rec["project_id"], rec["session_id"], rec["first_ms"], rec["segment_id"]) == (
        7,
        batch.session_id,
        NOW_MS,
        sid,
    )

    assert world.store.query(SYSTEM_QUERY("SELECT segment_id, events, chunks FROM hitmetrix.loaded_segments")) == [
        {"segment_id": sid, "events": 3, "chunks": 1}
    ]
    assert world.spool.sealed_segments() == []
    ((first_handed, odd_handed),) = world.handed_over
    assert (first_handed.batch_id, first_handed.events, odd_handed.events) == (batch.batch_id, batch.events, odd.events)
    # The detectors get the chunks' metadata; their bytes went to the recordings inbox.
    assert [(c.seq, c.count, c.data) for c in first_handed.recording] == [(0, 2, b"")]


def test_every_sealed_segment_is_loaded_oldest_first(world: World) -> None:
    ids = [world.segment(make_batch(n_events=i + 1)) for i in range(5)]
    assert world.loader(max_batch_segments=2).load_once() == 5
    assert [sum(len(b.events) for b in batches) for batches in world.handed_over] == [1, 2, 3, 4, 5]
    assert [world.events(sid) for sid in ids] == [1, 2, 3, 4, 5]
    assert world.loader().load_once() == 0


def _keep_copy(world: World, sid: int) -> bytes:
    return segment_path(world.spool.directory, sid, sealed=True).read_bytes()


def _restore(world: World, sid: int, data: bytes) -> None:
    segment_path(world.spool.directory, sid, sealed=True).write_bytes(data)


def test_a_segment_stored_but_not_in_the_ledger_is_stored_once(world: World) -> None:
    """A crash between the inserts and the ledger row: loading again must not double anything."""
    sid = world.segment(make_batch(n_events=4, chunks=2))
    copy = _keep_copy(world, sid)
    world.loader().load_once()
    world.store.execute(SYSTEM_QUERY("DELETE FROM hitmetrix.loaded_segments WHERE segment_id = {s:UInt64}"), {"s": sid})
    _restore(world, sid, copy)

    assert world.loader().load_once() == 1
    assert world.events(sid) == 4
    assert world.one("SELECT count() FROM hitmetrix.recordings FINAL") == 2
    assert len(world.handed_over) == 2  # the detectors did not see it the first time round either


def test_a_segment_already_in_the_ledger_is_only_removed(world: World) -> None:
    """A crash between the ledger row and removing the segment."""
    sid = world.segment(make_batch(n_events=4))
    copy = _keep_copy(world, sid)
    world.loader().load_once()
    _restore(world, sid, copy)

    assert world.loader().load_once() == 1
    assert world.spool.sealed_segments() == []
    assert world.events(sid) == 4
    assert len(world.handed_over) == 1


def test_duplicates_past_the_dedup_window_are_replaced(world: World, caplog: pytest.LogCaptureFixture) -> None:
    batch = make_batch(n_events=5)
    sid = world.segment(batch)
    copy = _keep_copy(world, sid)
    world.loader().load_once()
    # As if the first insert had left the dedup window before the retry: the same rows again.
    world.store.insert_arrow("hitmetrix.events", event_table([batch], sid), "outside-the-window")
    world.store.execute(SYSTEM_QUERY("DELETE FROM hitmetrix.loaded_segments WHERE segment_id = {s:UInt64}"), {"s": sid})
    _restore(world, sid, copy)
    assert world.events(sid) == 10

    with caplog.at_level(logging.WARNING, logger="hitmetrix.loader"):
        assert world.loader().load_once() == 1
    assert world.events(sid) == 5
    assert "10 events in the store, 5 expected" in caplog.text
    ids = {row["e"] for row in world.store.query(SYSTEM_QUERY("SELECT toString(event_id) AS e FROM hitmetrix.events"))}
    assert ids == {event.event_id for event in batch.events}


def test_a_repair_cut_short_after_its_delete_is_completed(world: World) -> None:
    """The original dedup token would drop the retried insert: the count check catches it."""
    sid = world.segment(make_batch(n_events=3))
    copy = _keep_copy(world, sid)
    world.loader().load_once()
    world.store.execute(SYSTEM_QUERY("DELETE FROM hitmetrix.events WHERE segment_id = {s:UInt64}"), {"s": sid})
    world.store.execute(SYSTEM_QUERY("DELETE FROM hitmetrix.loaded_segments WHERE segment_id = {s:UInt64}"), {"s": sid})
    _restore(world, sid, copy)

    assert world.loader().load_once() == 1
    assert world.events(sid) == 3


def test_undecodable_records_and_damaged_segments_go_to_quarantine(world: World) -> None:
    spool_dir = world.spool.directory
    segment_path(spool_dir, 100, sealed=True).write_bytes(b"HMSPOOL1" + b"\x05\x00\x00\x00garbage")
    segment_path(spool_dir, 101, sealed=True).write_bytes(encode_records([b"not msgpack", b"\xc1"]))
    good = make_batch(n_events=2)
    segment_path(spool_dir, 102, sealed=True).write_bytes(encode_records([b"\xc1junk", encode_batch(good)]))
    intact = make_batch(n_events=1)
    damaged = encode_records([encode_batch(intact)]) + b"\x09\x00\x00\x00\x00\x00\x00\x00torn"
    segment_path(spool_dir, 103, sealed=True).write_bytes(damaged)

    loader = world.loader()
    assert loader.load_once() == 4
    items = {(item.kind, item.segment_id, item.payload) for item in loader.quarantine.items()}
    assert items == {
        ("segment", 100, b"HMSPOOL1" + b"\x05\x00\x00\x00garbage"),
        ("batch", 101, b"not msgpack"),
        ("batch", 101, b"\xc1"),
        ("batch", 102, b"\xc1junk"),
        ("segment", 103, damaged),
    }
    assert world.events(102) == 2
    assert world.events(103) == 1  # the records before the damage are loaded
    assert world.spool.sealed_segments() == []
    assert loader.health()["quarantine"] == {"batch": 3, "chunk": 0, "segment": 2, "spool_files": 0}


def test_recording_chunks_that_cannot_be_stored_are_quarantined(world: World) -> None:
    batch = make_batch(n_events=1, chunks=5)
    batch.recording[1].data = gzip.compress(b'{"not": "an array"}')
    batch.recording[2].data = b"\x1f\x8b\x08 not gzip"
    batch.recording[3].data = gzip.compress(b"[" + b"0," * 600 + b"0]")  # > the cap below once inflated
    unsafe = make_batch(n_events=1, chunks=1, session_id="../../etc")
    world.segment(batch, unsafe)

    loader = world.loader(max_chunk_json_bytes=1000)
    assert loader.load_once() == 1
    seqs = [row["seq"] for row in world.store.query(SYSTEM_QUERY("SELECT seq FROM hitmetrix.recordings ORDER BY seq"))]
    assert seqs == [0, 4]
    assert world.one("SELECT count() FROM hitmetrix.events") == 2
    reasons = {(item.session_id, item.seq): (item.stage, item.reason) for item in loader.quarantine.items()}
    assert sorted(reasons) == sorted([(batch.session_id, seq) for seq in (1, 2, 3)] + [("../../etc", 0)])
    assert reasons[(batch.session_id, 1)][1].startswith("ChunkCheckError: not a JSON array of objects")
    assert reasons[(batch.session_id, 2)][1].startswith("ChunkCheckError: corrupt gzip")
    assert reasons[(batch.session_id, 3)] == ("chunk", "ChunkTooLargeError: more than 1000 bytes once decompressed")
    assert reasons[("../../etc", 0)] == ("inbox", "ValueError: unsafe session id '../../etc'")
    assert loader.health()["recording_inbox_chunks"] == 0


def test_events_past_retention_do_not_block_the_segment(world: World) -> None:
    batch = make_batch(n_events=3)
    batch.events[0].ts = 0  # a broken client clock: the store's TTL would delete it anyway
    sid = world.segment(batch)
    assert world.loader().load_once() == 1
    assert world.events(sid) == 2


def test_on_loaded_failures_are_logged_not_fatal(world: World, caplog: pytest.LogCaptureFixture) -> None:
    def broken(batches: list[StoredBatch]) -> None:
        raise RuntimeError("detector bug")

    sid = world.segment(make_batch())
    with caplog.at_level(logging.ERROR, logger="hitmetrix.loader"):
        assert world.loader(on_loaded=broken).load_once() == 1
    assert "detector bug" in caplog.text
    assert world.events(sid) == 3 and world.spool.sealed_segments() == []


def test_a_store_failure_leaves_the_segment_for_a_retry(world: World) -> None:
    sid = world.segment(make_batch(chunks=1))
    world.store.execute(SYSTEM_QUERY("DROP TABLE hitmetrix.events"))
    with pytest.raises(LoadError):
        world.loader().load_once()
    assert world.spool.sealed_segments() == [sid]
    for statement in create_statements():
        world.store.execute(SYSTEM_QUERY(statement))
    assert world.loader().load_once() == 1
    assert world.events(sid) == 3


def test_the_background_loader_wakes_on_seal_and_retries_after_errors(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    loader = world.loader(poll_interval_s=60.0)  # only a seal or a retry can make it load in time
    world.spool.add_seal_listener(loader.wake)
    world.store.execute(SYSTEM_QUERY("DROP TABLE hitmetrix.events"))
    loader.start()
    try:
        with caplog.at_level(logging.ERROR, logger="hitmetrix.loader"):
            world.spool.append_blocking(encode_batch(make_batch(n_events=2)), 10.0)
            world.spool.close()  # seals, which wakes the loader; its first try fails
            wait_for(lambda: "could not be stored" in caplog.text, 10.0, what="a failed load")
        assert world.spool.sealed_segments() and world.handed_over == []
        for statement in create_statements():
            world.store.execute(SYSTEM_QUERY(statement))
        wait_for(lambda: world.handed_over, 10.0, what="the retry")
    finally:
        loader.stop(10.0)
    assert world.one("SELECT count() FROM hitmetrix.events") == 2
    assert world.spool.sealed_segments() == []
