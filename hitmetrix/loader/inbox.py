"""The recordings inbox: chunks moved out of the spool, still gzip as received, waiting for the chunk worker.

Moving a chunk here is cheap (no inflating), so a flood of heavy recordings
cannot hold back anybody's events: the segment that carried them leaves the
spool as soon as its chunks are here. One file per chunk,
``{project_id}/{session_id}.{seq:010d}.chunk``, written atomically and fsynced
with its directory before the segment is recorded as loaded; the name is the
chunk's identity, so writing it again (a retried segment, a resent batch) is
harmless. A file leaves the inbox only once its chunk is stored or quarantined.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import msgspec

from hitmetrix.spool.segment import fsync_dir

SUFFIX = ".chunk"
_SAFE_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME = re.compile(r"^([A-Za-z0-9_-]{1,64})\.(\d{10})\.chunk$")
_MAX_UINT32 = 2**32 - 1


class InboxChunk(msgspec.Struct, kw_only=True, array_like=True):
    project_id: int
    session_id: str
    seq: int
    first_ts: int
    last_ts: int
    count: int
    received_at: int
    segment_id: int
    batch_id: str
    data: bytes  # gzip, as the client sent it


class InboxEntry(NamedTuple):
    project_id: int
    name: str


# Inode and modification time: a rewrite gets a new inode, and a reused inode a later time.
FileVersion = tuple[int, int]


def _version(stat: os.stat_result) -> FileVersion:
    return stat.st_ino, stat.st_mtime_ns


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(InboxChunk)


def decode_chunk(data: bytes) -> InboxChunk:
    return _decoder.decode(data)


def entry_for(project_id: int, session_id: str, seq: int) -> InboxEntry:
    """The chunk's inbox name; ValueError for an identity that cannot name a file or a recordings row."""
    if not 0 <= project_id <= _MAX_UINT32:
        raise ValueError(f"project id {project_id} out of range")
    if not _SAFE_SESSION.match(session_id):
        raise ValueError(f"unsafe session id {session_id!r}")
    if not 0 <= seq <= _MAX_UINT32:
        raise ValueError(f"chunk seq {seq} out of range")
    return InboxEntry(project_id, f"{session_id}.{seq:010d}{SUFFIX}")


class ChunkInbox:
    """Files under ``root`` plus an in-memory queue per project; one process at a time."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self._durable = durable
        self._lock = threading.Lock()
        self._queues: dict[int, deque[str]] = {}
        self._queued: dict[InboxEntry, int] = {}  # entry -> bytes as stored
        self._waiting: dict[int, int] = {}  # project -> bytes queued
        root.mkdir(parents=True, exist_ok=True)
        for project_dir in sorted(root.iterdir()):
            if not project_dir.name.isdigit() or not project_dir.is_dir():
                continue
            for name in sorted(os.listdir(project_dir)):
                path = project_dir / name
                if name.endswith(".tmp"):  # a crash mid-write; the segment still holds the chunk
                    path.unlink(missing_ok=True)
                elif _NAME.match(name):
                    self._enqueue(InboxEntry(int(project_dir.name), name), path.stat().st_size)

    def path(self, entry: InboxEntry) -> Path:
        return self.root / str(entry.project_id) / entry.name

    def put_many(self, chunks: Iterable[InboxChunk]) -> int:
        """Write every chunk durably, then queue it; returns how many files. OSError: some written, none lost."""
        by_entry = {entry_for(chunk.project_id, chunk.session_id, chunk.seq): chunk for chunk in chunks}
        written: list[tuple[InboxEntry, Path, Path, int]] = []
        for entry, chunk in by_entry.items():  # a chunk resent within the segment: the last copy, once
            path = self.path(entry)
            if not path.parent.is_dir():
                path.parent.mkdir(exist_ok=True)
                if self._durable:
                    fsync_dir(self.root)
            tmp = path.with_name(path.name + ".tmp")
            data = _encoder.encode(chunk)
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self._durable:
                    os.fsync(fh.fileno())
            written.append((entry, tmp, path, len(data)))
        with self._lock:
            for entry, tmp, path, size in written:
                os.replace(tmp, path)  # under the lock: ``remove`` compares inodes against it
                self._enqueue(entry, size)
        if self._durable:
            for directory in {path.parent for _, _, path, _ in written}:
                fsync_dir(directory)
        return len(written)

    def waiting_bytes(self) -> dict[int, int]:
        """Bytes (as stored) waiting per project, for every project with chunks waiting."""
        with self._lock:
            return {project: size for project, size in self._waiting.items() if self._queues.get(project)}

    def take(self, project_id: int) -> InboxEntry | None:
        with self._lock:
            queue = self._queues.get(project_id)
            if not queue:
                return None
            entry = InboxEntry(project_id, queue.popleft())
            self._waiting[project_id] -= self._queued.pop(entry, 0)
            return entry

    def put_back(self, entries: list[InboxEntry]) -> None:
        """Queue entries again at the front (a round that failed on the store)."""
        with self._lock:
            for entry in reversed(entries):
                if entry in self._queued:
                    continue
                try:
                    size = os.stat(self.path(entry)).st_size
                except FileNotFoundError:
                    continue
                self._queues.setdefault(entry.project_id, deque()).appendleft(entry.name)
                self._queued[entry] = size
                self._waiting[entry.project_id] = self._waiting.get(entry.project_id, 0) + size

    def read(self, entry: InboxEntry) -> tuple[bytes, FileVersion] | None:
        """The entry's file and which version of it that was; None when it is already gone."""
        try:
            with open(self.path(entry), "rb") as fh:
                return fh.read(), _version(os.fstat(fh.fileno()))
        except FileNotFoundError:
            return None

    def remove(self, entry: InboxEntry, version: FileVersion) -> None:
        """Delete the file read as ``version``, unless it was rewritten since (then it is queued again)."""
        path = self.path(entry)
        with self._lock:
            try:
                if _version(os.stat(path)) == version:
                    path.unlink()
            except FileNotFoundError:
                pass

    def backlog(self) -> tuple[int, int]:
        """Chunks waiting, and their bytes as stored."""
        with self._lock:
            return len(self._queued), sum(self._queued.values())

    def _enqueue(self, entry: InboxEntry, size: int) -> None:
        if entry not in self._queued:
            self._queues.setdefault(entry.project_id, deque()).append(entry.name)
        self._waiting[entry.project_id] = self._waiting.get(entry.project_id, 0) + size - self._queued.get(entry, 0)
        self._queued[entry] = size
