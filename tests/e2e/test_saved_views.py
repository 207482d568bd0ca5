"""Saved views and cohorts in real Chromium against a real server: an analyst saves a filtered overview and
reopens it from the list; builds a cohort (the size previews while the conditions change), opens it (its people
and their sessions), and applies it as a filter from the overview's bar, which changes the numbers. The pages fit
a 375 px phone screen. Screenshots in test-artifacts/saved/."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.e2e.analytics_server import CHROME, SHOP_VISITS, Loaded, PageVisit, kpi, serving_page_visits
from tests.e2e.dashboard import Member, open_page

pytestmark = pytest.mark.e2e

# The shop's visitors and an American who reads the blog: one visitor each.
VISITS: list[PageVisit] = [*SHOP_VISITS, ("8.8.4.5", "US", CHROME, ["/blog"])]
PRICING_VISITORS = sum(1 for v in VISITS if "/pricing" in v[3])
GERMANS = sum(1 for v in VISITS if v[1] == "DE")


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


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with serving_page_visits(tmp_path_factory.mktemp("saved") / "data", analyst, VISITS, "sv", 120_000) as served:
        yield served


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
