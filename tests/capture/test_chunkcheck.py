"""hitmetrix/capture/chunkcheck.py: what makes a recording chunk storable, checked in bounded time."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from hitmetrix.capture.chunkcheck import ChunkCheckError, ChunkTooLargeError, chunk_json, inspect_chunk
from hitmetrix.loader.chunks import ChunkRecoder

MAX_BYTES = 8 << 20
RRWEB = [
    {"type": 4, "data": {"href": "https://shop.example/", "width": 1280, "height": 800}, "timestamp": 1},
    {"type": 3, "data": {"source": 1, "positions": [{"x": 5, "y": 9, "id": 12, "timeOffset": -20}]}, "timestamp": 2},
    {"type": 3, "data": {"source": 5, "text": '[{\\"]}', "id": 40}, "timestamp": 3},
]


def gz(text: bytes) -> bytes:
    return gzip.compress(text)


def test_a_good_chunk_returns_its_json_and_size() -> None:
    raw = json.dumps(RRWEB).encode()
    assert chunk_json(gz(raw), MAX_BYTES, 512) == raw
    assert inspect_chunk(gz(raw), MAX_BYTES, 512) == len(raw)
    assert inspect_chunk(gz(raw[:40]) + gz(raw[40:]), MAX_BYTES, 512) == len(raw)  # two gzip members
    assert inspect_chunk(gz(b"[]"), MAX_BYTES, 512) == 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (gz(b"[" * 100_000 + b"]" * 100_000), "nested deeper than 512"),
        (gz(b'[{"a": ' + b"[" * 600 + b"]" * 600 + b"}]"), "nested deeper than 512"),
        (gz(b'{"type": 4}'), "array of objects"),
        (gz(b'[{"type": 4}, 5]'), "$[1]"),
        (gz(b"[1, 2]"), "array of objects"),
        (gz(b'[{"type": 4}'), "malformed JSON"),
        (gz(b'[{"text": "\xff"}]'), "UTF-8"),
        (gz(b""), "malformed JSON"),
        (gz(b"[]") + b"garbage", "trailing data"),
        (gz(json.dumps(RRWEB).encode())[:-8], "truncated"),
        (b"\x1f\x8b" + b"\0" * 30, "corrupt gzip"),
    ],
)
def test_unstorable_chunks_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ChunkCheckError) as info:
        inspect_chunk(data, MAX_BYTES, 512)
    assert not isinstance(info.value, ChunkTooLargeError)
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)  # what the loader catches


def test_too_large_once_inflated() -> None:
    raw = json.dumps([{"text": f"t{i}"} for i in range(2000)]).encode()
    assert inspect_chunk(gz(raw), len(raw), 512) == len(raw)
    with pytest.raises(ChunkTooLargeError) as info:
        inspect_chunk(gz(raw), len(raw) - 1, 512)
    assert not info.value.over_ratio


def test_a_zip_bomb_is_too_large_by_its_ratio_and_cheap_to_refuse() -> None:
    bomb = gz(b"[" + b" " * (64 << 20) + b"]")
    started = time.perf_counter()
    with pytest.raises(ChunkTooLargeError) as info:
        inspect_chunk(bomb, 1 << 30, 512)
    assert info.value.over_ratio
    assert time.perf_counter() - started < 0.5


def test_the_271_byte_request_chunk_is_refused_without_recursion() -> None:
    # The outside finding: gzip of JSON nested 100,000 deep, acknowledged and then fatal to the loader.
    deep = gz(b"[" * 100_000 + b"]" * 100_000)
    assert len(deep) < 300
    with pytest.raises(ChunkCheckError):
        inspect_chunk(deep, MAX_BYTES, 512)


def test_what_capture_accepts_the_loader_stores() -> None:
    raw = json.dumps(RRWEB * 100).encode()
    blob, size = ChunkRecoder(MAX_BYTES).recode(gz(raw))
    assert size == inspect_chunk(gz(raw), MAX_BYTES, 512) and blob
