"""Session list and replay-load timings over 100k synthetic sessions (issue target: list < 300 ms server time).

Builds the data through the real spool and loader, then measures the query
functions in process (server time) and the same API routes over HTTP.
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from hitmetrix.analytics import sessions
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredChunk, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess

COUNTRIES = ["DE", "FR", "US", "GB", "NL", "PL", "BR", "IN", "JP", "ES"]
BROWSERS = [
    ("Chrome", "desktop"),
    ("Safari", "mobile"),
    ("Firefox", "desktop"),
    ("Edge", "desktop"),
    ("Chrome Mobile", "mobile"),
    ("Safari", "tablet"),
]
PAGES = [
    f"https://shop.example/{p}"
    for p in ("", "products", "cart", "checkout", "about", "blog/post-1", "blog/post-2", "account", "search?q=mug")
]


def synthetic_batches(n_sessions: int, with_recording: int, seed: int = 7) -> list[StoredBatch]:
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    out = []
    for i in range(n_sessions):
        sid = f"bench{i:010d}"
        start = now - rng.randint(0, 30 * 86_400_000)
        browser, device = rng.choice(BROWSERS)
        events, ts = [], start
        for k in range(rng.randint(4, 20)):
            ts += rng.randint(200, 20_000)
            kind = "pageview" if k % 4 == 0 else ("error" if rng.random() < 0.03 else "click")
            events.append(
                StoredEvent(
                    event_id=f"{i:08x}-0000-7000-8000-{k:012d}",
                    type=kind,
                    ts=ts,
                    client_ts=ts,
                    url=rng.choice(PAGES),
                    selector="main > button.buy",
                    tag="button",
                    text="Add to cart",
                    x=rng.randint(0, 1200),
                    y=rng.randint(0, 800),
                )
            )
        recording = []
        if i < with_recording:
            rr = [
                {"type": 4, "timestamp": start, "data": {"href": PAGES[0], "width": 1280, "height": 800}},
                {"type": 2, "timestamp": start + 1, "data": {"node": {"type": 0, "childNodes": [], "id": 1}}},
            ]
            rr += [
                {"type": 3, "timestamp": start + 10 * j, "data": {"source": 1, "positions": [{"x": j, "y": j}]}}
                for j in range(2000)
            ]
            for seq in range(10):
                part = rr[seq * 200 : (seq + 1) * 200] if seq else rr[:200]
                recording.append(
                    StoredChunk(
                        seq=seq,
                        first_ts=part[0]["timestamp"],
                        last_ts=part[-1]["timestamp"],
                        count=len(part),
                        data=gzip.compress(json.dumps(part).encode()),
                    )
                )
        out.append(
            StoredBatch(
                batch_id=f"b{i}",
                project_id=1,
                received_at=ts,
                session_id=sid,
                anonymous_id="a" + sid,
                user_id=f"user{i}" if i % 5 == 0 else "",
                country=rng.choice(COUNTRIES),
                browser=browser,
                os="Linux",
                device_type=device,
                events=events,
                recording=recording,
            )
        )
    return out


def _timed(fn: Any, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 1),
        "max_ms": round(samples[-1], 1),
    }


def bench_sessions(work: Path, n_sessions: int = 100_000, repeat: int = 20) -> dict[str, Any]:
    data_dir = work / "sessions-data"
    MetaStore("", data_dir).create_project("bench")
    t0 = time.monotonic()
    batches = synthetic_batches(n_sessions, with_recording=5)
    spool = Spool(data_dir / "spool", fsync="never")
    spool.start()
    for b in batches:
        spool.append_blocking(encode_batch(b), 30.0)
    spool.close()
    store = ChdbStore(data_dir / "clickhouse")
    Loader(spool, store, BlobStore(data_dir / "recordings")).load_once()
    events = store.query("SELECT count() AS n FROM hitmetrix.events")[0]["n"]
    build_s = time.monotonic() - t0

    none = sessions.SessionFilters()
    f_country = sessions.SessionFilters.from_query({"country": "FR", "device": "mobile"})
    f_errors = sessions.SessionFilters.from_query({"has_errors": "1"})
    f_url = sessions.SessionFilters.from_query({"url": "checkout"})
    _, cursor = sessions.list_sessions(store, 1, none)
    in_process = {
        "list_first_page": _timed(lambda: sessions.list_sessions(store, 1, none), repeat),
        "list_next_page": _timed(lambda: sessions.list_sessions(store, 1, none, cursor), repeat),
        "list_country_device": _timed(lambda: sessions.list_sessions(store, 1, f_country), repeat),
        "list_has_errors": _timed(lambda: sessions.list_sessions(store, 1, f_errors), repeat),
        "list_url_contains": _timed(lambda: sessions.list_sessions(store, 1, f_url), repeat),
        "session_detail": _timed(
            lambda: (
                sessions.session_summary(store, 1, "bench0000000001"),
                sessions.session_events(store, 1, "bench0000000001"),
                sessions.recording_chunks(store, 1, "bench0000000001"),
            ),
            repeat,
        ),
    }
    store.close()

    server = ServerProcess(data_dir, demo=False).start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        base = f"{server.url}/api/v1/projects/1/sessions"
        with httpx.Client(headers=headers, timeout=30) as client:

            def get(path: str) -> None:
                client.get(path).raise_for_status()

            over_http = {
                "GET sessions (first page)": _timed(lambda: get(base), repeat),
                "GET sessions?country=FR&device=mobile": _timed(
                    lambda: get(base + "?country=FR&device=mobile"), repeat
                ),
                "GET session detail": _timed(lambda: get(base + "/bench0000000001"), repeat),
                "GET first recording chunk": _timed(lambda: get(base + "/bench0000000001/recording/0"), repeat),
                "GET whole recording (2,002 events)": _timed(lambda: get(base + "/bench0000000001/recording"), repeat),
            }
    finally:
        server.stop()
    return {
        "sessions": n_sessions,
        "events": events,
        "build_s": round(build_s, 1),
        "server_time_in_process": in_process,
        "over_http_loopback": over_http,
    }
