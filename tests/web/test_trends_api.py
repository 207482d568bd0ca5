"""GET /api/v1/projects/{id}/trends and …/trends/sessions on the real app: the same answer as the library in the
project's time zone, a line's sessions with replay links that open, 401 signed out, 404 for a project the caller
is not in, 400 naming a bad parameter or series field, hostile text as data, and the OpenAPI entries."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from starlette.applications import Starlette

from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.trends import TrendDefinition, trend
from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import ZONE, generated_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
SERIES = json.dumps([{"kind": "pageview", "match": "prefix", "path": "/blog/", "math": "visitors"},
                     {"kind": "custom", "name": "signup", "math": "per_session"}])
RANGE = {"from": "2026-09-07", "to": "2026-11-08"}


traffic = generated_traffic(seed=17, visitors=60)
shop = shop_fixture()


async def test_a_viewer_reads_a_trend_and_opens_the_sessions_of_a_line(
    app: Starlette, shop: int, runtime: Runtime
) -> None:
    params = {**RANGE, "series": SERIES, "breakdown": "country", "breakdown_limit": "2", "compare": "previous",
              "interval": "week"}
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/trends", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        query = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8))
        want = trend(runtime.store, shop, query, TrendDefinition.from_query(params, query), ZONE)
        assert answer.json() == want and want["range"] == {**RANGE, "time_zone": ZONE, "interval": "week"}
        assert want["previous"] is not None and any(line["other"] for line in want["lines"])
        first = want["lines"][0]
        listed = await c.get(f"/api/v1/projects/{shop}/trends/sessions",
                             params={**params, "index": "0", "value": first["breakdown_value"], "limit": "3"})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["total"] == first["totals"]["sessions"] and len(body["sessions"]) == min(3, body["total"])
        other = next(line for line in want["lines"] if line["other"] and line["series"] == 0)
        rest = await c.get(f"/api/v1/projects/{shop}/trends/sessions", params={**params, "other": "1"})
        assert rest.json()["total"] == other["totals"]["sessions"] > 0
        replay = await c.get(body["sessions"][0]["replay_url"])
        assert replay.status_code == 200, replay.text


async def test_without_series_a_trend_counts_every_pageview(app: Starlette, shop: int, traffic: gt.Traffic) -> None:
    async with signed_in(app) as c:
        answer = (await c.get(f"/api/v1/projects/{shop}/trends", params=RANGE)).json()
    low = int(dt.datetime(2026, 9, 6, 18, 30, tzinfo=dt.UTC).timestamp() * 1000)  # 7 Sept 00:00 in Kolkata
    high = int(dt.datetime(2026, 11, 8, 18, 30, tzinfo=dt.UTC).timestamp() * 1000)
    pageviews = sum(1 for s in traffic.of_project(shop) if s.started_ms >= low - 86_400_000
                    for e in s.events if e.type == "pageview" and low <= e.ts < high)
    assert answer["lines"][0]["label"] == "Pageview (any page)"
    assert answer["lines"][0]["totals"]["total"] == pageviews > 0


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        for path in ("trends", "trends/sessions"):
            assert (await c.get(f"/api/v1/projects/{shop}/{path}")).status_code == 401
        await sign_in(c, "viewer@example.com")
        for path in ("trends", "trends/sessions"):
            assert (await c.get(f"/api/v1/projects/2/{path}")).status_code == 404
            assert (await c.get(f"/api/v1/projects/999/{path}")).status_code == 404


async def test_another_projects_events_are_not_in_a_trend(app: Starlette, shop: int, runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        mine = (await c.get(f"/api/v1/projects/{shop}/trends", headers=headers, params=RANGE)).json()
        theirs = (await c.get("/api/v1/projects/2/trends", headers=headers, params=RANGE)).json()
    # Project 2's traffic is loaded too (a fifth of the visitors): it shows under 2 only, never under 1.
    assert mine["lines"][0]["totals"]["total"] > 0 and theirs["lines"][0]["totals"]["total"] > 0
    query = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8))
    both = trend(runtime.store, 1, query, TrendDefinition.from_query({}, query), ZONE)
    assert both["lines"] == mine["lines"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("trends", {"series": "{"}, "series"),
        ("trends", {"series": "[]"}, "series"),
        ("trends", {"series": json.dumps([{"kind": "pageview", "path": "/"}] * 6)}, "series"),
        ("trends", {"series": '[{"kind": "submit"}, {"kind": "pageview", "match": "regex", "path": "("}]'},
         "series[1].path"),
        ("trends", {"series": '[{"kind": "submit", "math": "max"}]'}, "series[0].math"),
        ("trends", {"interval": "minute"}, "interval"),
        ("trends", {"interval": "hour", "from": "2026-01-01", "to": "2026-06-01"}, "interval"),
        ("trends", {"breakdown": "ip"}, "breakdown"),
        ("trends", {"breakdown_limit": "100"}, "breakdown_limit"),
        ("trends", {"compare": "last_year"}, "compare"),
        ("trends", {"from": "2026-13-01"}, "from"),
        ("trends", {"country": "DEU"}, "country"),
        ("trends/sessions", {"index": "1"}, "index"),
        ("trends/sessions", {"index": "9"}, "index"),
        ("trends/sessions", {"value": "DE"}, "value"),
        ("trends/sessions", {"breakdown": "country"}, "value"),
        ("trends/sessions", {"breakdown": "country", "value": "DE", "other": "1"}, "value"),
        ("trends/sessions", {"other": "maybe"}, "other"),
        ("trends/sessions", {"limit": "201"}, "limit"),
        ("trends/sessions", {"offset": "-1"}, "offset"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(
    app: Starlette, shop: int, path: str, params: dict[str, str], field: str
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/{path}", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]


async def test_quotes_backslashes_and_braces_in_the_series_are_data(
    app: Starlette, shop: int, runtime: Runtime
) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N"):
            series = json.dumps([{"kind": "pageview", "path": text}, {"kind": "custom", "name": text,
                                                                       "props": {text: text}},
                                 {"kind": "click", "selector": text, "text": text}])
            params: dict[str, Any] = {**RANGE, "series": series, "browser": text, "breakdown": f"prop:{text}"}
            answer = await c.get(f"/api/v1/projects/{shop}/trends", headers=headers, params=params)
            assert answer.status_code == 200, (text, answer.text)
            listed = await c.get(f"/api/v1/projects/{shop}/trends/sessions", headers=headers,
                                 params={**params, "value": text})
            assert listed.status_code == 200 and listed.json()["total"] == 0, (text, listed.text)
        odd = json.dumps([{"kind": "pageview", "path": "/it's/a\\b{x}"},
                          {"kind": "custom", "name": "odd", "props": {"k": gt.ODD}}])
        found = await c.get(f"/api/v1/projects/{shop}/trends", headers=headers,
                            params={**RANGE, "series": odd, "breakdown": "prop:k"})
        assert [(line["breakdown_value"], line["totals"]["total"]) for line in found.json()["lines"]] == [
            ("", 1), (gt.ODD, 1)]


def test_the_trend_endpoints_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    for path in ("/api/v1/projects/{project_id}/trends", "/api/v1/projects/{project_id}/trends/sessions"):
        operation = paths[path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"project_id", "series", "interval", "breakdown", "breakdown_limit", "compare", "from", "to",
                "country", "device", "browser", "url", "prop_key"} <= names
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
    assert {"index", "value", "other", "offset", "limit"} <= {
        p["name"] for p in paths["/api/v1/projects/{project_id}/trends/sessions"]["get"]["parameters"]}
