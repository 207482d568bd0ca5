"""A captured stylesheet as the dashboard serves it to a replay: every URL in it rewritten.

The stylesheet is served from the dashboard's origin, so any URL left as it was
would resolve against the dashboard (or reach wherever it points, with the
dashboard's address as Referer). Each ``url()``, ``image-set()`` string and
``@import`` is therefore resolved against the stylesheet's original URL and
becomes the dashboard URL of the captured asset when there is one; else the
original URL when the project's allowed origins (which the replay page's CSP
allows) include it, marked ``referrer-policy(no-referrer)``; else
``about:invalid`` (an ``@import`` is then removed). ``data:`` URLs stay, except
in ``@import``; ``@namespace`` names stay only when they are the well-known ones.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from hitmetrix.assets.css import IMPORT, NAMESPACE, css_urls, decode_css, rewrite_css_urls
from hitmetrix.assets.extractor import normalise_url
from hitmetrix.assets.origin import Origin, origin_of
from hitmetrix.assets.store import AssetStore, StoredAsset

NO_REFERRER_MODIFIER = " referrer-policy(no-referrer)"
KNOWN_NAMESPACES = frozenset(
    {
        "http://www.w3.org/1999/xhtml",
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1998/Math/MathML",
        "http://www.w3.org/1999/xlink",
    }
)


def asset_path(project_id: int, sha256: str) -> str:
    """The dashboard path that serves a captured asset of a project."""
    return f"/projects/{project_id}/assets/{sha256}"


def replay_stylesheet(
    css: str, base_url: str, captured: Callable[[str], str | None], fallback_allowed: Callable[[str], bool]
) -> str:
    """``css`` (fetched from ``base_url``) for a replay: ``captured`` maps an absolute URL to its asset path,
    ``fallback_allowed`` says whether the replay may load an uncaptured URL from the site itself."""
    own_paths: set[str] = set()

    def policy(url: str, use: str) -> str | None:
        if use == NAMESPACE:
            return url if url.strip() in KNOWN_NAMESPACES else None
        stripped = url.strip()
        if stripped == "" or stripped.startswith("#"):
            return url
        if stripped.lower().startswith("data:"):
            return None if use == IMPORT else url
        absolute = normalise_url(stripped, base_url)
        if absolute is None:
            return None
        path = captured(absolute)
        if path is not None:
            own_paths.add(path)
            return path
        return absolute if fallback_allowed(absolute) else None

    def modifiers(url: str) -> str:
        # The dashboard's own asset URLs name nobody; a request to the site must not carry the dashboard's URL.
        return "" if url in own_paths else NO_REFERRER_MODIFIER

    return rewrite_css_urls(css, policy, modifiers)


def served_stylesheet(
    store: AssetStore, project_id: int, stored: StoredAsset, body: bytes, fallback: frozenset[Origin]
) -> bytes:
    """A captured stylesheet's bytes as served to the project's replays; ``fallback``: the origins a replay may
    load an uncaptured URL from (those of the replay page's CSP)."""
    css = decode_css(body)
    absolute = [a for a in (normalise_url(url, stored.url) for url, _ in css_urls(css)) if a is not None]
    captured = store.current(project_id, absolute)
    key = (project_id, stored.sha256, stored.url, tuple(sorted(captured.items())), fallback)
    cached = _SERVED.get(key)
    if cached is not None:
        return cached
    served = replay_stylesheet(
        css,
        stored.url,
        lambda url: asset_path(project_id, captured[url]) if url in captured else None,
        lambda url: origin_of(url) in fallback,
    ).encode()
    _SERVED.put(key, served)
    return served


class _ServedCache:
    """Rewritten stylesheets by what they depend on (content, base URL, the captured copies of their URLs, the
    fallback origins), least recently used out past ``max_bytes``: a replay asks for the same few each view."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[tuple[object, ...], bytes] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], value: bytes) -> None:
        with self._lock:
            if key in self._entries or len(value) > self.max_bytes // 4:
                return
            self._entries[key] = value
            self._bytes += len(value)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._entries.popitem(last=False)[1])


SERVED_CACHE_BYTES = 32 * 1024 * 1024
_SERVED = _ServedCache(SERVED_CACHE_BYTES)
