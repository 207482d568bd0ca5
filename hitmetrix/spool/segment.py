"""The spool's on-disk record format, strict reading of sealed segments, and crash recovery.

A segment file is the 8-byte magic ``HMSPOOL1`` followed by records, each a
little-endian u32 payload length, a u32 ``zlib.crc32`` of the payload, and the
payload. The active segment is ``{id:016d}.open``; sealing renames it to
``{id:016d}.seg``, after which it never changes.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"HMSPOOL1"
RECORD_HEADER = struct.Struct("<II")
MAX_PAYLOAD_BYTES = 0xFFFF_FFFF
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".seg"
QUARANTINE_DIR = "quarantine"

_NAME = re.compile(r"^(\d{16})\.(open|seg)$")


class CorruptSegmentError(Exception):
    """A sealed segment whose bytes do not follow the record format."""


def segment_path(directory: Path, segment_id: int, *, sealed: bool) -> Path:
    return directory / f"{segment_id:016d}{SEALED_SUFFIX if sealed else OPEN_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, bool] | None:
    """``(id, sealed)`` for a segment file name, None for anything else."""
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) == "seg"


def record_header(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"spool record of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES}")
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload))


def encode_records(payloads: Iterable[bytes]) -> bytes:
    """A whole segment's bytes: magic, then every payload framed (tests and quarantine files)."""
    parts = [MAGIC]
    for payload in payloads:
        parts += (record_header(payload), payload)
    return b"".join(parts)


def scan_records(data: bytes) -> tuple[list[bytes], int, str | None]:
    """Every complete, intact record after the magic.

    Returns the payloads, the offset just past the last good record, and why
    scanning stopped early (None when the data ended exactly after a record).
    """
    if not data.startswith(MAGIC):
        return [], 0, "bad magic"
    view = memoryview(data)
    end = len(data)
    offset = len(MAGIC)
    payloads: list[bytes] = []
    header_size = RECORD_HEADER.size
    while offset < end:
        if end - offset < header_size:
            return payloads, offset, f"short record header at byte {offset}"
        length, crc = RECORD_HEADER.unpack_from(view, offset)
        start = offset + header_size
        if end - start < length:
            return payloads, offset, f"short record at byte {offset}"
        payload = bytes(view[start : start + length])
        if zlib.crc32(payload) != crc:
            return payloads, offset, f"bad crc at byte {offset}"
        payloads.append(payload)
        offset = start + length
    return payloads, offset, None


def read_records(path: Path) -> Iterator[bytes]:
    """The payloads of a sealed segment; CorruptSegmentError if any byte is out of place."""
    data = path.read_bytes()
    payloads, _, problem = scan_records(data)
    if problem is not None:
        raise CorruptSegmentError(f"{path.name}: {problem}")
    yield from payloads


def fsync_dir(directory: Path) -> None:
    """Make renames, creations and deletions in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_open_segment(path: Path, *, durable: bool = True) -> Path | None:
    """Seal a segment left ``.open`` by a crash, keeping every complete record.

    A torn tail (short header, short payload, bad crc) is cut off and the file
    is fsynced, then renamed to ``.seg``. A segment with no record is deleted;
    one without our magic is moved to quarantine rather than destroyed.
    Returns the sealed path, or None when nothing was left to seal.
    """
    parsed = parse_segment_name(path.name)
    if parsed is None or parsed[1]:
        raise ValueError(f"not an open segment: {path}")
    data = path.read_bytes()
    directory = path.parent
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # crashed while writing the magic itself
            path.unlink()
            _sync(directory, durable)
            return None
        target = move_to_quarantine(path, durable=durable)
        log.error("spool segment %s has no spool magic; moved to %s", path.name, target)
        return None
    payloads, good_end, problem = scan_records(data)
    if problem is not None:
        log.warning(
            "spool segment %s: %s; keeping %d records, cutting %d bytes",
            path.name,
            problem,
            len(payloads),
            len(data) - good_end,
        )
    if not payloads:
        path.unlink()
        _sync(directory, durable)
        return None
    if good_end < len(data) or durable:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            if durable:
                os.fsync(fh.fileno())
    sealed = segment_path(directory, parsed[0], sealed=True)
    os.replace(path, sealed)
    _sync(directory, durable)
    return sealed


def move_to_quarantine(path: Path, *, durable: bool = True) -> Path:
    """Move a spool file that cannot be loaded aside, for a person to look at; never delete it."""
    target_dir = path.parent / QUARANTINE_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    os.replace(path, target)
    _sync(target_dir, durable)
    _sync(path.parent, durable)
    return target


def write_file_durably(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` atomically: readers and crashes see the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    _sync(path.parent, durable)


def _sync(directory: Path, durable: bool) -> None:
    if durable:
        fsync_dir(directory)
