"""The trends page in real Chromium against a real server: it loads with data and draws its chart as SVG under the
dashboard's CSP, a filter changes the numbers, adding a series in the editor adds a line to the chart (and the
series to the shareable URL), the bar switch redraws in place, a row opens its sessions and one replays, and the
page fits a 375 px phone screen. Screenshots in test-artifacts/trends/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.analytics_server import CHROME, FIREFOX, Loaded, post_visit, serving_visits
from tests.e2e.dashboard import demo_member, open_page
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

# (client address, user agent, pages viewed, clicks on #buy, signups)
VISITS = [
    ("78.46.0.1", FIREFOX, ["/", "/pricing"], 2, 1),
    ("5.9.0.1", FIREFOX, ["/docs"], 0, 0),
    ("8.8.8.8", CHROME, ["/", "/pricing", "/signup"], 1, 1),
    ("8.8.4.4", CHROME, ["/pricing"], 3, 0),
]
PAGEVIEWS = sum(len(v[2]) for v in VISITS)
CLICKS = sum(v[3] for v in VISITS)


def events_of(paths: list[str], clicks: int, signups: int) -> list[dict[str, Any]]:
    """One visitor's pageviews, then clicks on #buy and signups on the last page, from two minutes ago."""
    ms = int(time.time() * 1000) - 120_000
    events: list[dict[str, Any]] = []
    for p in paths:
        ms += 2000
        events.append({"type": "pageview", "ts": ms, "url": f"https://shop.example{p}"})
    for _ in range(clicks):
        ms += 1000
        events.append({"type": "click", "ts": ms, "url": f"https://shop.example{paths[-1]}", "selector": "#buy",
                       "text": "Buy now"})
    for _ in range(signups):
        ms += 1000
        events.append({"type": "custom", "ts": ms, "url": f"https://shop.example{paths[-1]}", "name": "signup",
                       "props": {"plan": "pro"}})
    return events


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    data_dir = tmp_path_factory.mktemp("trends") / "data"
    member = demo_member(data_dir)

    def post_visits(server: ServerProcess) -> None:
        for address, user_agent, paths, clicks, signups in VISITS:
            post_visit(server, member, "tr", address, user_agent, events_of(paths, clicks, signups))

    with serving_visits(data_dir, member, post_visits, "trends",
                        lambda answer: answer["lines"][0]["totals"]["total"] == PAGEVIEWS,
                        "the visits in the trend") as served:
        yield served


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-tr-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)


def totals(page: Page) -> list[list[str]]:
    """The totals table, cell texts per row (series, total, visitors, sessions, per session, links)."""
    rows = page.locator(".hm-tr-table tbody tr").all()
    return [[" ".join(c.split()) for c in row.locator("th, td").all_text_contents()] for row in rows]


def test_loads_filters_and_adding_a_series_adds_a_line(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}"
    page.goto(base + "/trends")
    wait_drawn(page)
    assert page.evaluate("() => window.hmTrends.lines") == 1
    (row,) = totals(page)
    assert row[0].startswith("Pageview (any page)") and row[1:4] == [str(PAGEVIEWS), str(len(VISITS)),
                                                                      str(len(VISITS))]
    out = artifacts / "trends"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "trends-1280.png"), full_page=True)

    # A filter (the shared bar's) changes the numbers: Firefox only.
    page.click(".hm-ov-filters summary")
    page.fill(".hm-ov-filters input[name='browser']", "Firefox")
    with page.expect_navigation():
        page.click(".hm-ov-filters button[type='submit']")
    wait_drawn(page)
    firefox = [v for v in VISITS if v[1] == FIREFOX]
    assert parse_qs(urlsplit(page.url).query)["browser"] == ["Firefox"]
    assert totals(page)[0][1:4] == [str(sum(len(v[2]) for v in firefox)), str(len(firefox)), str(len(firefox))]
    page.click("[data-filter='browser'] a")  # the chip's ×
    page.wait_for_url(lambda url: "browser" not in url, timeout=15_000)
    wait_drawn(page)

    # Adding a series: a click on #buy, counted per session; the chart gets a second line.
    svg_before = page.inner_html("#hm-tr-chart svg")
    page.click("#hm-tr-add")
    new_row = page.locator("#hm-tr-rows > .hm-tr-row").nth(1)
    new_row.locator("[data-field='kind']").select_option("click")
    assert new_row.locator(".hm-tr-f-path").is_hidden() and new_row.locator(".hm-tr-f-selector").is_visible()
    new_row.locator("[data-field='selector']").fill("#buy")
    new_row.locator("[data-field='math']").select_option("per_session")
    with page.expect_navigation():
        page.click("#hm-tr-editor button[type='submit']")
    wait_drawn(page)
    assert page.evaluate("() => window.hmTrends.lines") == 2
    assert page.inner_html("#hm-tr-chart svg") != svg_before
    legend = page.eval_on_selector_all("#hm-tr-chart svg text", "els => els.map(e => e.textContent)")
    assert any("Click #buy" in text for text in legend), legend
    series = json.loads(parse_qs(urlsplit(page.url).query)["series"][0])
    assert series[1] == {"kind": "click", "selector": "#buy", "math": "per_session"}
    clicked = [v for v in VISITS if v[3]]
    click_row = totals(page)[1]
    assert click_row[0].startswith("Click #buy") and click_row[1:5] == [
        str(CLICKS), str(len(clicked)), str(len(clicked)), f"{CLICKS / len(clicked):.2f}"]
    # The page's URL under /api/v1 is the same answer as JSON.
    api = loaded.server.api(urlsplit(page.url).path.replace("/projects/", "/api/v1/projects/") + "?"
                            + urlsplit(page.url).query)
    assert api.status_code == 200 and api.json()["lines"][1]["totals"]["total"] == CLICKS

    # Line / bar: redrawn in place, the URL says which.
    page.click(".hm-tr-charttype a[data-chart='bar']")
    page.wait_for_function("() => window.hmTrends.chart === 'bar'", timeout=10_000)
    wait_drawn(page)
    assert parse_qs(urlsplit(page.url).query)["chart"] == ["bar"]
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "trends-1280-two-series-bar.png"), full_page=True)

    # A row's sessions, and one of them replays.
    page.click(".hm-tr-table tbody tr:nth-child(2) a:text('Sessions')")
    page.wait_for_url(lambda url: "/trends/sessions?" in url, timeout=15_000)
    assert page.locator(".hm-tr-sessions tbody tr").count() == len(clicked)
    page.screenshot(path=str(out / "trends-1280-sessions.png"), full_page=True)
    page.click(".hm-tr-sessions tbody tr:first-child a.hm-tr-replay")
    page.wait_for_url(lambda url: "/sessions/tr" in url and "t=" in url, timeout=15_000)
    assert problems == [], problems


def test_a_phone_screen_has_no_horizontal_scroll(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 375)
    series = json.dumps([{"kind": "pageview", "match": "prefix", "path": ""},
                         {"kind": "click", "selector": "#buy", "math": "visitors"},
                         {"kind": "custom", "name": "signup", "math": "per_session"}])
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/trends?"
              + str(httpx.QueryParams({"series": series, "compare": "previous", "breakdown": "browser"})))
    wait_drawn(page)
    out = artifacts / "trends"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "trends-375.png"), full_page=True)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    too_wide = page.evaluate("""() => {
        const found = [];
        let at = document.body;
        for (let depth = 0; depth < 12; depth++) {
          let culprit = null;
          for (const child of at.children) {
            const before = child.style.display;
            child.style.display = 'none';
            const fixed = document.documentElement.scrollWidth <= window.innerWidth;
            child.style.display = before;
            if (fixed) { culprit = child; break; }
          }
          if (!culprit) break;
          found.push(culprit.tagName + '.' + culprit.className);
          at = culprit;
        }
        return found;
      }""")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen: {too_wide}"
    chart_width = page.evaluate("() => document.querySelector('#hm-tr-chart svg').getBoundingClientRect().width")
    assert 250 <= chart_width <= 375
    assert problems == [], problems


def test_a_bad_series_is_a_400_page_that_says_why(browser: Browser, loaded: Loaded) -> None:
    page, problems = open_page(browser, loaded, 1280)
    answer = page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/trends?series=%5B%7B%7D%5D")
    assert answer is not None and answer.status == 400
    assert "kind must be one of" in page.inner_text(".hm-ov-error")
    assert page.locator("#hm-tr-editor").count() == 1, "the editor stays, to fix the series"
    assert [p for p in problems if "400" not in p] == []
