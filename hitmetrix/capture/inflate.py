"""Bounded gzip inflation for request bodies and recording chunks.

A few hundred bytes of gzip can inflate to gigabytes, so output is produced a
slice at a time under a cap, and a stream that inflates more than
``MAX_RATIO`` times once past ``RATIO_FREE_BYTES`` is refused right there: a
zip bomb costs about ``RATIO_FREE_BYTES`` of work, not the whole cap. Several
gzip members one after the other are one valid stream (RFC 1952 §2.2); bytes
after the last member that are not a member are refused, never ignored.

Standard library only: the loader imports this too.
"""

from __future__ import annotations

import zlib

# Real rrweb JSON and capture bodies inflate 5–30×; gzip's ceiling is ~1030×.
MAX_RATIO = 200
RATIO_FREE_BYTES = 1 << 20
_SLICE_BYTES = 256 * 1024  # output per inflate call: how often the caps are looked at
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class InflateError(ValueError):
    """Not a complete, well-formed gzip stream; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InflateTooLargeError(InflateError):
    """Inflates past the byte cap or, when ``over_ratio``, at an implausible ratio (a zip bomb)."""

    def __init__(self, reason: str, *, over_ratio: bool = False) -> None:
        super().__init__(reason)
        self.over_ratio = over_ratio


def gunzip_capped(
    data: bytes, max_bytes: int, *, max_ratio: int = MAX_RATIO, ratio_free_bytes: int = RATIO_FREE_BYTES
) -> bytes:
    """``data`` inflated (every member); InflateTooLargeError past ``max_bytes`` or ``max_ratio``."""
    if not data:
        raise InflateError("empty gzip stream")
    parts: list[bytes] = []
    produced = 0
    rest: bytes = data
    while rest:
        if parts and not rest.startswith(b"\x1f\x8b"):
            raise InflateError(f"{len(rest)} bytes of trailing data after the gzip stream")
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        pending = rest
        while True:
            try:
                part = inflater.decompress(pending, min(_SLICE_BYTES, max_bytes - produced + 1))
            except zlib.error as exc:
                raise InflateError(f"corrupt gzip: {exc}") from None
            produced += len(part)
            parts.append(part)
            if produced > max_bytes:
                raise InflateTooLargeError(f"more than {max_bytes} bytes once decompressed")
            consumed = len(data) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            if produced > ratio_free_bytes and produced > max_ratio * consumed:
                raise InflateTooLargeError(
                    f"decompresses more than {max_ratio} times its size (a zip bomb?)", over_ratio=True
                )
            if inflater.eof:
                break
            if not inflater.unconsumed_tail or (not part and len(inflater.unconsumed_tail) == len(pending)):
                raise InflateError("truncated gzip")
            pending = inflater.unconsumed_tail
        rest = inflater.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)
