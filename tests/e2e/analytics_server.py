"""A real server for the analytics pages' browser tests: visits posted through the capture API, each from its own
client address, and the server polled until one of its answers shows them all; or the generator's ground truth,
every session with a recording, loaded into the data directory before the server starts."""

from __future__ import annotations

import gzip
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from hitmetrix.model import StoredChunk
from tests.analytics import groundtruth as gt
from tests.e2e.dashboard import Member, heading_document
from tests.support import REPO, ServerProcess, wait_for

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


@dataclass
class Loaded:
    server: ServerProcess
    member: Member


def pageviews(paths: list[str], start_ms: int) -> list[dict[str, Any]]:
    """One pageview of the shop per path, two seconds apart from ``start_ms``."""
    return [{"type": "pageview", "ts": start_ms + i * 2000, "url": f"https://shop.example{p}"}
            for i, p in enumerate(paths)]


def post_visit(server: ServerProcess, member: Member, session_prefix: str, address: str, user_agent: str,
               events: list[dict[str, Any]]) -> None:
    """One visitor's session (a session id starting with ``session_prefix``) in one batch, from ``address``."""
    sid = session_prefix + secrets.token_hex(8)
    body = {"session_id": sid, "anonymous_id": "a" + sid, "sent_at": int(time.time() * 1000), "events": events}
    answer = httpx.post(
        server.url + "/api/v1/batch",
        params={"key": member.project_key},
        content=json.dumps(body),
        headers={"User-Agent": user_agent, "Content-Type": "application/json", "X-Forwarded-For": address},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


@contextmanager
def serving_visits(data_dir: Path, member: Member, post_visits: Callable[[ServerProcess], None], shown_at: str,
                   shows_all: Callable[[dict[str, Any]], bool], what: str) -> Iterator[Loaded]:
    """The server on ``data_dir`` (``member`` made before it starts), ``post_visits`` run against it, then polled
    until the project's API answer at ``shown_at`` (a path under the project) ``shows_all``; stopped after."""
    # The visits come from 127.0.0.1 with the visitor's address in X-Forwarded-For, so each gets its country.
    server = ServerProcess(data_dir, demo=True, env={"HITMETRIX_TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        post_visits(server)

        def all_stored() -> bool:
            r = server.api(f"/api/v1/projects/{member.project_id}/{shown_at}")
            return r.status_code == 200 and shows_all(r.json())

        wait_for(all_stored, 30, 0.2, what=what)
        yield Loaded(server, member)
    finally:
        server.stop()


# (client address, its country in the bundled database, user agent, pages viewed): one visitor each.
PageVisit = tuple[str, str, str, list[str]]
# Three Germans on Firefox and two Americans on Chrome: the visitors every overview-based page test starts from.
SHOP_VISITS: list[PageVisit] = [
    ("78.46.0.1", "DE", FIREFOX, ["/", "/pricing"]),
    ("5.9.0.1", "DE", FIREFOX, ["/docs"]),
    ("78.46.0.2", "DE", FIREFOX, ["/", "/docs", "/pricing"]),
    ("8.8.8.8", "US", CHROME, ["/"]),
    ("8.8.4.4", "US", CHROME, ["/pricing", "/signup"]),
]


@contextmanager
def serving_page_visits(data_dir: Path, member_of: Callable[[Path], Member], visits: list[PageVisit],
                        session_prefix: str, ago_ms: int) -> Iterator[Loaded]:
    """``serving_visits`` for the member ``member_of(data_dir)`` makes, of visitors who only view pages, the first
    ``ago_ms`` before they are sent; ready when the overview counts a session for each."""
    member = member_of(data_dir)

    def post_visits(server: ServerProcess) -> None:
        for address, _, user_agent, paths in visits:
            events = pageviews(paths, int(time.time() * 1000) - ago_ms)
            post_visit(server, member, session_prefix, address, user_agent, events)

    with serving_visits(data_dir, member, post_visits, "overview",
                        lambda answer: answer["totals"]["sessions"] == len(visits),
                        "the visits in the overview") as loaded:
        yield loaded


def kpi(page: Page, key: str) -> str:
    """The overview's figure for ``key`` (sessions, visitors, pageviews…) as shown."""
    return page.inner_text(f"[data-kpi='{key}'] .hm-ov-kpi-value").strip()


def with_recordings(traffic: gt.Traffic) -> gt.Traffic:
    """Every session's first delivered batch carries a recording of the whole session: one page whose heading
    names the session, and a mouse that moves every 30 s, so the replay has frames to show at any moment."""
    done: set[str] = set()
    for segment in traffic.segments:
        for batch in segment:
            if batch.session_id in done:
                continue
            done.add(batch.session_id)
            session = next(s for s in traffic.sessions if s.session_id == batch.session_id)
            first, last = session.started_ms, session.started_ms + session.duration_ms
            node = heading_document("who", f"Recording of {session.session_id}")
            events: list[dict] = [
                {"type": 4, "timestamp": first, "data": {"href": gt.SITE + "/", "width": 1000, "height": 700}},
                {"type": 2, "timestamp": first + 1, "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}},
            ]
            for t in range(first + 30_000, last + 1, 30_000):
                events.append({"type": 3, "timestamp": t, "data": {
                    "source": 1, "positions": [{"x": 10 + (t - first) // 30_000 % 500, "y": 20, "id": 3,
                                                "timeOffset": 0}]}})
            last = max(last, events[-1]["timestamp"])
            batch.recording = [StoredChunk(seq=0, first_ts=first, last_ts=last, count=len(events),
                                           data=gzip.compress(json.dumps(events).encode()))]
    return traffic


def load_generated(data_dir: Path, seed: int, visitors: int, project_ids: tuple[int, ...]) -> None:
    """Run in a child process (chDB holds one data directory per process): the generator's traffic, with
    recordings, through the real spool and loader into the data directory's store."""
    from tests.web.helpers import close_runtime, open_runtime

    runtime = open_runtime(data_dir)
    try:
        traffic = with_recordings(gt.generate(seed=seed, visitors=visitors, project_ids=project_ids))
        gt.load(traffic, data_dir.parent / "groundtruth-spool", runtime.store, runtime.blobs)
    finally:
        close_runtime(runtime)


def load_generated_in_child(data_dir: Path, seed: int, visitors: int, project_ids: tuple[int, ...],
                            timeout_s: float) -> None:
    """``load_generated`` in a child process, before the server that will hold the data directory starts."""
    code = ("import sys, pathlib; from tests.e2e.analytics_server import load_generated; "
            "load_generated(pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), "
            "tuple(int(p) for p in sys.argv[4:]))")
    subprocess.run([sys.executable, "-c", code, str(data_dir), str(seed), str(visitors), *map(str, project_ids)],
                   cwd=REPO, check=True, timeout=timeout_s)
