"""GET /api/v1/projects/{id}/overview on the real app: the generator's answer in the project's time zone, 401
signed out, 404 for a project the caller is not in, 400 naming a bad parameter, and odd text as plain data."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import ZONE, generated_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio


traffic = generated_traffic(seed=11, visitors=60)
shop = shop_fixture()


async def test_a_viewer_reads_the_overview_in_the_projects_time_zone(
    app: Starlette, shop: int, traffic: gt.Traffic
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/overview", params={"from": "2026-09-21", "to": "2026-10-18"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        want = gt.overview_answer(traffic, 1, dt.date(2026, 9, 21), dt.date(2026, 10, 18), ZONE)
        assert answer.json() == want and want["totals"]["sessions"] > 0
        filtered = await c.get(
            f"/api/v1/projects/{shop}/overview",
            params={"from": "2026-09-07", "to": "2026-11-08", "device": "mobile", "identified": "no", "limit": "3"},
        )
        filters = {"device": "mobile", "identified": "no"}
        assert filtered.json() == gt.overview_answer(
            traffic, 1, dt.date(2026, 9, 7), dt.date(2026, 11, 8), ZONE, filters, limit=3
        )


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        assert (await c.get(f"/api/v1/projects/{shop}/overview")).status_code == 401
        await sign_in(c, "viewer@example.com")
        assert (await c.get("/api/v1/projects/2/overview")).status_code == 404
        assert (await c.get("/api/v1/projects/999/overview")).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "2026-10-02", "to": "2026-10-01"}, "from"),
        ({"country": "DEU"}, "country"),
        ({"device": "toaster"}, "device"),
        ({"identified": "2"}, "identified"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"prop_value": "x"}, "prop_value"),
        ({"browser": "b" * 501}, "browser"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(app: Starlette, shop: int, params: dict, field: str) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/overview", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]


async def test_quotes_backslashes_and_braces_in_every_filter_are_data(
    app: Starlette, shop: int, runtime: Runtime
) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    names = ("url", "browser", "os", "referrer", "utm_source", "utm_medium", "utm_campaign", "prop_key")
    async with client(app) as c:
        for name in names:
            for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N"):
                params = {"from": "2026-09-07", "to": "2026-11-08", name: text}
                answer = await c.get(f"/api/v1/projects/{shop}/overview", params=params, headers=headers)
                assert answer.status_code == 200, (name, text, answer.text)
        found = await c.get(
            f"/api/v1/projects/{shop}/overview",
            params={"from": "2026-09-07", "to": "2026-11-08", "browser": gt.ODD, "prop_key": "k", "prop_value": gt.ODD},
            headers=headers,
        )
        assert found.json()["totals"]["sessions"] == 1 and found.json()["browsers"][0]["value"] == gt.ODD


def test_the_overview_is_in_the_openapi_document() -> None:
    operation = openapi_document()["paths"]["/api/v1/projects/{project_id}/overview"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"from", "to", "country", "device", "browser", "os", "url", "referrer", "utm_source", "identified",
            "prop_key", "prop_value", "limit"} <= names
    assert {"200", "400", "401", "404"} <= set(operation["responses"])
