"""GET /api/v1/projects/{id}/heatmaps and the /projects/{id}/heatmaps page on the real app: the same answer as the
library in the project's time zone, 401 signed out, 404 for a project the caller is not in, 400 naming a bad
parameter, hostile text as data, the replay page's CSP on the page, and the OpenAPI entry."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from hitmetrix.analytics.heatmaps import HeatmapQuery, heatmap
from hitmetrix.runtime import Runtime
from hitmetrix.store import projects
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.analytics.test_heatmaps import _batches, _sessions
from tests.web.analytics_fixtures import ZONE, load_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
RANGE = {"from": "2026-10-01", "to": "2026-10-10"}


@pytest.fixture(scope="module")
def loaded(base_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    traffic = gt.Traffic([], [_batches(_sessions())])
    load_traffic(base_runtime, tmp_path_factory, traffic)
    yield


shop = shop_fixture("loaded")


def island(page_html: str) -> dict:
    found = re.search(r"id=\"hm-heatmap-data\" hidden data-json='([^']*)'", page_html)
    assert found, "the page embeds its answer"
    return json.loads(html.unescape(found.group(1)))


async def test_a_viewer_reads_the_heatmap_and_its_page(app: Starlette, shop: int, runtime: Runtime) -> None:
    params = {**RANGE, "page": "/pricing*", "kind": "rage"}
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/heatmaps", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        want = heatmap(runtime.store, shop, HeatmapQuery.from_query(params, dt.date(2026, 10, 10)), ZONE)
        assert answer.json() == want and want["range"]["time_zone"] == ZONE
        assert want["totals"]["rage_clicks"] > 0 and want["elements"] and want["backdrops"]
        page = await c.get(f"/projects/{shop}/heatmaps", params=params)
        assert page.status_code == 200, page.text
        embedded = island(page.text)
        assert embedded["heatmap"] == want and embedded["can_replay"] is True
        # The replay page's headers: resources only from the dashboard (and allowed origins), no referrer.
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert 'data-selector="#buy"' in page.text and "/static/dashboard/heatmaps.js" in page.text
        for element in want["elements"]:
            assert (await c.get(element["latest"]["replay_url"])).status_code == 200
        # Without a page: the most viewed paths to start from, each a link to its heatmap.
        start = await c.get(f"/projects/{shop}/heatmaps", params=RANGE)
        assert start.status_code == 200 and "hm-heatmap-data" not in start.text
        assert "page=%2Fpricing" in start.text


async def test_a_project_that_withholds_replays_still_shows_the_heatmap(
    app: Starlette, shop: int, runtime: Runtime
) -> None:
    projects.update_settings(runtime.meta, shop, {"viewers_can_replay": False}, actor_id=None)
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/heatmaps", params={**RANGE, "page": "/pricing"})
        assert page.status_code == 200, page.text
        assert island(page.text)["can_replay"] is False


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    params = {"page": "/pricing"}
    async with client(app) as c:
        assert (await c.get(f"/api/v1/projects/{shop}/heatmaps", params=params)).status_code == 401
        await sign_in(c, "viewer@example.com")
        for project_id in (2, 999):
            assert (await c.get(f"/api/v1/projects/{project_id}/heatmaps", params=params)).status_code == 404
            assert (await c.get(f"/projects/{project_id}/heatmaps", params=params)).status_code == 404


async def test_each_project_sees_only_its_own_clicks(app: Starlette, shop: int, runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    params = {**RANGE, "page": "*", "width": "mobile"}
    async with client(app) as c:
        one = (await c.get("/api/v1/projects/1/heatmaps", params=params, headers=headers)).json()
        two = (await c.get("/api/v1/projects/2/heatmaps", params=params, headers=headers)).json()
    sessions = {s.session_id: s.project_id for s in _sessions()}
    for answer, project_id in ((one, 1), (two, 2)):
        assert answer["totals"]["clicks"] > 0
        named = [e["latest"]["session_id"] for e in answer["elements"]] + [b["session_id"] for b in answer["backdrops"]]
        assert named and {sessions[sid] for sid in named} == {project_id}
    assert one["totals"] != two["totals"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "page"),
        ({"page": "pricing"}, "page"),
        ({"page": "/x", "width": "watch"}, "width"),
        ({"page": "/x", "kind": "hover"}, "kind"),
        ({"page": "/x", "limit": "201"}, "limit"),
        ({"page": "/x", "from": "2026-13-01"}, "from"),
        ({"page": "/x", "country": "DEU"}, "country"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(app: Starlette, shop: int, params: dict, field: str) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/heatmaps", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]
        if params:  # the page says what is wrong too (without a page it offers pages to choose)
            page = await c.get(f"/projects/{shop}/heatmaps", params=params)
            assert page.status_code == 400 and "Bad request" in page.text


async def test_quotes_backslashes_and_braces_are_data(app: Starlette, shop: int, runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N", "%", "_"):
            for params in ({"page": "/" + text}, {"page": "*", "browser": text, "url": text, "prop_key": text}):
                answer = await c.get(f"/api/v1/projects/{shop}/heatmaps", headers=headers, params={**RANGE, **params})
                assert answer.status_code == 200, (text, answer.text)
                assert answer.json()["totals"]["clicks"] == 0


def test_the_heatmap_endpoint_is_in_the_openapi_document() -> None:
    operation = openapi_document()["paths"]["/api/v1/projects/{project_id}/heatmaps"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"project_id", "page", "width", "kind", "limit", "from", "to", "country", "device", "browser"} <= names
    assert {"200", "400", "401", "404"} <= set(operation["responses"])
