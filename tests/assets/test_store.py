"""Captured assets on disk: content-addressed, deduplicated, private files, and the per-project index."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from hitmetrix.assets.store import REFRESH_AFTER_S, RETRY_AFTER_S, AssetStore
from tests.web.helpers import FakeClock


def test_same_bytes_are_one_file_whatever_the_url_or_project(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    try:
        a = store.put_blob(b"body { color: red }")
        store.record_ok(1, "https://a.example/one.css", a, "text/css")
        b = store.put_blob(b"body { color: red }")
        store.record_ok(1, "https://a.example/two.css", b, "text/css")
        c = store.put_blob(b"body { color: red }")
        store.record_ok(2, "https://b.example/three.css", c, "text/css")
        assert a == b == c and store.blob_count() == 1
        path = tmp_path / "assets" / "blobs" / a[:2] / a
        assert path.read_bytes() == b"body { color: red }"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "assets" / "index.sqlite3").stat().st_mode) == 0o600
        assert store.stored(1, a) is not None and store.stored(2, a) is not None
        assert store.stored(3, a) is None, "a project reads only the contents it fetched itself"
        assert store.stored(1, a).url == "https://a.example/one.css"  # type: ignore[union-attr]
    finally:
        store.close()


def test_refetch_policy(tmp_path: Path) -> None:
    clock = FakeClock()
    store = AssetStore(tmp_path / "assets", clock)
    try:
        url = "https://a.example/x.png"
        assert store.due(1, url)
        store.record_ok(1, url, store.put_blob(b"x"), "image/png")
        assert not store.due(1, url) and store.due(2, url), "per project"
        clock.advance(REFRESH_AFTER_S - 1)
        assert not store.due(1, url)
        clock.advance(1)
        assert store.due(1, url), "fetched again after the refresh period"
        store.record_failure(1, url, "HTTP 503")
        entry = store.entry(1, url)
        assert entry is not None and entry.status == "ok" and entry.error == "HTTP 503", (
            "a failed refetch keeps the content"
        )

        bad = "https://a.example/missing.png"
        for attempt, wait_s in enumerate([*RETRY_AFTER_S, REFRESH_AFTER_S], start=1):
            store.record_failure(1, bad, "HTTP 404")
            entry = store.entry(1, bad)
            assert entry is not None and (entry.status, entry.attempts) == ("failed", attempt)
            clock.advance(wait_s - 1)
            assert not store.due(1, bad), attempt
            clock.advance(1)
            assert store.due(1, bad), attempt
    finally:
        store.close()


def test_sessions_keep_the_content_they_were_captured_with(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    try:
        url, broken, waiting = "https://a.example/logo.png", "https://a.example/gone.png", "https://a.example/later.png"
        store.add_session_urls(1, "old-session", [url, broken, waiting])
        old = store.put_blob(b"old logo")
        store.record_ok(1, url, old, "image/png")
        store.record_failure(1, broken, "HTTP 404")
        store.pin_session(1, "old-session")
        new = store.put_blob(b"new logo")
        store.record_ok(1, url, new, "image/png")  # the site changed its logo
        store.add_session_urls(1, "new-session", [url])
        store.pin_session(1, "new-session")
        assert store.session_assets(1, "old-session").captured == {url: old}
        assert store.session_assets(1, "old-session").failed == {broken: "HTTP 404"}
        assert store.session_assets(1, "old-session").pending == 1
        assert store.session_assets(1, "new-session").captured == {url: new}
        assert store.stored(1, old) is not None, "the old content stays readable"
        assert store.session_assets(2, "old-session").captured == {}
    finally:
        store.close()


def test_many_threads_share_the_index(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                url = f"https://a.example/{n}/{i}.png"
                store.add_session_urls(n, "s", [url])
                store.record_ok(n, url, store.put_blob(f"{n}-{i % 5}".encode()), "image/png")
                store.session_assets(n, "s")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        assert store.blob_count() == 8 * 5
        assert all(len(store.session_assets(n, "s").captured) == 50 for n in range(8))
        assert not [p for p in (tmp_path / "assets" / "blobs").rglob("*") if ".tmp" in p.name]
        assert os.listdir(tmp_path / "assets")
    finally:
        store.close()
