"""hitmetrix/capture/inflate.py: gzip inflated under a cap, zip bombs stopped early."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest

from hitmetrix.capture.inflate import (
    MAX_RATIO,
    RATIO_FREE_BYTES,
    InflateError,
    InflateTooLargeError,
    gunzip_capped,
)

TEXT = b'[{"type": 3, "data": {"x": 1}}, {"type": 2, "text": "hello"}]' * 50


def test_one_member() -> None:
    assert gunzip_capped(gzip.compress(TEXT), len(TEXT)) == TEXT


def test_several_members_are_one_stream() -> None:
    assert gunzip_capped(gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:]), len(TEXT)) == TEXT


def test_the_cap_counts_every_member() -> None:
    data = gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])
    with pytest.raises(InflateTooLargeError) as info:
        gunzip_capped(data, len(TEXT) - 1)
    assert not info.value.over_ratio
    assert f"more than {len(TEXT) - 1} bytes" in info.value.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (gzip.compress(TEXT) + b"garbage", "trailing"),
        (gzip.compress(TEXT) + b"\0\0\0\0", "trailing"),
        (gzip.compress(TEXT)[:-9], "truncated"),
        (gzip.compress(TEXT)[:5], "truncated"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "corrupt"),
        (zlib.compress(TEXT), "corrupt"),  # zlib, not gzip framing
        (gzip.compress(TEXT) + b"\x1f\x8bnot a member", "corrupt"),
    ],
)
def test_malformed_streams(data: bytes, reason: str) -> None:
    with pytest.raises(InflateError) as info:
        gunzip_capped(data, 1 << 20)
    assert not isinstance(info.value, InflateTooLargeError)
    assert reason in info.value.reason


def test_a_zip_bomb_stops_soon_after_the_ratio_free_bytes() -> None:
    bomb = gzip.compress(b" " * (200 << 20), 9)  # 200 MiB of spaces in ~200 KB
    started = time.perf_counter()
    assert len(zlib.decompress(bomb, 16 + zlib.MAX_WBITS)) == 200 << 20
    whole_s = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(InflateTooLargeError) as info:
        gunzip_capped(bomb, 1 << 30)
    refused_s = time.perf_counter() - started
    assert info.value.over_ratio and f"{MAX_RATIO} times" in info.value.reason
    # Refused after the first slices past RATIO_FREE_BYTES, about 1% of the whole stream.
    assert refused_s < whole_s / 10, (refused_s, whole_s)


def test_compressible_but_plausible_data_passes_the_ratio() -> None:
    text = (b'{"type": 3, "data": {"source": 1, "positions": [{"x": %d, "y": 7}]}},' * 40_000) % tuple(range(40_000))
    data = gzip.compress(text)
    assert len(text) > RATIO_FREE_BYTES and len(text) / len(data) < MAX_RATIO
    assert gunzip_capped(data, len(text)) == text


def test_ratio_applies_only_past_the_free_bytes() -> None:
    small_bomb = gzip.compress(b"0" * (RATIO_FREE_BYTES // 2), 9)
    assert len(gunzip_capped(small_bomb, RATIO_FREE_BYTES)) == RATIO_FREE_BYTES // 2
