"""A batch's recording chunks checked before we acknowledge it: each inflates under its cap, all
of them together stay under the per-request budget, and each holds storable JSON.

Anything the loader would refuse later is refused here, as a 400 or 413 naming
the chunk (docs/capture-api.md); a 200 is never followed by a silent drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hitmetrix.capture.chunkcheck import ChunkCheckError, ChunkTooLargeError, inspect_chunk
from hitmetrix.capture.schema import CaptureError, IncomingChunk


@dataclass(frozen=True)
class RecordingLimits:
    max_chunk_json_bytes: int  # one chunk, decompressed
    max_recording_bytes: int  # all chunks of one request, decompressed
    max_json_depth: int


def check_recording(chunks: Sequence[IncomingChunk], limits: RecordingLimits) -> int:
    """The decompressed size of all chunks, or CaptureError for the first chunk that cannot be stored."""
    total_bytes = 0
    for index, chunk in enumerate(chunks):
        room_bytes = limits.max_recording_bytes - total_bytes
        # Never inflate past what the request may still carry: a refused request costs at most its budget.
        cap_bytes = min(limits.max_chunk_json_bytes, room_bytes)
        try:
            total_bytes += inspect_chunk(chunk.data, cap_bytes, limits.max_json_depth)
        except ChunkTooLargeError as exc:
            if not exc.over_ratio and cap_bytes < limits.max_chunk_json_bytes:
                raise CaptureError(
                    413,
                    f"recording larger than {limits.max_recording_bytes} bytes decompressed in one request: "
                    "send fewer chunks per batch",
                    "$.recording",
                ) from None
            raise CaptureError(413, f"recording chunk {exc.reason}", f"$.recording[{index}].data") from None
        except ChunkCheckError as exc:
            raise CaptureError(400, f"recording chunk {exc.reason}", f"$.recording[{index}].data") from None
    return total_bytes


def compressed_bytes(chunks: Sequence[IncomingChunk]) -> int:
    """What the chunks weigh as sent: decides whether checking them is worth a worker thread."""
    return sum(len(chunk.data) for chunk in chunks)
