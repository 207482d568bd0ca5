"""The asset worker over a real site on 127.0.0.1: a stored chunk in, its stylesheets, fonts and images captured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from hitmetrix.assets.fetcher import AssetFetcher
from hitmetrix.assets.store import AssetStore
from hitmetrix.assets.worker import AssetWorker, StoredChunk
from tests.assets.rrweb import element, snapshot
from tests.assets.site import Site

WOFF2 = b"wOF2-font-bytes" * 10
PNG = b"\x89PNG\r\n\x1a\n-image"


@dataclass
class Rig:
    worker: AssetWorker
    store: AssetStore
    chunks: dict[str, bytes]
    origins: dict[int, list[str]]

    def chunk(self, project_id: int, session_id: str, events: list[dict[str, Any]]) -> StoredChunk:
        key = f"{project_id}/{session_id}/{len(self.chunks):08d}.json.zst"
        self.chunks[key] = zstandard.ZstdCompressor().compress(json.dumps(events).encode())
        return StoredChunk(project_id, session_id, key)


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    chunks: dict[str, bytes] = {}
    origins: dict[int, list[str]] = {}
    store = AssetStore(tmp_path / "assets")
    worker = AssetWorker(store, AssetFetcher(), chunks.__getitem__, lambda pid: origins.get(pid, []))
    yield Rig(worker, store, chunks, origins)
    worker.stop()


def page_events(site: Site, *, font_path: str = "/fonts/text.woff2") -> list[dict[str, Any]]:
    """A page on the site with a linked stylesheet (which imports one and uses a web font), an image, and an
    image of another origin."""
    site.add(
        "/css/site.css", f"@import 'theme.css';\n@font-face {{ font-family: T; src: url(..{font_path}) }}", "text/css"
    )
    site.add("/css/theme.css", "body { background: url(/img/bg.png) }", "text/css")
    site.add(font_path, WOFF2, "font/woff2")
    site.add("/img/bg.png", PNG, "image/png")
    site.add("/img/logo.png", PNG, "image/png")
    events = snapshot(
        element(10, "img", {"src": "img/logo.png"}),
        element(11, "img", {"src": "https://elsewhere.example/x.png"}),
        head=(element(5, "link", {"rel": "stylesheet", "href": "css/site.css"}),),
    )
    events[0]["data"]["href"] = site.url + "/index.html"
    return events


def test_captures_a_pages_stylesheets_fonts_and_images(rig: Rig, site: Site) -> None:
    rig.origins[1] = [site.url]
    fetches = rig.worker.process(rig.chunk(1, "session-1", page_events(site)))
    assert fetches == 5
    assert {path: site.hits[path] for path in site.hits} == {
        "/css/site.css": 1,
        "/css/theme.css": 1,
        "/fonts/text.woff2": 1,
        "/img/bg.png": 1,
        "/img/logo.png": 1,
    }
    found = rig.store.session_assets(1, "session-1")
    assert sorted(found.captured) == sorted(
        f"{site.url}{p}"
        for p in ("/css/site.css", "/css/theme.css", "/fonts/text.woff2", "/img/bg.png", "/img/logo.png")
    )
    assert found.failed == {} and found.pending == 0
    assert rig.store.blob_count() == 4, "the two images have the same bytes: one file"


def test_the_same_url_is_fetched_once_and_a_project_without_origins_fetches_nothing(rig: Rig, site: Site) -> None:
    rig.origins[1] = [site.url]
    events = page_events(site)
    rig.worker.process(rig.chunk(1, "session-1", events))
    assert rig.worker.process(rig.chunk(1, "session-2", events)) == 0, "everything is fresh"
    assert set(site.hits.values()) == {1}
    assert len(rig.store.session_assets(1, "session-2").captured) == 5, "the second session gets the captured copies"
    assert rig.worker.process(rig.chunk(2, "session-3", events)) == 0
    assert rig.store.session_assets(2, "session-3").captured == {}
    rig.origins[3] = [site.url]
    rig.worker.process(rig.chunk(3, "session-4", events))
    assert set(site.hits.values()) == {2}, "another project fetches for itself"
    assert rig.store.blob_count() == 4, "but its bytes are the same files"


def test_failures_are_reported_and_a_stylesheets_missing_font_is_retried_later(rig: Rig, site: Site) -> None:
    rig.origins[1] = [site.url]
    events = page_events(site, font_path="/fonts/missing.woff2")
    del site.answers["/fonts/missing.woff2"]
    rig.worker.process(rig.chunk(1, "session-1", events))
    found = rig.store.session_assets(1, "session-1")
    assert found.failed == {f"{site.url}/fonts/missing.woff2": "HTTP 404"}
    assert len(found.captured) == 4
    # Later the font is there, and its retry time has come: a new chunk referencing the stylesheet retries it.
    site.add("/fonts/missing.woff2", WOFF2, "font/woff2")
    rig.store.clock = lambda: 1e12
    rig.worker.process(rig.chunk(1, "session-2", events))
    assert f"{site.url}/fonts/missing.woff2" in rig.store.session_assets(1, "session-2").captured


def test_only_allowed_origins_and_a_bounded_number_of_fetches(rig: Rig, site: Site, other_site: Site) -> None:
    rig.origins[1] = [site.url]
    other = other_site.add("/x.png", PNG, "image/png")
    many = [element(100 + i, "img", {"src": f"{site.url}/n/{i}.png"}) for i in range(30)]
    worker = AssetWorker(
        rig.store, AssetFetcher(), rig.chunks.__getitem__, rig.origins.get, max_fetches_per_project_per_hour=10
    )
    try:
        events = snapshot(element(9, "img", {"src": other}), *many)
        assert worker.process(rig.chunk(1, "s", events)) == 10
        assert other_site.requests == []
        assert len(site.requests) == 10
        assert worker.counters["fetches_over_budget"] == 20
    finally:
        worker.stop()


def test_a_broken_chunk_is_skipped(rig: Rig, site: Site) -> None:
    rig.origins[1] = [site.url]
    rig.chunks["bad"] = b"not zstd"
    assert rig.worker.process(StoredChunk(1, "s", "bad")) == 0
    assert rig.worker.counters["chunks_unreadable"] == 1


def test_the_background_thread_and_a_full_queue(tmp_path: Path, site: Site) -> None:
    chunks: dict[str, bytes] = {}
    store = AssetStore(tmp_path / "assets")
    worker = AssetWorker(store, AssetFetcher(), chunks.__getitem__, lambda pid: [site.url], queue_max_items=2)
    rig = Rig(worker, store, chunks, {})
    events = page_events(site)
    items = [rig.chunk(1, f"s{i}", events) for i in range(3)]
    assert [worker.enqueue(i.project_id, i.session_id, i.key) for i in items] == [True, True, False], "never blocks"
    assert worker.counters["chunks_skipped_queue_full"] == 1
    worker.start()
    try:
        assert worker.wait_idle(30)
        assert len(store.session_assets(1, "s1").captured) == 5
        assert store.session_assets(1, "s2").captured == {}
    finally:
        worker.stop()
