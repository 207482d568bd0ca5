"""Recording chunks as zstd files under the data directory (S3 later, same interface)."""

from __future__ import annotations

import os
import re
from pathlib import Path

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def chunk_key(project_id: int, session_id: str, seq: int) -> str:
        if not _SAFE.match(session_id):
            raise ValueError(f"unsafe session id {session_id!r}")
        return f"{project_id}/{session_id[:2]}/{session_id}/{seq:08d}.json.zst"

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a reader sees the old file or the whole new one."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def sync_dirs(self, keys: list[str]) -> None:
        """fsync the directories of freshly written keys so renames survive a crash."""
        for directory in {(self.root / key).parent for key in keys}:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
