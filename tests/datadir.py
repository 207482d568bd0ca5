"""Search every file of a data directory for a string, looking inside compressed data.

Understands gzip and zstd streams (anywhere in a file, e.g. inside spool
records) and ClickHouse's compressed column blocks (LZ4, ZSTD, none), so a
secret cannot hide from the search behind compression.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import lz4.block
import zstandard

_GZIP = b"\x1f\x8b\x08"
_ZSTD = b"\x28\xb5\x2f\xfd"
_CH_LZ4, _CH_ZSTD, _CH_NONE = 0x82, 0x90, 0x02


def _gzip_streams(data: bytes) -> Iterator[bytes]:
    start = data.find(_GZIP)
    while start != -1:
        try:  # noqa: SIM105 - a yield inside suppress() would swallow errors thrown into the generator
            yield zlib.decompressobj(31).decompress(data[start:], 64 * 1024 * 1024)
        except zlib.error:
            pass
        start = data.find(_GZIP, start + 1)


def _zstd_streams(data: bytes) -> Iterator[bytes]:
    start = data.find(_ZSTD)
    while start != -1:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(data[start:])
            yield reader.read(64 * 1024 * 1024)
        except zstandard.ZstdError:
            pass
        start = data.find(_ZSTD, start + 1)


def _clickhouse_blocks(data: bytes) -> Iterator[bytes]:
    """Decode a .bin file as a sequence of ClickHouse compressed blocks; stop at the first that isn't."""
    pos = 0
    while pos + 25 <= len(data):
        method = data[pos + 16]
        compressed, raw = struct.unpack_from("<II", data, pos + 17)
        payload = data[pos + 25 : pos + 16 + compressed]
        if compressed < 9 or pos + 16 + compressed > len(data):
            return
        try:
            if method == _CH_LZ4:
                yield lz4.block.decompress(payload, uncompressed_size=raw)
            elif method == _CH_ZSTD:
                yield zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw)
            elif method == _CH_NONE:
                yield payload
        except (lz4.block.LZ4BlockError, zstandard.ZstdError):
            return
        pos += 16 + compressed


def decoded_views(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    yield data
    yield from _gzip_streams(data)
    yield from _zstd_streams(data)
    if path.suffix == ".bin":
        yield from _clickhouse_blocks(data)


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under root whose raw or decompressed content contains needle (UTF-8 or UTF-16)."""
    forms = {needle.encode(), needle.encode("utf-16-le")}
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(form in view for view in decoded_views(path) for form in forms):
            hits.append(str(path.relative_to(root)))
    return hits
