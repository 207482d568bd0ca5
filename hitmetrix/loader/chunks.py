"""Recording chunks on their way to the blob store: inflate and check exactly as capture did, recompress with zstd.

Clients send gzip (all a browser can make); blobs are zstd level 3, smaller and
faster to replay. Whether a chunk is storable is decided by capture's own
checks (``hitmetrix.capture.chunkcheck``: capped inflation with a zip-bomb
ratio, nesting depth counted without recursion, UTF-8, an array of objects),
so that nothing capture acknowledged is refused here under the same settings.
Chunks from older spools or other writers get the same checks; what fails them
raises ``ChunkCheckError`` and goes to quarantine.
"""

from __future__ import annotations

import zstandard

# Shared with capture on purpose: one definition of a storable chunk (see the module docstring).
from hitmetrix.capture.chunkcheck import ChunkCheckError, chunk_json
from hitmetrix.capture.jsondepth import json_depth

MAX_CHUNK_JSON_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 512
ZSTD_LEVEL = 3

__all__ = ["MAX_CHUNK_JSON_BYTES", "MAX_JSON_DEPTH", "ChunkCheckError", "ChunkRecoder", "warm_up"]


def warm_up() -> None:
    """Load Arrow's compute functions (the depth count's) now, not while a chunk waits."""
    json_depth(b"[" * 5000 + b"]" * 5000)


class ChunkRecoder:
    """gzip in, zstd out; one per thread (a zstd compressor is not thread-safe)."""

    def __init__(
        self, max_json_bytes: int = MAX_CHUNK_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH, level: int = ZSTD_LEVEL
    ) -> None:
        self.max_json_bytes = max_json_bytes
        self.max_depth = max_depth
        self._compressor = zstandard.ZstdCompressor(level=level)

    def recode(self, gzip_data: bytes) -> tuple[bytes, int]:
        """The zstd blob and the size of the JSON it holds; ChunkCheckError if the chunk cannot be stored."""
        raw = chunk_json(gzip_data, self.max_json_bytes, self.max_depth)
        return self._compressor.compress(raw), len(raw)
