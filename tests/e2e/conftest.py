"""Real headless Chromium (Debian's) driven by Playwright, and a static site to visit with it."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope: Playwright's sync API keeps an event loop running in this thread
# while it is open, which would break asyncio.run() in tests collected later.
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class _SiteHandler(SimpleHTTPRequestHandler):
    """Files of the site's directory; POSTs are recorded, then refused or forwarded (see StaticSite)."""

    site: StaticSite

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.site.lock:
            self.site.posts.append(body)
            tapped = {"X-Tapped": str(len(self.site.posts) - 1)}
            refusal = self.site.refusals.pop(0) if self.site.refusals else None
        if refusal:
            status, headers = refusal
            self._answer(status, {**headers, **tapped}, b'{"error": "refused by the test"}')
        elif self.site.forward_to is None:
            self._answer(404, tapped, b"")
        else:
            forwarded = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
            r = httpx.post(
                self.site.forward_to + self.path,
                content=body,
                timeout=30.0,
                headers={**forwarded, "Origin": self.site.url},
            )
            retry_after = r.headers.get("retry-after")
            self._answer(r.status_code, {**tapped, **({"Retry-After": retry_after} if retry_after else {})}, r.content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A page that leaves may close a beacon's connection before the answer: expected, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StaticSite:
    """Files of a directory served on 127.0.0.1 from a thread: another origin than the Hitmetrix server.

    It also taps what the tracker sends, when pointed at it with `data-api`: every POST body is
    kept in `posts`, in order, and its answer says its index there (`X-Tapped`); the next POSTs
    are answered from `refusals` (status, headers) while any are left, and the others are
    forwarded to `forward_to` (a Hitmetrix server). Playwright does not see the beacons sent
    at unload; this tap does.
    """

    def __init__(self, root: Path, forward_to: str | None = None) -> None:
        self.root = root
        self.forward_to = forward_to
        self.posts: list[bytes] = []
        self.refusals: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_SiteHandler,), {"site": self})
        self._httpd = _SiteServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="static-site", daemon=True)
        self._thread.start()

    def write(self, name: str, text: str) -> str:
        """Add a page; returns its URL."""
        (self.root / name).write_text(text)
        return f"{self.url}/{name}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@pytest.fixture()
def static_site(tmp_path: Path) -> Iterator[StaticSite]:
    """A static site; set `forward_to` to tap and forward what the tracker sends to a server."""
    root = tmp_path / "site"
    root.mkdir()
    site = StaticSite(root)
    yield site
    site.stop()
