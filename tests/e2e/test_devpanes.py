"""The optional tracker features in real Chromium, end to end: a page whose project records the console, the
network and web vitals logs, warns, throws, fetches (ok, 404, failing) and makes an XHR; the replay's Console
and Network panes show it all at its moment, with markers on the timeline; what was typed into a masked field
never reaches the wire or the data directory in a console or network entry; and a project with the features
off never even requests their code.

Hitmetrix runs behind a small tapping proxy (another origin than the site's): it forwards every request to the
server and keeps the bodies the tracker sends, the beacons at unload included, and the paths asked for.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from playwright.sync_api import Browser, Page

from hitmetrix.store import projects
from hitmetrix.store.blobs import GZIP_MAGIC, ZSTD_MAGIC
from hitmetrix.store.meta import MetaStore
from tests.e2e.conftest import StaticSite
from tests.e2e.dashboard import Member, demo_member, forge_recording, sign_in, wait_replay_loaded
from tests.support import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

SECRET = "hunter2-Zq8x"  # typed into a password field (masked): must never come back in an entry
CHUNK_FILES = ("hm-console.js", "hm-network.js", "hm-vitals.js")
FORWARDED_HEADERS = ("content-type", "cache-control", "access-control-allow-origin", "content-length")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Dev panes shop</title>
<script src="{proxy}/hm.js" data-key="{key}"></script></head>
<body>
<h1>Checkout</h1>
<label>Password <input id="secret" type="password" autocomplete="off"></label>
<button id="go" type="button">Pay</button>
<script>
document.getElementById('go').addEventListener('click', async () => {{
  const secret = document.getElementById('secret').value;
  console.log('hello from the page', {{ items: 3, list: [1, 2] }});
  console.info('typed', secret, 'mail', 'someone@example.com');
  console.warn('careful: card 4111 1111 1111 1111 for ' + secret);
  console.error(new Error('payment failed for ' + secret));
  await fetch('/ok.json?token=abc123&page=2');
  await fetch('/missing/' + secret);
  try {{ await fetch('{closed}/refused'); }} catch (e) {{ /* the failing request */ }}
  await new Promise((resolve) => {{
    const xhr = new XMLHttpRequest();
    xhr.open('GET', '/ok.json?from=xhr');
    xhr.onloadend = resolve;
    xhr.send();
  }});
  setTimeout(() => {{ throw new Error('uncaught after paying'); }}, 0);
  setTimeout(() => {{ document.title = 'paid'; }}, 50);
}});
</script>
</body></html>
"""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A page that leaves may close a beacon's connection before the answer: expected, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class TappingProxy:
    """Forwards every request to the Hitmetrix server; keeps POST bodies and the paths of GETs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.posts: list[bytes] = []
        self.gets: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with proxy.lock:
                    proxy.gets.append(self.path)
                self._answer(httpx.get(proxy.upstream + self.path, timeout=30))

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.posts.append(body)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "origin")}
                self._answer(httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=30))

            def _answer(self, answer: httpx.Response) -> None:
                self.send_response(answer.status_code)
                for name in FORWARDED_HEADERS:
                    if name in answer.headers and name != "content-length":
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tapping-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@dataclass(frozen=True)
class Visit:
    server: ServerProcess
    proxy: TappingProxy
    member: Member
    session_id: str
    posts: list[bytes]


def recorded_events(posts: list[bytes]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The analytics events and the rrweb events of the tapped batches (chunks: base64 of gzip of JSON)."""
    events: list[dict[str, Any]] = []
    rrweb: list[dict[str, Any]] = []
    for body in posts:
        batch = json.loads(body)
        events += batch.get("events", [])
        for chunk in batch.get("recording", []):
            rrweb += json.loads(gzip.decompress(base64.b64decode(chunk["data"])))
    return events, rrweb


def entries(rrweb: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [e["data"]["payload"] for e in rrweb if e["type"] == 5 and e["data"].get("tag") == tag]


def data_directory_text(data_dir: Path) -> str:
    """Every file under the data directory as text, zstd and gzip frames (recording chunks, units) inflated."""
    parts: list[str] = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # a spool segment loaded, chunks compacted into a unit: the caller scans again
        parts.append(raw.decode("utf-8", "replace"))
        start = raw.find(ZSTD_MAGIC)  # a unit starts with a header line, then its frame
        while start >= 0:
            with contextlib.suppress(zstandard.ZstdError):  # the magic bytes inside other data
                inflated = zstandard.ZstdDecompressor().decompressobj().decompress(raw[start:])
                parts.append(inflated.decode("utf-8", "replace"))
            start = raw.find(ZSTD_MAGIC, start + 1)
        if raw.startswith(GZIP_MAGIC):
            with contextlib.suppress(OSError, EOFError):
                parts.append(gzip.decompress(raw).decode("utf-8", "replace"))
    return "\n".join(parts)


def open_site(page: Page, site: StaticSite, proxy: TappingProxy, key: str, closed_origin: str) -> None:
    site.write("ok.json", '{"ok": true}')
    page.goto(site.write("shop.html", PAGE.format(proxy=proxy.url, key=key, closed=closed_origin)))
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Visit]:
    base = tmp_path_factory.mktemp("devpanes")
    data_dir = base / "data"
    member = demo_member(data_dir, "devpanes")
    meta = MetaStore("", data_dir)
    try:
        features = dict.fromkeys(projects.RECORDING_FEATURES, True)
        projects.update_settings(meta, member.project_id, features, actor_id=None)
    finally:
        meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    proxy = TappingProxy(server.url)
    (base / "site").mkdir()
    site = StaticSite(base / "site")
    try:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        page = context.new_page()
        open_site(page, site, proxy, member.project_key, f"http://127.0.0.1:{free_port()}")
        # The chunks come after the core asked for the project's switches.
        page.wait_for_function("() => window.__hmConsole && window.__hmNetwork && window.__hmVitals", timeout=15_000)
        session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
        page.type("#secret", SECRET, delay=20)
        page.click("#go")
        page.wait_for_function("() => document.title === 'paid'", timeout=15_000)
        page.goto("about:blank")  # pagehide: web vitals and the rest leave by beacon
        context.close()

        def delivered() -> list[bytes] | None:
            with proxy.lock:
                posts = list(proxy.posts)
            events, rrweb = recorded_events(posts)
            vitals = any(e.get("type") == "custom" and e.get("name") == "$web_vitals" for e in events)
            uncaught = any(e.get("uncaught") for e in entries(rrweb, "hm-console"))
            return posts if vitals and uncaught and len(entries(rrweb, "hm-network")) >= 4 else None

        posts = wait_for(delivered, 60, 0.2, what="the console, network and vitals entries on the wire")

        def stored() -> bool:
            answer = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}")
            if answer.status_code != 200:
                return False
            body = answer.json()
            last_chunk_ts = max((c["last_ts"] for c in body["recording_chunks"]), default=0)
            vitals = [e for e in body["events"] if e["type"] == "custom" and e.get("name") == "$web_vitals"]
            return bool(vitals) and last_chunk_ts >= max(e["ts"] for e in body["events"] if e["type"] == "click")

        try:
            wait_for(stored, 60, 0.2, what="the session and its recording in the store")
        except AssertionError:
            answer = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}")
            raise AssertionError(f"{answer.status_code} {answer.text[:3000]}\n{server.log_tail()}") from None
        yield Visit(server, proxy, member, session_id, posts)
    finally:
        site.stop()
        proxy.stop()
        server.stop()


def test_console_and_network_entries_go_out_bounded_and_scrubbed(visit: Visit) -> None:
    events, rrweb = recorded_events(visit.posts)
    console = entries(rrweb, "hm-console")
    by_level = {(e["level"], bool(e.get("uncaught"))): e for e in console}
    assert set(by_level) == {("log", False), ("info", False), ("warn", False), ("error", False), ("error", True)}
    assert by_level["log", False]["message"] == "hello from the page {items: 3, list: [1, 2]}"
    assert "stack" not in by_level["log", False]
    assert by_level["error", False]["message"].startswith("Error: payment failed for ")
    assert "shop.html" in by_level["error", False]["stack"], "the page's frame is in the stack"
    assert "hm-console.js" not in by_level["warn", False]["stack"], "the chunk's own frames are left out"
    assert by_level["error", True]["message"] == "Uncaught Error: uncaught after paying"
    info = by_level["info", False]["message"]
    assert info.startswith("typed ") and "someone@example.com" not in info and "*" in info
    assert "4111 1111 1111 1111" not in by_level["warn", False]["message"]

    network = entries(rrweb, "hm-network")
    summary = sorted((e["kind"], e["status"], bool(e.get("failed"))) for e in network)
    assert summary == [("fetch", 0, True), ("fetch", 200, False), ("fetch", 404, False), ("xhr", 200, False)]
    ok = next(e for e in network if e["kind"] == "fetch" and e["status"] == 200)
    assert ok["method"] == "GET" and ok["url"].endswith("/ok.json?token=*&page=*"), "query values masked"
    assert ok["response_bytes"] == len('{"ok": true}') and ok["duration_ms"] >= 0
    assert all(visit.proxy.url not in e["url"] for e in network), "never the tracker's own requests"
    assert all(set(e) <= {"kind", "method", "url", "status", "duration_ms", "request_bytes", "response_bytes", "failed"}
               for e in network), "never bodies or headers"

    wire = json.dumps([console, network])
    assert SECRET not in wire and SECRET[:6] not in wire, "a masked field's value came back in an entry"

    vitals = [e for e in events if e.get("type") == "custom" and e.get("name") == "$web_vitals"]
    assert len(vitals) == 1
    props = vitals[0]["props"]
    assert set(props) == {"lcp", "inp", "cls", "fcp", "ttfb", "url"}
    assert all(isinstance(props[k], (int, float)) for k in ("lcp", "fcp", "ttfb", "cls")), props
    assert props["url"].endswith("/shop.html")


def test_a_masked_value_never_reaches_the_data_directory(visit: Visit) -> None:
    def scanned() -> str | None:
        text = data_directory_text(visit.server.data_dir)
        assert SECRET not in text, "what was typed into the password field is in the data directory"
        # The scan sees the recording's entries, so it could see the value, were it there.
        return text if "hello from the page" in text and "payment failed for" in text else None

    wait_for(scanned, 30, 0.5, what="the console entries in the data directory")


def test_the_replay_shows_the_panes_and_marks_errors_and_failed_requests(
    visit: Visit, browser: Browser, artifacts: Path
) -> None:
    shots = artifacts / "devpanes"
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, visit.server.url, visit.member)
        page.goto(f"{visit.server.url}/projects/{visit.member.project_id}/sessions/{visit.session_id}?t=0")
        wait_replay_loaded(page)
        console_rows = page.locator("#hm-dev-console > li")
        assert console_rows.count() == 5
        levels = page.locator("#hm-dev-console .hm-dev-level").all_text_contents()
        assert levels == ["log", "info", "warn", "error", "uncaught"]
        assert page.locator("#hm-dev-console .hm-dev-stack").count() == 3  # warn, error, uncaught
        panes_text = page.locator(".hm-devpanes").inner_text()
        assert SECRET not in panes_text and "hello from the page" in panes_text
        page.screenshot(path=str(shots / "console.png"), full_page=True)

        assert page.locator(".hm-marker-console-error").count() == 2
        assert page.locator(".hm-marker-console-warn").count() == 1
        assert page.locator(".hm-marker-network-failed").count() == 2  # the 404 and the refused request

        page.click(".hm-dev-tab[data-pane=network]")
        network_rows = page.locator("#hm-dev-network > li")
        assert network_rows.count() == 4
        statuses = sorted(page.locator("#hm-dev-network .hm-dev-status").all_text_contents())
        assert statuses == ["200", "200", "404", "failed"]
        assert page.locator("#hm-dev-network .hm-dev-failed").count() == 2

        # Clicking an entry seeks the player to it and highlights it.
        target = network_rows.nth(2)
        offset = float(target.get_attribute("data-offset") or "nan")
        target.locator(".hm-dev-row").click()
        page.wait_for_function(
            "(ms) => Math.abs(window.hmReplay.currentTime() - ms) < 100", arg=offset, timeout=10_000
        )
        page.wait_for_function("() => document.querySelector('#hm-dev-network > li:nth-child(3).hm-current')")
        page.screenshot(path=str(shots / "network.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_with_the_features_off_their_chunks_are_not_even_requested(
    visit: Visit, browser: Browser, tmp_path: Path
) -> None:
    meta_project = httpx.post(
        f"{visit.server.url}/api/v1/projects",
        json={"name": "plain"},
        headers={"Authorization": f"Bearer {visit.server.admin_token}"},
        timeout=30,
    )
    assert meta_project.status_code == 201, meta_project.text
    key = meta_project.json()["public_key"]
    site = StaticSite(tmp_path)
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    # Playwright tells of requests only while one of its calls runs: wait with its own expect_*, not by polling.
    page.on("request", lambda request: requested.append(request.url))
    try:
        with visit.proxy.lock:
            visit.proxy.gets.clear()
        switches = lambda request: "/api/v1/tracker-config" in request.url  # noqa: E731
        with page.expect_request_finished(switches, timeout=60_000) as config:
            open_site(page, site, visit.proxy, key, "http://127.0.0.1:9")
        assert config.value.response().json() == {"console": False, "network": False, "vitals": False}
        with page.expect_request(lambda request: "/api/v1/batch" in request.url, timeout=60_000):
            page.evaluate("() => window.hitmetrix.flush()")  # a round trip after the switches were read
        assert not [u for u in requested if u.rsplit("/", 1)[-1] in CHUNK_FILES]
        with visit.proxy.lock:
            asked = list(visit.proxy.gets)
        assert "/hm.js" in asked and not [p for p in asked if p.rsplit("/", 1)[-1] in CHUNK_FILES]
        assert page.evaluate("() => !window.__hmConsole && !window.__hmNetwork && !window.__hmVitals")
    finally:
        context.close()
        site.stop()


def test_hostile_entries_in_a_forged_recording_are_shown_as_inert_text(
    visit: Visit, browser: Browser, artifacts: Path
) -> None:
    start_ms = int(time.time() * 1000) - 5000
    text = {"type": 3, "id": 4, "textContent": "x"}
    body = {"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [text]}
    html = {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [body]}

    def custom(at_ms: int, tag: str, payload: Any) -> dict[str, Any]:
        return {"type": 5, "timestamp": start_ms + at_ms, "data": {"tag": tag, "payload": payload}}

    hostile = '<img src=x onerror="top.HM_CANARY=1">'
    events = [
        {"type": 4, "timestamp": start_ms, "data": {"href": "http://127.0.0.1:9/f.html", "width": 800, "height": 600}},
        {"type": 2, "timestamp": start_ms + 5, "data": {"node": {"type": 0, "id": 1, "childNodes": [html]},
                                                        "initialOffset": {"left": 0, "top": 0}}},
        custom(100, "hm-console", {"level": "<script>", "message": hostile, "stack": 12, "dropped": "many"}),
        custom(200, "hm-console", "not an entry"),
        custom(300, "hm-console", {"level": "error", "message": {"not": "text"}, "stack": hostile}),
        custom(400, "hm-network", {"method": "<b>GET</b>", "url": "javascript:top.HM_CANARY=2", "status": -5,
                                   "duration_ms": "slow", "failed": "yes", "response_bytes": 1e300}),
        {"type": 3, "timestamp": start_ms + 1500, "data": {"source": 1, "positions": [{"x": 1, "y": 1, "id": 3,
                                                                                       "timeOffset": 0}]}},
    ]
    session_id = forge_recording(visit.server, visit.member, events, "http://127.0.0.1:9/f.html")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, visit.server.url, visit.member)
        page.goto(f"{visit.server.url}/projects/{visit.member.project_id}/sessions/{session_id}?t=0")
        wait_replay_loaded(page)
        rows = page.locator("#hm-dev-console > li")
        assert rows.count() == 2
        assert page.locator("#hm-dev-console .hm-dev-level").all_text_contents() == ["log", "error"]
        assert page.locator("#hm-dev-console .hm-dev-message").first.text_content() == hostile
        assert page.locator("#hm-dev-console .hm-dev-stack").count() == 1  # the text one, shown as text
        page.click(".hm-dev-tab[data-pane=network]")
        assert page.locator("#hm-dev-network .hm-dev-status").all_text_contents() == ["opaque"]
        assert page.locator(".hm-devpanes img, .hm-devpanes a, .hm-devpanes script, .hm-devpanes b").count() == 0
        page.click("#hm-dev-network .hm-dev-row")
        assert page.evaluate("() => window.HM_CANARY") is None
        page.screenshot(path=str(artifacts / "devpanes" / "hostile.png"), full_page=True)
    finally:
        context.close()
