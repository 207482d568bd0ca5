"""The overview page in real Chromium against a real server: it loads with data, the chart and the world map
draw as SVG under the dashboard's CSP, a filter click changes the numbers and the URL without a reload, a row
opens its sessions, and the page fits a 375 px phone screen. Screenshots in test-artifacts/overview/."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.e2e.dashboard import Member, demo_member, sign_in
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
    "Safari/537.36"
)
# (client address, its country in the bundled database, user agent, pages viewed)
VISITS = [
    ("78.46.0.1", "DE", FIREFOX, ["/", "/pricing"]),
    ("5.9.0.1", "DE", FIREFOX, ["/docs"]),
    ("78.46.0.2", "DE", FIREFOX, ["/", "/docs", "/pricing"]),
    ("8.8.8.8", "US", CHROME, ["/"]),
    ("8.8.4.4", "US", CHROME, ["/pricing", "/signup"]),
    ("212.58.244.1", "GB", PHONE, ["/"]),
]


@dataclass
class Loaded:
    server: ServerProcess
    member: Member


def post_visit(server: ServerProcess, member: Member, address: str, user_agent: str, paths: list[str]) -> None:
    sid = "ov" + secrets.token_hex(8)
    start_ms = int(time.time() * 1000) - 60_000
    events = [{"type": "pageview", "ts": start_ms + i * 2000, "url": f"https://shop.example{p}"}
              for i, p in enumerate(paths)]
    body = {"session_id": sid, "anonymous_id": "a" + sid, "sent_at": int(time.time() * 1000), "events": events}
    answer = httpx.post(
        server.url + "/api/v1/batch",
        params={"key": member.project_key},
        content=json.dumps(body),
        headers={"User-Agent": user_agent, "Content-Type": "application/json", "X-Forwarded-For": address},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    data_dir = tmp_path_factory.mktemp("overview") / "data"
    member = demo_member(data_dir)
    # The visits come from 127.0.0.1 with the visitor's address in X-Forwarded-For, so each gets its country.
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


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-ov-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)
    page.wait_for_selector("#hm-ov-map[data-drawn='1'] svg path", state="attached", timeout=20_000)


def kpi(page: Page, key: str) -> str:
    return page.inner_text(f"[data-kpi='{key}'] .hm-ov-kpi-value").strip()


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
