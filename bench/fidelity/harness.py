"""Records a scripted visit of a corpus page in real Chromium with the real tracker, replays it in the dashboard, and
compares live and replay screenshots at the visit's start and end.

The site is a plain static server on 127.0.0.1 that sends no CORS headers (as most sites), on the origin the
project allows; the dashboard is a real `hitmetrix serve` process. The replay is shot at 1:1: the player's
scaling is taken off and its iframe pinned to the page's top-left corner, in a page of the recorded viewport's size.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Request, Route, ViewportSize

from bench.fidelity.compare import Likeness, diff_png, likeness
from bench.fidelity.font import write_probe_font
from bench.fidelity.visits import Visit
from tests.e2e.dashboard import Member, demo_member, project_member, sign_in, wait_replay_loaded
from tests.support import ServerProcess, wait_for

PAGES = Path(__file__).resolve().parent / "pages"
VIEWPORT: ViewportSize = {"width": 1024, "height": 768}
SSIM_TARGET = 0.99
TRACKER_MARKER = "<!-- hitmetrix -->"
# The tag as the first thing in the head, without `async`: for a page whose scripts build stylesheets as it
# loads, so that the tracker sees them being made (tracker/src/css.ts watchSheets).
TRACKER_FIRST_MARKER = "<!-- hitmetrix first -->"
# Longest a replayed stylesheet may take to load before the screenshot is taken without it.
STYLESHEET_WAIT_MS = 5000
# Longest the server may take to capture a session's assets before the replay goes on without them.
ASSET_WAIT_S = 30


@dataclass
class Moment:
    name: str
    ts_ms: int  # the page's Date.now() just before its screenshot: the clock rrweb stamps events with
    live_png: bytes
    replay_png: bytes = b""
    likeness: Likeness | None = None


@dataclass
class PageResult:
    name: str
    known_gap: str
    session_id: str
    moments: list[Moment] = field(default_factory=list)
    replay_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(m.likeness is not None and m.likeness.ssim >= SSIM_TARGET for m in self.moments)

    def summary(self) -> dict[str, Any]:
        return {
            "page": self.name,
            "session_id": self.session_id,
            "passed": self.passed,
            "known_gap": self.known_gap,
            "replay_errors": self.replay_errors,
            **{
                f"{m.name}_{key}": getattr(m.likeness, key)
                for m in self.moments
                for key in ("ssim", "mismatch_ratio")
                if m.likeness is not None
            },
        }


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a page that leaves may drop its connections
            super().handle_error(request, client_address)


class Site:
    """The corpus served from a directory on 127.0.0.1, with the tracker tag in every page and no CORS headers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._httpd = _Server(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fidelity-site", daemon=True)
        self._thread.start()

    def publish(self, tracker_tag: str) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        shutil.copytree(PAGES, self.root)
        first_tag = tracker_tag.replace("<script async ", "<script ")
        for page in self.root.glob("*.html"):
            html = page.read_text().replace(TRACKER_FIRST_MARKER, first_tag)
            page.write_text(html.replace(TRACKER_MARKER, tracker_tag))
        write_probe_font(self.root / "fonts" / "probe.ttf")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


def recording_in(request: Request) -> list[dict[str, Any]]:
    """The rrweb events of a batch the tracker sends (fetch only: Playwright does not see beacons)."""
    if "/api/v1/batch" not in request.url or request.method != "POST":
        return []
    try:
        batch = json.loads(request.post_data_buffer or b"{}")
        return [e for c in batch.get("recording", []) for e in json.loads(gzip.decompress(base64.b64decode(c["data"])))]
    except (ValueError, KeyError, OSError):
        return []


def recorded_scroll(events: list[dict[str, Any]]) -> tuple[int, int] | None:
    """The document's scroll position as the recording has it so far (None before its full snapshot)."""
    position = None
    root_id = None
    for e in sorted(events, key=lambda e: e["timestamp"]):
        if e["type"] == 2:
            root_id = e["data"]["node"]["id"]
            offset = e["data"].get("initialOffset") or {}
            position = (round(offset.get("left", 0)), round(offset.get("top", 0)))
        elif e["type"] == 3 and e["data"].get("source") == 3 and e["data"].get("id") == root_id:
            position = (round(e["data"]["x"]), round(e["data"]["y"]))
    return position


def poll(page: Page, condition: Any, timeout_s: float, what: str) -> None:
    """Poll while Playwright dispatches the page's events (its sync API does so only inside its own calls)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        page.wait_for_timeout(50)


PIN_REPLAY_1_TO_1 = """() => {
  const replayer = window.hmReplay.player.getReplayer();
  const frame = replayer.iframe;
  replayer.wrapper.style.transform = 'none';
  for (const el of document.querySelectorAll('.replayer-mouse, .replayer-mouse-tail')) el.style.display = 'none';
  frame.style.cssText += ';position:fixed;left:0;top:0;margin:0;border:0;z-index:2147483647';
  const r = frame.getBoundingClientRect();
  return [r.x, r.y, r.width, r.height];
}"""

REPLAY_SETTLED = r"""async (waitMs) => {
  const doc = window.hmReplay.player.getReplayer().iframe.contentDocument;
  const sheets = () => Array.from(doc.querySelectorAll('link[rel~=stylesheet]')).every((l) => l.sheet);
  const until = Date.now() + waitMs;
  while (!sheets() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  await doc.fonts.ready;
  await Promise.all(Array.from(doc.images, (img) => img.decode().catch(() => null)));
  // A recorded canvas shows its pixels as a background image (dashboard/src/chunks.ts): decoded like the images.
  const backgrounds = Array.from(doc.querySelectorAll('canvas'), (c) => /url\("(.*)"\)/.exec(c.style.backgroundImage));
  await Promise.all(backgrounds.filter(Boolean).map((m) => {
    const img = new Image();
    img.src = m[1];
    return img.decode().catch(() => null);
  }));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return sheets();
}"""


class Fidelity:
    """A site, a Hitmetrix server whose project allows the site's origin, and a signed-in dashboard."""

    def __init__(self, browser: Browser, workdir: Path, artifacts: Path) -> None:
        self.browser = browser
        self.workdir = workdir
        self.artifacts = artifacts
        self.site: Site | None = None
        self.server: ServerProcess | None = None
        self.member: Member | None = None
        self.dashboard: BrowserContext | None = None

    def __enter__(self) -> Fidelity:
        self.site = Site(self.workdir / "site")
        data_dir = self.workdir / "data"
        viewer = demo_member(data_dir)
        self.member = project_member(data_dir, viewer, "fidelity", allowed_origins=self.site.url)
        self.server = ServerProcess(data_dir, demo=False).start()
        self.site.publish(f'<script async src="{self.server.url}/hm.js" data-key="{self.member.project_key}"></script>')
        self.dashboard = self.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        sign_in(self.dashboard.new_page(), self.server.url, self.member)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            if self.dashboard is not None:
                self.dashboard.close()
        if self.server is not None:
            self.server.stop()
        if self.site is not None:
            self.site.stop()

    def measure(self, visit: Visit) -> PageResult:
        session_id, moments = self.record(visit)
        result = PageResult(visit.name, visit.known_gap, session_id, moments)
        if not self.wait_assets(session_id):
            result.replay_errors.append(f"the server had not captured the page's assets within {ASSET_WAIT_S} s")
        self.replay(result)
        for m in moments:
            m.likeness = likeness(m.live_png, m.replay_png)
            stem = self.artifacts / f"{visit.name}-{m.name}"
            stem.with_name(stem.name + "-live.png").write_bytes(m.live_png)
            stem.with_name(stem.name + "-replay.png").write_bytes(m.replay_png)
            stem.with_name(stem.name + "-diff.png").write_bytes(diff_png(m.live_png, m.replay_png))
        return result

    def record(self, visit: Visit) -> tuple[str, list[Moment]]:
        assert self.site is not None and self.server is not None and self.member is not None
        context = self.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        page = context.new_page()
        sent: list[dict[str, Any]] = []

        def tap(route: Route) -> None:
            sent.extend(recording_in(route.request))
            route.continue_()

        # A route, not a request listener: only a routed request's body is always readable.
        page.route("**/api/v1/batch?*", tap)
        page.goto(f"{self.site.url}/{visit.path}")
        page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId()")
        session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
        moments = [self.moment(page, sent, "start")]
        visit.act(page)
        moments.append(self.moment(page, sent, "end"))
        assert page.evaluate("() => window.hitmetrix._errors") == 0, "the tracker swallowed errors"
        sent_after_end = self.sent_after(page, sent, moments[-1].ts_ms)
        page.goto("about:blank")
        context.close()
        self.wait_stored(session_id, sent_after_end)
        return session_id, moments

    def sent_after(self, page: Page, sent: list[dict[str, Any]], ts_ms: int) -> int:
        """Make the recorder emit an event after `ts_ms` (a mouse move, which changes nothing on the page) and
        wait until the tracker has sent it: the tracker sends in order, so everything up to `ts_ms` has left too.
        Returns that event's time."""
        page.mouse.move(3, 3)
        page.mouse.move(6, 6)

        def sent_later() -> bool:
            if any(e["timestamp"] > ts_ms for e in sent):
                return True
            page.evaluate("() => window.hitmetrix.flush()")
            return False

        poll(page, sent_later, 15, "the recorder's events after the visit's end")
        return max(e["timestamp"] for e in sent)

    def moment(self, page: Page, sent: list[dict[str, Any]], name: str) -> Moment:
        """A screenshot once the page is still and the recording has caught up with it (its scroll included)."""
        page.evaluate("() => document.fonts.ready.then(() => null)")

        def caught_up() -> bool:
            live = tuple(page.evaluate("() => [Math.round(scrollX), Math.round(scrollY)]"))
            if recorded_scroll(sent) == live:
                return True
            page.evaluate("() => window.hitmetrix.flush()")
            return False

        poll(page, caught_up, 15, f"the recording of {page.url} to catch up at its {name}")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        ts_ms = int(page.evaluate("() => Date.now()"))
        return Moment(name, ts_ms, page.screenshot(animations="disabled"))

    def wait_stored(self, session_id: str, until_ts: int) -> None:
        assert self.server is not None and self.member is not None
        server, path = self.server, f"/api/v1/projects/{self.member.project_id}/sessions/{session_id}"

        def stored() -> bool:
            r = server.api(path)
            chunks = r.json().get("recording_chunks", []) if r.status_code == 200 else []
            return bool(chunks) and max(c["last_ts"] for c in chunks) >= until_ts

        wait_for(stored, 60, 0.2, what=f"session {session_id}'s recording in the store")

    def wait_assets(self, session_id: str) -> bool:
        """Until the server has captured (or given up on) the stylesheets, fonts and images the recording names,
        so that the replay loads its own copies; False if it did not within the time allowed."""
        assert self.server is not None and self.member is not None
        server, path = self.server, f"/api/v1/projects/{self.member.project_id}/sessions/{session_id}/assets"

        def settled() -> bool:
            r = server.api(path)
            body = r.json() if r.status_code == 200 else {}
            return r.status_code == 200 and body.get("pending") == 0 and bool(body.get("assets") or body.get("failed"))

        try:
            wait_for(settled, ASSET_WAIT_S, 0.2, what=f"session {session_id}'s assets")
        except AssertionError:
            return False
        return True

    def replay(self, result: PageResult) -> None:
        """Each moment's screenshot, the replay paused there."""
        assert self.dashboard is not None and self.server is not None and self.member is not None
        page = self.dashboard.new_page()
        page.on("pageerror", lambda exc: result.replay_errors.append(str(exc)))
        page.goto(f"{self.server.url}/projects/{self.member.project_id}/sessions/{result.session_id}?t=0")
        wait_replay_loaded(page)
        start_ts = int(page.evaluate("() => window.hmReplay.player.getMetaData().startTime"))
        for m in result.moments:
            page.evaluate("(ms) => window.hmReplay.player.goto(ms, false)", max(0, m.ts_ms - start_ts))
            if not page.evaluate(REPLAY_SETTLED, STYLESHEET_WAIT_MS):
                result.replay_errors.append(f"{m.name}: a stylesheet of the replay did not load")
            rect = page.evaluate(PIN_REPLAY_1_TO_1)
            if rect != [0, 0, VIEWPORT["width"], VIEWPORT["height"]]:
                raise AssertionError(f"the replay iframe is at {rect}, not at 1:1 in the top-left corner")
            m.replay_png = page.screenshot(animations="disabled")
        page.close()
