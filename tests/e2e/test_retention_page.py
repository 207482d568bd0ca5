"""The retention page in real Chromium against a real server holding the ground-truth traffic: the cohort grid
shows the generator's own answer, heat-coloured, the curve draws as SVG under the dashboard's CSP, a filter and
a monthly grid change it to their own answers, the previous period comes beside it, and a 375 px phone scrolls
the grid sideways, not the page. A cell (and a cohort's size) opens exactly the sessions behind it, one click
from their replay. Screenshots in test-artifacts/retention/."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.analytics import groundtruth as gt
from tests.analytics import test_retention as retention_truth
from tests.e2e.analytics_server import load_generated_in_child
from tests.e2e.dashboard import Member, demo_member, open_page, wait_replay_loaded
from tests.e2e.test_funnels_page import REPLAY_FRAME
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

SEED, VISITORS = 9, 120
FIRST, LAST = dt.date(2026, 9, 7), dt.date(2026, 11, 8)  # the generator's eight weeks (and a day)


@dataclass
class Loaded:
    server: ServerProcess
    member: Member
    traffic: gt.Traffic


@contextmanager
def serving_ground_truth(data_dir: Path) -> Iterator[Loaded]:
    """A member of project 1 (the id the truth functions read), the ground truth loaded before the server starts
    (in a child process: chDB holds one data directory per process), and the server, stopped after."""
    member = demo_member(data_dir)
    assert member.project_id == 1
    # Recordings too, so a listed session's replay has something to show.
    load_generated_in_child(data_dir, SEED, VISITORS, (member.project_id, member.project_id + 1), timeout_s=600)
    server = ServerProcess(data_dir, demo=False).start()
    try:
        traffic = gt.generate(seed=SEED, visitors=VISITORS, project_ids=(member.project_id, member.project_id + 1))
        yield Loaded(server, member, traffic)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with serving_ground_truth(tmp_path_factory.mktemp("retention-page") / "data") as served:
        yield served


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-rt-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)


def shown_grid(page: Page) -> list[dict[str, Any]]:
    """Each cohort row as the page shows it: the cohort's day, its size and each cell's visitors (None: not yet)."""
    return page.eval_on_selector_all("#hm-rt-grid tr[data-cohort]", """rows => rows.map(r => ({
        cohort: r.dataset.cohort,
        visitors: Number(r.querySelector('.hm-rt-size').textContent),
        cells: [...r.querySelectorAll('td.hm-rt-cell')].map(c => c.dataset.visitors === undefined ? null
                                                                   : Number(c.dataset.visitors)),
    }))""")


def begun(cohort: str, period: str, k: int) -> bool:
    """Whether period k of a cohort has begun (the server's clock is the real one; its zone is UTC)."""
    start = dt.date.fromisoformat(cohort)
    if period == "month":
        months = start.month - 1 + k
        start = dt.date(start.year + months // 12, months % 12 + 1, 1)
    else:
        start += dt.timedelta(days=k * (7 if period == "week" else 1))
    return start <= dt.datetime.now(dt.UTC).date()


def expected_grid(want: dict[str, Any]) -> list[dict[str, Any]]:
    """The ground truth as the page shows it: no number where the cohort is empty or the period has not begun."""
    return [{"cohort": c["cohort"], "visitors": c["visitors"],
             "cells": [cell["visitors"] if c["visitors"] and begun(c["cohort"], want["period"], cell["period"])
                       else None for cell in c["cells"]]}
            for c in want["cohorts"]]


def test_the_grid_is_the_ground_truth_and_filters_change_it(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}/retention"
    page.goto(f"{base}?from={FIRST}&to={LAST}")
    wait_drawn(page)
    want = retention_truth.truth(loaded.traffic, FIRST, LAST, "UTC", "week", 8)
    assert shown_grid(page) == expected_grid(want)
    assert sum(c["visitors"] for c in want["cohorts"]) > 50 and any(
        cell["visitors"] for c in want["cohorts"] for cell in c["cells"][1:]), "a grid with returns to show"
    # Cell 0 is the cohort itself, in the darkest shade; a cell with no return has the palest.
    assert "hm-heat-10" in page.get_attribute("#hm-rt-grid tr[data-cohort] td.hm-rt-cell", "class")
    out = artifacts / "retention"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "retention-1280.png"), full_page=True)

    # A filter of the shared bar: the grid becomes the ground truth of mobile visitors only.
    page.click(".hm-ov-filters summary")
    page.select_option(".hm-ov-filters select[name=device]", "mobile")
    # What the page said while the next view's query ran, noted as it was left (read back from the next page).
    page.evaluate("""() => window.addEventListener('pagehide', () => sessionStorage.setItem('busy',
        document.getElementById('hm-retention').getAttribute('aria-busy')))""")
    page.click(".hm-ov-filters button[type=submit]")
    page.wait_for_url(lambda url: "device=mobile" in url, timeout=15_000)
    wait_drawn(page)
    busy = [page.evaluate("() => sessionStorage.getItem('busy')")]
    assert busy == ["true"], "the page says it is busy while the next view's query runs"
    mobile = retention_truth.truth(loaded.traffic, FIRST, LAST, "UTC", "week", 8, filters={"device": "mobile"})
    assert shown_grid(page) == expected_grid(mobile) != expected_grid(want)
    assert page.locator("[data-filter='device']").count() == 1, "the filter's chip"

    # The page's own form: monthly cohorts of visitors who bought, keeping the filter.
    page.select_option("select[name=period]", "month")
    page.fill("input[name=periods]", "2")
    page.select_option("[data-cond='return'] select", "event")
    page.fill("[data-cond='return'] input", "purchase")
    page.click(".hm-rt-form button[type=submit]")
    page.wait_for_url(lambda url: "period=month" in url, timeout=15_000)
    wait_drawn(page)
    query = parse_qs(urlsplit(page.url).query)
    assert query["return_event"] == ["purchase"] and query["device"] == ["mobile"] and "return_page" not in query
    monthly = retention_truth.truth(loaded.traffic, FIRST, LAST, "UTC", "month", 2, returned=("", "purchase"),
                                    filters={"device": "mobile"})
    assert shown_grid(page) == expected_grid(monthly)
    assert page.inner_text("#hm-rt-grid thead").split("\t")[2].strip() == "Month 0"

    # The previous period beside it: its average row and a second, dashed curve.
    page.click("a.hm-an-compare")
    page.wait_for_url(lambda url: "compare=previous" in url, timeout=15_000)
    wait_drawn(page)
    assert page.locator("tr[data-row='previous']").count() == 1
    legend = page.eval_on_selector_all("#hm-rt-chart svg text", "els => els.map(e => e.textContent)")
    assert any(text.startswith(str(FIRST)) for text in legend), legend
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "retention-1280-monthly-compare.png"), full_page=True)
    assert problems == [], problems


def listed_sessions(page: Page) -> list[str]:
    return page.eval_on_selector_all("#hm-rt-sessions tr[data-session]", "els => els.map(e => e.dataset.session)")


def test_a_cell_opens_its_sessions_one_click_from_their_replay(
    browser: Browser, loaded: Loaded, artifacts: Path
) -> None:
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}/retention"
    page.goto(f"{base}?from={FIRST}&to={LAST}&return_page=/blog/*")
    wait_drawn(page)
    cells = retention_truth.truth_sessions(loaded.traffic, FIRST, LAST, "UTC", "week", 8, returned=("/blog/*", ""))
    out = artifacts / "retention"
    out.mkdir(exist_ok=True)

    # A cohort's size: its sessions in its first week.
    cohort = min(c for c, k in cells if k == 0)
    page.click(f"#hm-rt-grid tr[data-cohort='{cohort}'] td.hm-rt-size a")
    page.wait_for_function("() => window.hmRetention.opened === 1", timeout=20_000)
    assert listed_sessions(page) == [s.session_id for s in cells[(cohort, 0)]][:50]
    assert parse_qs(urlsplit(page.url).query)["offset"] == ["0"]

    # A cell of returns: the cell with the most returning sessions, listed in the panel under the grid, marked.
    (cohort, offset), returning = max(((cell, found) for cell, found in cells.items() if cell[1] > 0),
                                      key=lambda item: (len(item[1]), item[0]))
    assert len(returning) > 1
    page.click(f"#hm-rt-grid tr[data-cohort='{cohort}'] td.hm-rt-cell[data-period='{offset}'] a")
    page.wait_for_function("() => window.hmRetention.opened === 2", timeout=20_000)
    query = parse_qs(urlsplit(page.url).query)
    assert (query["cohort_start"], query["offset"], query["return_page"]) == ([cohort], [str(offset)], ["/blog/*"])
    assert listed_sessions(page) == [s.session_id for s in returning][:50]
    visitors = len({s.anonymous_id for s in returning})
    expect(page.locator("#hm-rt-sessions h2")).to_contain_text(f"{len(returning)} sessions of {visitors} visitor")
    opened = page.locator(f"#hm-rt-grid tr[data-cohort='{cohort}'] td.hm-rt-cell[data-period='{offset}']")
    expect(opened).to_have_class(re.compile(r"\bis-open\b"))
    assert page.locator("#hm-rt-grid .is-open").count() == 1
    page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header stays on top in the picture
    page.screenshot(path=str(out / "retention-1280-sessions.png"), full_page=True)

    # One click from its replay, which opens where the session viewed the blog page that made it a return.
    links = page.eval_on_selector_all("#hm-rt-sessions a.hm-rt-replay", "els => els.map(e => e.href)")
    at_s = {urlsplit(h).path.rsplit("/", 1)[1]: int(parse_qs(urlsplit(h).query)["t"][0]) for h in links}
    first = max(at_s, key=lambda sid: (at_s[sid], sid))
    page.click(f"#hm-rt-sessions tr[data-session='{first}'] a.hm-rt-replay")
    page.wait_for_url(lambda url: f"/sessions/{first}?t=" in url, timeout=15_000)
    wait_replay_loaded(page)
    expect(page.frame_locator(REPLAY_FRAME).locator("#who")).to_have_text(f"Recording of {first}", timeout=15_000)
    page.wait_for_function(f"() => Math.abs(window.hmReplay.currentTime() - {at_s[first] * 1000}) < 250",
                           timeout=15_000)

    # Back on the grid, "Close" empties the panel and takes the cell out of the URL.
    page.go_back()
    page.wait_for_selector("#hm-rt-sessions tr[data-session]", timeout=20_000)
    page.click("#hm-rt-sessions a[data-close]")
    page.wait_for_function("() => !location.search.includes('cohort_start')", timeout=20_000)
    expect(page.locator("#hm-rt-sessions")).to_contain_text("Click a cell of the grid")
    assert page.locator("#hm-rt-grid .is-open").count() == 0
    assert problems == [], problems


def test_a_phone_scrolls_the_grid_not_the_page(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 375)
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/retention?from={FIRST}&to={LAST}&periods=10")
    wait_drawn(page)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    scroll = page.evaluate("() => { const s = document.querySelector('.hm-rt-scroll');"
                           " return [s.scrollWidth, s.clientWidth]; }")
    assert scroll[0] > scroll[1], "the grid scrolls sideways inside its box"
    chart_width = page.evaluate("() => document.querySelector('#hm-rt-chart svg').getBoundingClientRect().width")
    assert 250 <= chart_width <= 375
    out = artifacts / "retention"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "retention-375.png"), full_page=True)

    # A cell's sessions fit too: their table scrolls inside its box.
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/retention?from={FIRST}&to={LAST}"
              f"&cohort_start={FIRST}&offset=1")
    wait_drawn(page)
    assert listed_sessions(page), "week 1 of the first cohort has returns"
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    page.screenshot(path=str(out / "retention-375-sessions.png"), full_page=True)
    assert problems == [], problems
