"""Getting a capture request's body safely: content type, a size cap while streaming,
and gzip decompression with its own cap (a small gzip can inflate enormously).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from hitmetrix.capture.inflate import InflateError, InflateTooLargeError, gunzip_capped
from hitmetrix.capture.schema import CaptureError

# text/plain is what navigator.sendBeacon sends for a string body.
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain")
_IDENTITY = ("", "identity")
_GZIP = ("gzip", "x-gzip")


def check_content_type(content_type: str) -> None:
    """Accept JSON, text/plain (sendBeacon) and a missing header (simple server-side clients)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type not in ACCEPTED_CONTENT_TYPES:
        raise CaptureError(415, f"unsupported content type {media_type!r}: send application/json")


def check_declared_length(content_length: str, max_body_bytes: int) -> None:
    """Refuse early when Content-Length already says the body is too big."""
    if content_length.isdigit() and int(content_length) > max_body_bytes:
        raise CaptureError(413, f"body larger than {max_body_bytes} bytes")


async def read_capped(chunks: AsyncIterator[bytes], max_body_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it passes ``max_body_bytes`` (the rest is never read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_body_bytes:
            raise CaptureError(413, f"body larger than {max_body_bytes} bytes")
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decode_content(body: bytes, content_encoding: str, max_decompressed_bytes: int) -> bytes:
    """The body after Content-Encoding: identity or gzip (one or more members, nothing after them);
    413 past the cap or at a zip-bomb ratio, 400 if corrupt, truncated or followed by other bytes."""
    encoding = content_encoding.strip().lower()
    if encoding in _IDENTITY:
        return body
    if encoding not in _GZIP:
        raise CaptureError(415, f"unsupported content encoding {encoding!r}: use gzip or none")
    try:
        return gunzip_capped(body, max_decompressed_bytes)
    except InflateTooLargeError as exc:
        if exc.over_ratio:
            raise CaptureError(413, f"gzip body {exc.reason}") from None
        raise CaptureError(413, f"decompressed body larger than {max_decompressed_bytes} bytes") from None
    except InflateError as exc:
        raise CaptureError(400, f"malformed gzip body: {exc.reason}", "$") from None
