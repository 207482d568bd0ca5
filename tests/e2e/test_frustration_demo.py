"""Frustration signals end to end on the demo site, in real Chromium against a real ``hitmetrix serve --demo``
process: one visitor rage-clicks, one clicks the button that does nothing, one the button that throws, one opens
the premium offer and goes straight back; a calm visitor does none of that. Each signal is computed at load time
for its own session: the session list filtered by it finds that session (with its badge), its replay timeline
marks it, and the calm session raises none. Screenshots go to test-artifacts/frustration/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.dashboard import Member, demo_member, sign_in, wait_replay_loaded
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

SIGNALS = ("rage", "dead", "error", "quick_back", "excessive_scroll", "thrashed_cursor")


class Demo:
    def __init__(self, server: ServerProcess, member: Member) -> None:
        self.server, self.member = server, member

    @property
    def pid(self) -> int:
        return self.member.project_id

    def listed(self, **params: str) -> set[str]:
        answer = self.server.api(f"/api/v1/projects/{self.pid}/sessions?" + urlencode({**params, "limit": "1000"}))
        assert answer.status_code == 200, answer.text
        return {row["session_id"] for row in answer.json()["sessions"]}

    def signals(self, session_id: str) -> dict[str, int] | None:
        answer = self.server.api(f"/api/v1/projects/{self.pid}/sessions/{session_id}/frustration")
        return answer.json()["counts"] if answer.status_code == 200 else None

    def summary(self, session_id: str) -> dict[str, Any] | None:
        answer = self.server.api(f"/api/v1/projects/{self.pid}/sessions/{session_id}")
        return answer.json()["summary"] if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("frustration_demo") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    try:
        yield Demo(server, member)
    finally:
        server.stop()


def shot(page: Page, artifacts: Path, name: str) -> None:
    folder = artifacts / "frustration"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def visitor(browser: Browser, demo: Demo, act: Callable[[Page], None]) -> str:
    """One visitor (a browser context of its own: its own session) on the demo home page doing ``act``, then
    leaving (the tracker sends the rest by beacon); returns the session id."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(demo.server.url + "/demo/")
    page.wait_for_function("() => !!window.__hmFrustration && !!window.hitmetrix", timeout=15_000)
    session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
    act(page)
    page.evaluate("() => window.hitmetrix.flush()")
    page.goto("about:blank")
    context.close()
    return session_id


def judged(page: Page, clicks: int) -> None:
    """Until the tracker has judged this many clicks of the page (each one second after it)."""
    page.wait_for_function("(n) => window.__hmFrustration.checked >= n", arg=clicks, timeout=10_000)


def rage(page: Page) -> None:
    box = page.locator("#like-1").bounding_box()
    assert box is not None
    for _ in range(4):  # 4 clicks within a second on one spot; the like counter answers each
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    judged(page, 4)


def dead(page: Page) -> None:
    page.click("#more-matches")
    judged(page, 1)


def error(page: Page) -> None:
    page.click("#break-button")
    page.wait_for_function("() => document.getElementById('status').textContent !== ''")
    judged(page, 1)


def quick_back(page: Page) -> None:
    page.click("#offer-link")
    page.wait_for_selector("#offer-title")
    page.wait_for_function("() => !!window.hitmetrix")
    page.click("#offer-back")  # straight back, well within 5 s
    page.wait_for_selector("#home-title")
    page.wait_for_function("() => !!window.__hmFrustration", timeout=15_000)


def calm(page: Page) -> None:
    page.click("#like-2")
    judged(page, 1)
    page.mouse.wheel(0, 600)
    page.click("#nav-about")  # on to another page, and not back
    page.wait_for_selector("#about-title")


VISITS: dict[str, Callable[[Page], None]] = {
    "rage": rage, "dead": dead, "error": error, "quick_back": quick_back, "calm": calm,
}


@pytest.fixture(scope="module")
def sessions(demo: Demo, browser: Browser) -> dict[str, str]:
    """The session id of each visitor, once every one of them is stored with all it did."""
    made = {name: visitor(browser, demo, act) for name, act in VISITS.items()}

    def loaded(name: str) -> bool:
        summary = demo.summary(made[name])
        if summary is None:
            return False
        if name == "calm":  # its click, and the second after it, and the page after: all in
            return summary["clicks"] >= 1 and summary["pageviews"] >= 2
        counts = demo.signals(made[name])
        return bool(counts and counts[name])

    for name in made:
        wait_for(lambda name=name: loaded(name), 40, 0.25, what=f"the {name} session stored with its signal")
    return made


def test_each_signal_is_raised_for_its_own_session_and_the_calm_one_raises_none(
    demo: Demo, sessions: dict[str, str]
) -> None:
    for name, session_id in sessions.items():
        counts = demo.signals(session_id)
        assert counts is not None, name
        if name == "calm":
            assert counts == dict.fromkeys(SIGNALS, 0), counts
        else:
            assert counts[name] >= 1, (name, counts)
    assert demo.signals(sessions["rage"])["dead"] == 0, "the like button answers: its clicks are not dead"
    assert demo.signals(sessions["error"])["dead"] == 0, "a click that throws is an error click, not a dead one"


@pytest.mark.parametrize("signal", ["rage", "dead", "error", "quick_back"])
def test_the_session_list_filter_finds_the_session_of_each_signal(
    demo: Demo, sessions: dict[str, str], signal: str
) -> None:
    found = demo.listed(frustration=signal)
    assert sessions[signal] in found
    assert sessions["calm"] not in found
    assert sessions["calm"] not in demo.listed(frustration="any")
    assert sessions["calm"] in demo.listed()


def test_the_list_page_shows_badges_and_each_replay_marks_its_signal(
    demo: Demo, sessions: dict[str, str], browser: Browser, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, demo.server.url, demo.member)
        page.goto(f"{demo.server.url}/projects/{demo.pid}/sessions?frustration=rage&frustration=dead")
        rows = page.locator("tr.hm-row")
        shown = {rows.nth(i).get_attribute("data-session") for i in range(rows.count())}
        assert {sessions["rage"], sessions["dead"]} <= shown and sessions["calm"] not in shown
        assert page.locator(f'tr[data-session="{sessions["rage"]}"] [data-signal="rage"]').count() == 1
        assert page.locator(f'tr[data-session="{sessions["dead"]}"] [data-signal="dead"]').count() == 1
        assert page.locator("input[name=frustration][value=rage]").is_checked()
        shot(page, artifacts, "demo-session-list-1280")
        page.set_viewport_size({"width": 375, "height": 800})
        shot(page, artifacts, "demo-session-list-375")
        page.set_viewport_size({"width": 1280, "height": 900})
        for signal in ("rage", "dead", "error", "quick_back"):
            page.goto(f"{demo.server.url}/projects/{demo.pid}/sessions/{sessions[signal]}")
            wait_replay_loaded(page)
            marker = page.locator(f'.hm-marker-frustration[data-signal="{signal}"]')
            marker.first.wait_for(state="attached", timeout=15_000)
            assert signal.replace("_", " ") in (marker.first.get_attribute("title") or "").lower()
            assert page.locator(f'#hm-events .hm-ev-signal[data-signal="{signal}"]').count() >= 1
            shot(page, artifacts, f"demo-replay-{signal}")
        page.goto(f"{demo.server.url}/projects/{demo.pid}/sessions/{sessions['calm']}")
        wait_replay_loaded(page)
        page.wait_for_function("() => document.getElementById('hm-events').dataset.frustration === '0'")
        assert page.locator(".hm-marker-frustration").count() == 0
    finally:
        context.close()
