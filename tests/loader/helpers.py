"""Batches and a test world for the loader tests: a spool, a store and a blob directory, as the server wires them."""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredChunk, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY

NOW_MS = int(time.time() * 1000)
RRWEB = [
    {"type": 4, "timestamp": NOW_MS, "data": {"href": "https://shop.example/"}},
    {"type": 2, "timestamp": NOW_MS + 1},
]


class World:
    """A spool, a store and a blob directory under one tmp_path, as the server wires them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = ChdbStore(root / "store")
        self.blobs = BlobStore(root / "recordings")
        self.spool = Spool(root / "spool", fsync="never", segment_max_age_s=3600)
        self.spool.start()
        self.handed_over: list[list[StoredBatch]] = []

    def loader(self, **kwargs: Any) -> Loader:
        kwargs.setdefault("on_loaded", self.handed_over.append)
        return Loader(self.spool, self.store, self.blobs, **kwargs)

    def segment(self, *batches: StoredBatch) -> int:
        """Append the batches and seal them into one segment; returns its id."""
        before = set(self.spool.sealed_segments())
        for batch in batches:
            self.spool.append_blocking(encode_batch(batch), 10.0)
        self.spool.close()  # seals
        self.spool = Spool(self.root / "spool", fsync="never", segment_max_age_s=3600)
        self.spool.start()
        (new,) = set(self.spool.sealed_segments()) - before
        return new

    def one(self, sql: str, **params: Any) -> Any:
        """The first value of a test's own query (across projects: marked as a system query)."""
        rows = self.store.query(SYSTEM_QUERY(sql), params)
        return next(iter(rows[0].values())) if rows else None

    def events(self, segment_id: int) -> int:
        return int(self.one("SELECT count() FROM hitmetrix.events WHERE segment_id = {s:UInt64}", s=segment_id))

    def close(self) -> None:
        self.spool.close()
        self.store.close()


def make_batch(n_events: int = 3, chunks: int = 0, session_id: str = "", **fields: Any) -> StoredBatch:
    sid = session_id or uuid.uuid4().hex[:20]
    events = [
        StoredEvent(
            event_id=str(uuid.uuid4()),
            type="click",
            ts=NOW_MS - 1000 + i,
            client_ts=NOW_MS - 900 + i,
            url=f"https://shop.example/p/{i}?q=1#top",
            title="Shop",
            selector="button.buy",
            tag="button",
            text="Buy",
            x=10 + i,
            y=20 + i,
            vw=1280,
            vh=800,
            props='{"plan":"pro"}',
        )
        for i in range(n_events)
    ]
    recording = [
        StoredChunk(seq=i, first_ts=NOW_MS, last_ts=NOW_MS + 1, count=2, data=gzip.compress(json.dumps(RRWEB).encode()))
        for i in range(chunks)
    ]
    base: dict[str, Any] = {
        "batch_id": uuid.uuid4().hex,
        "project_id": 7,
        "received_at": NOW_MS,
        "session_id": sid,
        "anonymous_id": "anon-" + sid,
        "user_id": "alice",
        "ip": "203.0.113.0",
        "country": "DE",
        "asn": 3320,
        "as_org": "Deutsche Telekom",
        "browser": "Chrome",
        "browser_version": "131",
        "os": "Windows",
        "os_version": "10",
        "device_type": "desktop",
        "user_agent": "Mozilla/5.0",
    }
    return StoredBatch(**{**base, **fields}, events=events, recording=recording)


_WORDS = ("the", "basket", "delivery", "size", "price", "in stock", "add", "to", "cart", "your", "order", "free")
_WORDS += ("returns", "new", "colour", "black", "white", "shoes", "jacket", "sale", "only", "today", "19.99")


def rrweb_like(rng: random.Random, raw_bytes: int) -> bytes:
    """JSON of rrweb-like events (mouse moves, DOM mutations with text, scrolls), about ``raw_bytes`` long:
    varied enough to compress 6-10 times, as real recordings do."""
    parts: list[str] = []
    size = 1
    ts = NOW_MS
    node = 1000
    while size < raw_bytes:
        kind = rng.random()
        if kind < 0.5:
            x, y, target = rng.randrange(1400), rng.randrange(900), rng.randrange(1, 400)
            data = f'{{"source":1,"positions":[{{"x":{x},"y":{y},"id":{target},"timeOffset":-{rng.randrange(500)}}}]}}'
        elif kind < 0.8:
            node += 1
            text = " ".join(rng.choices(_WORDS, k=rng.randint(2, 12)))
            parent = rng.randrange(1, 400)
            added = f'{{"parentId":{parent},"nextId":null,"node":{{"type":3,"textContent":"{text}","id":{node}}}}}'
            data = f'{{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[{added}]}}'
        else:
            data = f'{{"source":3,"id":1,"x":0,"y":{rng.randrange(5000)}}}'
        ts += rng.randint(5, 60)
        part = f'{{"type":3,"timestamp":{ts},"data":{data}}}'
        parts.append(part)
        size += len(part) + 1
    return ("[" + ",".join(parts) + "]").encode()
