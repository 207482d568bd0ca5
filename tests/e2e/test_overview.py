"""The overview page in real Chromium against a real server: it loads with data, the chart and the world map
draw as SVG under the dashboard's CSP, a filter click changes the numbers and the URL without a reload, a row
opens its sessions, and the page fits a 375 px phone screen. Screenshots in test-artifacts/overview/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.e2e.analytics_server import FIREFOX, SHOP_VISITS, Loaded, PageVisit, kpi, serving_page_visits
from tests.e2e.dashboard import demo_member, open_page

pytestmark = pytest.mark.e2e

PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
    "Safari/537.36"
)
# The shop's visitors and one on a phone in Britain.
VISITS: list[PageVisit] = [*SHOP_VISITS, ("212.58.244.1", "GB", PHONE, ["/"])]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with serving_page_visits(tmp_path_factory.mktemp("overview") / "data", demo_member, VISITS, "ov", 60_000) as served:
        yield served


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-ov-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)
    page.wait_for_selector("#hm-ov-map[data-drawn='1'] svg path", state="attached", timeout=20_000)


def test_loads_draws_and_filters_without_a_reload(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}"
    page.goto(base + "/overview")
    wait_drawn(page)
    assert kpi(page, "sessions") == str(len(VISITS))
    assert kpi(page, "visitors") == str(len(VISITS))
    assert kpi(page, "pageviews") == str(sum(len(v[3]) for v in VISITS))
    assert page.locator("#hm-ov-chart svg path").count() >= 2, "the line and its axes"
    # Every country of the 1:110m map is a shape; the ones with visitors are coloured.
    assert page.locator("#hm-ov-map svg path").count() > 150
    countries = page.locator("[data-list='countries'] tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in countries] == ["DE", "US", "GB"]
    out = artifacts / "overview"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "overview-1280.png"), full_page=True)

    # The metric menu redraws the series: every visit was today, so the top of the y axis is that day's count.
    def y_labels() -> list[str]:
        return page.eval_on_selector_all("#hm-ov-chart svg text", "els => els.map(e => e.textContent)")

    pageviews = sum(len(v[3]) for v in VISITS)
    assert str(len(VISITS)) in y_labels() and str(pageviews) not in y_labels()
    page.select_option("#hm-ov-metric", "pageviews")
    page.wait_for_function(f"() => [...document.querySelectorAll('#hm-ov-chart svg text')]"
                           f".some(e => e.textContent === '{pageviews}')", timeout=10_000)
    page.select_option("#hm-ov-metric", "visitors")

    # While the filtered view's query runs, the page says it is busy and the charts wait.
    busy: list[list[object]] = []

    def look_while_loading(route: Route) -> None:
        busy.append(page.evaluate("""() => [document.getElementById('hm-overview').getAttribute('aria-busy'),
                                            !!document.querySelector('#hm-ov-chart.is-loading'),
                                            !!document.querySelector('#hm-ov-map.is-loading')]"""))
        route.continue_()

    page.route(re.compile(r"/overview\?"), look_while_loading)
    page.click("[data-list='browsers'] a[data-nav]:text-is('Firefox')")
    page.wait_for_function("() => window.hmOverview.navigations === 1", timeout=20_000)
    page.unroute(re.compile(r"/overview\?"))
    assert busy == [["true", True, True]]
    assert page.get_attribute("#hm-overview", "aria-busy") is None, "the new view is not busy"
    wait_drawn(page)
    firefox = sum(1 for v in VISITS if v[2] == FIREFOX)
    assert kpi(page, "sessions") == str(firefox)
    assert parse_qs(urlsplit(page.url).query)["browser"] == ["Firefox"]
    assert page.locator("[data-filter='browser']").count() == 1, "the filter chip"
    assert [r.split("\t")[0] for r in page.locator("[data-list='countries'] tbody tr").all_inner_texts()] == ["DE"]
    page.evaluate("() => window.scrollTo(0, 0)")  # the sticky top bar would be drawn mid-page otherwise
    page.screenshot(path=str(out / "overview-1280-firefox.png"), full_page=True)

    page.go_back()
    page.wait_for_function("() => window.hmOverview.navigations === 2", timeout=20_000)
    assert kpi(page, "sessions") == str(len(VISITS)) and "browser" not in page.url

    # A row's sessions: the session list with the same filter.
    page.click("[data-list='countries'] tr:has(a:text-is('US')) .hm-ov-go a")
    page.wait_for_url(lambda url: "/sessions?" in url, timeout=15_000)
    assert parse_qs(urlsplit(page.url).query)["country"] == ["US"]
    assert page.locator("table.hm-table tbody tr").count() == sum(1 for v in VISITS if v[1] == "US")
    assert problems == [], problems
    assert page.evaluate("() => window.hmOverview === undefined"), "left the overview for the session list"


def test_a_phone_screen_has_no_horizontal_scroll(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 375)
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/overview")
    wait_drawn(page)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    chart_width = page.evaluate("() => document.querySelector('#hm-ov-chart svg').getBoundingClientRect().width")
    assert 250 <= chart_width <= 375
    out = artifacts / "overview"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "overview-375.png"), full_page=True)
    assert problems == [], problems
