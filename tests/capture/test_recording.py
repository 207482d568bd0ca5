"""hitmetrix/capture/recording.py: a batch's chunks refused with the field and status a client can act on."""

from __future__ import annotations

import gzip
import json

import pytest

from hitmetrix.capture.recording import RecordingLimits, check_recording, compressed_bytes
from hitmetrix.capture.schema import CaptureError, IncomingChunk

LIMITS = RecordingLimits(max_chunk_json_bytes=10_000, max_recording_bytes=25_000, max_json_depth=512)


def chunk(raw: bytes, seq: int = 0) -> IncomingChunk:
    return IncomingChunk(seq=seq, first_ts=1, last_ts=2, count=1, data=gzip.compress(raw))


def json_of(size_bytes: int) -> bytes:
    raw = json.dumps([{"type": 3, "pad": "x" * (size_bytes - 24)}]).encode()
    assert len(raw) == size_bytes
    return raw


def refused(chunks: list[IncomingChunk]) -> CaptureError:
    with pytest.raises(CaptureError) as info:
        check_recording(chunks, LIMITS)
    return info.value


def test_total_decompressed_size() -> None:
    assert check_recording([chunk(json_of(10_000)), chunk(json_of(9_000), 1)], LIMITS) == 19_000
    assert check_recording([], LIMITS) == 0


def test_one_chunk_too_large_is_413_naming_it() -> None:
    error = refused([chunk(json_of(100)), chunk(json_of(10_001), 1)])
    assert (error.status, error.field) == (413, "$.recording[1].data")
    assert "10000 bytes" in error.message


def test_the_request_over_its_recording_budget_is_413_on_the_recording() -> None:
    error = refused([chunk(json_of(9_000), i) for i in range(3)])
    assert (error.status, error.field) == (413, "$.recording")
    assert "25000 bytes" in error.message


def test_unstorable_content_is_400_naming_the_chunk() -> None:
    error = refused([chunk(json_of(100)), chunk(b"[" * 600 + b"]" * 600, 1)])
    assert (error.status, error.field) == (400, "$.recording[1].data")
    assert "nested deeper than 512" in error.message
    error = refused([chunk(b'{"not": "an array"}')])
    assert (error.status, error.field) == (400, "$.recording[0].data")


def test_a_zip_bomb_is_413_naming_the_chunk() -> None:
    limits = RecordingLimits(max_chunk_json_bytes=64 << 20, max_recording_bytes=64 << 20, max_json_depth=512)
    with pytest.raises(CaptureError) as info:
        check_recording([chunk(b"[" + b" " * (32 << 20) + b"]")], limits)
    assert (info.value.status, info.value.field) == (413, "$.recording[0].data")
    assert "times its size" in info.value.message


def test_compressed_bytes() -> None:
    chunks = [chunk(b"[]"), chunk(b"[{}]", 1)]
    assert compressed_bytes(chunks) == sum(len(c.data) for c in chunks)
