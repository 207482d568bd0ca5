"""Poison in the spool: each bad item quarantined with its reason, the rest of its segment stored, nothing held back;
and the `hitmetrix quarantine` commands, in process and against a running node."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics import sessions
from hitmetrix.loader import LoadError
from hitmetrix.loader.loader import SPLIT_AFTER_FAILURES
from hitmetrix.loader.requeue import requeue_items
from hitmetrix.model import StoredBatch, encode_batch
from hitmetrix.runtime import Runtime, build_runtime
from hitmetrix.settings import load_settings
from hitmetrix.spool import Spool
from hitmetrix.store.ch_migrations import create_statements
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.loader.helpers import RRWEB, make_batch, rrweb_like
from tests.support import REPO, wait_for

MIB = 1024 * 1024
# A real refusal by the real store, for one batch's content only.
POISON = "ALTER TABLE hitmetrix.events ADD CONSTRAINT no_poison CHECK session_id != 'refused-session'"


class Node:
    """A node's runtime on a data directory, not serving: the test drives its loader."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        values = {"data_dir": data_dir, "spool_fsync": "never", **settings}
        self.runtime: Runtime = build_runtime(load_settings(values, environ={}))
        self.loader = self.runtime.loader
        self.store = self.runtime.store

    def segment(self, *records: bytes) -> int:
        """Append records (any bytes: the spool does not look inside) and seal them as one segment."""
        spool = Spool(self.data_dir / "spool", fsync="never", segment_max_age_s=3600)
        spool.start()
        before = set(spool.sealed_segments())
        for record in records:
            spool.append_blocking(record, 10.0)
        spool.close()
        (new,) = set(spool.sealed_segments()) - before
        return new

    def events(self, batch: StoredBatch) -> list[dict[str, Any]]:
        return sessions.session_events(self.store, batch.project_id, batch.session_id)

    def recording(self, batch: StoredBatch) -> list[bytes]:
        chunks = sessions.recording_chunks(self.store, batch.project_id, batch.session_id)
        return [sessions.chunk_json(self.runtime.blobs, chunk) for chunk in chunks]

    def close(self) -> None:
        if self.runtime.started:
            self.runtime.stop()
        else:
            self.store.close()
            self.runtime.meta.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    opened: list[Node] = []
    yield opened
    for node in opened:
        node.close()


def open_node(nodes: list[Node], data_dir: Path, **settings: Any) -> Node:
    node = Node(data_dir, **settings)
    nodes.append(node)
    return node


def hitmetrix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hitmetrix.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def chunk_of_zeros(json_bytes: int) -> bytes:
    """gzip of a JSON array of zeros, ``json_bytes + 1`` bytes (for an even number): it inflates ~1000 times."""
    return gzip.compress(b"[" + b"0," * (json_bytes // 2 - 1) + b"0]")


def test_poison_items_are_quarantined_and_the_rest_of_the_segment_loads(tmp_path: Path, nodes: list[Node]) -> None:
    node = open_node(nodes, tmp_path / "data")
    good_a = make_batch(n_events=2, chunks=1, project_id=1)
    deep = make_batch(n_events=1, chunks=1, project_id=3)
    deep.recording[0].data = gzip.compress(b"[" * 100_000 + b"]" * 100_000)  # 271 bytes on the wire
    bomb = make_batch(n_events=1, chunks=2, project_id=3)
    bomb.recording[1].data = chunk_of_zeros(10 * MIB)  # 10 KiB inflating to 10 MiB
    corrupt = make_batch(n_events=1, chunks=1, project_id=3)
    corrupt.recording[0].data = b"\x1f\x8b\x08\x00 not deflate"
    bad_ids = make_batch(n_events=2, project_id=3)
    bad_ids.events[1].event_id = "not-a-uuid"
    # A string that is not UTF-8: the decoder raises UnicodeDecodeError, not one of msgspec's errors.
    not_utf8 = encode_batch(make_batch(project_id=3, session_id="session-not-utf8")).replace(
        b"session-not-utf8", b"session-not-utf\xff"
    )
    garbage = b"\xc1 not a batch"
    good_b = make_batch(n_events=3, chunks=1, project_id=2)
    records = [encode_batch(b) for b in (good_a, deep, bomb, corrupt, bad_ids)] + [not_utf8, garbage]
    segment_id = node.segment(*records, encode_batch(good_b))

    assert node.loader.load_once() == 1

    rrweb = json.dumps(RRWEB).encode()
    for good in (good_a, good_b):
        assert [e["event_id"] for e in node.events(good)] == [e.event_id for e in good.events]
        assert node.recording(good) == [rrweb]
    # Only the bad chunk of a batch is kept back: its events are stored.
    assert len(node.events(deep)) == len(node.events(corrupt)) == len(node.events(bomb)) == 1
    assert node.recording(deep) == node.recording(corrupt) == [] and node.recording(bomb) == [rrweb]
    assert node.events(bad_ids) == []

    quarantined = node.loader.quarantine.items()
    assert sorted((item.kind, item.stage, item.session_id) for item in quarantined) == sorted(
        [
            ("chunk", "chunk", deep.session_id),
            ("chunk", "chunk", bomb.session_id),
            ("chunk", "chunk", corrupt.session_id),
            ("batch", "rows", bad_ids.session_id),
            ("batch", "decode", ""),
            ("batch", "decode", ""),
        ]
    )
    items = {(item.kind, item.stage, item.session_id): item for item in quarantined}
    deep_item = items[("chunk", "chunk", deep.session_id)]
    assert deep_item.reason == "ChunkCheckError: JSON nested deeper than 512 levels"
    assert (deep_item.project_id, deep_item.batch_id, deep_item.segment_id, deep_item.seq) == (
        3,
        deep.batch_id,
        segment_id,
        0,
    )
    assert deep_item.payload == deep.recording[0].data
    bomb_reason = items[("chunk", "chunk", bomb.session_id)].reason
    assert bomb_reason.startswith("ChunkTooLargeError: decompresses more than 200 times its size"), bomb_reason
    assert items[("chunk", "chunk", corrupt.session_id)].reason.startswith("ChunkCheckError: corrupt gzip")
    rows_item = items[("batch", "rows", bad_ids.session_id)]
    assert rows_item.reason == "ValueError: event_id 'not-a-uuid' is not a UUID"
    assert (rows_item.payload, rows_item.batch_id, rows_item.project_id) == (records[4], bad_ids.batch_id, 3)
    undecodable = {item.payload: item.reason for item in quarantined if item.stage == "decode"}
    assert undecodable.keys() == {not_utf8, garbage}
    assert undecodable[not_utf8].startswith("UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff")

    health = node.loader.health()
    assert health["loader_lag_segments"] == 0 and health["loader_oldest_segment_age_s"] == 0
    assert health["recording_inbox_chunks"] == 0
    assert health["quarantine"] == {"batch": 3, "chunk": 3, "segment": 0, "spool_files": 0}
    assert node.runtime.spool.sealed_segments() == []


def test_a_batch_the_store_refuses_is_split_out_after_a_few_tries(tmp_path: Path, nodes: list[Node]) -> None:
    node = open_node(nodes, tmp_path / "data")
    # A real refusal by the real store, for one batch's content only.
    node.store.execute(SYSTEM_QUERY(POISON))
    good_a = make_batch(n_events=2, project_id=1)
    refused = make_batch(n_events=3, project_id=3, session_id="refused-session")
    good_b = make_batch(n_events=1, project_id=2)
    segment_id = node.segment(*(encode_batch(b) for b in (good_a, refused, good_b)))

    for _ in range(SPLIT_AFTER_FAILURES):
        with pytest.raises(LoadError):
            node.loader.load_once()
        assert node.runtime.spool.sealed_segments() == [segment_id]
    assert node.loader.load_once() == 1

    assert len(node.events(good_a)) == 2 and len(node.events(good_b)) == 1 and node.events(refused) == []
    (item,) = node.loader.quarantine.items()
    assert (item.kind, item.stage, item.batch_id, item.segment_id) == ("batch", "store", refused.batch_id, segment_id)
    assert "no_poison" in item.reason and item.payload == encode_batch(refused)
    seen = node.store.query(
        SYSTEM_QUERY("SELECT batch_id FROM hitmetrix.seen_batches WHERE project_id > 0 ORDER BY batch_id")
    )
    assert [row["batch_id"] for row in seen] == sorted([good_a.batch_id, good_b.batch_id])
    assert node.loader.counters.snapshot()["segments_split"] == 1

    # Fixed: requeue it, twice over as after a crash between the append and the bookkeeping.
    node.store.execute(SYSTEM_QUERY("ALTER TABLE hitmetrix.events DROP CONSTRAINT no_poison"))
    assert requeue_items(node.data_dir, [item.id], spool_fsync="never") == ([item.id], False)
    node.segment(item.requeue_record())
    assert node.loader.load_once() == 2
    assert [e["event_id"] for e in node.events(refused)] == [e.event_id for e in refused.events]
    assert node.loader.quarantine.items() == []
    summary = sessions.session_summary(node.store, 3, refused.session_id)
    assert summary is not None and summary["events"] == 3


def test_a_failing_store_is_retried_never_blamed_on_the_data(tmp_path: Path, nodes: list[Node]) -> None:
    node = open_node(nodes, tmp_path / "data")
    batch = make_batch(n_events=2, chunks=1, project_id=1)
    segment_id = node.segment(encode_batch(batch))
    node.store.execute(SYSTEM_QUERY("DROP TABLE hitmetrix.events"))
    for _ in range(SPLIT_AFTER_FAILURES + 2):
        with pytest.raises(LoadError):
            node.loader.load_once()
    assert node.runtime.spool.sealed_segments() == [segment_id]
    assert node.loader.quarantine.items() == []
    for statement in create_statements():
        node.store.execute(SYSTEM_QUERY(statement))
    assert node.loader.load_once() == 1
    assert len(node.events(batch)) == 2


def test_quarantine_commands_list_show_and_requeue(tmp_path: Path, nodes: list[Node]) -> None:
    data_dir = tmp_path / "data"
    node = open_node(nodes, data_dir)
    batch = make_batch(n_events=1, chunks=1, project_id=1)
    big_recording = rrweb_like(random.Random(5), 9 * MIB)
    batch.recording[0].data = gzip.compress(big_recording)  # a real recording this big needs a larger cap
    node.segment(encode_batch(batch))
    node.loader.load_once()
    node.close()
    nodes.remove(node)

    listed = hitmetrix("quarantine", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    item_id, kind, stage = line.split("\t")[:3]
    assert (kind, stage) == ("chunk", "chunk")
    assert f"session={batch.session_id}" in line and "more than 8388608 bytes once decompressed" in line
    listed_json = hitmetrix("quarantine", "list", "--json", "--data-dir", str(data_dir)).stdout
    (as_json,) = [json.loads(line) for line in listed_json.splitlines()]
    assert (as_json["id"], as_json["batch_id"], as_json["payload_bytes"]) == (
        item_id,
        batch.batch_id,
        len(batch.recording[0].data),
    )

    payload_file = tmp_path / "payload.gz"
    shown = hitmetrix("quarantine", "show", item_id, "--payload-out", str(payload_file), "--data-dir", str(data_dir))
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert (detail["reason"], detail["project_id"], detail["seq"], detail["requeued"]) == (
        "ChunkTooLargeError: more than 8388608 bytes once decompressed",
        1,
        0,
        False,
    )
    assert payload_file.read_bytes() == batch.recording[0].data

    requeued = hitmetrix("quarantine", "requeue", item_id, "--data-dir", str(data_dir))
    assert requeued.returncode == 0, requeued.stderr
    assert "requeued 1 item(s) into the spool" in requeued.stdout
    assert hitmetrix("quarantine", "list", "--data-dir", str(data_dir)).stdout == ""
    assert item_id in hitmetrix("quarantine", "list", "--requeued", "--data-dir", str(data_dir)).stdout
    again = hitmetrix("quarantine", "requeue", item_id, "--data-dir", str(data_dir))
    assert again.returncode == 1 and "requeued already" in again.stderr
    unknown = hitmetrix("quarantine", "show", "c" + "0" * 20, "--data-dir", str(data_dir))
    assert unknown.returncode == 1 and "no quarantined item" in unknown.stderr
    assert hitmetrix("quarantine", "show", "../../etc/passwd", "--data-dir", str(data_dir)).returncode == 1

    fixed = open_node(nodes, data_dir, max_chunk_json_bytes=16 * MIB)
    fixed.loader.load_once()
    (chunk,) = sessions.recording_chunks(fixed.store, 1, batch.session_id)
    assert chunk["raw_bytes"] == len(big_recording)
    assert fixed.loader.quarantine.items() == []


def test_requeue_goes_through_a_running_node(tmp_path: Path, nodes: list[Node]) -> None:
    data_dir = tmp_path / "data"
    node = open_node(nodes, data_dir)
    batch = make_batch(n_events=1, chunks=1, project_id=1)
    batch.recording[0].data = gzip.compress(rrweb_like(random.Random(6), 9 * MIB))
    node.segment(encode_batch(batch))
    node.loader.load_once()
    (item,) = node.loader.quarantine.items()
    node.close()
    nodes.remove(node)

    running = open_node(nodes, data_dir, max_chunk_json_bytes=16 * MIB, spool_segment_max_age_s=0.2)
    running.runtime.start()
    requeued = hitmetrix("quarantine", "requeue", "--all", "--data-dir", str(data_dir))
    assert requeued.returncode == 0, requeued.stderr
    assert "requeued 1 item(s) into the running server's spool" in requeued.stdout
    assert item.id in requeued.stdout
    wait_for(lambda: sessions.recording_chunks(running.store, 1, batch.session_id), 30, what="the requeued chunk")
    assert running.loader.quarantine.items() == []
    assert running.loader.health()["quarantine"]["chunk"] == 0


def test_a_failing_segment_waits_for_its_retries_while_newer_ones_load(tmp_path: Path, nodes: list[Node]) -> None:
    node = open_node(nodes, tmp_path / "data", spool_segment_max_age_s=0.2)
    node.store.execute(SYSTEM_QUERY(POISON))
    refused = make_batch(n_events=3, project_id=3, session_id="refused-session")
    good = make_batch(n_events=2, project_id=1)
    node.runtime.start()
    node.runtime.spool.append_blocking(encode_batch(refused), 10.0)
    wait_for(lambda: node.loader.counters.snapshot()["segment_failures"] >= 1, 10, what="the first failure")
    node.runtime.spool.append_blocking(encode_batch(good), 10.0)
    # Sealed after the failing one, stored long before that one's retries are over.
    wait_for(lambda: len(node.events(good)) == 2, 5, what="the newer segment stored")
    assert node.loader.quarantine.items() == []
    wait_for(lambda: node.loader.quarantine.items(), 20, what="the failing batch quarantined after its retries")
    (item,) = node.loader.quarantine.items()
    assert (item.stage, item.session_id) == ("store", "refused-session")
    wait_for(lambda: node.loader.health()["loader_lag_segments"] == 0, 10, what="the spool drained")
