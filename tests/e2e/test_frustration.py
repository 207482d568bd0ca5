"""Frustration signals and heatmap click geometry from real behaviour in real Chromium: on a site of the test's own,
one visitor (one session each) rage-clicks, clicks a dead button, clicks a button that throws, follows a link and
comes straight back, thrashes the mouse, scrolls up and down; a calm visitor does none of that. What the tracker
sends (tapped on the wire by a proxy in front of a real Hitmetrix server) is read back through
hitmetrix.analytics.frustration: each signal is raised for its session, the calm session raises none, and the
clicks' offsets put them back on the element clicked, also at another page width.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from hitmetrix.analytics.frustration import SIGNALS, SessionFrustration, session_frustration
from tests.e2e.conftest import StaticSite
from tests.e2e.dashboard import demo_member
from tests.e2e.test_devpanes import TappingProxy
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script src="{proxy}/hm.js" data-key="{key}"></script>
<style>body {{ font: 16px sans-serif; margin: 0 8vw; }} button {{ margin: 8px; padding: 10px 24px; }}
#photo {{ width: 40%; height: 180px; background: #d9c7e8; }} #filler {{ height: 2600px; }}</style></head>
<body>
<h1>{title}</h1>
<div id="photo">photo</div>
<button id="works" type="button">Show more</button>
<button id="dead" type="button">Like</button>
<button id="throws" type="button">Send a message</button>
<a id="next" href="{other}">{link}</a>
<ul id="more"></ul>
<div id="filler"></div>
<script>
document.getElementById('works').addEventListener('click', () => {{
  document.getElementById('more').insertAdjacentHTML('beforeend', '<li>another profile</li>');
}});
document.getElementById('throws').addEventListener('click', () => {{
  throw new Error('messages are down');
}});
</script>
</body></html>
"""


@dataclass(frozen=True)
class WireEvent:
    """An event as the tracker sent it, with the attributes session_frustration reads."""

    event_id: str
    type: str
    ts: int
    url: str
    name: str
    props: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass
class Site:
    server: ServerProcess
    proxy: TappingProxy
    site: StaticSite
    key: str

    def sessions(self) -> dict[str, list[WireEvent]]:
        """Every event on the wire so far, by session, in the order sent; a batch sent again (a retry, or a beacon
        at unload after a request the page did not wait for) counts once, as the server counts it."""
        with self.proxy.lock:
            posts = list(self.proxy.posts)
        by_session: dict[str, list[WireEvent]] = {}
        seen: set[str] = set()
        for body in posts:
            batch = json.loads(body)
            for e in batch.get("events", []):
                if e["id"] in seen:
                    continue
                seen.add(e["id"])
                event = WireEvent(e["id"], e["type"], e["ts"], e.get("url", ""), e.get("name", ""), e["props"], e)
                by_session.setdefault(batch["session_id"], []).append(event)
        return by_session


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("frustration")
    member = demo_member(base / "data", "frustration")
    server = ServerProcess(base / "data", demo=False).start()
    proxy = TappingProxy(server.url)
    (base / "site").mkdir()
    static = StaticSite(base / "site")
    for name, other, title, link in (("a.html", "b.html", "Profiles", "Next profile"),
                                     ("b.html", "a.html", "Profile of Ana", "All profiles")):
        static.write(name, PAGE.format(proxy=proxy.url, key=member.project_key, other=other, title=title, link=link))
    try:
        yield Site(server, proxy, static, member.project_key)
        assert server.new_tracebacks() == []
    finally:
        static.stop()
        proxy.stop()
        server.stop()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A new visitor (a new session) whose page errors are the test's to expect."""
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    try:
        yield context.new_page()
    finally:
        context.close()


def visit(page: Page, site: Site, name: str = "a.html") -> str:
    """Open a page of the site once the frustration chunk watches it; returns the session id."""
    page.goto(f"{site.site.url}/{name}")
    page.wait_for_function("() => !!window.__hmFrustration", timeout=15_000)
    return str(page.evaluate("() => window.hitmetrix.sessionId()"))


def signals_of(page: Page, site: Site, session_id: str, done: Any) -> tuple[list[WireEvent], SessionFrustration]:
    """Flush until `done(events)` holds for the session's events on the wire; then its signals."""

    def arrived() -> list[WireEvent] | None:
        if not page.is_closed():
            page.evaluate("() => window.hitmetrix.flush()")
        events = site.sessions().get(session_id, [])
        return events if done(events) else None

    try:
        events = wait_for(arrived, 30, 0.2, what=f"the events of session {session_id} on the wire")
    except AssertionError:
        seen = {k: [(e.type, e.name, e.url, e.props) for e in v] for k, v in site.sessions().items()}
        raise AssertionError(f"session {session_id}; on the wire: {seen}") from None
    return events, session_frustration(events)


def wait_checked(page: Page, count: int) -> None:
    """Until the tracker has judged `count` clicks of this page (each one second after it)."""
    page.wait_for_function("(n) => window.__hmFrustration.checked >= n", arg=count, timeout=10_000)


def named(events: list[WireEvent], name: str) -> list[WireEvent]:
    return [e for e in events if e.type == "custom" and e.name == name]


def clicks(events: list[WireEvent]) -> list[WireEvent]:
    return [e for e in events if e.type == "click"]


def only(result: SessionFrustration, **expected: int) -> None:
    assert dict(result.counts) == {signal: expected.get(signal, 0) for signal in SIGNALS}


def shot(page: Page, artifacts: Path, name: str) -> None:
    folder = artifacts / "frustration"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def test_a_rage_click_burst_is_flagged_once_on_the_click_that_completes_it(
    page: Page, site: Site, artifacts: Path
) -> None:
    session_id = visit(page, site)
    box = page.locator("#photo").bounding_box()
    assert box is not None
    for _ in range(5):
        page.mouse.click(box["x"] + 50, box["y"] + 60)
    shot(page, artifacts, "rage")
    events, result = signals_of(page, site, session_id, lambda ev: len(clicks(ev)) == 5)
    assert [c.props.get("rage") for c in clicks(events)] == [None, None, 1, None, None]
    assert result.counts["rage"] == 1


def test_a_dead_button_gives_a_dead_click_referring_to_the_click(page: Page, site: Site, artifacts: Path) -> None:
    session_id = visit(page, site)
    page.click("#dead")
    shot(page, artifacts, "dead")
    events, result = signals_of(page, site, session_id, lambda ev: named(ev, "$dead_click"))
    (click,) = clicks(events)
    assert [e.props for e in named(events, "$dead_click")] == [{"click": click.event_id}]
    only(result, dead=1)
    assert "dead" in result.flags[events.index(click)]


def test_a_button_that_throws_gives_an_error_click_not_a_dead_one(page: Page, site: Site, artifacts: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    session_id = visit(page, site)
    page.click("#throws")
    wait_for(lambda: errors, 10, 0.05, what="the page's error")
    wait_checked(page, 1)  # its second is over: had it been taken for a dead click, that is on its way now
    events, result = signals_of(page, site, session_id, lambda ev: named(ev, "$error_click") and any(
        e.type == "error" for e in ev))
    (click,) = clicks(events)
    assert [e.props for e in named(events, "$error_click")] == [{"click": click.event_id}]
    assert "messages are down" in next(e for e in events if e.type == "error").props["message"]
    assert not named(events, "$dead_click")
    only(result, error=1)
    assert result.flags[events.index(click)] == {"error"}
    shot(page, artifacts, "error")


def test_a_link_followed_by_a_quick_back_is_a_quick_back_on_the_page_left(
    page: Page, site: Site, artifacts: Path
) -> None:
    session_id = visit(page, site)
    page.click("#next")
    page.wait_for_url("**/b.html")
    page.go_back()
    page.wait_for_url("**/a.html")
    page.wait_for_function("() => !!window.__hmFrustration", timeout=15_000)
    shot(page, artifacts, "quick-back")
    events, result = signals_of(page, site, session_id,
                                lambda ev: [e.url.rsplit("/", 1)[-1] for e in ev if e.type == "pageview"]
                                == ["a.html", "b.html", "a.html"])
    views = [e for e in events if e.type == "pageview"]
    assert views[2].ts - views[1].ts < 5000
    only(result, quick_back=1)
    assert result.flags[events.index(views[1])] == {"quick_back"}
    assert not named(events, "$dead_click"), "a link that navigates is not a dead click"


def test_a_thrashed_cursor_and_excessive_scrolling_are_sent_as_events(
    page: Page, site: Site, artifacts: Path
) -> None:
    session_id = visit(page, site)
    page.mouse.move(200, 400)
    for k in range(6):
        page.mouse.move(700 if k % 2 == 0 else 200, 400, steps=5)
    for k in range(6):
        page.mouse.wheel(0, 900 if k % 2 == 0 else -900)
        page.wait_for_function("() => scrollY >= 800" if k % 2 == 0 else "() => scrollY === 0", timeout=10_000)
    shot(page, artifacts, "thrash-and-scroll")
    events, result = signals_of(page, site, session_id,
                                lambda ev: named(ev, "$thrashed_cursor") and named(ev, "$excessive_scroll"))
    (scrolled,) = named(events, "$excessive_scroll")
    assert scrolled.props["turns"] >= 5 and scrolled.props["dh"] > 2600
    only(result, thrashed_cursor=1, excessive_scroll=1)


def test_a_calm_session_raises_no_signal(page: Page, site: Site, artifacts: Path) -> None:
    session_id = visit(page, site)
    page.mouse.move(300, 300)
    page.mouse.move(420, 330, steps=4)
    page.click("#works")
    page.wait_for_selector("#more li")
    page.mouse.wheel(0, 500)
    page.wait_for_function("() => scrollY >= 400")
    page.click("#works")
    page.wait_for_function("() => document.querySelectorAll('#more li').length === 2")
    wait_checked(page, 2)  # judged before the page is left (leaving would drop them unjudged)
    page.click("#next")
    page.wait_for_url("**/b.html")
    page.wait_for_function("() => !!window.__hmFrustration", timeout=15_000)
    page.click("#works")
    page.wait_for_selector("#more li")
    wait_checked(page, 1)
    shot(page, artifacts, "calm")
    events, result = signals_of(page, site, session_id, lambda ev: len(clicks(ev)) == 4)
    only(result)
    assert not [e for e in events if e.type == "custom" and e.name.startswith("$")], "no frustration event"
    assert not any("rage" in c.props for c in clicks(events))


def test_click_offsets_put_the_click_on_the_element_at_any_width(page: Page, site: Site, artifacts: Path) -> None:
    session_id = visit(page, site)
    # Before the works button adds to the page: the page's size when it is clicked.
    size = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    target = page.locator("#photo").bounding_box()
    assert target is not None
    page.mouse.click(target["x"] + target["width"] * 0.8, target["y"] + 30)
    page.mouse.wheel(0, 150)
    page.wait_for_function("() => scrollY >= 100")
    scroll_y = page.evaluate("() => scrollY")
    button = page.locator("#works").bounding_box()
    assert button is not None
    page.mouse.click(button["x"] + 5, button["y"] + button["height"] - 4)
    events, _ = signals_of(page, site, session_id, lambda ev: len(clicks(ev)) == 2)
    photo, works = clicks(events)
    for click, box, selector in ((photo, target, "#photo"), (works, button, "#works")):
        p = click.props
        assert click.raw["selector"] == selector and 0 <= p["fx"] <= 1 and 0 <= p["fy"] <= 1
        assert (p["ew"], p["eh"]) == (round(box["width"]), round(box["height"])), "the element's size"
        assert abs(p["ox"] - p["fx"] * p["ew"]) <= 1 and abs(p["oy"] - p["fy"] * p["eh"]) <= 1
        assert [p["dw"], p["dh"]] == size and click.raw["vw"] == 1100
    # Within a pixel: Chromium rounds the pointer's position, the boxes are fractional.
    assert abs(photo.props["fx"] - 0.8) < 0.01 and abs(photo.props["oy"] - 30) <= 1
    assert abs(works.props["ox"] - 5) <= 1 and abs(works.props["oy"] - (button["height"] - 4)) <= 1
    assert abs(works.raw["y"] - (button["y"] + button["height"] - 4 + scroll_y)) <= 1, "page coordinates"

    # At another width the element moves and changes size; its box and the click's fractions still find it.
    for width in (1400, 480):
        page.set_viewport_size({"width": width, "height": 700})
        for click in (photo, works):
            hit = page.evaluate(
                """([selector, fx, fy]) => {
                    const el = document.querySelector(selector);
                    el.scrollIntoView({block: 'center'});
                    const r = el.getBoundingClientRect();
                    const at = document.elementFromPoint(r.left + fx * r.width, r.top + fy * r.height);
                    return at === el || el.contains(at);
                }""",
                [click.raw["selector"], click.props["fx"], click.props["fy"]],
            )
            assert hit, f"{click.raw['selector']} at {width} px"
        shot(page, artifacts, f"offsets-{width}")
