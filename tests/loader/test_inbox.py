"""The recordings inbox: durable files named by chunk identity, queued per project, found again after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitmetrix.loader.inbox import ChunkInbox, InboxChunk, InboxEntry, decode_chunk, entry_for


def chunk(project_id: int, session_id: str, seq: int, data: bytes = b"\x1f\x8bgz") -> InboxChunk:
    return InboxChunk(
        project_id=project_id,
        session_id=session_id,
        seq=seq,
        first_ts=1,
        last_ts=2,
        count=3,
        received_at=4,
        segment_id=5,
        batch_id="batch-1",
        data=data,
    )


def test_chunks_are_queued_per_project_and_survive_a_restart(tmp_path: Path) -> None:
    inbox = ChunkInbox(tmp_path)
    assert inbox.put_many([chunk(1, "sess-a", 0), chunk(2, "sess-b", 7), chunk(1, "sess-a", 1)]) == 3
    assert sorted(inbox.waiting_bytes()) == [1, 2]
    assert inbox.backlog()[0] == 3
    (tmp_path / "1" / "sess-a.0000000009.chunk.tmp").write_bytes(b"half written")  # a crash mid-write

    again = ChunkInbox(tmp_path)
    assert not (tmp_path / "1" / "sess-a.0000000009.chunk.tmp").exists()
    assert again.take(1) == InboxEntry(1, "sess-a.0000000000.chunk")
    entry = again.take(1)
    assert entry == InboxEntry(1, "sess-a.0000000001.chunk")
    found = again.read(entry)
    assert found is not None and decode_chunk(found[0]) == chunk(1, "sess-a", 1)
    assert again.take(1) is None and list(again.waiting_bytes()) == [2]


def test_a_rewrite_of_a_chunk_in_hand_is_kept_and_queued_again(tmp_path: Path) -> None:
    inbox = ChunkInbox(tmp_path)
    inbox.put_many([chunk(1, "sess-a", 0, b"old")])
    entry = inbox.take(1)
    assert entry is not None
    found = inbox.read(entry)
    assert found is not None
    inbox.put_many([chunk(1, "sess-a", 0, b"new")])  # a retried segment while the worker works
    inbox.remove(entry, found[1])
    assert inbox.path(entry).exists() and inbox.take(1) == entry
    newer = inbox.read(entry)
    assert newer is not None and decode_chunk(newer[0]).data == b"new"
    inbox.remove(entry, newer[1])
    assert not inbox.path(entry).exists() and inbox.backlog() == (0, 0)


def test_a_chunk_resent_within_one_call_is_one_file(tmp_path: Path) -> None:
    inbox = ChunkInbox(tmp_path)
    assert inbox.put_many([chunk(1, "sess-a", 0, b"first"), chunk(1, "sess-a", 0, b"second")]) == 1
    entry = inbox.take(1)
    assert entry is not None and inbox.take(1) is None
    found = inbox.read(entry)
    assert found is not None and decode_chunk(found[0]).data == b"second"


@pytest.mark.parametrize(
    ("project_id", "session_id", "seq", "message"),
    [
        (1, "../../etc", 0, "unsafe session id"),
        (1, "", 0, "unsafe session id"),
        (1, "sess", -1, "seq -1 out of range"),
        (1, "sess", 2**32, "out of range"),
        (-3, "sess", 0, "project id -3 out of range"),
    ],
)
def test_an_identity_that_cannot_name_a_file_is_refused(
    project_id: int, session_id: str, seq: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        entry_for(project_id, session_id, seq)
