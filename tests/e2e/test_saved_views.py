"""Saved views and cohorts in real Chromium against a real server: an analyst saves a filtered overview and
reopens it from the list; builds a cohort (the size previews while the conditions change), opens it (its people
and their sessions), and applies it as a filter from the overview's bar, which changes the numbers. The pages fit
a 375 px phone screen. Screenshots in test-artifacts/saved/."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.e2e.dashboard import Member, sign_in
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
# (client address, its country in the bundled database, user agent, pages viewed): one visitor each.
VISITS = [
    ("78.46.0.1", "DE", FIREFOX, ["/", "/pricing"]),
    ("5.9.0.1", "DE", FIREFOX, ["/docs"]),
    ("78.46.0.2", "DE", FIREFOX, ["/", "/docs", "/pricing"]),
    ("8.8.8.8", "US", CHROME, ["/"]),
    ("8.8.4.4", "US", CHROME, ["/pricing", "/signup"]),
    ("8.8.4.5", "US", CHROME, ["/blog"]),
]
PRICING_VISITORS = sum(1 for v in VISITS if "/pricing" in v[3])
GERMANS = sum(1 for v in VISITS if v[1] == "DE")


@dataclass
class Loaded:
    server: ServerProcess
    member: Member


def analyst(data_dir: Path) -> Member:
    """Before the server starts: the demo project and an analyst of it (analysts save views and cohorts)."""
    meta = MetaStore("", data_dir)
    try:
        project = meta.project_by_name("demo") or meta.create_project("demo")
        email = f"analyst-{secrets.token_hex(3)}@example.test"
        password = "pw-" + secrets.token_urlsafe(12)
        user = accounts.create_user(meta, email, password)
        accounts.add_member(meta, project.id, user.id, "analyst")
        return Member(email, password, project.id, project.public_key)
    finally:
        meta.close()


def post_visit(server: ServerProcess, member: Member, address: str, user_agent: str, paths: list[str]) -> None:
    sid = "sv" + secrets.token_hex(8)
    start_ms = int(time.time() * 1000) - 120_000
    events = [{"type": "pageview", "ts": start_ms + i * 2000, "url": f"https://shop.example{p}"}
              for i, p in enumerate(paths)]
    body = {"session_id": sid, "anonymous_id": "a" + sid, "sent_at": int(time.time() * 1000), "events": events}
    answer = httpx.post(server.url + "/api/v1/batch", params={"key": member.project_key}, content=json.dumps(body),
                        headers={"User-Agent": user_agent, "Content-Type": "application/json",
                                 "X-Forwarded-For": address}, timeout=30)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    data_dir = tmp_path_factory.mktemp("saved") / "data"
    member = analyst(data_dir)
    server = ServerProcess(data_dir, demo=True, env={"HITMETRIX_TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        for address, _, user_agent, paths in VISITS:
            post_visit(server, member, address, user_agent, paths)

        def all_stored() -> bool:
            r = server.api(f"/api/v1/projects/{member.project_id}/overview")
            return r.status_code == 200 and r.json()["totals"]["sessions"] == len(VISITS)

        wait_for(all_stored, 30, 0.2, what="the visits in the overview")
        yield Loaded(server, member)
    finally:
        server.stop()


def open_page(browser: Browser, loaded: Loaded, width: int) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"{exc}\n{exc.stack}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    sign_in(page, loaded.server.url, loaded.member)
    return page, problems


def kpi(page: Page, key: str) -> str:
    return page.inner_text(f"[data-kpi='{key}'] .hm-ov-kpi-value").strip()


def fits(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"


def test_a_filtered_overview_is_saved_and_reopened_from_the_list(browser: Browser, loaded: Loaded,
                                                                 artifacts: Path) -> None:
    out = artifacts / "saved"
    out.mkdir(exist_ok=True)
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}"
    page.goto(base + "/overview?country=DE&device=desktop")
    assert kpi(page, "sessions") == str(GERMANS)
    page.click(".hm-sv-save summary")
    page.fill(".hm-sv-save input[name=name]", "Germans on desktops")
    page.click(".hm-sv-save button[type=submit]")
    page.wait_for_url(lambda url: "/saved?created=" in url, timeout=15_000)
    assert "Germans on desktops" in page.inner_text("#hm-sv-created")
    row = page.locator("#hm-sv-list tbody tr")
    assert row.count() == 1 and "country DE" in row.inner_text() and "device desktop" in row.inner_text()
    page.screenshot(path=str(out / "saved-views-1280.png"), full_page=True)

    page.goto(base + "/overview")
    assert kpi(page, "sessions") == str(len(VISITS))
    page.goto(base + "/saved")
    page.click("a.hm-sv-open:text-is('Germans on desktops')")
    page.wait_for_url(lambda url: "/overview?" in url, timeout=15_000)
    assert parse_qs(urlsplit(page.url).query) == {"country": ["DE"], "device": ["desktop"]}
    assert kpi(page, "sessions") == str(GERMANS)
    assert page.locator("[data-filter='country']").count() == 1, "the filter chip is back"

    phone, phone_problems = open_page(browser, loaded, 375)
    phone.goto(base + "/saved")
    fits(phone)
    phone.screenshot(path=str(out / "saved-views-375.png"), full_page=True)
    assert problems == [] and phone_problems == [], problems + phone_problems


def test_a_cohort_is_built_opened_and_filters_the_overview(browser: Browser, loaded: Loaded,
                                                           artifacts: Path) -> None:
    out = artifacts / "saved"
    out.mkdir(exist_ok=True)
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}"
    page.goto(base + "/cohorts")
    page.fill("#hm-co-builder input[name=name]", "Pricing viewers")
    page.select_option("select[name=c0_type]", "behaviour")
    assert page.is_visible("input[name=c0_path]") and not page.is_visible("input[name=c0_value]"), \
        "a behaviour row shows its own fields"
    assert page.is_visible("select[name=c1_type]") and not page.is_visible("select[name=c2_type]"), \
        "one unused row at a time"
    page.select_option("select[name=c0_kind]", "pageview")
    page.fill("input[name=c0_path]", "/pricing")
    page.fill("input[name=c0_days]", "7")
    page.wait_for_function("() => window.hmCohorts.previews >= 1 && "
                           "!document.querySelector('#hm-co-size.is-loading')", timeout=20_000)
    page.wait_for_function(f"() => document.querySelector('#hm-co-size strong')?.textContent === "
                           f"'{PRICING_VISITORS}'", timeout=20_000)
    page.screenshot(path=str(out / "cohort-builder-1280.png"), full_page=True)
    page.click("#hm-co-save")
    page.wait_for_url(lambda url: "/cohorts/" in url, timeout=15_000)
    cohort_id = urlsplit(page.url).path.rsplit("/", 1)[-1]
    assert page.inner_text("#hm-co-members-size") == str(PRICING_VISITORS)
    people = page.locator("#hm-co-people .hm-co-person")
    assert people.count() == PRICING_VISITORS
    assert page.locator("#hm-co-people a.hm-co-replay").count() == PRICING_VISITORS, "one session each"
    page.screenshot(path=str(out / "cohort-1280.png"), full_page=True)
    page.click("#hm-co-people a.hm-co-replay >> nth=0")
    page.wait_for_url(lambda url: "/sessions/" in url, timeout=15_000)

    # From the overview's own filter bar: the numbers change, without a reload, and the chip names the cohort.
    page.goto(base + "/overview")
    assert kpi(page, "sessions") == str(len(VISITS))
    page.click(".hm-ov-filters summary")
    page.select_option(".hm-ov-filters select[name=cohort]", label="Pricing viewers")
    page.click(".hm-ov-filters button[type=submit]")
    page.wait_for_function("() => window.hmOverview.navigations === 1", timeout=20_000)
    assert parse_qs(urlsplit(page.url).query)["cohort"] == [cohort_id]
    assert kpi(page, "sessions") == str(PRICING_VISITORS) and kpi(page, "visitors") == str(PRICING_VISITORS)
    assert "Pricing viewers" in page.inner_text("[data-filter='cohort']")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "overview-by-cohort-1280.png"), full_page=True)

    phone, phone_problems = open_page(browser, loaded, 375)
    for path, name in (("/cohorts", "cohorts-375.png"), (f"/cohorts/{cohort_id}", "cohort-375.png")):
        phone.goto(base + path)
        fits(phone)
        phone.screenshot(path=str(out / name), full_page=True)
    assert problems == [] and phone_problems == [], problems + phone_problems
