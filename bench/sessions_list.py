"""Session list and replay-load timings at 100k, 1 M or 10 M sessions (issue target: every list page p50 < 300 ms).

A few thousand sessions (with events and recordings) go through the real spool
and loader; the rest are made in chDB with INSERT … SELECT FROM numbers() as
per-segment summary rows (a third of them over two spool segments), then turned
into the one-row-per-session table by the same statement the schema migration
uses (its time is reported: it is what upgrading a data directory that size
costs). Timings are in process (server time) and over HTTP.
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
from hitmetrix.store.ch_migrations import fill_sessions, number_visitors
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.tenancy import SYSTEM_QUERY
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


# Sessions made through the real spool and loader (with events; the first five with recordings).
REAL_SESSIONS = 2_000
DAY_MS = 86_400_000


def bulk_session_segments(n_sessions: int, now_ms: int) -> str:
    """Summary rows of ``n_sessions`` synthetic sessions over the last 30 days: a third span two spool
    segments, twenty minutes apart (so some cross midnight)."""
    pages = "[" + ", ".join(f"'{page}'" for page in PAGES) + "]"
    countries = "[" + ", ".join(f"'{c}'" for c in COUNTRIES) + "]"
    browsers = "[" + ", ".join(f"'{b}'" for b, _ in BROWSERS) + "]"
    devices = "[" + ", ".join(f"'{d}'" for _, d in BROWSERS) + "]"
    return f"""INSERT INTO hitmetrix.session_segments
    (project_id, session_id, segment_id, first_ts, last_ts, pageviews, clicks, errors, events,
     entry, last_user, country, browser, os, device_type, urls)
SELECT 1, concat('bulk', leftPad(toString(s), 10, '0')), 1000000 + seg,
       fromUnixTimestamp64Milli(toInt64({now_ms} - 60000 - cityHash64(s) % {30 * DAY_MS} + seg * 1200000), 'UTC')
           AS first,
       first + toIntervalMillisecond(cityHash64(s, seg, 1) % 600000),
       1 + cityHash64(s, seg, 2) % 5 AS pv, cityHash64(s, seg, 3) % 15 AS cl,
       cityHash64(s, seg, 4) % 100 < 4 AS er, pv + cl + er,
       (first, {pages}[1 + cityHash64(s, seg, 5) % {len(PAGES)}]),
       if(s % 5 = 0, (first, concat('user', toString(s))), (toDateTime64(0, 3, 'UTC'), '')),
       {countries}[1 + cityHash64(s, 6) % {len(COUNTRIES)}],
       {browsers}[1 + cityHash64(s, 7) % {len(BROWSERS)} AS b], 'Linux', {devices}[b],
       arrayMap(k -> {pages}[1 + cityHash64(s, seg, k) % {len(PAGES)}], range(pv))
FROM (SELECT number AS s, arrayJoin(range(1 + (cityHash64(number, 9) % 3 = 0))) AS seg FROM numbers({n_sessions}))"""


def build_sessions(data_dir: Path, n_sessions: int) -> tuple[ChdbStore, dict[str, float]]:
    """A data directory with ``n_sessions`` sessions in project 1; returns the open store and build times."""
    MetaStore("", data_dir).create_project("bench")
    t0 = time.monotonic()
    real = min(REAL_SESSIONS, n_sessions)
    spool = Spool(data_dir / "spool", fsync="never")
    spool.start()
    for b in synthetic_batches(real, with_recording=5):
        spool.append_blocking(encode_batch(b), 30.0)
    spool.close()
    store = ChdbStore(data_dir / "clickhouse")
    Loader(spool, store, BlobStore(data_dir / "recordings")).load_once()
    loaded_s = time.monotonic() - t0

    def run(sql: str) -> list[dict[str, Any]]:
        return store.query(SYSTEM_QUERY(sql)) if sql.lstrip().upper().startswith("SELECT") else _execute(sql)

    def _execute(sql: str) -> list[dict[str, Any]]:
        store.execute(SYSTEM_QUERY(sql))
        return []

    t1 = time.monotonic()
    if n_sessions > real:
        store.execute(SYSTEM_QUERY(bulk_session_segments(n_sessions - real, int(time.time() * 1000))))
    generated_s = time.monotonic() - t1
    t2 = time.monotonic()
    fill_sessions(run, "startsWith(session_id, 'bulk')")
    number_visitors(run)  # as the loader numbers the visitors of the sessions it writes
    filled_s = time.monotonic() - t2
    return store, {
        "real_sessions_loaded_s": round(loaded_s, 1),
        "summaries_generated_s": round(generated_s, 1),
        "sessions_table_filled_s": round(filled_s, 1),
    }


def _timed(fn: Any, repeat: int) -> dict[str, float]:
    fn()  # the first call warms caches (marks, dictionaries): report the steady state
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
        "max_ms": round(samples[-1], 1),
    }


def list_cases(now_ms: int) -> dict[str, dict[str, str]]:
    """The list pages measured: the target is p50 < 300 ms for every one of them."""
    week_ago = time.strftime("%Y-%m-%d", time.gmtime((now_ms - 7 * DAY_MS) / 1000))
    two_weeks_ago = time.strftime("%Y-%m-%d", time.gmtime((now_ms - 14 * DAY_MS) / 1000))
    return {
        "first page": {},
        "country+device": {"country": "FR", "device": "mobile"},
        "has errors": {"has_errors": "1"},
        "URL contains": {"url": "checkout"},
        "min duration 9 min": {"min_duration": "540"},
        "date range (a week, 2 weeks ago)": {"from": two_weeks_ago, "to": week_ago},
        "user": {"user": "user1000"},
    }


def bench_sessions(work: Path, n_sessions: int = 100_000, repeat: int = 20) -> dict[str, Any]:
    data_dir = work / f"sessions-{n_sessions}"
    t0 = time.monotonic()
    store, build = build_sessions(data_dir, n_sessions)
    counts = store.query(SYSTEM_QUERY("SELECT count() AS n FROM hitmetrix.sessions WHERE is_deleted = 0"))[0]
    build["build_s"] = round(time.monotonic() - t0, 1)
    now_ms = int(time.time() * 1000)
    cases = {name: sessions.SessionFilters.from_query(query) for name, query in list_cases(now_ms).items()}
    none = cases["first page"]
    _, cursor = sessions.list_sessions(store, 1, none)
    # A page deep in the list: the cursor of the 20th page.
    deep = cursor
    for _ in range(19):
        _, deep = sessions.list_sessions(store, 1, none, deep)
    in_process: dict[str, Any] = {
        f"list {name}": _timed(lambda f=filters: sessions.list_sessions(store, 1, f), repeat)  # type: ignore[misc]
        for name, filters in cases.items()
    }
    in_process["list next page (cursor)"] = _timed(lambda: sessions.list_sessions(store, 1, none, cursor), repeat)
    in_process["list 21st page (cursor)"] = _timed(lambda: sessions.list_sessions(store, 1, none, deep), repeat)
    in_process["filter options"] = _timed(lambda: sessions.filter_options(store, 1), repeat)
    in_process["session detail"] = _timed(
        lambda: (
            sessions.session_summary(store, 1, "bench0000000001"),
            sessions.session_events(store, 1, "bench0000000001"),
            sessions.recording_chunks(store, 1, "bench0000000001"),
        ),
        repeat,
    )
    store.close()

    server = ServerProcess(data_dir, demo=False).start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        base = f"{server.url}/api/v1/projects/1/sessions"
        with httpx.Client(headers=headers, timeout=60) as client:

            def get(path: str, params: dict[str, str] | None = None) -> None:
                client.get(path, params=params).raise_for_status()

            over_http: dict[str, Any] = {
                f"GET sessions ({name})": _timed(lambda q=query: get(base, q), repeat)  # type: ignore[misc]
                for name, query in list_cases(now_ms).items()
            }
            over_http["GET sessions (next page)"] = _timed(lambda: get(base, {"cursor": cursor or ""}), repeat)
            over_http["GET session detail"] = _timed(lambda: get(base + "/bench0000000001"), repeat)
            over_http["GET first recording chunk"] = _timed(lambda: get(base + "/bench0000000001/recording/0"), repeat)
            over_http["GET whole recording (2,002 events)"] = _timed(
                lambda: get(base + "/bench0000000001/recording"), repeat
            )
    finally:
        server.stop()
    return {
        "sessions": int(counts["n"]),
        **build,
        "server_time_in_process": in_process,
        "over_http_loopback": over_http,
    }
