"""Heatmaps from real behaviour in real Chromium: visitors on a responsive page of the test's own (one at 1280 px,
one at 375 px) click a button at known spots and scroll, recorded by the real tracker into a real server; the
heatmap page then replays the recorded page in its sandboxed iframe and draws each click on the element clicked,
at the recorded width, at another width where the layout moved the button (``at=375``), and in the mobile bucket;
scroll depth is drawn as bands. The tracker's wire (tapped) shows the per-pageview scroll reports the heatmap
needs: the last one of each pageview names it and its URL, also across an SPA navigation, and carries the width.
Screenshots in test-artifacts/heatmaps/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import StaticSite
from tests.e2e.dashboard import Member, demo_member, open_page
from tests.support import REPO, ServerProcess, wait_for

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Plans</title>
<script src="{server}/hm.js" data-key="{key}" data-api="{site}"></script>
<style>
body {{ margin: 0; font: 16px sans-serif; }}
header {{ display: flex; justify-content: space-between; align-items: center; padding: 20px 40px;
  background: #e0e7ff; }}
#cta {{ width: 240px; height: 60px; font-size: 18px; }}
main {{ padding: 40px; }}
.filler {{ height: 2400px; background: linear-gradient(#fff, #cbd5e1); }}
@media (max-width: 767px) {{
  header {{ flex-direction: column; align-items: stretch; padding: 10px; }}
  #cta {{ width: 100%; height: 80px; margin-top: 160px; }}
}}
</style></head>
<body>
<header><span id="logo">Acme</span><nav><a id="plans" href="#plans-table">Plans</a></nav>
<button id="cta" type="button">Start a free trial</button></header>
<main><h1>Plans for every team</h1><div class="filler" id="plans-table"></div></main>
</body></html>
"""
FRUSTRATING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Profile</title>
<script src="{server}/hm.js" data-key="{key}" data-api="{site}"></script>
<style>body {{ margin: 0; padding: 40px; font: 16px sans-serif; }}
button {{ width: 200px; height: 50px; margin: 20px; }}</style></head>
<body><h1>Ana, 31</h1><button id="like" type="button">Like</button><button id="more" type="button">Show more</button>
<ul id="list"></ul>
<script>
document.getElementById('more').addEventListener('click', () => {{
  document.getElementById('list').insertAdjacentHTML('beforeend', '<li>another photo</li>');
}});
</script>
</body></html>
"""
STATIC = REPO / "hitmetrix" / "web" / "static"
PLANS = "/plans.html"
# (viewport width, clicks on #cta as (x, y) within the button)
VISITORS = [(1280, [(20, 10), (200, 50), (120, 30), (220, 12)]), (375, [(40, 20), (300, 60)])]


@dataclass
class Recorded:
    server: ServerProcess
    site: StaticSite
    member: Member
    # Session id → how deep its page was seen (% of the page's height), measured in the page before it was left.
    depths: dict[str, int] = field(default_factory=dict)
    session_at: dict[int, str] = field(default_factory=dict)  # viewport width → the session of that visitor

    def wire(self, page: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(session id, event) of every event the tracker sent (on ``page`` only, if given), once each."""
        with self.site.lock:
            posts = list(self.site.posts)
        seen: set[str] = set()
        out = []
        for body in posts:
            batch = json.loads(body)
            for e in batch.get("events", []):
                if e["id"] not in seen and (not page or e["url"].endswith(page)):
                    seen.add(e["id"])
                    out.append((batch["session_id"], e))
        return out

    def heatmap(self, **params: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.server.url}/api/v1/projects/{self.member.project_id}/heatmaps",
                           params={"page": "/plans.html", **params},
                           headers={"Authorization": f"Bearer {self.server.admin_token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()


def visit(browser: Browser, rec: Recorded, width: int, clicks: list[tuple[int, int]]) -> str:
    context = browser.new_context(viewport={"width": width, "height": 700})
    try:
        page = context.new_page()
        page.goto(f"{rec.site.url}/plans.html")
        page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId()", timeout=15_000)
        sid = str(page.evaluate("() => window.hitmetrix.sessionId()"))
        for x, y in clicks:  # each more than 30 px from the others: no rage burst
            page.click("#cta", position={"x": x, "y": y})
        page.evaluate("() => window.scrollTo(0, 900)")
        page.wait_for_function("() => window.scrollY >= 900")
        rec.depths[sid] = page.evaluate("""() => Math.round(100 * (scrollY + innerHeight) /
            Math.max(document.documentElement.scrollHeight, document.body.scrollHeight))""")
        page.goto("about:blank")  # pagehide: the last scroll report and the rest leave by beacon
        return sid
    finally:
        context.close()


@pytest.fixture(scope="module")
def recorded(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    base = tmp_path_factory.mktemp("heatmaps")
    member = demo_member(base / "data", "heatmaps")
    server = ServerProcess(base / "data", demo=False).start()
    (base / "site").mkdir()
    site = StaticSite(base / "site", forward_to=server.url)
    for name in ("plans.html", "spa.html"):  # the SPA test's own page keeps its visit out of /plans.html
        site.write(name, PAGE.format(server=server.url, key=member.project_key, site=site.url))
    site.write("frustrated.html", FRUSTRATING.format(server=server.url, key=member.project_key, site=site.url))
    # The tap stands where the tracker's API is: it serves the frustration chunk and the tracker config too.
    (base / "site" / "static").mkdir()
    (base / "site" / "static" / "hm-frustration.js").write_bytes((STATIC / "hm-frustration.js").read_bytes())
    (base / "site" / "api" / "v1").mkdir(parents=True)
    (base / "site" / "api" / "v1" / "tracker-config").write_text("{}")
    rec = Recorded(server, site, member)
    try:
        for width, clicks in VISITORS:
            rec.session_at[width] = visit(browser, rec, width, clicks)

        def stored() -> bool:
            desktop, mobile = rec.heatmap(), rec.heatmap(width="mobile")
            return (desktop["totals"]["clicks"] == len(VISITORS[0][1]) and bool(desktop["backdrops"])
                    and desktop["scroll"]["pageviews"] == 1 and mobile["totals"]["clicks"] == len(VISITORS[1][1])
                    and bool(mobile["backdrops"]))

        wait_for(stored, 60, 0.5, what="the visits' clicks, scroll depth and recordings in the heatmap")
        yield rec
        assert server.new_tracebacks() == []
    finally:
        site.stop()
        server.stop()


def open_heatmap(browser: Browser, rec: Recorded, viewer_width: int, **params: str) -> tuple[Page, list[str]]:
    page, problems = open_page(browser, rec, viewer_width)
    query = urlencode({"page": "/plans.html", **params})
    page.goto(f"{rec.server.url}/projects/{rec.member.project_id}/heatmaps?{query}")
    page.wait_for_function("() => window.hmHeatmap && (window.hmHeatmap.ready || window.hmHeatmap.error)",
                           timeout=30_000)
    assert page.evaluate("() => window.hmHeatmap.error") is None
    return page, problems


# The #cta box in the viewer's coordinates (the replayed page is scaled into its column), and the centre of
# every dot drawn for #cta, with how it was placed.
GEOMETRY = """() => {
  const iframe = document.querySelector('.hm-hm-page iframe');
  const outer = iframe.getBoundingClientRect();
  const s = window.hmHeatmap.scale;
  const r = iframe.contentDocument.querySelector('#cta').getBoundingClientRect();
  const box = {left: outer.left + r.left * s, top: outer.top + r.top * s, width: r.width * s, height: r.height * s,
               inFrame: [r.left, r.top, r.width, r.height]};
  const dots = [...document.querySelectorAll('.hm-hm-dot[data-selector="#cta"]')].map((d) => {
    const b = d.getBoundingClientRect();
    return {x: (b.left + b.right) / 2, y: (b.top + b.bottom) / 2, placed: d.dataset.placed};
  });
  return {box, dots, width: iframe.contentDocument.documentElement.clientWidth};
}"""


def assert_on_the_button(page: Page, rec: Recorded, recorded_width: int) -> dict:
    """Every click of the visitor at ``recorded_width`` is drawn on #cta, at the fraction of its box where the
    tracker saw it land."""
    geometry = page.evaluate(GEOMETRY)
    box, dots = geometry["box"], geometry["dots"]
    wanted = sorted((e["props"]["fx"], e["props"]["fy"]) for _, e in rec.wire(PLANS)
                    if e["type"] == "click" and e["vw"] == recorded_width)
    assert len(dots) == len(wanted) and all(d["placed"] == "element" for d in dots), dots
    got = sorted(((d["x"] - box["left"]) / box["width"], (d["y"] - box["top"]) / box["height"]) for d in dots)
    for (gx, gy), (wx, wy) in zip(got, wanted, strict=True):
        assert 0 <= gx <= 1 and 0 <= gy <= 1, (got, box)
        assert abs(gx - wx) < 0.02 and abs(gy - wy) < 0.02, (got, wanted)
    return geometry


def test_the_tracker_sends_what_the_heatmap_needs(recorded: Recorded) -> None:
    events = recorded.wire(PLANS)
    clicks = [e for _, e in events if e["type"] == "click"]
    assert len(clicks) == sum(len(c) for _, c in VISITORS)
    for e in clicks:
        assert e["selector"] == "#cta" and e["vw"] in (1280, 375) and e["y"] > 0
        p = e["props"]
        assert {"fx", "fy", "ew", "eh", "dw", "dh"} <= set(p) and 0 <= p["fx"] <= 1 and p["dh"] > 2400
        assert abs(p["fx"] * p["ew"] - p["ox"]) <= 1 and abs(p["fy"] * p["eh"] - p["oy"]) <= 1
    for width, spots in VISITORS:
        # Where Playwright clicked (from the padding box) is where the tracker says it landed (from the border box).
        seen = sorted((e["props"]["ox"], e["props"]["oy"]) for e in clicks if e["vw"] == width)
        assert all(abs(ox - x) <= 3 and abs(oy - y) <= 3 for (ox, oy), (x, y) in zip(seen, sorted(spots), strict=True))
    for sid, width in ((sid, e["vw"]) for sid, e in events if e["type"] == "pageview"):
        views = [e for s, e in events if s == sid and e["type"] == "pageview"]
        scrolls = [e for s, e in events if s == sid and e["type"] == "scroll"]
        assert scrolls and all(e["props"]["pv"] == views[0]["id"] and e["vw"] == width for e in scrolls)
        # The last report (at pagehide) has the deepest scroll of the pageview: it left at scrollY 900.
        assert scrolls[-1]["props"]["depth"] == max(e["props"]["depth"] for e in scrolls) == recorded.depths[sid]
        assert 20 < recorded.depths[sid] < 100


def test_scroll_reports_name_their_pageview_across_an_spa_navigation(browser: Browser, recorded: Recorded) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    try:
        page = context.new_page()
        page.goto(f"{recorded.site.url}/spa.html")
        page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId()", timeout=15_000)
        sid = str(page.evaluate("() => window.hitmetrix.sessionId()"))
        page.evaluate("() => window.scrollTo(0, 600)")
        page.wait_for_function("() => window.scrollY >= 600")
        page.evaluate("() => history.pushState({}, '', '/spa/team')")  # leaves the first pageview at once
        page.goto("about:blank")
    finally:
        context.close()

    def reports() -> list[dict[str, Any]] | None:
        mine = [e for s, e in recorded.wire() if s == sid]
        views = [e for e in mine if e["type"] == "pageview"]
        scrolls = [e for e in mine if e["type"] == "scroll"]
        done = len(views) == 2 and {e["props"]["pv"] for e in scrolls} == {v["id"] for v in views}
        return mine if done else None

    mine = wait_for(reports, 30, 0.2, what="a scroll report of each pageview")
    first, second = (e for e in mine if e["type"] == "pageview")
    assert second["url"].endswith("/spa/team")
    for view in (first, second):
        last = [e for e in mine if e["type"] == "scroll" and e["props"]["pv"] == view["id"]][-1]
        assert last["url"] == view["url"] and last["vw"] == 1100
    first_depth = max(e["props"]["depth"] for e in mine if e["type"] == "scroll" and e["props"]["pv"] == first["id"])
    assert first_depth > 30, "the scroll before the navigation counts for the first page"


def test_clicks_land_on_the_button_at_the_recorded_width(browser: Browser, recorded: Recorded, artifacts: Path) -> None:
    page, problems = open_heatmap(browser, recorded, 1280)
    state = page.evaluate("() => window.hmHeatmap")
    assert state["backdrop"] == "replay" and state["widthPx"] == 1280 and state["scale"] < 1
    assert page.frame_locator(".hm-hm-page iframe").locator("h1").inner_text() == "Plans for every team"
    assert_on_the_button(page, recorded, 1280)
    out = artifacts / "heatmaps"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "desktop-1280.png"), full_page=True)
    assert page.locator(".hm-hm-elements tr[data-selector='#cta']").count() == 1
    # A filter no visit passes (they came from 127.0.0.1: no country) leaves nothing to draw, and says so.
    page.goto(page.url + "&country=FR")
    page.wait_for_function("() => window.hmHeatmap && window.hmHeatmap.ready", timeout=30_000)
    assert page.evaluate("() => window.hmHeatmap.dots") == 0
    assert page.locator("[data-filter='country']").count() == 1, "the filter chip"
    assert page.locator(".hm-hm-summary strong").first.inner_text() == "0"
    assert problems == [], problems


def test_clicks_land_on_the_button_where_another_width_moved_it(
    browser: Browser, recorded: Recorded, artifacts: Path
) -> None:
    wide, _ = open_heatmap(browser, recorded, 1400)
    wide_box = wide.evaluate(GEOMETRY)["box"]["inFrame"]
    page, problems = open_heatmap(browser, recorded, 1400, at="375")
    assert page.evaluate("() => window.hmHeatmap.widthPx") == 375
    geometry = page.evaluate(GEOMETRY)
    assert geometry["width"] == 375
    narrow_box = geometry["box"]["inFrame"]
    assert narrow_box[1] > wide_box[1] + 100 and narrow_box[2] > 300, "the mobile layout moved and widened #cta"
    # Clicked on the 240 px wide button at 1280 px; drawn at the same fractions of the 355 px wide one.
    assert_on_the_button(page, recorded, 1280)
    page.screenshot(path=str(artifacts / "heatmaps" / "desktop-clicks-at-375.png"), full_page=True)
    assert problems == [], problems


def test_the_mobile_bucket_replays_the_mobile_visit(browser: Browser, recorded: Recorded, artifacts: Path) -> None:
    page, problems = open_heatmap(browser, recorded, 375, width="mobile")
    assert page.evaluate("() => [window.hmHeatmap.backdrop, window.hmHeatmap.widthPx]") == ["replay", 375]
    assert_on_the_button(page, recorded, 375)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    page.screenshot(path=str(artifacts / "heatmaps" / "mobile-375.png"), full_page=True)
    assert problems == [], problems


def test_scroll_depth_is_drawn_as_bands(browser: Browser, recorded: Recorded, artifacts: Path) -> None:
    answer = recorded.heatmap(kind="scroll")
    page, problems = open_heatmap(browser, recorded, 1280, kind="scroll")
    assert page.evaluate("() => window.hmHeatmap.bands") == 20
    labels = page.locator(".hm-hm-band-label").all_inner_texts()
    assert labels[0] == "100 % reached 0 %"
    deepest = max(r["depth"] for r in answer["scroll"]["reached"] if r["pageviews"])
    assert answer["scroll"]["average_depth"] == recorded.depths[recorded.session_at[1280]] and deepest < 100
    assert f"100 % reached {deepest // 10 * 10} %" in labels, (labels, deepest)
    assert page.locator(".hm-hm-dot").count() == 0
    page.screenshot(path=str(artifacts / "heatmaps" / "scroll-1280.png"), full_page=True)
    assert problems == [], problems


def test_signing_out_from_the_heatmap_page(browser: Browser, recorded: Recorded) -> None:
    """Served with the replay page's no-referrer policy, the page's sign-out form still sends the real Origin."""
    page, problems = open_heatmap(browser, recorded, 1280)
    sent_origins: list[str | None] = []
    page.on("request", lambda r: sent_origins.append(r.header_value("origin")) if r.url.endswith("/logout") else None)
    page.click("form[action='/logout'] button[type=submit]")
    page.wait_for_url(re.compile(r"/login"))
    assert sent_origins == [recorded.server.url]
    assert problems == [], problems


def test_rage_and_dead_clicks_land_on_their_buttons(browser: Browser, recorded: Recorded, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 700})
    try:
        visitor = context.new_page()
        visitor.goto(f"{recorded.site.url}/frustrated.html")
        visitor.wait_for_function("() => !!window.__hmFrustration", timeout=15_000)
        for _ in range(3):  # a burst on the spot: a rage click (the button answers, so it is not dead)
            visitor.click("#more", position={"x": 100, "y": 25}, delay=0)
        visitor.click("#like", position={"x": 30, "y": 10})  # nothing happens: a dead click
        visitor.wait_for_function("() => window.__hmFrustration.checked >= 4", timeout=15_000)
        visitor.goto("about:blank")
    finally:
        context.close()
    query = {"page": "/frustrated.html"}

    def flagged() -> bool:
        answer = recorded.heatmap(**query)
        return answer["totals"]["rage_clicks"] == 1 and answer["totals"]["dead_clicks"] == 1

    wait_for(flagged, 60, 0.5, what="the rage and the dead click in the heatmap")
    for kind, selector in (("rage", "#more"), ("dead", "#like")):
        page, problems = open_heatmap(browser, recorded, 1280, page="/frustrated.html", kind=kind)
        drawn = page.eval_on_selector_all(".hm-hm-dot", "ds => ds.map(d => [d.dataset.selector, d.dataset.placed])")
        assert drawn == [[selector, "element"]], (kind, drawn)
        inside = page.evaluate("""(selector) => {
          const iframe = document.querySelector('.hm-hm-page iframe');
          const outer = iframe.getBoundingClientRect(), s = window.hmHeatmap.scale;
          const r = iframe.contentDocument.querySelector(selector).getBoundingClientRect();
          const d = document.querySelector('.hm-hm-dot').getBoundingClientRect();
          const x = (d.left + d.right) / 2, y = (d.top + d.bottom) / 2;
          return x > outer.left + r.left * s && x < outer.left + r.right * s
              && y > outer.top + r.top * s && y < outer.top + r.bottom * s;
        }""", selector)
        assert inside, kind
        page.screenshot(path=str(artifacts / "heatmaps" / f"{kind}-1280.png"), full_page=True)
        assert problems == [], problems
