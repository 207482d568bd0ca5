"""The web vitals page in real Chromium against a real server: a real site with the tracker (its vitals chunk on)
is visited in Chromium, and the page shows those page loads' p75 tiles coloured by rating, the trend chart drawn
as SVG under the CSP, the per-page table sorted by a metric through the URL, a page and a filter narrowing it, and
it fits a 375 px phone screen. Screenshots in test-artifacts/vitals/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.vitals_site import PAGE_LOADS, VitalsSite, fits, open_signed_in, vitals_site

pytestmark = pytest.mark.e2e
RATINGS = ("good", "needs-improvement", "poor")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[VitalsSite]:
    with vitals_site(tmp_path_factory.mktemp("vitals-page"), browser) as site:
        yield site


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-vt-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)


def measured(page: Page) -> int:
    return int(page.get_attribute(".hm-vt-measured", "data-measured") or -1)


def shot(page: Page, artifacts: Path, name: str) -> None:
    folder = artifacts / "vitals"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_the_measured_page_loads_show_with_ratings_a_chart_and_a_sortable_table(
    browser: Browser, site: VitalsSite, artifacts: Path
) -> None:
    page, problems = open_signed_in(browser, site, 1280)
    page.goto(site.project_url + "/vitals")
    wait_drawn(page)
    assert measured(page) == PAGE_LOADS
    answer = site.server.api(f"/api/v1/projects/{site.member.project_id}/vitals").json()
    for key in ("lcp", "fcp", "ttfb", "cls", "inp"):
        tile = page.locator(f".hm-vt-tile[data-metric='{key}']")
        total = answer["totals"][key]
        assert total["samples"] > 0, (key, answer["totals"])  # the browser measured every metric
        assert total["rating"] in RATINGS
        assert f"is-{total['rating']}" in (tile.get_attribute("class") or "")
        assert tile.locator(".hm-vt-value").inner_text().strip() not in ("", "–")
    # The chart's line and its two dashed limits.
    assert page.locator("#hm-vt-chart svg path").count() >= 3
    rows = page.locator("#hm-vt-pages tbody tr")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.page)")) == ["/checkout.html", "/home.html"]
    assert fits(page)
    shot(page, artifacts, "vitals-1280")

    # Sorting by LCP is a link: the URL says so, and the rows come in that order.
    page.click("#hm-vt-pages th a[data-sort='lcp']")
    page.wait_for_url(lambda url: "sort=lcp" in url)
    wait_drawn(page)
    by_lcp = sorted(answer["pages"], key=lambda p: -(p["lcp"]["p75"] or -1))
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.page)") == [p["page"] for p in by_lcp]
    assert page.get_attribute("#hm-vt-pages th a[data-sort='lcp']", "href") is not None
    assert parse_qs(urlsplit(page.url).query)["order"] == ["desc"]

    # A row narrows the view to its page; another metric's tile redraws the chart for it.
    page.click("#hm-vt-pages tr[data-page='/checkout.html'] td a")
    page.wait_for_url(lambda url: "page=%2Fcheckout.html" in url)
    wait_drawn(page)
    assert measured(page) == 2
    page.click(".hm-vt-tile[data-metric='ttfb']")
    page.wait_for_url(lambda url: "chart=ttfb" in url)
    wait_drawn(page)
    assert "TTFB" in page.inner_text(".hm-ov-chart-card h2")

    # A filter that no visit matches: nothing measured, and the page says why.
    page.goto(site.project_url + "/vitals?device=mobile")
    assert measured(page) == 0
    assert "No page measured" in page.inner_text("#hm-vitals")
    assert problems == []


def test_the_page_fits_a_phone(browser: Browser, site: VitalsSite, artifacts: Path) -> None:
    page, problems = open_signed_in(browser, site, 375)
    page.goto(site.project_url + "/vitals")
    wait_drawn(page)
    assert measured(page) == PAGE_LOADS
    assert fits(page), "the page must not scroll sideways at 375 px"
    tiles = page.locator(".hm-vt-tile").evaluate_all("ts => ts.map(t => t.getBoundingClientRect().right)")
    assert max(tiles) <= 375
    shot(page, artifacts, "vitals-375")
    assert problems == []
