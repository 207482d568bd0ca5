"""The one spool segment being appended to: its file, size, age and fsync state.

Only the spool's writer thread touches it. A failed write is cut back so the
file always ends on a whole record.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hitmetrix.spool.segment import MAGIC, fsync_dir, segment_path


class SegmentFile(Protocol):
    """What the writer needs of a file; tests pass one that fails on demand."""

    def write(self, data: bytes | memoryview, /) -> int | None: ...

    def truncate(self, size: int, /) -> int: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


def open_segment_file(path: Path) -> SegmentFile:
    """A new segment file: created exclusively, unbuffered, every write appended at the end."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
    return os.fdopen(fd, "ab", buffering=0)


class TornWriteError(OSError):
    """A failed write could not be cut back: the file may end mid-record."""


class ActiveSegment:
    def __init__(self, file: SegmentFile, directory: Path, segment_id: int, opened_at: float, durable: bool) -> None:
        self.file = file
        self.directory = directory
        self.segment_id = segment_id
        self.opened_at = opened_at
        self.last_fsync_at = opened_at
        self.durable = durable
        self.size = len(MAGIC)
        self.records = 0
        self.dirty = False  # written since the last fsync

    @classmethod
    def create(
        cls,
        directory: Path,
        segment_id: int,
        open_file: Callable[[Path], SegmentFile],
        now: float,
        durable: bool,
    ) -> ActiveSegment:
        path = segment_path(directory, segment_id, sealed=False)
        file = open_file(path)
        try:
            write_all(file, MAGIC)
            if durable:  # the new name must be as durable as the records later fsynced into it
                fsync_dir(directory)
        except OSError:
            file.close()
            path.unlink(missing_ok=True)
            raise
        return cls(file, directory, segment_id, now, durable)

    def write(self, data: bytes, records: int) -> None:
        """Append whole records; on OSError the file is cut back to where it was, then the error re-raised."""
        good_size = self.size
        try:
            write_all(self.file, data)
        except OSError as exc:
            self._truncate(good_size, exc)
            raise
        self.size += len(data)
        self.records += records
        self.dirty = True

    def fsync(self, now: float) -> None:
        self.last_fsync_at = now
        self.dirty = False
        os.fsync(self.file.fileno())

    def truncate_unsynced(self, size: int, cause: OSError) -> None:
        """Drop records written but never made durable (after a failed fsync)."""
        self._truncate(size, cause)
        self.size = size

    def seal(self) -> bool:
        """fsync, rename ``.open`` to ``.seg``, fsync the directory; an empty segment is deleted instead.

        Returns whether a sealed segment now exists.
        """
        open_path = segment_path(self.directory, self.segment_id, sealed=False)
        if self.records == 0:
            self.file.close()
            open_path.unlink()
            return False
        if self.durable:
            os.fsync(self.file.fileno())
        self.file.close()
        os.replace(open_path, segment_path(self.directory, self.segment_id, sealed=True))
        if self.durable:
            fsync_dir(self.directory)
        return True

    def abandon(self) -> None:
        """Close without sealing: the next ``Spool.start()`` recovers the intact records."""
        try:
            self.file.close()
        except OSError:
            return

    def _truncate(self, size: int, cause: OSError) -> None:
        try:
            self.file.truncate(size)
        except OSError as exc:
            raise TornWriteError(errno.EIO, f"cannot cut back a failed write ({cause}): {exc}") from exc


def write_all(file: SegmentFile, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.EIO, "short write")
        view = view[written:]
