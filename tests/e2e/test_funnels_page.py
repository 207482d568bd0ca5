"""The funnels page in real Chromium against a real server holding seeded ground-truth traffic (every session
with a recording): the funnel draws as SVG under the dashboard's CSP with the numbers a plain-Python reading of
the funnel rules gives, a filter and a step added in the builder change it, a step's drop-off opens exactly its
sessions, one of them replays at the moment it entered, and the page fits a 375 px screen.
Screenshots in test-artifacts/funnels/."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.analytics import groundtruth as gt
from tests.e2e.analytics_server import load_generated_in_child
from tests.e2e.dashboard import Member, demo_member, open_page, wait_replay_loaded
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

SEED = 21
FIRST, LAST = dt.date(2026, 9, 7), dt.date(2026, 11, 8)
WINDOW_MS = 24 * 3_600_000
# (match, path) of each step: home, then a blog post, then a product page, within a day of home.
HOME, BLOG, ITEM = ("exact", "/"), ("prefix", "/blog/"), ("prefix", "/p/")
REPLAY_FRAME = ".replayer-wrapper iframe"
DROPPED_FILL = "#f3a5a5"  # the drop-off bars' colour (dashboard/src/funnelcharts.ts)


# --- the answer, read from the generated sessions -----------------------------------------------------------------


def _day_ms(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp() * 1000)


def _fills(step: tuple[str, str], e: gt.TruthEvent) -> bool:
    if e.type != "pageview":
        return False
    path = urlsplit(e.url).path or "/"
    return path == step[1] if step[0] == "exact" else path.startswith(step[1])


def truth(traffic: gt.Traffic, project_id: int, steps: list[tuple[str, str]], zone: str, device: str = ""
          ) -> dict[str, int]:
    """Per session id, the furthest step an ordered attempt reached (attempts start at a step-1 event in the
    range; each later step is the first matching event after the previous one, within the window of step 1)."""
    low, high = _day_ms(FIRST, zone), _day_ms(LAST + dt.timedelta(days=1), zone)
    reached: dict[str, int] = {}
    for s in traffic.of_project(project_id):
        if not low <= s.started_ms < high or (device and s.device != device):
            continue
        events = sorted(s.events, key=lambda e: e.ts)
        best = 0
        for i, e in enumerate(events):
            if not (low <= e.ts < high and _fills(steps[0], e)):
                continue
            k, at = 1, i
            while k < len(steps):
                nxt = next((j for j in range(at + 1, len(events)) if events[j].ts - e.ts <= WINDOW_MS
                            and _fills(steps[k], events[j])), None)
                if nxt is None:
                    break
                k, at = k + 1, nxt
            best = max(best, k)
        if best:
            reached[s.session_id] = best
    return reached


def counts(reached: dict[str, int], n: int) -> list[int]:
    return [sum(1 for r in reached.values() if r > k) for k in range(n)]


# --- the server -----------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    server: ServerProcess
    member: Member
    traffic: gt.Traffic


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    data_dir = tmp_path_factory.mktemp("funnels") / "data"
    member = demo_member(data_dir)
    load_generated_in_child(data_dir, SEED, 70, (member.project_id,), timeout_s=300)
    server = ServerProcess(data_dir, demo=True).start()
    try:
        # The same traffic again, in this process, for the answers (the generator is seeded).
        yield Loaded(server, member, gt.generate(seed=SEED, visitors=70, project_ids=(member.project_id,)))
    finally:
        server.stop()


def funnel_url(loaded: Loaded, steps: list[tuple[str, str]], **extra: str) -> str:
    params = {"from": FIRST.isoformat(), "to": LAST.isoformat(), "window": "1", "window_unit": "day"}
    for i, (match, path) in enumerate(steps, 1):
        params.update({f"s{i}_kind": "pageview", f"s{i}_match": match, f"s{i}_path": path})
    return f"{loaded.server.url}/projects/{loaded.member.project_id}/funnels?" + urlencode({**params, **extra})


def wait_drawn(page: Page) -> None:
    page.wait_for_selector("#hm-fn-chart[data-drawn='1'] svg path", state="attached", timeout=20_000)
    page.wait_for_selector("#hm-fn-trend[data-drawn='1'] svg path", state="attached", timeout=20_000)


def table(page: Page) -> list[list[str]]:
    """Sessions, from-start conversion and dropped of each step row, as shown."""
    rows = page.locator("#hm-fn-table tbody tr").all()
    return [[r.locator("td").nth(i).inner_text().strip() for i in (1, 2, 4)] for r in rows]


def zone_of(page: Page) -> str:
    island = json.loads(page.get_attribute("#hm-funnels-data", "data-json") or "{}")
    return str(island["funnel"]["range"]["time_zone"])


def zone_of_project(loaded: Loaded) -> str:
    answer = loaded.server.api(f"/api/v1/projects/{loaded.member.project_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json().get("time_zone") or "UTC")


def expected_rows(want: list[int]) -> list[list[str]]:
    return [[str(n), f"{round(100 * n / want[0], 2)}%", "—" if k == 0 else str(want[k - 1] - n)]
            for k, n in enumerate(want)]


def test_draws_filters_builds_and_replays_a_drop_off(browser: Browser, loaded: Loaded, artifacts: Path) -> None:
    out = artifacts / "funnels"
    out.mkdir(exist_ok=True)
    page, problems = open_page(browser, loaded, 1280)
    project = loaded.member.project_id
    page.goto(funnel_url(loaded, [HOME, BLOG]))
    wait_drawn(page)
    zone = zone_of(page)
    everyone = counts(truth(loaded.traffic, project, [HOME, BLOG], zone), 2)
    assert everyone[0] > everyone[1] > 0
    assert table(page) == expected_rows(everyone)
    bars = page.locator("#hm-fn-chart svg path").count()
    assert bars >= 4, "two steps, each a bar and its drop-off"
    page.screenshot(path=str(out / "funnels-1280.png"), full_page=True)

    # A filter from the shared bar applies to the funnel, which stays the same funnel.
    page.click(".hm-ov-filters summary")
    page.select_option(".hm-ov-filters select[name=device]", "mobile")
    page.click(".hm-ov-filters button[type=submit]")
    page.wait_for_url(lambda url: "device=mobile" in url, timeout=15_000)
    wait_drawn(page)
    assert parse_qs(urlsplit(page.url).query)["s2_path"] == ["/blog/"]
    mobile = counts(truth(loaded.traffic, project, [HOME, BLOG], zone, device="mobile"), 2)
    assert mobile != everyone and mobile[1] > 0
    assert table(page) == expected_rows(mobile)
    assert page.locator("[data-filter='device']").count() == 1, "the filter chip"

    # A third step added in the builder: the URL carries only what counts, and the page is busy meanwhile.
    page.click(".hm-fn-add[data-target='hm-fn-steps']")
    row = page.locator("#hm-fn-steps > li").nth(2)
    row.locator("select[data-field=match]").select_option("prefix")
    row.locator("input[data-field=path]").fill("/p/")
    # What the page looked like as it left: marked busy (and its charts waiting) while the next view loads.
    page.evaluate("""() => window.addEventListener('beforeunload', () => sessionStorage.setItem('hm-left-busy',
        JSON.stringify([document.getElementById('hm-funnels').getAttribute('aria-busy'),
                        document.getElementById('hm-fn-chart').classList.contains('is-loading')])))""")
    page.click("#hm-fn-builder button[type=submit]")
    page.wait_for_url(lambda url: "s3_path" in url, timeout=15_000)
    wait_drawn(page)
    assert page.evaluate("() => sessionStorage.getItem('hm-left-busy')") == '["true",true]'
    query = parse_qs(urlsplit(page.url).query)
    assert query["s3_path"] == ["/p/"] and query["s3_match"] == ["prefix"] and query["device"] == ["mobile"]
    assert not {"s3_selector", "s3_text", "s3_name", "s3_props", "s4_kind"} & set(query), "no empty or stray fields"
    three = truth(loaded.traffic, project, [HOME, BLOG, ITEM], zone, device="mobile")
    assert table(page) == expected_rows(counts(three, 3))
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "funnels-1280-mobile-3-steps.png"), full_page=True)

    # Step 2's drop-off: exactly the sessions that reached step 1 and not step 2.
    page.click("#hm-fn-table tr[data-step='2'] a.hm-fn-dropped")
    page.wait_for_url(lambda url: "/funnels/sessions?" in url and "outcome=dropped" in url, timeout=15_000)
    dropped = {sid for sid, r in three.items() if r == 1}
    listed = page.eval_on_selector_all("#hm-fn-sessions tr[data-session]", "els => els.map(e => e.dataset.session)")
    assert set(listed) == dropped and len(listed) == len(dropped) <= 50
    expect(page.locator("#hm-fn-sessions h2")).to_contain_text(f"{len(dropped)} session")
    page.screenshot(path=str(out / "funnels-1280-dropped.png"), full_page=True)

    # One click from its replay, which shows that session's recording at the moment it entered the funnel.
    # The one that entered latest in its session, so the replay opens mid-session, not at 0:00.
    links = page.eval_on_selector_all("#hm-fn-sessions a.hm-fn-replay", "els => els.map(e => e.href)")
    first = max(listed, key=lambda sid: next(int(parse_qs(urlsplit(h).query)["t"][0]) for h in links
                                             if f"/sessions/{sid}?" in h))
    page.click(f"#hm-fn-sessions tr[data-session='{first}'] a.hm-fn-replay")
    page.wait_for_url(lambda url: f"/sessions/{first}?t=" in url, timeout=15_000)
    wait_replay_loaded(page)
    expect(page.frame_locator(REPLAY_FRAME).locator("#who")).to_have_text(f"Recording of {first}", timeout=15_000)
    at_ms = int(parse_qs(urlsplit(page.url).query)["t"][0]) * 1000
    # It opens paused there (the player steps by frames).
    page.wait_for_function(f"() => Math.abs(window.hmReplay.currentTime() - {at_ms}) < 250", timeout=15_000)
    page.screenshot(path=str(out / "funnels-1280-replay.png"), full_page=True)
    assert problems == [], problems


def test_a_phone_screen_reads_the_funnel_without_horizontal_scroll(
    browser: Browser, loaded: Loaded, artifacts: Path
) -> None:
    page, problems = open_page(browser, loaded, 375)
    page.goto(funnel_url(loaded, [HOME, BLOG, ITEM], compare="previous", breakdown="device"))
    wait_drawn(page)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
    chart_width = page.evaluate("() => document.querySelector('#hm-fn-chart svg').getBoundingClientRect().width")
    assert 250 <= chart_width <= 375
    assert page.locator("#hm-fn-breakdown tbody tr").count() >= 2
    out = artifacts / "funnels"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "funnels-375.png"), full_page=True)
    assert problems == [], problems


def test_an_empty_builder_is_an_example_not_an_error(browser: Browser, loaded: Loaded) -> None:
    page, problems = open_page(browser, loaded, 1280)
    page.goto(f"{loaded.server.url}/projects/{loaded.member.project_id}/funnels?from={FIRST}&to={LAST}")
    expect(page.locator("#hm-fn-example")).to_be_visible()
    page.click("#hm-fn-example")
    wait_drawn(page)
    assert page.locator("#hm-fn-table tbody tr").count() == 3
    assert problems == [], problems


def test_a_bars_drop_off_opens_its_sessions(browser: Browser, loaded: Loaded) -> None:
    page, problems = open_page(browser, loaded, 1280)
    page.goto(funnel_url(loaded, [HOME, BLOG]))
    wait_drawn(page)
    # Of the shapes in the drop-off colour (the legend's key, step 1's empty bar, step 2's), the biggest.
    shapes = page.locator(f"#hm-fn-chart svg path[fill='{DROPPED_FILL}']").all()
    areas = [(box["width"] * box["height"], i) for i, shape in enumerate(shapes) if (box := shape.bounding_box())]
    assert len(areas) >= 2
    shapes[max(areas)[1]].click()
    page.wait_for_url(lambda url: "/funnels/sessions?" in url, timeout=15_000)
    query = parse_qs(urlsplit(page.url).query)
    assert query["outcome"] == ["dropped"] and query["step"] == ["2"]
    want = counts(truth(loaded.traffic, loaded.member.project_id, [HOME, BLOG], zone_of_project(loaded)), 2)
    expect(page.locator("#hm-fn-sessions h2")).to_contain_text(f"{want[0] - want[1]} sessions")
    assert problems == [], problems
