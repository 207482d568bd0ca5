"""The asset worker: after a recording chunk is stored, capture the stylesheets, images and fonts it references.

The chunk worker hands over (project, session, blob key) with ``enqueue``,
which never blocks: the queue is bounded (``QUEUE_MAX_ITEMS``) and a chunk that
finds it full is skipped and counted, so capture and the loader never wait on
a site's server. One thread takes chunks in order: it reads the stored blob,
extracts the URLs (``extractor``), keeps those on the project's allowed
origins, remembers them for the session, and fetches the ones that are due
(``store.AssetStore.due``) through a pool of ``fetcher.GLOBAL_CONCURRENCY``
threads. A fetched stylesheet's own URLs (imports, fonts, images) are fetched
in the next round, up to ``MAX_CSS_DEPTH`` stylesheets deep, resolved against
the stylesheet's URL. Each project may start at most
``MAX_FETCHES_PER_PROJECT_PER_HOUR`` fetches an hour, so a forged recording
naming endless URLs cannot turn the worker against the project's own site.
The queue lives in memory: chunks stored while it was full or the node was
down are not captured (their replays use the live site).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
import zstandard

from hitmetrix.assets.css import IMPORT, RESOURCE, css_urls, decode_css
from hitmetrix.assets.extractor import UrlExtractor, normalise_url
from hitmetrix.assets.fetcher import GLOBAL_CONCURRENCY, AssetFetcher, Fetched
from hitmetrix.assets.origin import Origin, Refused, allowed_origins, origin_of
from hitmetrix.assets.store import AssetStore

log = logging.getLogger(__name__)

QUEUE_MAX_ITEMS = 1000
MAX_CSS_DEPTH = 3
MAX_FETCHES_PER_PROJECT_PER_HOUR = 2000
MAX_CHUNK_JSON_BYTES = 32 * 1024 * 1024
MAX_SESSIONS_REMEMBERED = 10_000  # page URLs carried from one chunk of a session to the next
_HOUR_S = 3600.0


@dataclass(frozen=True)
class StoredChunk:
    project_id: int
    session_id: str
    key: str  # the blob store key of the chunk's zstd JSON


def zstd_json(blob: bytes, max_bytes: int = MAX_CHUNK_JSON_BYTES) -> bytes:
    """A stored chunk's JSON, at most ``max_bytes`` of it."""
    with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
        data = reader.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"chunk JSON over {max_bytes} bytes")
    return data


class AssetWorker:
    def __init__(
        self,
        store: AssetStore,
        fetcher: AssetFetcher,
        read_chunk: Callable[[str], bytes],
        project_origins: Callable[[int], list[str]],
        *,
        clock: Callable[[], float] = time.monotonic,
        queue_max_items: int = QUEUE_MAX_ITEMS,
        max_fetches_per_project_per_hour: int = MAX_FETCHES_PER_PROJECT_PER_HOUR,
    ) -> None:
        """``read_chunk``: blob key → the stored (zstd) bytes; ``project_origins``: project id → allowed origins."""
        self.store = store
        self.fetcher = fetcher
        self.read_chunk = read_chunk
        self.project_origins = project_origins
        self.clock = clock
        self.max_fetches_per_hour = max_fetches_per_project_per_hour
        self.counters: collections.Counter[str] = collections.Counter()
        self._queue: queue.Queue[StoredChunk | None] = queue.Queue(queue_max_items)
        self._pages: collections.OrderedDict[tuple[int, str], str] = collections.OrderedDict()
        self._fetch_times: dict[int, collections.deque[float]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0  # chunks taken or waiting

    # --- the hand-over from the chunk worker -----------------------------------------------------------

    def enqueue(self, project_id: int, session_id: str, key: str) -> bool:
        """Capture this stored chunk's assets later; never blocks. False when the queue was full."""
        with self._idle:
            try:
                self._queue.put_nowait(StoredChunk(project_id, session_id, key))
            except queue.Full:
                self.counters["chunks_skipped_queue_full"] += 1
                return False
            self._busy += 1
        return True

    # --- running -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("asset worker already started")
        self._stop.clear()
        self._pool = ThreadPoolExecutor(GLOBAL_CONCURRENCY, thread_name_prefix="hitmetrix-asset-fetch")
        self._thread = threading.Thread(target=self._run, name="hitmetrix-asset-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 30.0) -> None:
        """Finish the chunk in hand (fetches are bounded by the fetcher's time limit), then stop."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # when full, the thread sees the stop flag after its chunk
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.fetcher.close()
        self.store.close()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until every chunk handed over so far is done (for tests and shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                break
            try:
                self.process(item)
            except Exception:  # noqa: BLE001 - one chunk's failure must not stop the worker
                self.counters["chunks_failed"] += 1
                log.exception("capturing the assets of chunk %s failed", item.key)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    # --- one chunk -----------------------------------------------------------------------------------

    def process(self, item: StoredChunk) -> int:
        """Capture one chunk's assets now; returns how many fetches were made."""
        allowed = allowed_origins(self.project_origins(item.project_id))
        if not allowed:  # a project with no allowed origins fetches nothing
            return 0
        try:
            events = msgspec.json.decode(zstd_json(self.read_chunk(item.key)))
        except (OSError, ValueError, zstandard.ZstdError, msgspec.DecodeError) as exc:
            self.counters["chunks_unreadable"] += 1
            log.warning("asset capture skipped chunk %s: %s: %s", item.key, type(exc).__name__, exc)
            return 0
        extractor = UrlExtractor(self._page_url(item))
        urls = [url for url in extractor.events(events) if origin_of(url) in allowed]
        self._remember_page(item, extractor.page_url)
        self.counters["chunks_processed"] += 1
        fetches = self.capture(item.project_id, item.session_id, urls, allowed)
        self.store.pin_session(item.project_id, item.session_id)
        return fetches

    def capture(self, project_id: int, session_id: str, urls: list[str], allowed: frozenset[Origin]) -> int:
        """Fetch what is due of ``urls`` and, round by round, of the stylesheets' own URLs."""
        seen: set[str] = set()
        fetches = 0
        level = urls
        for depth in range(MAX_CSS_DEPTH + 1):
            level = [url for url in dict.fromkeys(level) if url not in seen]
            if not level or self._stop.is_set():
                break
            seen.update(level)
            self.store.add_session_urls(project_id, session_id, level)
            due = [url for url in level if self.store.due(project_id, url) and self._spend(project_id)]
            fetches += len(due)
            results = self._fetch_all(due, allowed)
            found: list[str] = []
            for url in level:
                outcome = results.get(url)
                if isinstance(outcome, Fetched):
                    self._keep(project_id, outcome)
                elif isinstance(outcome, Refused):
                    self.store.record_failure(project_id, url, str(outcome))
                    self.counters["fetches_failed"] += 1
                    continue
                if depth < MAX_CSS_DEPTH:
                    found += self._stylesheet_urls(project_id, url, outcome, allowed)
            level = found
        return fetches

    def _fetch_all(self, urls: list[str], allowed: frozenset[Origin]) -> dict[str, Fetched | Refused]:
        def one(url: str) -> Fetched | Refused:
            try:
                return self.fetcher.fetch(url, allowed)
            except Refused as exc:
                return exc

        if not urls:
            return {}
        if self._pool is None:  # not started (tests call ``process`` directly): one at a time
            return {url: one(url) for url in urls}
        return dict(zip(urls, self._pool.map(one, urls), strict=True))

    def _keep(self, project_id: int, fetched: Fetched) -> None:
        sha256 = self.store.put_blob(fetched.body)
        self.store.record_ok(project_id, fetched.url, sha256, fetched.content_type)
        self.counters["fetches_ok"] += 1

    def _stylesheet_urls(
        self, project_id: int, url: str, outcome: Fetched | None, allowed: frozenset[Origin]
    ) -> list[str]:
        """The URLs in the stylesheet at ``url`` (just fetched, or kept from before), resolved against it."""
        if outcome is not None:
            if outcome.content_type != "text/css":
                return []
            body, base = outcome.body, outcome.final_url
        else:
            entry = self.store.entry(project_id, url)
            if entry is None or entry.sha256 is None or entry.content_type != "text/css":
                return []
            try:
                body, base = self.store.read_blob(entry.sha256), url
            except OSError:
                return []
        out = []
        for found, use in css_urls(decode_css(body)):
            absolute = normalise_url(found, base) if use in (RESOURCE, IMPORT) else None
            if absolute is not None and origin_of(absolute) in allowed:
                out.append(absolute)
        return out

    def _spend(self, project_id: int) -> bool:
        """Take one fetch from the project's hourly budget; False when it is used up."""
        now = self.clock()
        times = self._fetch_times.setdefault(project_id, collections.deque())
        while times and now - times[0] >= _HOUR_S:
            times.popleft()
        if len(times) >= self.max_fetches_per_hour:
            self.counters["fetches_over_budget"] += 1
            return False
        times.append(now)
        return True

    def _page_url(self, item: StoredChunk) -> str:
        return self._pages.get((item.project_id, item.session_id), "")

    def _remember_page(self, item: StoredChunk, page_url: str) -> None:
        if not page_url:
            return
        key = (item.project_id, item.session_id)
        self._pages[key] = page_url
        self._pages.move_to_end(key)
        while len(self._pages) > MAX_SESSIONS_REMEMBERED:
            self._pages.popitem(last=False)

    def health(self) -> dict[str, Any]:
        return {"asset_queue": self._queue.qsize(), **{f"assets_{k}": v for k, v in self.counters.items()}}
