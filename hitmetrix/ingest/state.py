"""Where ingest-log stopped in a file, kept durably so a restart neither loses nor repeats a line.

The file is known by its fingerprint (a hash of its first line), not by its name or inode, so a
log rotated by renaming keeps its identity and its event ids. ``offset`` is the end of the last
line the server acknowledged. Before a batch is sent its line range is written as ``pending``:
after a crash the same range is sent again as the same batch (same batch id, same event ids), and
capture's seen-batch ledger stores it once. Writes are atomic (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Pending:
    fingerprint: str
    start: int
    end: int


@dataclass
class IngestState:
    fingerprint: str = ""
    offset: int = 0
    pending: Pending | None = None


def load_state(path: Path) -> IngestState:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return IngestState()
    except ValueError as exc:
        message = f"{path}: not an ingest-log state file ({exc}); remove it to start from the beginning"
        raise ValueError(message) from None
    pending = raw.get("pending")
    return IngestState(
        fingerprint=str(raw.get("fingerprint", "")),
        offset=int(raw.get("offset", 0)),
        pending=Pending(**pending) if pending else None,
    )


def save_state(path: Path, state: IngestState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(asdict(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
