"""The overview page on the real app and real chDB: access, the same answer as the JSON endpoint, filters kept in
the URL and in every link, hostile values rendered as text, and bad parameters answered with a 400 page."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from markupsafe import escape
from starlette.applications import Starlette

from hitmetrix.model import StoredBatch, StoredEvent
from hitmetrix.runtime import Runtime
from hitmetrix.store import projects
from tests.web.helpers import FakeClock, client, make_user, sign_in
from tests.web.test_security_api import load

pytestmark = pytest.mark.anyio

HOSTILE = '<script>alert("x")</script>'
HOSTILE_PATH = '/q/"><img src=x onerror=alert(1)>'
_ids = itertools.count(1)


@dataclass
class Site:
    app: Starlette
    runtime: Runtime
    shop: int
    other: int
    now_ms: int
    today: str


def visit(project_id: int, start_ms: int, paths: list[str], referrer: str = "", **batch: str) -> StoredBatch:
    """A browser session of pageviews a second apart on shop.example."""
    n = next(_ids)
    events = [
        StoredEvent(event_id=f"00000000-0000-7000-8000-{n:06d}{i:06d}", type="pageview", ts=start_ms + i * 1000,
                    client_ts=start_ms + i * 1000, url=f"https://shop.example{path}",
                    referrer=referrer if i == 0 else "")
        for i, path in enumerate(paths)
    ]
    return StoredBatch(batch_id=f"ov-{n}", project_id=project_id, received_at=start_ms + len(paths) * 1000,
                       session_id=f"ov-session-{n:04d}", anonymous_id=f"ov-visitor-{n:04d}", events=events, **batch)


@pytest.fixture(scope="module")
def spool_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("analytics_pages_spool")


SHOP, OTHER = 1, 2  # the ids a fresh metadata store gives the first two projects
NOW_MS = int(FakeClock()() * 1000)


@pytest.fixture(scope="module")
def traffic(base_runtime: Runtime, spool_root: Path) -> None:
    """Loaded once: the store lives as long as the module, while each test starts with fresh metadata."""
    hour_ms = 3_600_000
    load(spool_root, base_runtime, [
        visit(SHOP, NOW_MS - 3 * hour_ms, ["/?utm_source=news&utm_medium=email", "/pricing"], country="DE",
              browser="Firefox", os="Linux", device_type="desktop", referrer="https://www.google.com/search"),
        visit(SHOP, NOW_MS - 2 * hour_ms, ["/pricing"], country="US", browser="Chrome", os="Android",
              device_type="mobile"),
        visit(SHOP, NOW_MS - hour_ms, [HOSTILE_PATH, "/"], country="DE", browser=HOSTILE, os="Linux",
              device_type="desktop"),
        visit(SHOP, NOW_MS - 60_000, ["/docs"], country="FR", browser="Firefox", os="Windows",
              device_type="desktop"),  # still here
        visit(OTHER, NOW_MS - hour_ms, ["/elsewhere"], country="JP", browser="Safari", device_type="mobile"),
    ])


@pytest.fixture
def site(app: Starlette, runtime: Runtime, clock: FakeClock, traffic: None) -> Site:
    meta = runtime.meta
    shop, other = meta.create_project("shop").id, meta.create_project("other").id
    assert (shop, other) == (SHOP, OTHER)
    make_user(meta, "viewer@example.com", shop, role="viewer")
    make_user(meta, "outsider@example.com", other, role="owner")
    assert int(clock() * 1000) == NOW_MS
    today = dt.datetime.fromtimestamp(clock(), dt.UTC).date().isoformat()  # the project's zone is UTC
    return Site(app, runtime, shop, other, NOW_MS, today)


@contextlib.asynccontextmanager
async def signed_in(s: Site, email: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(s.app) as c:
        await sign_in(c, email)
        yield c


def island(page: str) -> dict:
    match = re.search(r"<div id=\"hm-overview-data\" hidden data-json='([^']*)'>", page)
    assert match, "no data island in the page"
    return json.loads(html.unescape(match.group(1)))


def hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', page)]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_signed_out_goes_to_sign_in_and_outsiders_get_404(site: Site) -> None:
    async with client(site.app) as c:
        answer = await c.get(f"/projects/{site.shop}/overview")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    async with signed_in(site, "outsider@example.com") as c:
        assert (await c.get(f"/projects/{site.shop}/overview")).status_code == 404
        assert (await c.get(f"/projects/{site.other}/overview")).status_code == 200


async def test_the_page_shows_the_json_endpoints_answer(site: Site) -> None:
    async with signed_in(site, "viewer@example.com") as c:
        page = await c.get(f"/projects/{site.shop}/overview")
        api = await c.get(f"/api/v1/projects/{site.shop}/overview")
    assert page.status_code == 200 and api.status_code == 200
    data = island(page.text)
    assert data["overview"] == api.json(), "the page and the endpoint must read the same query"
    totals = data["overview"]["totals"]
    assert (totals["sessions"], totals["visitors"], totals["pageviews"]) == (4, 4, 6)
    tile = re.search(r'data-kpi="sessions">.*?<strong class="hm-ov-kpi-value">([^<]*)<', page.text, re.S)
    assert tile and tile.group(1) == "4"
    now = re.search(r'id="hm-visitors-now">(\d+)<', page.text)
    assert now and now.group(1) == "1", "one visitor had an event in the last five minutes"
    assert "/elsewhere" not in page.text and '"JP"' not in page.text, "another project's data"
    assert f'href="/projects/{site.shop}/overview"' in page.text, "the nav link"
    changes = re.findall(r'<span class="hm-ov-change[^"]*"[^>]*>([^<]*)<', page.text)
    assert changes == ["—"] * 6, "nothing in the previous period: no change to show, not +100 %"


async def test_days_and_buckets_are_the_projects_time_zone(site: Site) -> None:
    # 08:00 UTC on 15 January is 22:00 on the 14th in Honolulu: every session was on the 14th there.
    projects.update_settings(site.runtime.meta, site.shop, {"time_zone": "Pacific/Honolulu"}, actor_id=None)
    async with signed_in(site, "viewer@example.com") as c:
        page = (await c.get(f"/projects/{site.shop}/overview", params={"from": "2027-01-14", "to": "2027-01-14"})).text
    assert site.today == "2027-01-15", "today in UTC"
    data = island(page)["overview"]
    assert data["range"]["time_zone"] == "Pacific/Honolulu" and data["totals"]["sessions"] == 4
    busy = {b["bucket"]: b["sessions"] for b in data["series"] if b["sessions"]}
    assert busy == {"2027-01-14 19:00": 1, "2027-01-14 20:00": 1, "2027-01-14 21:00": 2}
    assert "Days and times in Pacific/Honolulu" in page
    today = [h for h in hrefs(page) if "/overview?" in h and query_of(h).get("from") == query_of(h).get("to")]
    assert today and query_of(today[0])["from"] == ["2027-01-14"], "the Today preset is today in Honolulu"


async def test_filters_round_trip_through_the_url_and_every_link(site: Site) -> None:
    params = {"from": site.today, "to": site.today, "country": "DE", "utm_source": "", "limit": "5"}
    async with signed_in(site, "viewer@example.com") as c:
        page = (await c.get(f"/projects/{site.shop}/overview", params=params)).text
    data = island(page)["overview"]
    assert data["totals"]["sessions"] == 2 and data["range"]["from"] == site.today
    assert 'name="country" maxlength="2" placeholder="DE" value="DE"' in page
    assert 'data-filter="country"' in page and 'data-filter="utm_source"' not in page, "empty filters are dropped"
    links = hrefs(page)
    firefox = [h for h in links if query_of(h).get("browser") == ["Firefox"] and "/overview" in h]
    assert firefox, "a browser row adds its filter"
    assert query_of(firefox[0]) == {"from": [site.today], "to": [site.today], "country": ["DE"], "browser": ["Firefox"]}
    sessions = [h for h in links if h.startswith(f"/projects/{site.shop}/sessions?") and "browser=Firefox" in h]
    assert sessions and query_of(sessions[0])["country"] == ["DE"], "the row's sessions keep the view's filters"
    remove = [h for h in links if "/overview" in h and "country" not in query_of(h) and "from" in query_of(h)]
    assert remove, "the chip's × removes just that filter"
    # The session list takes the overview's filters too (UTM here): its links keep them, and it lists that session.
    async with signed_in(site, "viewer@example.com") as c:
        page = (await c.get(f"/projects/{site.shop}/overview", params={"utm_source": "news"})).text
        assert island(page)["overview"]["totals"]["sessions"] == 1
        listed = [h for h in hrefs(page) if "/sessions?" in h]
        assert listed and all(query_of(h).get("utm_source") == ["news"] for h in listed), listed
        rows = (await c.get(listed[0])).text
    assert rows.count('class="hm-row"') == 1, "the session list matches the UTM filter"


async def test_hostile_values_are_text(site: Site) -> None:
    async with signed_in(site, "viewer@example.com") as c:
        page = (await c.get(f"/projects/{site.shop}/overview", params={"url": HOSTILE})).text
        plain = (await c.get(f"/projects/{site.shop}/overview")).text
    for text in (page, plain):
        assert "<script>alert" not in text and "<img src=x" not in text
    assert str(escape(HOSTILE)) in page, "the filter chip and the form show it as text"
    data = island(plain)["overview"]
    assert HOSTILE in [row["value"] for row in data["browsers"]], "the island keeps the value, escaped"
    assert "&lt;script&gt;alert" in plain


ODD = "a'\"\\{p1:String}<b>"
TEXT_FILTERS = ("browser", "os", "url", "referrer", "utm_source", "utm_medium", "utm_campaign", "prop_key")


async def test_quotes_backslashes_and_braces_in_every_text_filter_are_data(site: Site) -> None:
    async with signed_in(site, "viewer@example.com") as c:
        for name in TEXT_FILTERS:
            answer = await c.get(f"/projects/{site.shop}/overview", params={name: ODD})
            assert answer.status_code == 200, (name, answer.text)
            assert island(answer.text)["overview"]["totals"]["sessions"] == 0, f"{name} matched as SQL, not as data"
            assert f'value="{escape(ODD)}"' in answer.text, f"the {name} field keeps the value, as text"
            assert "<b>" not in answer.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "from"),
        ({"country": "<b>"}, "country"),
        ({"device": "toaster"}, "device"),
        ({"prop_value": "x"}, "prop_value"),
        ({"url": "x" * 501}, "url"),
    ],
)
async def test_bad_parameters_get_a_400_page(site: Site, params: dict[str, str], field: str) -> None:
    async with signed_in(site, "viewer@example.com") as c:
        answer = await c.get(f"/projects/{site.shop}/overview", params=params)
    assert answer.status_code == 400, answer.text
    assert "text/html" in answer.headers["content-type"]
    assert 'role="alert"><strong>Bad request:</strong>' in answer.text
    assert field in answer.text and "<b>" not in answer.text
    assert "hm-overview-data" not in answer.text
