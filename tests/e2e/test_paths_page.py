"""The paths page in real Chromium against a real server holding the ground-truth traffic: the Sankey draws as SVG
under the dashboard's CSP and its table of top links is the generator's own answer; a click on a link of the
diagram lists exactly the sessions that walked it, one click from their replay; cleaning rules and a filter of
the shared bar change it to their own answers (the rules stay in every link); a 375 px phone scrolls the diagram
sideways, not the page. Screenshots in test-artifacts/paths/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page

from tests.analytics import test_paths as paths_truth
from tests.e2e.dashboard import open_page
from tests.e2e.test_retention_page import FIRST, LAST, Loaded, serving_ground_truth

pytestmark = pytest.mark.e2e
TOP_EDGES = 25


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with serving_ground_truth(tmp_path_factory.mktemp("paths-page") / "data") as served:
        yield served


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-pa-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)


def center_chart(page: Page) -> None:
    """The diagram in the middle of the window: not under the sticky top bar, where a click would hit the bar."""
    page.evaluate("() => document.getElementById('hm-pa-chart').scrollIntoView({block: 'center'})")


def shown_edges(page: Page) -> list[tuple[str, int]]:
    return page.eval_on_selector_all("#hm-pa-table tr[data-edge]", """rows => rows.map(r =>
        [r.dataset.edge, Number(r.querySelectorAll('td.num')[0].textContent)])""")


def top_edges(want: dict[str, Any]) -> list[tuple[str, int]]:
    ranked = sorted(want["edges"], key=lambda e: (-e["sessions"], e["id"]))[:TOP_EDGES]
    return [(e["id"], e["sessions"]) for e in ranked]


def test_a_link_opens_its_sessions_and_rules_and_filters_change_it(
    browser: Browser, loaded: Loaded, artifacts: Path
) -> None:
    page, problems = open_page(browser, loaded, 1280)
    base = f"{loaded.server.url}/projects/{loaded.member.project_id}/paths"
    page.goto(f"{base}?from={FIRST}&to={LAST}&start=/")
    wait_drawn(page)
    want = paths_truth.truth(loaded.traffic, "UTC", start="/")
    assert [tuple(e) for e in shown_edges(page)] == top_edges(want) and len(want["edges"]) > 5
    assert page.locator("#hm-pa-chart svg path").count() >= len(want["edges"]), "a band per link"
    out = artifacts / "paths"
    out.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")  # the sticky top bar would be drawn mid-page otherwise
    page.screenshot(path=str(out / "paths-1280.png"), full_page=True)

    # A click on a link of the diagram, where a person would click it: the sessions that walked it, in place.
    edge = next(e for e in want["edges"] if e["id"].startswith("2:") and not e["id"].endswith(":other"))
    center_chart(page)
    point = page.evaluate("id => window.hmPaths.edgePoint(id)", edge["id"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("() => window.hmPaths.opened === 1", timeout=20_000)
    assert parse_qs(urlsplit(page.url).query)["edge"] == [edge["id"]]
    step, near_far = int(edge["id"].split(":", 1)[0]), edge["id"].split(":", 1)[1]
    near, far = near_far.split(f"->{step + 1}:")
    walked = paths_truth.truth_sessions(loaded.traffic, (step, near, far), "UTC", start="/")
    listed = page.eval_on_selector_all("#hm-pa-sessions .hm-pa-list code", "els => els.map(e => e.textContent)")
    assert listed == walked[:50] and len(walked) == edge["sessions"]
    page.mouse.move(0, 0)  # no tooltip in the picture
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "paths-1280-sessions.png"), full_page=True)

    # Each one click from its replay.
    with page.expect_navigation() as opened:
        page.click("#hm-pa-sessions .hm-pa-list li:first-child a.hm-open")
    assert opened.value is not None and opened.value.status == 200
    assert urlsplit(page.url).path == f"/projects/{loaded.member.project_id}/sessions/{walked[0]}"
    page.go_back()
    wait_drawn(page)

    # A click on a page of the second step opens the one link that reached it; on a later page, a choice of links.
    def click_node(node_id: str) -> None:
        center_chart(page)
        point = page.evaluate("id => window.hmPaths.nodePoint(id)", node_id)
        page.mouse.click(point["x"], point["y"])

    reached = next(e for e in want["edges"] if e["id"].startswith("1:") and not e["id"].endswith(":other"))
    before = page.evaluate("() => window.hmPaths.opened")
    click_node(reached["target"])
    page.wait_for_function(f"() => window.hmPaths.opened === {before + 1}", timeout=20_000)
    assert parse_qs(urlsplit(page.url).query)["edge"] == [reached["id"]]
    listed = page.eval_on_selector_all("#hm-pa-sessions .hm-pa-list code", "els => els.map(e => e.textContent)")
    page_name = reached["target"].split(":", 1)[1]
    assert listed == paths_truth.truth_sessions(loaded.traffic, (1, "/", page_name), "UTC", start="/")[:50]
    later = next(n["id"] for n in want["nodes"] if n["step"] == 3 and n["page"] != "other"
                 and sum(1 for e in want["edges"] if n["id"] in (e["source"], e["target"])) > 1)
    click_node(later)
    choices = [e for e in want["edges"] if later in (e["source"], e["target"]) and not e["id"].endswith(":other")]
    page.wait_for_selector("#hm-pa-sessions .hm-pa-choices li", timeout=10_000)
    assert page.locator("#hm-pa-sessions .hm-pa-choices li").count() == len(choices)

    # Cleaning rules from the small editor: every blog post is one page, every product one more.
    page.click(".hm-pa-rules summary")
    page.fill("#hm-pa-rule-list li:last-child input", "^/blog/=>/blog/*")
    page.click("#hm-pa-add-rule")
    page.fill("#hm-pa-rule-list li:last-child input", "^/p/=>/p/*")
    page.click("#hm-pa-form button[type=submit]")
    page.wait_for_url(lambda url: "group=" in url, timeout=15_000)
    wait_drawn(page)
    groups = [("^/blog/", "/blog/*"), ("^/p/", "/p/*")]
    assert parse_qs(urlsplit(page.url).query)["group"] == ["^/blog/=>/blog/*", "^/p/=>/p/*"]
    grouped = paths_truth.truth(loaded.traffic, "UTC", start="/", groups=groups)
    assert [tuple(e) for e in shown_edges(page)] == top_edges(grouped) != top_edges(want)

    # A filter of the shared bar keeps both rules.
    page.click(".hm-ov-filters summary")
    page.select_option(".hm-ov-filters select[name=device]", "desktop")
    page.click(".hm-ov-filters button[type=submit]")
    page.wait_for_url(lambda url: "device=desktop" in url, timeout=15_000)
    wait_drawn(page)
    assert parse_qs(urlsplit(page.url).query)["group"] == ["^/blog/=>/blog/*", "^/p/=>/p/*"]
    desktop = paths_truth.truth(loaded.traffic, "UTC", start="/", groups=groups, filters={"device": "desktop"})
    assert [tuple(e) for e in shown_edges(page)] == top_edges(desktop) != top_edges(grouped)
    chip_remove = page.get_attribute("[data-filter='device'] a", "href") or ""
    assert parse_qs(urlsplit(chip_remove).query)["group"] == ["^/blog/=>/blog/*", "^/p/=>/p/*"]
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "paths-1280-rules-desktop.png"), full_page=True)
    assert problems == [], problems


def test_paths_to_an_end_page_and_a_phone_screen(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    page, problems = open_page(browser, loaded, 375)
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/paths?from={FIRST}&to={LAST}"
              "&end=/checkout&steps=3")
    wait_drawn(page)
    want = paths_truth.truth(loaded.traffic, "UTC", end="/checkout", steps=3)
    assert [tuple(e) for e in shown_edges(page)] == top_edges(want) and want["edges"]
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    scroll = page.evaluate("() => { const s = document.querySelector('.hm-pa-scroll');"
                           " return [s.scrollWidth, s.clientWidth]; }")
    assert scroll[0] > scroll[1], "the diagram scrolls sideways inside its box"
    out = artifacts / "paths"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "paths-375.png"), full_page=True)

    # The table's ▸ opens a link's sessions the same way, for a phone and a screen reader.
    row = page.locator("#hm-pa-table tr[data-edge] a[data-edge-link]").first
    row.scroll_into_view_if_needed()
    row.click()
    page.wait_for_function("() => window.hmPaths.opened === 1", timeout=20_000)
    assert page.locator("#hm-pa-sessions .hm-pa-list a.hm-open").count() > 0
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "paths-375-sessions.png"), full_page=True)
    assert problems == [], problems
