"""A new project in real Chromium: created in the browser's time zone, a readable snippet that copies, the
first-event check turning green, the live view and the session list growing without a reload, and every
time shown with its zone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from hitmetrix.timezones import format_time
from tests.support import ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.e2e

ZONE = "Pacific/Kiritimati"  # UTC+14: the day differs from UTC's for ten hours of every day
EMAIL, PASSWORD = "owner@example.test", "a long enough password"
# WCAG AA for normal text; the snippet must be readable to be copied by hand too.
MIN_CONTRAST = 4.5

CONTRAST_JS = """(selector) => {
  const el = document.querySelector(selector);
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el, background = null;
  while (node && !background) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) background = c; else node = node.parentElement;
  }
  const fg = lum(rgb(getComputedStyle(el).color)), bg = lum(background || [255, 255, 255]);
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""


@dataclass
class Site:
    server: ServerProcess
    context: BrowserContext
    artifacts: Path

    def admin(self, path: str) -> Any:
        answer = self.server.api(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser, artifacts: Path) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("onboarding") / "data"
    meta = MetaStore("", data_dir)
    try:
        accounts.create_user(meta, EMAIL, PASSWORD, admin=True)
    finally:
        meta.close()
    server = ServerProcess(data_dir, demo=False, env={"HITMETRIX_SPOOL_SEGMENT_MAX_AGE_S": "0.2"}).start()
    # The browser lives in UTC+14: a project made from it starts in that zone.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=ZONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    try:
        yield Site(server, context, artifacts)
    finally:
        context.close()
        server.stop()


def sign_in(page: Page, base: str) -> None:
    """Sign in, unless the context (shared by the tests) already is."""
    page.goto(base + "/login")
    if "/login" not in page.url:
        return
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)


def send(site: Site, key: str, **batch: Any) -> dict[str, Any]:
    body = make_batch(**batch)
    answer = httpx.post(f"{site.server.url}/api/v1/batch", params={"key": key}, content=json.dumps(body), timeout=30)
    assert answer.status_code == 200, answer.text
    return body


def test_a_new_project_from_the_first_event_to_the_session_list(site: Site) -> None:
    base = site.server.url
    settings = site.context.new_page()
    sign_in(settings, base)
    settings.goto(base + "/projects")
    settings.fill("input[name=name]", "Shop in UTC+14")
    settings.click("form[action='/projects'] button[type=submit]")
    settings.wait_for_url(re.compile(r"/projects/\d+/settings$"))
    project_id = int(re.findall(r"/projects/(\d+)/settings", settings.url)[0])
    project = site.admin(f"/api/v1/projects/{project_id}")
    assert project["time_zone"] == ZONE  # the browser's zone, sent by the create form
    expect(settings.locator("select[name=time_zone]")).to_have_value(ZONE)

    # The snippet: light on dark, and the copy button puts exactly the tag on the clipboard.
    snippet = settings.locator("pre.install-snippet")
    expect(snippet).to_contain_text(project["public_key"])
    tag = snippet.inner_text().strip()
    assert tag.startswith("<script async src=") and tag.endswith("</script>")
    assert settings.evaluate(CONTRAST_JS, "pre.install-snippet code") >= MIN_CONTRAST
    settings.click("button.install-copy")
    expect(settings.locator("button.install-copy")).to_have_text("Copied")
    assert settings.evaluate("() => navigator.clipboard.readText()") == tag
    check = settings.locator(".first-event")
    expect(check).to_have_attribute("data-state", "waiting")
    settings.wait_for_function("() => window.hmOnboarding.checks > 0")  # asked, and still waiting
    expect(check).to_have_attribute("data-state", "waiting")

    # The project's empty session list: the same snippet, readable (the issue: grey on grey), and the check.
    sessions = site.context.new_page()
    sessions.goto(f"{base}/projects/{project_id}/sessions")
    expect(sessions.locator(".hm-empty pre.install-snippet")).to_contain_text(project["public_key"])
    assert sessions.evaluate(CONTRAST_JS, ".hm-empty pre.install-snippet code") >= MIN_CONTRAST
    expect(sessions.locator(".hm-empty .first-event")).to_have_attribute("data-state", "waiting")
    sessions.evaluate("() => { window.hmNotReloaded = true; }")
    sessions.screenshot(path=str(site.artifacts / "onboarding-waiting.png"), full_page=True)

    live = site.context.new_page()
    live.goto(f"{base}/projects/{project_id}/live")
    expect(live.locator("#hm-live-status")).to_have_attribute("data-state", "live")

    sent = send(site, project["public_key"], events=3, chunks=1, user_id="buyer-7")
    sid = sent["session_id"]

    # Green on both pages, with the zone named.
    for page in (settings, sessions):
        expect(page.locator(".first-event")).to_have_attribute("data-state", "received", timeout=15_000)
        expect(page.locator(".first-event-text")).to_contain_text(f"({ZONE})")
    settings.screenshot(path=str(site.artifacts / "onboarding-received.png"), full_page=True)

    # The live view shows the batch, its time in the project's zone.
    item = live.locator(f".live-item[data-session='{sid}']")
    expect(item).to_be_visible(timeout=15_000)
    expect(item).to_contain_text("3 events")
    expect(item).to_contain_text("buyer-7")
    received_at = site.admin(f"/api/v1/projects/{project_id}/live")["batches"][-1]["received_at"]
    expect(item.locator(".live-time")).to_have_text(format_time(received_at, ZONE, seconds=True))
    live.screenshot(path=str(site.artifacts / "onboarding-live.png"), full_page=True)

    # The session list shows the new session without a reload, its start time in the project's zone.
    row = sessions.locator(f"tr.hm-row[data-session='{sid}']")
    expect(row).to_be_visible(timeout=30_000)
    assert sessions.evaluate("() => window.hmNotReloaded === true")
    expect(sessions.locator(".hm-empty")).to_be_hidden()
    listed = site.admin(f"/api/v1/projects/{project_id}/sessions")["sessions"]
    started_at = next(s["started_at"] for s in listed if s["session_id"] == sid)
    expect(row.locator("time")).to_have_text(format_time(started_at, ZONE))
    sessions.screenshot(path=str(site.artifacts / "onboarding-new-session.png"), full_page=True)

    # A second session arrives while the list is open: it goes on top.
    second = send(site, project["public_key"], events=1)["session_id"]
    expect(sessions.locator("tbody tr.hm-row").first).to_have_attribute("data-session", second, timeout=30_000)
    assert sessions.evaluate("() => window.hmNotReloaded === true")

    # The replay page names the zone too.
    sessions.click(f"tr.hm-row[data-session='{sid}'] a.hm-open")
    sessions.wait_for_url(re.compile(rf"/sessions/{sid}$"))
    expect(sessions.locator(".hm-facts time")).to_have_text(format_time(started_at, ZONE))
    for page in (settings, sessions, live):
        page.close()


def test_changing_the_zone_changes_every_time_shown(site: Site) -> None:
    base = site.server.url
    page = site.context.new_page()
    sign_in(page, base)
    project = site.admin("/api/v1/projects")[0]
    key = site.admin(f"/api/v1/projects/{project['id']}")["public_key"]
    sid = send(site, key, events=1)["session_id"]

    def listed() -> dict[str, Any] | None:
        rows = site.admin(f"/api/v1/projects/{project['id']}/sessions")["sessions"]
        return next((s for s in rows if s["session_id"] == sid), None)

    started_at = wait_for(listed, 30, 0.2, what="the session stored")["started_at"]
    page.goto(f"{base}/projects/{project['id']}/settings")
    page.select_option("select[name=time_zone]", "America/New_York")  # a zone with daylight saving
    page.click("form.form button[type=submit]")
    expect(page.locator(".alert-success")).to_be_visible()
    page.goto(f"{base}/projects/{project['id']}/sessions")
    time = page.locator(f"tr.hm-row[data-session='{sid}'] time")
    expect(time).to_have_text(format_time(started_at, "America/New_York"))
    expect(time).to_have_attribute("title", re.compile(r" UTC$"))
    page.screenshot(path=str(site.artifacts / "onboarding-new-york.png"), full_page=True)
    page.close()
