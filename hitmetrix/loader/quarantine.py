"""The loader's quarantine: what it could not store, item by item, with the reason and the bytes to retry it.

An item is the smallest unit that failed: one recording chunk, one batch, or a
spool segment whose framing is damaged. Each is one file under ``items/`` holding
the exception that stopped it, its context (project, session, batch, segment)
and its original bytes. Ids are content hashes, so quarantining the same thing
again (after a crash, a retry or a client's resend) keeps one item.

Requeueing appends an item back to the spool as a batch record; a requeued
item moves to ``requeued/``. A process that cannot append to the spool itself
(the CLI while a server runs) leaves a request in ``requeue/`` for the loader.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from hitmetrix.loader.counters import LoaderCounters
from hitmetrix.model import StoredBatch, StoredChunk, encode_batch
from hitmetrix.spool.segment import fsync_dir, write_file_durably

Kind = Literal["batch", "chunk", "segment"]
KINDS: tuple[Kind, ...] = ("batch", "chunk", "segment")
ITEM_SUFFIX = ".item"
MAX_MESSAGE_CHARS = 2000
_ID = re.compile(r"^[bcs][0-9a-f]{20}$")
_KIND_OF_PREFIX: dict[str, Kind] = {kind[0]: kind for kind in KINDS}
_COUNTER = {"batch": "batches_quarantined", "chunk": "chunks_quarantined", "segment": "segments_quarantined"}


class QuarantineError(Exception):
    """An unknown item id, or an item that cannot be requeued."""


class QuarantinedItem(msgspec.Struct, kw_only=True):
    id: str
    kind: Kind
    stage: str  # the step that failed: decode, rows, store, inbox, chunk, segment
    error: str  # exception class
    message: str
    quarantined_at_ms: int
    segment_id: int
    project_id: int = 0
    session_id: str = ""
    batch_id: str = ""
    # A chunk's own fields, to rebuild its spool record on requeue.
    seq: int = 0
    first_ts: int = 0
    last_ts: int = 0
    count: int = 0
    received_at: int = 0
    payload: bytes = b""  # the batch's spool record, the chunk's gzip, or the damaged segment file

    @property
    def reason(self) -> str:
        return f"{self.error}: {self.message}"

    @property
    def requeueable(self) -> bool:
        return self.kind != "segment"

    def summary(self) -> dict[str, Any]:
        """Everything but the payload, as JSON-ready values."""
        fields = msgspec.structs.asdict(self)
        fields.pop("payload")
        if self.kind != "chunk":
            for name in ("seq", "first_ts", "last_ts", "count", "received_at"):
                fields.pop(name)
        return {**fields, "reason": self.reason, "payload_bytes": len(self.payload)}

    def requeue_record(self) -> bytes:
        """The spool record that gives this item another try.

        A chunk travels in a batch of its own whose id comes from the item id, so
        requeueing it twice is stored once, like any resent batch.
        """
        if self.kind == "batch":
            return self.payload
        if self.kind == "chunk":
            chunk = StoredChunk(
                seq=self.seq, first_ts=self.first_ts, last_ts=self.last_ts, count=self.count, data=self.payload
            )
            batch = StoredBatch(
                batch_id=f"requeue-{self.id}",
                project_id=self.project_id,
                received_at=self.received_at,
                session_id=self.session_id,
                anonymous_id="",
                recording=[chunk],
            )
            return encode_batch(batch)
        raise QuarantineError(
            f"item {self.id} is a damaged spool segment: its intact records were loaded; inspect it with `show`"
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(QuarantinedItem)


def item_id(kind: Kind, *parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=10)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return kind[0] + digest.hexdigest()


def check_item_id(value: str) -> str:
    if not _ID.match(value):
        raise QuarantineError(f"not a quarantine item id: {value!r}")
    return value


class Quarantine:
    """Items under ``root``; safe to use from several threads and, for reading, from other processes."""

    def __init__(
        self,
        root: Path,
        *,
        durable: bool = True,
        wall_clock: Callable[[], float] = time.time,
        counters: LoaderCounters | None = None,
    ) -> None:
        self.root = root
        self.items_dir = root / "items"
        self.requeued_dir = root / "requeued"
        self.requests_dir = root / "requeue"
        self._durable = durable
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._counters = counters

    # -- putting items in ------------------------------------------------------------------

    def put_batch(self, payload: bytes, stage: str, exc: BaseException, segment_id: int, **context: Any) -> str:
        return self._put(item_id("batch", payload), "batch", stage, exc, segment_id, payload, context)

    def put_chunk(
        self, chunk: StoredChunk, stage: str, exc: BaseException, segment_id: int, **context: Any
    ) -> str:
        key = f"{context.get('project_id', 0)}/{context.get('session_id', '')}/{chunk.seq}".encode()
        fields = {"seq": chunk.seq, "first_ts": chunk.first_ts, "last_ts": chunk.last_ts, "count": chunk.count}
        return self._put(
            item_id("chunk", key, chunk.data), "chunk", stage, exc, segment_id, chunk.data, {**fields, **context}
        )

    def put_segment(self, data: bytes, exc: BaseException, segment_id: int) -> str:
        return self._put(item_id("segment", data), "segment", "segment", exc, segment_id, data, {})

    def _put(
        self,
        new_id: str,
        kind: Kind,
        stage: str,
        exc: BaseException,
        segment_id: int,
        payload: bytes,
        context: dict[str, Any],
    ) -> str:
        item = QuarantinedItem(
            id=new_id,
            kind=kind,
            stage=stage,
            error=type(exc).__name__,
            message=str(exc)[:MAX_MESSAGE_CHARS],
            quarantined_at_ms=int(self._wall_clock() * 1000),
            segment_id=segment_id,
            payload=payload,
            **context,
        )
        with self._lock:
            self.items_dir.mkdir(parents=True, exist_ok=True)
            write_file_durably(self._path(self.items_dir, new_id), _encoder.encode(item), durable=self._durable)
            # Failing again after a requeue makes it an open item again, not a second one.
            self._path(self.requeued_dir, new_id).unlink(missing_ok=True)
        if self._counters is not None:
            self._counters.add(_COUNTER[kind])
        return new_id

    # -- reading -------------------------------------------------------------------------

    def items(self, *, requeued: bool = False) -> list[QuarantinedItem]:
        """Open items (or requeued ones), oldest first."""
        directory = self.requeued_dir if requeued else self.items_dir
        found = [self._read(path) for path in self._files(directory)]
        return sorted((item for item in found if item is not None), key=lambda item: item.quarantined_at_ms)

    def open_item(self, item_id_: str) -> QuarantinedItem | None:
        """An item still in quarantine (not requeued), or None."""
        return self._read(self._path(self.items_dir, check_item_id(item_id_)))

    def get(self, item_id_: str) -> QuarantinedItem | None:
        """An open item, else a requeued one, else None."""
        check_item_id(item_id_)
        for directory in (self.items_dir, self.requeued_dir):
            item = self._read(self._path(directory, item_id_))
            if item is not None:
                return item
        return None

    def counts(self) -> dict[str, int]:
        """Open items by kind, read from disk (the CLI may have requeued some)."""
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        for path in self._files(self.items_dir):
            counts[_KIND_OF_PREFIX[path.name[:1]]] += 1
        return counts

    # -- requeueing ----------------------------------------------------------------------

    def request_requeue(self, item_ids: list[str]) -> None:
        """Leave requests for the loader of a running server (see ``requeue_requested``)."""
        self.requests_dir.mkdir(parents=True, exist_ok=True)
        for value in item_ids:
            (self.requests_dir / check_item_id(value)).touch()
        if self._durable:
            fsync_dir(self.requests_dir)

    def requests(self) -> list[str]:
        try:
            names = os.listdir(self.requests_dir)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if _ID.match(name))

    def requeue(self, item: QuarantinedItem, append: Callable[[bytes], None]) -> None:
        """Append the item's record to the spool, then file it under ``requeued/``.

        A crash in between appends it twice on the next try: the copies share a
        batch id, so the loader stores one.
        """
        append(item.requeue_record())
        with self._lock:
            self.requeued_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._path(self.items_dir, item.id), self._path(self.requeued_dir, item.id))
            (self.requests_dir / item.id).unlink(missing_ok=True)
            if self._durable:
                for directory in (self.items_dir, self.requeued_dir):
                    if directory.is_dir():
                        fsync_dir(directory)
        if self._counters is not None:
            self._counters.add("items_requeued")

    def requeue_requested(self, append: Callable[[bytes], None]) -> int:
        """Carry out every request left in ``requeue/``; returns how many items went back to the spool."""
        done = 0
        for value in self.requests():
            item = self._read(self._path(self.items_dir, value))
            if item is None or not item.requeueable:  # already requeued, or nothing to requeue
                (self.requests_dir / value).unlink(missing_ok=True)
                continue
            self.requeue(item, append)
            done += 1
        return done

    # -- files ---------------------------------------------------------------------------

    @staticmethod
    def _path(directory: Path, value: str) -> Path:
        return directory / f"{value}{ITEM_SUFFIX}"

    @staticmethod
    def _files(directory: Path) -> list[Path]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        names = (e.name for e in entries if e.name.endswith(ITEM_SUFFIX))
        return [directory / name for name in names if _ID.match(name[: -len(ITEM_SUFFIX)])]

    @staticmethod
    def _read(path: Path) -> QuarantinedItem | None:
        try:
            return _decoder.decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):  # not ours, or damaged: never crash a listing
            return None
