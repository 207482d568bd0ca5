"""The security pages in real Chromium against a real server: the alert page shows the reasons and the
request timeline as text, and its evidence link plays the session's replay at the attack's moment (a recording
whose page changes at 3.5 s and again at 9 s: at the 4 s moment the first change shows, the second not yet)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore
from tests.e2e.dashboard import Member, demo_member, forge_recording, sign_in
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"
PAGE_URL = "http://127.0.0.1:9/signup.html"  # port 9 refuses at once: the replay reaches nothing
HOSTILE_LABEL = '<img src=x onerror="window.HM_PWNED=1">@example.com'


@dataclass(frozen=True)
class World:
    server: ServerProcess
    member: Member
    session_id: str
    alert_id: int
    moment_ms: int


def recording(start_ms: int) -> list[dict[str, Any]]:
    def el(node_id: int, tag: str, attrs: dict[str, Any], *children: dict[str, Any]) -> dict[str, Any]:
        return {"type": 2, "id": node_id, "tagName": tag, "attributes": attrs, "childNodes": list(children)}

    def text(node_id: int, value: str) -> dict[str, Any]:
        return {"type": 3, "id": node_id, "textContent": value}

    body = el(4, "body", {}, el(5, "h1", {"id": "title"}, text(6, "Sign up")), el(7, "p", {"id": "state"},
                                                                                   text(8, "Waiting")))
    document = {"type": 0, "id": 1, "childNodes": [el(2, "html", {}, el(3, "head", {}), body)]}

    def set_state(at_ms: int, value: str) -> dict[str, Any]:
        return {"type": 3, "timestamp": at_ms,
                "data": {"source": 0, "texts": [{"id": 8, "value": value}], "attributes": [], "removes": [],
                         "adds": []}}

    return [
        {"type": 4, "timestamp": start_ms, "data": {"href": PAGE_URL, "width": 1000, "height": 600}},
        {"type": 2, "timestamp": start_ms + 5, "data": {"node": document, "initialOffset": {"left": 0, "top": 0}}},
        set_state(start_ms + 3500, "Bot submitted the form"),
        set_state(start_ms + 9000, "Much later"),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("security") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    try:
        start_ms = int(time.time() * 1000) - 120_000  # over: not a live session
        session_id = forge_recording(server, member, recording(start_ms), PAGE_URL)
        started = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}").json()["summary"]
        moment_ms = int(started["started_at"]) + 4000
        # The alert as the engine writes it (its own tests raise real ones): the same store call, the same row.
        meta = MetaStore("", data_dir)
        try:
            alert, _ = security.upsert_alert(meta, Finding(
                rule="automation", severity="high", entity_kind="session", entity_value=session_id,
                entity_label=HOSTILE_LABEL, reasons=("navigator.webdriver was true; 0 pointer moves before 3 clicks",),
                ts_ms=moment_ms, project_id=member.project_id, numbers={"pointer_moves": 0, "clicks": 3},
                sessions=((session_id, moment_ms),),
            ), int(time.time() * 1000), 900_000)
        finally:
            meta.close()
        yield World(server, member, session_id, alert.id, moment_ms)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shots(artifacts: Path) -> Path:
    folder = artifacts / "security"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_the_alert_page_shows_why_and_plays_the_replay_at_the_moment(world: World, page: Page, shots: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base, pid = world.server.url, world.member.project_id
    sign_in(page, base, world.member)
    page.goto(f"{base}/projects/{pid}/security")
    expect(page.locator("#alerts-over-time rect")).to_have_count(1)
    page.click(".project-nav a:has-text('Security')")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    page.goto(f"{base}/projects/{pid}/security/alerts?rule=automation")
    expect(page.locator(f"tr[data-alert='{world.alert_id}']")).to_be_visible()
    page.click(f"tr[data-alert='{world.alert_id}'] a:has-text('#{world.alert_id}')")
    expect(page.locator("h1")).to_contain_text("automation")
    expect(page.locator("#reasons")).to_contain_text("navigator.webdriver was true; 0 pointer moves before 3 clicks")
    expect(page.locator("#alert-entity")).to_have_text(HOSTILE_LABEL)  # shown as text, never as markup
    assert page.evaluate("() => window.HM_PWNED") is None
    card = page.locator(f".evidence[data-session='{world.session_id}']")
    link = card.locator(".replay-link")
    expect(link).to_have_attribute("href", f"/projects/{pid}/sessions/{world.session_id}?t=4")
    # The alert page itself plays the evidence at the moment, in an embedded replay page.
    embedded = page.frame_locator("iframe.evidence-replay").frame_locator(REPLAY_FRAME)
    expect(embedded.locator("#state")).to_have_text("Bot submitted the form", timeout=20_000)
    page.screenshot(path=str(shots / "alert.png"), full_page=True)

    link.click()
    page.wait_for_function("() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=20_000)
    assert page.evaluate("() => window.hmReplay.error") is None
    frame = page.frame_locator(REPLAY_FRAME)
    expect(frame.locator("#state")).to_have_text("Bot submitted the form", timeout=10_000)
    current_ms = float(page.evaluate("() => window.hmReplay.currentTime()"))
    assert 3500 <= current_ms < 9000, current_ms
    expect(frame.locator("#state")).not_to_have_text("Much later")
    page.screenshot(path=str(shots / "replay-at-the-moment.png"))
    assert errors == [], errors
