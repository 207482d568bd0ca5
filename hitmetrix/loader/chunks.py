"""Recording chunks on their way to the blob store: gunzip with a cap, check, recompress with zstd.

Clients send gzip (all a browser can make); blobs are zstd level 3, smaller and
faster to replay. A chunk that is not a gzip of a JSON array is refused.
"""

from __future__ import annotations

import zlib

import msgspec
import zstandard

MAX_CHUNK_JSON_BYTES = 32 * 1024 * 1024
ZSTD_LEVEL = 3

_json_array = msgspec.json.Decoder(list[msgspec.Raw])


class ChunkRejectedError(ValueError):
    """A recording chunk that cannot be stored (corrupt, too big, not a JSON array)."""


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """The gzip stream(s) in ``data`` decompressed; ChunkRejectedError past ``max_bytes`` or if corrupt."""
    parts: list[bytes] = []
    size = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, max_bytes - size + 1)
        except zlib.error as exc:
            raise ChunkRejectedError(f"corrupt gzip: {exc}") from None
        size += len(part)
        if size > max_bytes or inflater.unconsumed_tail:
            raise ChunkRejectedError(f"more than {max_bytes} bytes once decompressed")
        if not inflater.eof:
            raise ChunkRejectedError("truncated gzip")
        parts.append(part)
        rest = inflater.unused_data  # browsers send one member; concatenated members are valid gzip too
    if not parts:
        raise ChunkRejectedError("empty chunk")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def check_json_array(raw: bytes) -> None:
    try:
        _json_array.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ChunkRejectedError(f"not a JSON array: {exc}") from None


class ChunkRecoder:
    """gzip in, zstd out; one per thread (a zstd compressor is not thread-safe)."""

    def __init__(self, max_json_bytes: int = MAX_CHUNK_JSON_BYTES, level: int = ZSTD_LEVEL) -> None:
        self.max_json_bytes = max_json_bytes
        self._compressor = zstandard.ZstdCompressor(level=level)

    def recode(self, gzip_data: bytes) -> tuple[bytes, int]:
        """The zstd blob and the size of the JSON it holds."""
        raw = gunzip_bounded(gzip_data, self.max_json_bytes)
        check_json_array(raw)
        return self._compressor.compress(raw), len(raw)
