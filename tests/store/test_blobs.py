"""The blob store: chunk files old (gzip) and new (zstd), per-session units, and texts kept once per project."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest
import zstandard

from hitmetrix.store.blobs import BlobStore, text_ref
from tests.loader.helpers import rrweb_like

CSS = (".card { padding: var(--pad); padding-bottom: 20px } " * 60).encode()


def chunk(seq: int, *extra: dict[str, object]) -> bytes:
    events = [{"type": 3, "timestamp": 1_700_000_000_000 + seq, "data": {"source": 1, "positions": [[seq, 2]]}}]
    return json.dumps([*events, *extra], separators=(",", ":")).encode()


def put_chunk(blobs: BlobStore, session: str, seq: int, raw: bytes) -> str:
    key = blobs.chunk_key(1, session, seq)
    blobs.put(key, zstandard.ZstdCompressor().compress(raw))
    return key


def test_an_old_gzip_chunk_reads_like_a_zstd_one(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    old_key, new_key = blobs.chunk_key(1, "sessionAAA", 0), blobs.chunk_key(1, "sessionAAA", 1)
    blobs.put(old_key, gzip.compress(chunk(0)))
    put_chunk(blobs, "sessionAAA", 1, chunk(1))
    for key, seq in ((old_key, 0), (new_key, 1)):
        assert blobs.stored_json(key) == blobs.chunk_json(key) == chunk(seq)
        # Readers that expect zstd (the asset worker, the export) get zstd whatever is on disk.
        assert zstandard.ZstdDecompressor().decompress(blobs.get(key)) == chunk(seq)


def test_a_compacted_session_reads_chunk_by_chunk_from_its_unit(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    keys = [put_chunk(blobs, "sessionBBB", seq, chunk(seq)) for seq in range(5)]
    loose_bytes = sum((tmp_path / k).stat().st_size for k in keys)
    assert blobs.compact_session(1, "sessionBBB") == 5
    session_dir = tmp_path / blobs.session_dir_key(1, "sessionBBB")
    (unit,) = os.listdir(session_dir)
    assert unit.startswith("unit-") and (session_dir / unit).stat().st_size < loose_bytes
    for seq, key in enumerate(keys):
        assert blobs.stored_json(key) == chunk(seq)
        assert zstandard.ZstdDecompressor().decompress(blobs.get(key)) == chunk(seq)
    with pytest.raises(FileNotFoundError):
        blobs.stored_json(blobs.chunk_key(1, "sessionBBB", 9))
    assert blobs.compact_session(1, "sessionBBB") == 0, "nothing loose, one unit: nothing to do"


def test_chunks_after_a_compaction_and_a_retried_seq_merge_into_a_new_unit(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    for seq in range(3):
        put_chunk(blobs, "sessionCCC", seq, chunk(seq))
    blobs.compact_session(1, "sessionCCC")
    # The visitor comes back (seq 3), and a client retry stores seq 1 again: the loose copy is read first.
    retried = chunk(1, {"type": 5, "timestamp": 1, "data": {"tag": "retry"}})
    put_chunk(blobs, "sessionCCC", 3, chunk(3))
    key1 = put_chunk(blobs, "sessionCCC", 1, retried)
    assert blobs.stored_json(key1) == retried
    assert blobs.compact_session(1, "sessionCCC") == 2
    session_dir = tmp_path / blobs.session_dir_key(1, "sessionCCC")
    assert len(os.listdir(session_dir)) == 1, "the older unit went once the newer one was durable"
    assert [blobs.stored_json(blobs.chunk_key(1, "sessionCCC", s)) for s in range(4)] == [
        chunk(0),
        retried,
        chunk(2),
        chunk(3),
    ]


def test_a_crash_between_the_unit_and_the_deletions_loses_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    keys = [put_chunk(blobs, "sessionDDD", seq, chunk(seq)) for seq in range(3)]
    saved = {k: (tmp_path / k).read_bytes() for k in keys}
    blobs.compact_session(1, "sessionDDD")
    for key, data in saved.items():  # as if the process died after the unit's fsync, before the unlinks
        (tmp_path / key).write_bytes(data)
    assert [blobs.stored_json(k) for k in keys] == [chunk(s) for s in range(3)]
    assert list(blobs.sessions_with_loose_chunks()) == [(1, "sessionDDD")]
    assert blobs.compact_session(1, "sessionDDD") == 3
    assert [blobs.stored_json(k) for k in keys] == [chunk(s) for s in range(3)]
    assert list(blobs.sessions_with_loose_chunks()) == []


def test_a_text_is_kept_once_per_project_and_read_only_by_its_own(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put_text(1, CSS)
    assert blobs.put_text(1, CSS) == sha
    assert len(list((tmp_path / "1" / "texts").rglob("*.zst"))) == 1
    assert blobs.get_text(1, sha) == CSS
    assert blobs.get_text(2, sha) is None, "another project's hash"
    assert blobs.get_text(1, "../../1/texts") is None
    assert blobs.get_text(1, "0" * 64) is None


def test_readers_get_the_texts_back_and_a_forged_reference_reads_as_empty(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put_text(1, CSS)
    other = BlobStore(tmp_path).put_text(2, b"secret { color: red }" * 100)
    style = {"type": 2, "timestamp": 5, "data": {"node": {"attributes": {"_cssText": text_ref(sha)}}}}
    forged = {"type": 2, "timestamp": 6, "data": {"node": {"attributes": {"_cssText": text_ref(other)}}}}
    key = put_chunk(blobs, "sessionEEE", 0, chunk(0, style, forged))
    assert text_ref(sha).encode() in blobs.stored_json(key), "the replay page resolves references itself"
    events = json.loads(blobs.chunk_json(key))
    assert events[1]["data"]["node"]["attributes"]["_cssText"] == CSS.decode()
    assert events[2]["data"]["node"]["attributes"]["_cssText"] == "", "never another project's text"
    assert json.loads(zstandard.ZstdDecompressor().decompress(blobs.get(key))) == events


def test_a_project_with_enough_chunks_gets_a_dictionary_its_later_units_use(tmp_path: Path) -> None:
    rng = random.Random(5)
    blobs = BlobStore(tmp_path)
    sent: dict[tuple[str, int], bytes] = {}
    for s in range(6):  # 6 sessions × 8 chunks × ~8 KB: past the training threshold at the fifth
        for seq in range(8):
            sent[(f"session{s:04d}", seq)] = raw = rrweb_like(rng, 8000)
            put_chunk(blobs, f"session{s:04d}", seq, raw)
        blobs.compact_session(1, f"session{s:04d}")
    (dictionary,) = (tmp_path / "1" / "dicts").iterdir()
    last_unit = next((tmp_path / blobs.session_dir_key(1, "session0005")).iterdir())
    assert zstandard.get_frame_parameters(last_unit.read_bytes()).dict_id == int(dictionary.stem)
    first_unit = next((tmp_path / blobs.session_dir_key(1, "session0000")).iterdir())
    assert zstandard.get_frame_parameters(first_unit.read_bytes()).dict_id == 0, "before there was one"
    fresh = BlobStore(tmp_path)  # a restarted server: the dictionary comes from disk
    for (session, seq), raw in sent.items():
        assert fresh.stored_json(fresh.chunk_key(1, session, seq)) == raw
