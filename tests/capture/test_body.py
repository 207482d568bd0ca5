"""hitmetrix/capture/body.py: content type, size caps, gzip."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from hitmetrix.capture.body import check_content_type, check_declared_length, decode_content, read_capped
from hitmetrix.capture.schema import CaptureError


async def _chunks(parts: list[bytes], consumed: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        consumed.append(part)
        yield part


def status_of(call: object) -> int:
    with pytest.raises(CaptureError) as info:
        call()  # type: ignore[operator]
    return info.value.status


@pytest.mark.parametrize("content_type", ["application/json", "text/plain;charset=UTF-8", "Application/JSON", ""])
def test_accepted_content_types(content_type: str) -> None:
    check_content_type(content_type)


def test_other_content_types_are_415() -> None:
    assert status_of(lambda: check_content_type("application/x-www-form-urlencoded")) == 415


def test_declared_length() -> None:
    check_declared_length("100", 100)
    check_declared_length("", 100)
    assert status_of(lambda: check_declared_length("101", 100)) == 413


def test_read_capped_stops_reading_past_the_cap() -> None:
    consumed: list[bytes] = []
    assert asyncio.run(read_capped(_chunks([b"ab", b"cd"], consumed), 4)) == b"abcd"
    consumed.clear()
    with pytest.raises(CaptureError) as info:
        asyncio.run(read_capped(_chunks([b"ab", b"cd", b"e", b"never read"], consumed), 4))
    assert info.value.status == 413
    assert consumed == [b"ab", b"cd", b"e"]


def test_identity_and_gzip() -> None:
    assert decode_content(b"{}", "", 10) == b"{}"
    assert decode_content(b"{}", "identity", 10) == b"{}"
    assert decode_content(gzip.compress(b'{"a": 1}'), "gzip", 10) == b'{"a": 1}'


def test_decompressed_cap() -> None:
    bomb = gzip.compress(b"0" * 10_000_000)
    assert len(bomb) < 20_000
    assert status_of(lambda: decode_content(bomb, "gzip", 1_000_000)) == 413
    assert decode_content(gzip.compress(b"0" * 100), "gzip", 100) == b"0" * 100
    assert status_of(lambda: decode_content(gzip.compress(b"0" * 101), "gzip", 100)) == 413


def test_bad_gzip_is_400() -> None:
    assert status_of(lambda: decode_content(b"{}", "gzip", 100)) == 400
    assert status_of(lambda: decode_content(gzip.compress(b"{}" * 100)[:20], "gzip", 1000)) == 400


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd"])
def test_other_encodings_are_415(encoding: str) -> None:
    assert status_of(lambda: decode_content(b"{}", encoding, 100)) == 415


def test_gzip_members_one_after_the_other_are_one_body() -> None:
    assert decode_content(gzip.compress(b'{"a": ') + gzip.compress(b"1}"), "gzip", 100) == b'{"a": 1}'


@pytest.mark.parametrize(
    "body",
    [gzip.compress(b"{}") + b"trailing garbage", gzip.compress(b"{}") + b"\0", b"", gzip.compress(b"{}")[:-1]],
    ids=["garbage", "nul", "empty", "truncated"],
)
def test_anything_but_a_complete_gzip_stream_is_400(body: bytes) -> None:
    with pytest.raises(CaptureError) as info:
        decode_content(body, "gzip", 1000)
    assert (info.value.status, info.value.field) == (400, "$")
    assert "gzip" in info.value.message


def test_a_zip_bomb_body_is_413_by_its_ratio_under_a_large_cap() -> None:
    bomb = gzip.compress(b" " * (50 << 20))
    with pytest.raises(CaptureError) as info:
        decode_content(bomb, "gzip", 1 << 30)
    assert info.value.status == 413 and "times its size" in info.value.message
