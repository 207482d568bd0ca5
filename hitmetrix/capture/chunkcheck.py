"""Is a recording chunk storable? Inflate it under a cap and check its JSON, in bounded time.

Capture runs this before it acknowledges a batch, so that nothing it answers 200
for is refused by the loader later; the loader may run the same functions on
what it reads from the spool. A chunk is storable when it is a well-formed gzip
stream (one or more members, nothing after them) of at most ``max_json_bytes``
that does not inflate at a zip-bomb ratio, and holds UTF-8 JSON that is an
array of objects nested at most ``max_depth`` deep.
Errors are ``ChunkCheckError`` (a ValueError) with a ``reason``;
``ChunkTooLargeError`` marks the ones about size.
"""

from __future__ import annotations

import msgspec

from hitmetrix.capture.inflate import InflateError, InflateTooLargeError, gunzip_capped
from hitmetrix.capture.jsondepth import JsonTooDeepError, check_json_depth


class ChunkCheckError(ValueError):
    """A chunk that cannot be stored; ``reason`` says why, for an error message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChunkTooLargeError(ChunkCheckError):
    """Inflates past the byte cap or, when ``over_ratio``, at an implausible ratio."""

    def __init__(self, reason: str, *, over_ratio: bool = False) -> None:
        super().__init__(reason)
        self.over_ratio = over_ratio


class _AnyObject(msgspec.Struct, gc=False):
    """Decodes from any JSON object (every field unknown, skipped) and from nothing else."""


_array_of_objects = msgspec.json.Decoder(list[_AnyObject])


def chunk_json(data: bytes, max_json_bytes: int, max_depth: int) -> bytes:
    """The chunk's JSON text, inflated and checked; ChunkCheckError if it cannot be stored."""
    try:
        raw = gunzip_capped(data, max_json_bytes)
    except InflateTooLargeError as exc:
        raise ChunkTooLargeError(exc.reason, over_ratio=exc.over_ratio) from None
    except InflateError as exc:
        raise ChunkCheckError(exc.reason) from None
    check_chunk_json(raw, max_depth)
    return raw


def check_chunk_json(raw: bytes, max_depth: int) -> None:
    """ChunkCheckError unless ``raw`` is UTF-8 JSON: an array of objects at most ``max_depth`` deep."""
    try:
        check_json_depth(raw, max_depth)
    except JsonTooDeepError as exc:
        raise ChunkCheckError(exc.reason) from None
    if not raw.isascii():
        try:
            raw.decode()  # msgspec does not look at the bytes of the strings it skips
        except UnicodeDecodeError as exc:
            raise ChunkCheckError(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        _array_of_objects.decode(raw)
    except msgspec.ValidationError as exc:
        raise ChunkCheckError(f"not a JSON array of objects: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ChunkCheckError(f"malformed JSON: {exc}") from None
    except RecursionError:  # only if max_depth was set beyond what the parser can take from here
        raise ChunkCheckError(f"JSON nested too deep to parse (max_depth {max_depth})") from None


def inspect_chunk(data: bytes, max_json_bytes: int, max_depth: int) -> int:
    """The size of the chunk's JSON once inflated, after every check of ``chunk_json``."""
    return len(chunk_json(data, max_json_bytes, max_depth))
