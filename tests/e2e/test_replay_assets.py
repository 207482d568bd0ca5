"""Asset capture end to end: a real server captures a site's stylesheet, web font and images, and Chromium
replays them from the dashboard.

The site runs on 127.0.0.1 (its own origin, the project's allowed origin) and sends no CORS headers, like most
sites: a web font loaded from it into the dashboard's replay fails. A forged recording of one of its pages (what
rrweb writes: a linked stylesheet, a `<style>`, images) is sent to the capture API; the server's asset worker
fetches what it references (the stylesheet's font and imports too), stores each content once, and serves the
session's asset map. In Chromium the replay then loads the font from the dashboard (it renders), the images
too, and shows a notice for the assets it could not capture, which it loads from the site (and the font of
those fails, for want of CORS: the control). Hostile cases: a "stylesheet" that is an HTML page with script,
an SVG image with script, a captured stylesheet that names other hosts, and a forged asset map: none may make
the viewer's browser reach another origin or run script. Every host name but 127.0.0.1 resolves to a listener
(`--host-resolver-rules`) that must see nothing.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from playwright.sync_api import Browser, Page, Request, sync_playwright

from tests.assets.rrweb import element, snapshot, text
from tests.assets.site import Site
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.dashboard import Member, demo_member, forge_recording, project_member, sign_in, wait_replay_loaded
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"
PROBE_FAMILY = "HM Asset Probe"
LIVE_FAMILY = "HM Live Only"
FETCHER = "Hitmetrix-AssetFetcher"


def probe_font(family: str) -> bytes:
    """A TrueType font of wide bars (fontTools): text in it is plainly not in a system font."""
    codes = list(range(32, 127))
    names = {code: f"g{code}" for code in codes}
    glyphs: dict[str, Any] = {".notdef": TTGlyphPen(None).glyph()}
    for code in codes:
        pen = TTGlyphPen(None)
        if code != 32:
            pen.moveTo((50, 0))
            pen.lineTo((50, 700))
            pen.lineTo((850, 700))
            pen.lineTo((850, 0))
            pen.closePath()
        glyphs[names[code]] = pen.glyph()
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(list(glyphs))
    fb.setupCharacterMap(names)
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({name: (900, 0) for name in glyphs})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    out = BytesIO()
    fb.save(out)
    return out.getvalue()


def png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x30\x90\xd0\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


LOGO = png(7, 5)
SITE_CSS = (
    "@import 'theme.css';\n"
    f"@font-face {{ font-family: '{PROBE_FAMILY}'; src: url(../fonts/probe.ttf) format('truetype'); }}\n"
    f"@font-face {{ font-family: '{LIVE_FAMILY}'; src: url(/fonts/live-only.ttf) format('truetype'); }}\n"
    "body { margin: 0; font-size: 20px }\n"
)
THEME_CSS = ".banner { width: 40px; height: 20px; background: url(/img/banner.png) }\n"
SVG_WITH_SCRIPT = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9" onload="new Image().src=\'/canary-hit-onload\'">'
    "<script>new Image().src = '/canary-hit-svg'; fetch('/canary-hit-svg-fetch')</script>"
    '<rect width="9" height="9" fill="green"/></svg>'
)
# Stored as it came (it is CSS); the dashboard must serve it with every foreign URL gone.
NAMES_HOSTS_CSS = (
    "@import url(http://import.evil.test/i.css);\n"
    ".e1 { width: 5px; height: 5px; background: \\75 rl(http://escaped.evil.test/x.png) }\n"
    ".e2 { width: 5px; height: 5px; background: url(//schemeless.evil.test/y.png) }\n"
    ".e3 { width: 5px; height: 5px; background: image-set('https://imageset.evil.test/z.png' 1x) }\n"
    ".e4 { width: 5px; height: 5px; background: url(/img/banner.png) }\n"
)


@dataclass
class World:
    server: ServerProcess
    member: Member
    site: Site
    evil: Site
    browser: Browser
    data_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    site, evil = Site(), Site()
    site.add("/css/site.css", SITE_CSS, "text/css")
    site.add("/css/theme.css", THEME_CSS, "text/css")
    site.add("/fonts/probe.ttf", probe_font(PROBE_FAMILY), "font/ttf")
    site.add("/fonts/live-only.ttf", probe_font(LIVE_FAMILY), "font/ttf", browsers_only=True)
    site.add("/img/logo.png", LOGO, "image/png")
    site.add("/img/banner.png", LOGO, "image/png")  # the same bytes at another URL: one file
    site.add("/evil.css", "<!DOCTYPE html><script>new Image().src='/canary-hit-css'</script>", "text/css")
    site.add("/img/trick.svg", SVG_WITH_SCRIPT, "image/svg+xml")
    site.add("/css/names-hosts.css", NAMES_HOSTS_CSS, "text/css")
    data_dir = tmp_path_factory.mktemp("replay-assets") / "data"
    member = project_member(data_dir, demo_member(data_dir), "site", allowed_origins=site.url)
    server = ServerProcess(data_dir, demo=False).start()
    rules = f"MAP * 127.0.0.1:{evil.port}, EXCLUDE 127.0.0.1, EXCLUDE localhost"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"]
            )
            yield World(server, member, site, evil, browser, data_dir)
            browser.close()
    finally:
        server.stop()
        site.close()
        evil.close()


def page_recording(site: Site, *body: Any, head: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    start_ms = int(time.time() * 1000) - 5000
    events = snapshot(*body, head=head, page=f"{site.url}/docs/index.html", start_ms=start_ms)
    events.append(
        {
            "type": 3,
            "timestamp": start_ms + 1500,
            "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": 4, "timeOffset": 0}]},
        }
    )
    return events


def site_page(site: Site) -> list[dict[str, Any]]:
    return page_recording(
        site,
        element(10, "h1", {}, text(11, "Asset capture")),
        element(
            12,
            "p",
            {"id": "probe", "style": f"font-family: '{PROBE_FAMILY}'; display: inline-block"},
            text(13, "Probe text"),
        ),
        element(
            14,
            "p",
            {"id": "live", "style": f"font-family: '{LIVE_FAMILY}'; display: inline-block"},
            text(15, "Live text"),
        ),
        element(16, "img", {"id": "logo", "src": "/img/logo.png"}),
        element(17, "img", {"id": "missing", "src": "../img/missing.png"}),
        element(18, "div", {"class": "banner", "id": "banner"}),
        head=(element(5, "link", {"rel": "stylesheet", "href": f"{site.url}/css/site.css"}),),
    )


def asset_map(world: World, session_id: str) -> dict[str, Any]:
    answer = world.server.api(f"/api/v1/projects/{world.member.project_id}/sessions/{session_id}/assets")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


def settled_map(world: World, session_id: str, captured: int, failed: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body = asset_map(world, session_id)
        done = body["pending"] == 0 and len(body["assets"]) >= captured and len(body["failed"]) >= failed
        return body if done else None

    found: dict[str, Any] = wait_for(settled, 60, 0.2, what=f"the assets of session {session_id}")
    return found


def blob_files(world: World) -> list[Path]:
    return [p for p in (world.data_dir / "assets" / "blobs").glob("*/*") if ".tmp" not in p.name]


def open_replay(world: World, session_id: str) -> tuple[Page, list[Request], list[str]]:
    context = world.browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requests: list[Request] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    sign_in(page, world.server.url, world.member)
    page.goto(f"{world.server.url}/projects/{world.member.project_id}/sessions/{session_id}")
    wait_replay_loaded(page)
    return page, requests, problems


def frame_eval(page: Page, script: str) -> Any:
    """Evaluate `script` (an async function of the replay document) from the dashboard page."""
    return page.evaluate(f"async () => ({script})(document.querySelector('{REPLAY_FRAME}').contentDocument)")


FONT_STATES = """async (doc) => {
  await doc.fonts.ready;
  return Object.fromEntries([...doc.fonts].map((f) => [f.family.replace(/"/g, ''), f.status]));
}"""


def test_assets_are_captured_once_and_the_map_is_served(world: World) -> None:
    site, pid = world.site, world.member.project_id
    session_id = forge_recording(world.server, world.member, site_page(site), f"{site.url}/docs/index.html")
    found = settled_map(world, session_id, captured=5, failed=2)
    base = f"/projects/{pid}/assets/"
    assert sorted(found["assets"]) == sorted(
        f"{site.url}{p}"
        for p in ("/css/site.css", "/css/theme.css", "/fonts/probe.ttf", "/img/logo.png", "/img/banner.png")
    )
    assert all(path.startswith(base) and len(path) == len(base) + 64 for path in found["assets"].values())
    assert found["assets"][f"{site.url}/img/logo.png"] == found["assets"][f"{site.url}/img/banner.png"]
    reasons = {f["url"]: f["reason"] for f in found["failed"]}
    assert reasons == {f"{site.url}/img/missing.png": "HTTP 404", f"{site.url}/fonts/live-only.ttf": "HTTP 403"}
    fetched = ["/css/site.css", "/css/theme.css", "/fonts/probe.ttf", "/img/logo.png", "/img/banner.png"]
    assert {path: site.hits[path] for path in fetched} == dict.fromkeys(fetched, 1)
    assert len(blob_files(world)) == 4, "css, theme, font, and one file for the two identical images"

    # Another visit to the same page: the map is served from what was captured, nothing is fetched again.
    again = forge_recording(world.server, world.member, site_page(site), f"{site.url}/docs/index.html")
    assert settled_map(world, again, captured=5, failed=2)["assets"] == found["assets"]
    assert {path: site.hits[path] for path in fetched} == dict.fromkeys(fetched, 1)
    assert len(blob_files(world)) == 4
    assert world.evil.requests == []


def test_the_replay_loads_the_font_from_the_dashboard_and_says_what_is_missing(world: World, artifacts: Path) -> None:
    site = world.site
    session_id = forge_recording(world.server, world.member, site_page(site), f"{site.url}/docs/index.html")
    found = settled_map(world, session_id, captured=5, failed=2)
    hits_before, first_request = dict(site.hits), len(site.requests)
    page, requests, problems = open_replay(world, session_id)
    fonts = wait_for(lambda: frame_eval(page, FONT_STATES), 30, 0.2, what="the replay's fonts to settle")
    assert fonts[PROBE_FAMILY] == "loaded", fonts
    assert fonts[LIVE_FAMILY] == "error", "the control: a font from the site itself fails without CORS"
    font_asset = world.server.url + found["assets"][f"{site.url}/fonts/probe.ttf"]
    assert font_asset in [r.url for r in requests], "Chromium loaded the font from the dashboard"
    assert site.hits["/fonts/probe.ttf"] == hits_before["/fonts/probe.ttf"], "not from the site"
    logo = page.frame_locator(REPLAY_FRAME).locator("#logo")
    logo.evaluate("img => img.decode()")
    assert logo.evaluate("img => [img.naturalWidth, img.currentSrc]") == [
        7,
        world.server.url + found["assets"][f"{site.url}/img/logo.png"],
    ]
    note = page.locator(".hm-asset-note")
    assert note.text_content() == (
        "2 assets could not be loaded from the site's server; the replay uses the live site for them."
    )
    # The fallbacks are loaded from the site, and name no one.
    wait_for(lambda: site.hits["/img/missing.png"] > hits_before["/img/missing.png"], 20, what="the fallback image")
    since = site.requests[first_request:]
    browser_asks = [r for r in since if not r.headers.get("user-agent", "").startswith(FETCHER)]
    asked = {r.path for r in browser_asks}
    assert {"/img/missing.png", "/fonts/live-only.ttf"} <= asked, "from the page, and from the served stylesheet"
    assert all("referer" not in r.headers for r in browser_asks), browser_asks
    assert page.evaluate("() => window.hmReplay.assetMap.failed.length") == 2
    page.screenshot(path=str(artifacts / "replay-assets-font.png"))
    assert problems == [] and world.evil.requests == []
    page.context.close()


def test_a_visit_recorded_by_the_tracker_replays_with_the_sites_font(world: World, artifacts: Path) -> None:
    """The real tracker (rrweb inlines the site's stylesheet as `_cssText`): its font is captured and used."""
    site = world.site
    site.add(
        "/tracked.html",
        "<!doctype html><html><head><meta charset=utf-8><link rel=stylesheet href=/css/site.css>"
        f'<script src="{world.server.url}/hm.js" data-key="{world.member.project_key}"></script></head>'
        f"<body><h1>Tracked</h1><p id=probe style=\"font-family: '{PROBE_FAMILY}'\">Probe text</p>"
        "<img id=logo src=/img/logo.png><div class=banner></div></body></html>",
        "text/html; charset=utf-8",
    )
    context = world.browser.new_context(viewport={"width": 1000, "height": 700})
    live = context.new_page()
    live.goto(f"{site.url}/tracked.html")
    live.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    live.evaluate("() => document.fonts.ready")
    assert live.evaluate(f"() => document.fonts.check(\"20px '{PROBE_FAMILY}'\")"), "the live page has its font"
    session_id = live.evaluate("() => window.hitmetrix.sessionId()")
    live.mouse.move(50, 50)
    live.evaluate("() => window.hitmetrix.flush()")

    def recorded() -> bool:
        answer = world.server.api(f"/api/v1/projects/{world.member.project_id}/sessions/{session_id}")
        return answer.status_code == 200 and bool(answer.json()["recording_chunks"])

    wait_for(recorded, 30, 0.2, what="the tracked visit in the store")
    context.close()
    found = settled_map(world, session_id, captured=3, failed=0)
    assert f"{site.url}/fonts/probe.ttf" in found["assets"], found
    page, requests, problems = open_replay(world, session_id)
    fonts = wait_for(lambda: frame_eval(page, FONT_STATES), 30, 0.2, what="the replay's fonts to settle")
    assert fonts[PROBE_FAMILY] == "loaded", fonts
    assert world.server.url + found["assets"][f"{site.url}/fonts/probe.ttf"] in [r.url for r in requests]
    page.screenshot(path=str(artifacts / "replay-assets-tracked.png"))
    assert problems == [] and world.evil.requests == []
    page.context.close()


def test_asset_urls_reach_no_other_origin_and_run_nothing(world: World, artifacts: Path) -> None:
    site = world.site
    events = page_recording(
        site,
        element(10, "img", {"id": "svg-img", "src": "/img/trick.svg"}),
        element(11, "object", {"data": "/img/trick.svg", "type": "image/svg+xml"}),
        element(12, "iframe", {"src": "/img/trick.svg"}),
        element(13, "embed", {"src": "/img/trick.svg"}),
        element(14, "div", {"id": "svg-bg", "style": "width:9px;height:9px;background:url(/img/trick.svg)"}),
        *[element(20 + i, "div", {"class": f"e{i + 1}"}) for i in range(4)],
        head=(
            element(5, "link", {"rel": "stylesheet", "href": f"{site.url}/evil.css"}),
            element(6, "link", {"rel": "stylesheet", "href": f"{site.url}/css/names-hosts.css"}),
        ),
    )
    session_id = forge_recording(world.server, world.member, events, f"{site.url}/docs/index.html")
    found = settled_map(world, session_id, captured=3, failed=1)
    reasons = {f["url"]: f["reason"] for f in found["failed"]}
    assert reasons[f"{site.url}/evil.css"].startswith("the body is an HTML page"), reasons
    assert f"{site.url}/evil.css" not in found["assets"]
    assert not any(b"<!DOCTYPE html>" in p.read_bytes() for p in blob_files(world)), "never stored"
    svg_asset = world.server.url + found["assets"][f"{site.url}/img/trick.svg"]
    css_asset = world.server.url + found["assets"][f"{site.url}/css/names-hosts.css"]

    page, requests, problems = open_replay(world, session_id)
    frame = page.frame_locator(REPLAY_FRAME)
    svg = frame.locator("#svg-img")
    svg.evaluate("img => img.decode()")
    assert svg.evaluate("img => [img.naturalWidth, img.currentSrc]") == [9, svg_asset], "an image, from the dashboard"
    assert frame.locator("object").evaluate("o => o.getAttribute('data')") is None
    assert frame.locator("iframe").evaluate("f => f.getAttribute('src')") is None
    served = page.request.get(css_asset)
    assert served.ok and "evil.test" not in served.text(), served.text()
    banner = world.server.url + found["assets"][f"{site.url}/img/banner.png"]
    wait_for(lambda: banner in [r.url for r in requests], 20, what="the captured stylesheet's image")
    assert site.hits["/canary-hit-svg"] == site.hits["/canary-hit-svg-fetch"] == 0
    assert site.hits["/canary-hit-onload"] == site.hits["/canary-hit-css"] == 0
    page.wait_for_load_state("networkidle")
    allowed = (world.server.url + "/", site.url + "/")
    assert [r.url for r in requests if not r.url.startswith((*allowed, "data:", "about:"))] == []
    assert world.evil.requests == [], [r.path for r in world.evil.requests]

    # Opened on its own, a captured SVG is a download, not a document: its script never runs.
    with page.expect_download() as download:
        page.evaluate("(url) => { location.href = url; }", svg_asset)
    assert download.value.url == svg_asset
    assert site.hits["/canary-hit-svg"] == 0
    page.screenshot(path=str(artifacts / "replay-assets-hostile.png"))
    assert problems == [], problems
    page.context.close()


def test_a_forged_asset_map_cannot_point_the_replay_elsewhere(world: World) -> None:
    """The sanitiser takes only `/projects/N/assets/SHA256` paths of the dashboard from the map."""
    site = world.site
    session_id = forge_recording(world.server, world.member, site_page(site), f"{site.url}/docs/index.html")
    settled_map(world, session_id, captured=5, failed=2)
    page, _, problems = open_replay(world, session_id)
    sha = "a" * 64
    forged = {
        f"{site.url}/a.png": "https://evil.test/a.png",
        f"{site.url}/b.png": "//evil.test/b.png",
        f"{site.url}/c.png": f"/projects/1/assets/{sha}/../../../evil",
        f"{site.url}/d.png": "javascript:alert(1)",
        f"{site.url}/e.png": f"/projects/1/assets/{sha}",
        "https://evil.test/f.png": f"/projects/1/assets/{sha}",
    }
    events = page_recording(
        site,
        *[element(10 + i, "img", {"src": f"{site.url}/{name}.png"}) for i, name in enumerate("abcde")],
        element(20, "img", {"src": "https://evil.test/f.png"}),
        element(21, "div", {"style": f"background: url({site.url}/a.png)"}),
    )
    clean = page.evaluate(
        "([events, origins, map]) => window.hmReplay.sanitiseEvents(events, origins, map)",
        [events, [world.server.url, site.url], forged],
    )
    body = clean[1]["data"]["node"]["childNodes"][0]["childNodes"][1]["childNodes"]
    sources = [node["attributes"].get("src") for node in body[:6]]
    assert sources == [
        f"{site.url}/a.png",
        f"{site.url}/b.png",
        f"{site.url}/c.png",
        f"{site.url}/d.png",
        f"{world.server.url}/projects/1/assets/{sha}",
        f"{world.server.url}/projects/1/assets/{sha}",
    ], "forged values are ignored; a dashboard asset path is safe whatever URL it stands for"
    assert "evil.test" not in body[6]["attributes"]["style"]
    assert problems == []
    page.context.close()
