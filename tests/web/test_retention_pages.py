"""The retention and paths pages on the real app and real chDB, with the ground-truth traffic: each shows the
generator's own answer (the grid's cells and average, the Sankey's links and an edge's sessions), cells of periods
that have not begun are blank, the previous period comes beside on request, the page's own parameters (cleaning
rules repeated) stay in every link, a bad parameter is a 400 page that says what is wrong, hostile text is text,
and the heat colours keep their text readable."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette

from tests.analytics import groundtruth as gt
from tests.analytics import test_paths as paths_truth
from tests.analytics import test_retention as retention_truth
from tests.support import REPO
from tests.web.analytics_fixtures import ZONE, generated_traffic, shop_fixture, signed_in
from tests.web.helpers import FakeClock, client, sign_in

pytestmark = pytest.mark.anyio
FIRST, LAST = paths_truth.FIRST, paths_truth.LAST
RANGE = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
HOSTILE = '<script>alert("x")</script>'
GROUPS = ["^/blog/=>/blog/*", "^/p/=>/p/*"]


traffic = generated_traffic(seed=13, visitors=70)
shop = shop_fixture()


async def page_of(app: Starlette, path: str, params: Any) -> tuple[int, str]:
    async with signed_in(app) as c:
        answer = await c.get(path, params=params)
    return answer.status_code, answer.text


def island(page: str, name: str) -> dict[str, Any]:
    match = re.search(rf"<div id=\"hm-{name}-data\" hidden data-json='([^']*)'>", page)
    assert match, "no data island in the page"
    return json.loads(html.unescape(match.group(1)))


def grid_rows(page: str) -> list[dict[str, Any]]:
    """The cohort rows as rendered: the cohort, its size, and each cell's visitors (None: blank)."""
    rows = []
    for cohort, body in re.findall(r'<tr data-cohort="([^"]+)">(.*?)</tr>', page, re.S):
        size = re.search(r'<td class="num hm-rt-size[^"]*">(?:<a [^>]*>)?(\d+)(?:</a>)?</td>', body)
        assert size, body
        found = re.findall(r'<td class="hm-rt-cell[^"]*"(?:[^>]*?data-visitors="(\d+)")?', body)
        cells = [int(v) if v else None for v in found]
        rows.append({"cohort": cohort, "visitors": int(size.group(1)), "cells": cells})
    return rows


def expected(want: dict[str, Any], today: dt.date) -> list[dict[str, Any]]:
    def begun(cohort: str, k: int) -> bool:
        start = dt.date.fromisoformat(cohort)
        return start + dt.timedelta(days=7 * k) <= today if want["period"] == "week" else True

    return [{"cohort": c["cohort"], "visitors": c["visitors"],
             "cells": [cell["visitors"] if c["visitors"] and begun(c["cohort"], cell["period"]) else None
                       for cell in c["cells"]]} for c in want["cohorts"]]


def hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', page)]


async def test_the_grid_is_the_ground_truth_with_its_average(app: Starlette, shop: int, traffic: gt.Traffic) -> None:
    status, page = await page_of(app, f"/projects/{shop}/retention", RANGE)
    assert status == 200, page
    want = retention_truth.truth(traffic, FIRST, LAST, ZONE, "week", 8)
    assert grid_rows(page) == expected(want, dt.date(2027, 1, 15)) and want["cohorts"][0]["visitors"]
    # The average row and the curve: returns over cohort sizes, summed over every cohort (all periods are over).
    sizes = sum(c["visitors"] for c in want["cohorts"])
    average = [round(100 * sum(c["cells"][k]["visitors"] for c in want["cohorts"]) / sizes, 1) for k in range(9)]
    assert island(page, "retention")["series"][0]["values"] == average
    shown = re.search(r'<tr class="hm-rt-average" data-row="average">(.*?)</tr>', page, re.S)
    assert shown and re.findall(r">([0-9.]+)%<", shown.group(1)) == [f"{a:.1f}" for a in average]
    assert 'class="hm-rt-cell hm-heat-10"' in page, "cell 0 (the cohort itself) in the darkest shade"


async def test_periods_not_begun_are_blank_and_left_out_of_the_average(
    app: Starlette, shop: int, traffic: gt.Traffic, clock: FakeClock
) -> None:
    today = dt.date(2026, 10, 21)
    clock.now = dt.datetime(2026, 10, 21, 12, tzinfo=dt.UTC).timestamp()  # 17:30 in Kolkata, the same day
    status, page = await page_of(app, f"/projects/{shop}/retention", {"from": FIRST.isoformat(), "to": "2026-10-21"})
    assert status == 200, page
    want = retention_truth.truth(traffic, FIRST, today, ZONE, "week", 8)
    rows = grid_rows(page)
    assert rows == expected(want, today)
    assert "is-future" in page and "is-partial" in page, "the running week is dashed, later ones are empty"
    reached = [[c for c in want["cohorts"] if dt.date.fromisoformat(c["cohort"]) + dt.timedelta(weeks=k) <= today]
               for k in range(9)]
    average = [round(100 * sum(c["cells"][k]["visitors"] for c in cs) / sum(c["visitors"] for c in cs), 1)
               if sum(c["visitors"] for c in cs) else None for k, cs in enumerate(reached)]
    assert island(page, "retention")["series"][0]["values"] == average and average[-1] is None


def cell_links(page: str) -> dict[tuple[str, int], dict[str, list[str]]]:
    """Each linked cell of the grid (cohort, offset) and its link's parameters."""
    grid = re.search(r'<table class="hm-rt-grid" id="hm-rt-grid">(.*?)</table>', page, re.S)
    assert grid
    links = {}
    for href in re.findall(r'<a class="hm-rt-link" data-cell-link href="([^"]+)"', grid.group(1)):
        url = urlsplit(html.unescape(href))
        assert url.fragment == "hm-rt-sessions"
        params = parse_qs(url.query)
        links[(params["cohort_start"][0], int(params["offset"][0]))] = params
    return links


async def test_every_cell_links_to_the_sessions_behind_it(app: Starlette, shop: int, traffic: gt.Traffic) -> None:
    view = {**RANGE, "return_page": "/blog/*", "device": "desktop"}
    status, page = await page_of(app, f"/projects/{shop}/retention", view)
    assert status == 200, page
    want = retention_truth.truth(traffic, FIRST, LAST, ZONE, "week", 8, returned=("/blog/*", ""),
                                 filters={"device": "desktop"})
    links = cell_links(page)
    # Each cell that counts someone, and each cohort's size (offset 0 twice: the size and "Week 0"), has a link.
    assert set(links) == {(c["cohort"], cell["period"]) for c in want["cohorts"] for cell in c["cells"]
                          if cell["visitors"]}
    assert page.count('data-cell-link href=') == len(links) + sum(
        1 for c in want["cohorts"] if c["visitors"])
    # The link keeps the view: its range, filters and return condition.
    assert all({k: v[0] for k, v in params.items() if k in view} == view for params in links.values())
    assert 'id="hm-rt-sessions"' in page and "Click a cell of the grid" in page

    sessions = retention_truth.truth_sessions(traffic, FIRST, LAST, ZONE, "week", 8, returned=("/blog/*", ""),
                                              filters={"device": "desktop"})
    (cohort, offset), expected_sessions = max(((cell, found) for cell, found in sessions.items() if cell[1] > 0),
                                              key=lambda item: (len(item[1]), item[0]))
    status, opened = await page_of(app, f"/projects/{shop}/retention",
                                   {**view, "cohort_start": cohort, "offset": str(offset)})
    assert status == 200, opened
    panel = re.search(r'<section class="card hm-rt-sessions" id="hm-rt-sessions"[^>]*>(.*?)</section>', opened, re.S)
    assert panel
    listed = re.findall(r'<tr data-session="([^"]+)">', panel.group(1))
    assert listed == [s.session_id for s in expected_sessions][:50] and listed
    replays = re.findall(r'<a class="hm-rt-replay" href="([^"]+)"', panel.group(1))
    assert [urlsplit(html.unescape(r)).path for r in replays] == [f"/projects/{shop}/sessions/{sid}" for sid in listed]
    assert all(re.fullmatch(r"t=\d+", urlsplit(html.unescape(r)).query) for r in replays)
    visitors = len({s.anonymous_id for s in expected_sessions})
    assert f"{len(expected_sessions)} session{'s' if len(expected_sessions) != 1 else ''} of {visitors} visitor" in (
        panel.group(1))
    # The open cell is marked, and the grid is the same grid.
    assert grid_rows(opened) == grid_rows(page)
    assert len(re.findall(r'class="[^"]*is-open[^"]*"', opened)) == (2 if offset == 0 else 1)


async def test_the_previous_period_comes_beside_the_grid(app: Starlette, shop: int, traffic: gt.Traffic) -> None:
    params = {"from": "2026-10-05", "to": LAST.isoformat(), "period": "week", "periods": "3", "compare": "previous"}
    status, page = await page_of(app, f"/projects/{shop}/retention", params)
    assert status == 200, page
    assert 'data-row="previous"' in page
    series = island(page, "retention")["series"]
    assert [s["name"] for s in series] == ["2026-10-05 – 2026-11-08", "2026-08-31 – 2026-10-04"]
    earlier = retention_truth.truth(traffic, dt.date(2026, 8, 31), dt.date(2026, 10, 4), ZONE, "week", 3)
    sizes = sum(c["visitors"] for c in earlier["cohorts"])
    assert sizes and series[1]["values"] == [
        round(100 * sum(c["cells"][k]["visitors"] for c in earlier["cohorts"]) / sizes, 1) for k in range(4)]
    async with signed_in(app) as c:
        api = (await c.get(f"/api/v1/projects/{shop}/retention", params=params)).json()
    assert api["previous"] == earlier, "the endpoint answers the same comparison"
    assert "compare=previous" in next(h for h in hrefs(page) if "device" not in h and "/retention?" in h)


async def test_an_event_condition_names_the_form_field_and_keeps_the_filters(app: Starlette, shop: int,
                                                                             traffic: gt.Traffic) -> None:
    params = {**RANGE, "period": "month", "periods": "2", "return_event": "purchase", "device": "mobile"}
    status, page = await page_of(app, f"/projects/{shop}/retention", params)
    assert status == 200, page
    want = retention_truth.truth(traffic, FIRST, LAST, ZONE, "month", 2, returned=("", "purchase"),
                                 filters={"device": "mobile"})
    assert grid_rows(page) == expected(want, dt.date(2027, 1, 15))
    assert 'name="return_event" value="purchase"' in page and 'name="start_page" value=""' in page
    assert '<input type="hidden" name="device" value="mobile">' in page, "the page's form keeps the filter"
    chip_remove = next(h for h in hrefs(page) if "/retention?" in h and "device" not in parse_qs(urlsplit(h).query))
    assert parse_qs(urlsplit(chip_remove).query)["return_event"] == ["purchase"], "links keep the page's own view"


async def test_the_paths_page_is_the_ground_truth_and_an_edge_lists_its_sessions(
    app: Starlette, shop: int, traffic: gt.Traffic
) -> None:
    params = {**RANGE, "start": "/", "steps": "3", "limit": "4", "group": GROUPS}
    status, page = await page_of(app, f"/projects/{shop}/paths", params)
    assert status == 200, page
    groups = [("^/blog/", "/blog/*"), ("^/p/", "/p/*")]
    want = paths_truth.truth(traffic, ZONE, start="/", steps=3, limit=4, groups=groups)
    data = island(page, "paths")
    assert (data["nodes"], data["edges"]) == (want["nodes"], want["edges"]) and want["edges"]
    rows = re.findall(r'<tr data-edge="([^"]+)">.*?<td class="num">(\d+)</td>', page, re.S)
    ranked = sorted(want["edges"], key=lambda e: (-e["sessions"], e["id"]))[:25]
    assert [(html.unescape(i), int(n)) for i, n in rows] == [(e["id"], e["sessions"]) for e in ranked]
    # Every link of the page keeps both cleaning rules, in order (the bar's own links included).
    for link in [h for h in hrefs(page) if "/paths?" in h]:
        assert parse_qs(urlsplit(link).query)["group"] == GROUPS, link
    assert page.count('name="group" value="^/blog/=&gt;/blog/*"') == 3, "the rule field and two forms' hidden inputs"

    edge = next(e for e in want["edges"] if not e["id"].endswith(":other") and e["id"].startswith("2:"))
    status, page = await page_of(app, f"/projects/{shop}/paths", {**params, "edge": edge["id"]})
    assert status == 200, page
    step, rest = edge["id"].split(":", 1)
    near, far = rest.split(f"->{int(step) + 1}:")
    walked = paths_truth.truth_sessions(traffic, (int(step), near, far), ZONE, "/", "", 3, 4, True, groups)
    listed = re.findall(r'<a class="hm-open" href="/projects/1/sessions/([^"]+)"', page)
    assert listed == walked[:50] and walked


async def test_paths_default_to_the_home_page_and_compare(app: Starlette, shop: int, traffic: gt.Traffic) -> None:
    status, page = await page_of(app, f"/projects/{shop}/paths", {**RANGE, "compare": "previous", "end": ""})
    assert status == 200, page
    data = island(page, "paths")
    assert data["mode"] == "start" and data["nodes"][0]["id"] == "1:/"
    assert data["edges"] == paths_truth.truth(traffic, ZONE, start="/")["edges"]
    assert ">Before</th>" in page, "the previous period's count of each link"


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("retention", {"period": "year"}, "period must be one of day, week, month"),
        ("retention", {"start_page": "/", "start_event": "e"}, "give start_page or start_event, not both"),
        ("retention", {"from": "2020-01-01", "to": "2022-01-01", "period": "day"}, "at most 400 cohorts"),
        ("retention", {"country": "DEU"}, "country must be a two-letter code"),
        ("retention", {**RANGE, "cohort_start": "2026-09-08", "offset": "1"},
         "cohort_start must be the first day of a week from 2026-09-07 to 2026-11-02"),
        ("retention", {**RANGE, "cohort_start": "2026-09-07"}, "offset is required"),
        ("retention", {**RANGE, "cohort_start": "2026-09-07", "offset": "9"}, "offset must be a whole number"),
        ("paths", {"start": "/", "end": "/x"}, "give a start page (start) or an end page (end)"),
        ("paths", {"start": "/", "steps": "9"}, "steps must be a whole number from 1 to 8"),
        ("paths", {"start": "/", "group": "(?=x)=>/y"}, "group regex"),
        ("paths", {"start": "/", "group": "nothing"}, "a group rule reads REGEX=&gt;TARGET"),
        ("paths", {"start": "/", "edge": "1:/->2:other"}, "an edge into &#39;other&#39; joins many pages"),
        ("paths", {"start": "/", "edge": "nonsense"}, "edge must be an edge id of the answer"),
    ],
)
async def test_a_bad_parameter_is_a_400_page_that_says_what_is_wrong(
    app: Starlette, shop: int, path: str, params: dict[str, str], message: str
) -> None:
    status, page = await page_of(app, f"/projects/{shop}/{path}", params)
    assert status == 400 and message in page, page[-2000:]
    assert 'class="alert alert-error hm-ov-error"' in page and "hm-rt-grid" not in page and "hm-paths-data" not in page


async def test_signed_out_goes_to_sign_in_and_another_project_is_404(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        for path in ("retention", "paths"):
            answer = await c.get(f"/projects/{shop}/{path}")
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        await sign_in(c, "viewer@example.com")
        for path in ("retention", "paths"):
            assert (await c.get(f"/projects/2/{path}")).status_code == 404
            assert (await c.get(f"/projects/{shop}/{path}")).status_code == 200


async def test_hostile_text_in_every_parameter_is_text(app: Starlette, shop: int) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("retention", {name: HOSTILE for name in ("start_page", "return_page", "browser", "url")}),
        ("retention", {"start_event": gt.ODD, "return_event": HOSTILE, "utm_source": gt.ODD}),
        ("paths", {"start": HOSTILE, "group": [f"{HOSTILE}=>{HOSTILE}", f"{gt.ODD}=>{gt.ODD}"], "browser": gt.ODD}),
        ("paths", {"end": gt.ODD, "edge": f"1:{HOSTILE}->2:{gt.ODD}", "prop_key": HOSTILE}),
    ]
    for path, params in cases:
        status, page = await page_of(app, f"/projects/{shop}/{path}", params)
        assert status == 200, (path, params, page[-2000:])
        assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def _luminance(colour: str) -> float:
    hexes = colour.lstrip("#")
    hexes = "".join(c * 2 for c in hexes) if len(hexes) == 3 else hexes
    channels = [int(hexes[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_every_heat_shade_keeps_its_text_readable() -> None:
    css = Path(REPO / "dashboard" / "src" / "retention.css").read_text()
    shades = re.findall(r"\.hm-heat-(\d+) \{ background: (#[0-9a-f]+); color: (#[0-9a-f]+); \}", css)
    assert [int(n) for n, _, _ in shades] == list(range(11))
    for n, background, text in shades:
        light, dark = sorted((_luminance(background), _luminance(text)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, f"shade {n}: WCAG AA needs 4.5:1 for small text"
