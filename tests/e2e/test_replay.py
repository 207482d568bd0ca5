"""A visit recorded in real Chromium is found in the session list and replayed in the dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.e2e.dashboard import Member, demo_member, sign_in
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"


@dataclass(frozen=True)
class Recorded:
    server: ServerProcess
    member: Member
    session_id: str
    chunks: int

    @property
    def replay_path(self) -> str:
        return f"/projects/{self.member.project_id}/sessions/{self.session_id}"


def record_demo_visit(page: Page, base: str) -> str:
    """Visit, page loads, clicks, typing, scrolling; paced so the recording lasts several seconds."""
    page.goto(base + "/demo/")
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
    page.wait_for_timeout(1500)  # a visitor reading: the replay needs time to have a "3 s" moment
    page.click("#nav-signup")  # a full page load
    page.wait_for_selector("#signup-form")
    page.type("#name", "Replay Tester", delay=40)
    page.click("#nav-home")
    page.wait_for_selector("#like-1")
    page.click("#like-1")
    page.wait_for_timeout(1000)
    page.mouse.wheel(0, 1500)
    page.wait_for_timeout(1000)
    page.click("#nav-about")  # full page load: a second full snapshot
    page.wait_for_selector("#about-title")
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    page.wait_for_timeout(800)
    page.click("#about-button")
    page.wait_for_timeout(500)
    return session_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Recorded]:
    data_dir = tmp_path_factory.mktemp("replay") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        page = context.new_page()
        session_id = record_demo_visit(page, server.url)
        page.goto("about:blank")  # pagehide: the tracker flushes with sendBeacon
        context.close()

        def stored() -> dict | None:
            r = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}")
            if r.status_code != 200:
                return None
            body = r.json()
            about = [e for e in body["events"] if e["type"] == "pageview" and e["url"].endswith("/about.html")]
            clicked = any(e["type"] == "click" and "about-button" in e["selector"] for e in body["events"])
            chunks = body["recording_chunks"]
            covered = about and chunks and max(c["last_ts"] for c in chunks) >= about[0]["ts"]
            return body if clicked and covered else None

        body = wait_for(stored, 30, 0.2, what="the visit and its recording in the store")
        yield Recorded(server, member, session_id, len(body["recording_chunks"]))
    finally:
        server.stop()


@pytest.fixture()
def dashboard(browser: Browser, recorded: Recorded) -> Iterator[tuple[BrowserContext, Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, recorded.server.url, recorded.member)
    yield context, page, errors
    context.close()


def wait_ready(page: Page) -> None:
    page.wait_for_function("() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=20_000)
    assert page.evaluate("() => window.hmReplay.error") is None


def current_ms(page: Page) -> float:
    return float(page.evaluate("() => window.hmReplay.currentTime()"))


def test_find_by_filter_play_and_jump_to_an_event(
    recorded: Recorded, dashboard: tuple[BrowserContext, Page, list[str]], artifacts: Path
) -> None:
    _, page, errors = dashboard
    base, pid, sid = recorded.server.url, recorded.member.project_id, recorded.session_id
    page.goto(f"{base}/projects/{pid}/sessions")
    expect(page.locator(f'tr[data-session="{sid}"]')).to_be_visible()

    page.fill("input[name=url]", "about.html")
    browser_name = page.locator("select[name=browser] option").nth(1).get_attribute("value")
    assert browser_name, "the browser filter offers the recorded browser"
    page.select_option("select[name=browser]", browser_name)
    page.click("button.hm-apply")
    page.wait_for_url(re.compile(r"url=about\.html"))
    assert "browser=" in page.url, "filters live in the URL"
    row = page.locator(f'tr[data-session="{sid}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("/demo/")
    page.screenshot(path=str(artifacts / "replay-session-list.png"), full_page=True)

    row.locator("a.hm-open").click()
    page.wait_for_url(f"**/projects/{pid}/sessions/{sid}")
    wait_ready(page)
    frame = page.frame_locator(REPLAY_FRAME)
    expect(frame.locator("#home-title")).to_have_text("Welcome to Lovebirds", timeout=15_000)
    # The recorded page's stylesheet (inlined by rrweb) applies: the demo's header is dark.
    # Polled: the replayer may swap in a newer snapshot's document between finding the header and reading it.
    expect(frame.locator("header")).to_have_css("background-color", "rgb(29, 35, 48)")
    sandbox = page.locator(REPLAY_FRAME).get_attribute("sandbox")
    assert sandbox == "allow-same-origin", sandbox

    # The controller's play/pause button: pause, then press play and watch the clock move.
    play_pause = page.locator(".rr-controller__btns button").first
    page.wait_for_function("() => window.hmReplay.currentTime() > 0")
    if page.evaluate("() => window.hmReplay.player.getReplayer().service.state.value") == "playing":
        play_pause.click()
    page.evaluate("() => window.hmReplay.seek(0)")
    paused_at = current_ms(page)
    play_pause.click()
    page.wait_for_function(f"() => window.hmReplay.currentTime() > {paused_at + 500}", timeout=10_000)

    # Progress-bar markers for the analytics events.
    assert page.locator(".rr-progress .hm-marker-pageview").count() >= 2
    assert page.locator(".rr-progress .hm-marker-click").count() >= 2

    # Click the full page load in the side list: the player jumps there and shows that page.
    play_pause.click()  # pause, so the time stays where the click put it
    item = page.locator("li.hm-ev-pageview", has_text="about.html").first
    offset = float(item.get_attribute("data-offset") or "nan")
    assert offset > 2000, offset
    item.locator("button").click()
    assert abs(current_ms(page) - offset) <= 1000, (current_ms(page), offset)
    expect(frame.locator("#about-title")).to_have_text("About us", timeout=10_000)
    expect(page.locator("#hm-current-url")).to_contain_text("/demo/about.html")
    expect(item).to_have_class(re.compile(r"\bhm-current\b"))

    page.click("#hm-copy-link")
    link = page.evaluate("() => window.hmReplay.lastCopiedLink")
    assert link == f"{base}/projects/{pid}/sessions/{sid}?t={int(current_ms(page) // 1000)}", link
    page.screenshot(path=str(artifacts / "replay-player.png"))
    assert errors == [], errors


def test_opening_with_t_starts_paused_at_that_time(
    recorded: Recorded, dashboard: tuple[BrowserContext, Page, list[str]], artifacts: Path
) -> None:
    _, page, errors = dashboard
    page.goto(recorded.server.url + recorded.replay_path + "?t=3")
    wait_ready(page)
    assert abs(current_ms(page) - 3000) <= 1000, current_ms(page)
    page.wait_for_timeout(700)  # paused: the clock must not move
    assert abs(current_ms(page) - 3000) <= 1000, current_ms(page)
    assert page.evaluate("() => window.hmReplay.player.getReplayer().service.state.value") == "paused"
    expect(page.frame_locator(REPLAY_FRAME).locator("body")).to_contain_text("Lovebirds", timeout=10_000)
    page.screenshot(path=str(artifacts / "replay-at-3s.png"))
    assert errors == [], errors


def test_player_starts_before_the_whole_recording_is_loaded(
    recorded: Recorded, dashboard: tuple[BrowserContext, Page, list[str]]
) -> None:
    assert recorded.chunks >= 3, "the visit should have produced several chunks"
    _, page, errors = dashboard
    held: list[Route] = []

    def hold_later_chunks(route: Route) -> None:
        if re.search(r"/recording/[01]$", route.request.url):  # the player starts with two chunks
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/recording/\d+$"), hold_later_chunks)
    page.goto(recorded.server.url + recorded.replay_path)
    wait_ready(page)
    state = page.evaluate("() => ({loaded: hmReplay.loadedChunks, total: hmReplay.totalChunks})")
    assert state == {"loaded": 2, "total": recorded.chunks}, state
    expect(page.locator("#hm-loading")).to_be_visible()
    first_total = page.evaluate("() => hmReplay.player.getMetaData().totalTime")

    for released in range(recorded.chunks - 2):  # one at a time: chunks are requested in order
        for _ in range(200):  # Playwright runs route handlers only while the test waits through it
            if len(held) > released:
                break
            page.wait_for_timeout(50)
        assert len(held) > released, f"chunk {released + 2} was never requested"
        held[released].continue_()
    page.wait_for_function(f"() => window.hmReplay.loadedChunks === {recorded.chunks}", timeout=15_000)
    page.wait_for_function(f"() => window.hmReplay.player.getMetaData().totalTime > {first_total}")
    expect(page.locator("#hm-loading")).to_be_hidden()
    assert errors == [], errors


def test_a_chunk_that_cannot_be_loaded_does_not_stop_the_replay(
    recorded: Recorded, dashboard: tuple[BrowserContext, Page, list[str]]
) -> None:
    _, page, errors = dashboard
    broken = recorded.chunks - 1
    page.route(re.compile(rf"/recording/{broken}$"), lambda route: route.abort())
    page.goto(recorded.server.url + recorded.replay_path)
    wait_ready(page)
    page.wait_for_function(f"() => window.hmReplay.loadedChunks === {recorded.chunks}", timeout=15_000)
    assert page.evaluate("() => window.hmReplay.failedChunks") == [broken]
    expect(page.locator("#hm-loading")).to_contain_text("could not be loaded")
    expect(page.frame_locator(REPLAY_FRAME).locator("body")).to_contain_text("Lovebirds")
    assert errors == [], errors


def test_signing_out_from_the_replay_page(
    recorded: Recorded, dashboard: tuple[BrowserContext, Page, list[str]]
) -> None:
    """The replay page sends no Referer, and under that policy a plain form post says `Origin: null`, which the
    CSRF check refuses: its sign-out button must still work, with the real Origin."""
    _, page, errors = dashboard
    response = page.goto(recorded.server.url + recorded.replay_path)
    assert response is not None and response.headers["referrer-policy"] == "no-referrer"
    wait_ready(page)
    sent_origins: list[str | None] = []
    page.on("request", lambda r: sent_origins.append(r.header_value("origin")) if r.url.endswith("/logout") else None)
    page.click("form[action='/logout'] button[type=submit]")
    page.wait_for_url(re.compile(r"/login"))
    assert sent_origins == [recorded.server.url]
    page.goto(recorded.server.url + recorded.replay_path)
    assert "/login" in page.url, "the session is over"
    assert errors == [], errors
