"""The errors pages in real Chromium against a real server: a real site with the tracker is visited in Chromium and
its button throws three times (a new order number each time) in two sessions; the errors page shows them as one
group with its sparkline, the group page shows the stack and both sessions, and a session's replay link opens the
replay paused at the error. A filter empties the list; the pages fit a 375 px phone screen. Screenshots in
test-artifacts/errors/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.dashboard import wait_replay_loaded
from tests.e2e.vitals_site import ERRORS_THROWN, MESSAGE_GROUPED, VitalsSite, fits, open_signed_in, vitals_site

pytestmark = pytest.mark.e2e
# The replay opens paused at ?t= (milliseconds are kept); allow for the player's frame step.
SEEK_TOLERANCE_MS = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[VitalsSite]:
    with vitals_site(tmp_path_factory.mktemp("errors-page"), browser) as site:
        yield site


def shot(page: Page, artifacts: Path, name: str) -> None:
    folder = artifacts / "errors"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-er-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)


def test_one_group_its_sessions_and_a_replay_at_the_error(browser: Browser, site: VitalsSite, artifacts: Path) -> None:
    page, problems = open_signed_in(browser, site, 1280)
    page.goto(site.project_url + "/errors")
    wait_drawn(page)
    rows = page.locator("#hm-er-groups tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert row.locator(".hm-er-message").inner_text().strip() == MESSAGE_GROUPED
    assert row.locator(".hm-er-frame").inner_text().strip().startswith("HTMLButtonElement.payNow (")
    assert row.locator("[data-col='count']").inner_text() == str(ERRORS_THROWN)
    assert row.locator("[data-col='sessions']").inner_text() == "2"
    assert row.locator(".hm-er-spark polyline").count() == 1
    assert page.inner_text("[data-kpi='errors'] .hm-ov-kpi-value") == str(ERRORS_THROWN)
    assert fits(page)
    shot(page, artifacts, "errors-1280")
    # The list's sessions are those with an error, in the same range.
    sessions_link = page.get_attribute(".hm-ov-chart-card a.hm-ov-sessions", "href") or ""
    assert "has_errors=1" in sessions_link and "from=" in sessions_link

    row.locator(".hm-er-message").click()
    page.wait_for_url(lambda url: "/errors/" in url)
    wait_drawn(page)
    assert page.inner_text("#hm-er-title").strip() == MESSAGE_GROUPED
    assert "payNow" in page.inner_text(".hm-er-stack")
    sessions = page.locator("#hm-er-sessions tbody tr")
    assert sorted(sessions.evaluate_all("rows => rows.map(r => r.dataset.session)")) == sorted(site.sessions)
    assert fits(page)
    shot(page, artifacts, "group-1280")

    link = sessions.first.locator("a.hm-er-replay")
    offset_ms = int(link.get_attribute("data-offset-ms") or -1)
    assert offset_ms > 0  # the error came after the page had loaded
    link.click()
    page.wait_for_url(lambda url: "/sessions/" in url and "t=" in url)
    wait_replay_loaded(page)
    at_ms = page.evaluate("() => window.hmReplay.currentTime()")
    assert abs(at_ms - offset_ms) <= SEEK_TOLERANCE_MS, (at_ms, offset_ms)
    # Paused there: the moment the link points at stays on screen.
    assert page.evaluate("() => window.hmReplay.player.getReplayer().service.state.value") == "paused"
    shot(page, artifacts, "replay-at-error")
    assert problems == []


def test_a_filter_changes_the_list_and_the_pages_fit_a_phone(
    browser: Browser, site: VitalsSite, artifacts: Path
) -> None:
    page, problems = open_signed_in(browser, site, 375)
    page.goto(site.project_url + "/errors")
    wait_drawn(page)
    assert page.locator("#hm-er-groups tbody tr").count() == 1
    assert fits(page), "the page must not scroll sideways at 375 px"
    shot(page, artifacts, "errors-375")
    page.click("#hm-er-groups .hm-er-message")
    page.wait_for_url(lambda url: "/errors/" in url)
    wait_drawn(page)
    assert fits(page)
    shot(page, artifacts, "group-375")

    page.goto(site.project_url + "/errors?search=no+such+error")
    assert page.locator("#hm-er-groups").count() == 0
    assert "No JS errors in this range" in page.inner_text("#hm-errors")
    page.goto(site.project_url + "/errors?device=mobile")
    assert page.inner_text("[data-kpi='errors'] .hm-ov-kpi-value") == "0"
    assert problems == []
