"""GET /api/v1/projects/{id}/funnels and …/funnels/sessions on the real app: the same answer as the library in the
project's time zone, replay links that open, 401 signed out, 404 for a project the caller is not in, 400 naming
a bad parameter or definition field, and the OpenAPI entries."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from starlette.applications import Starlette

from hitmetrix.analytics.funnels import FunnelDefinition, funnel
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import ZONE, generated_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
DEFINITION = json.dumps({"steps": [{"kind": "pageview", "path": "/"},
                                   {"kind": "pageview", "match": "prefix", "path": "/blog/"}], "window_s": 3600})
RANGE = {"from": "2026-09-07", "to": "2026-11-08"}


traffic = generated_traffic(seed=13, visitors=60)
shop = shop_fixture()


async def test_a_viewer_reads_a_funnel_and_opens_its_drop_offs(app: Starlette, shop: int, runtime: Runtime) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/funnels", params={**RANGE, "definition": DEFINITION})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        query = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8))
        want = funnel(runtime.store, shop, query, FunnelDefinition.from_json(DEFINITION), ZONE)
        assert answer.json() == want and want["steps"][1]["dropped"] > 0 and want["range"]["time_zone"] == ZONE
        dropped = await c.get(f"/api/v1/projects/{shop}/funnels/sessions",
                              params={**RANGE, "definition": DEFINITION, "step": "2", "outcome": "dropped",
                                      "limit": "5"})
        assert dropped.status_code == 200, dropped.text
        body = dropped.json()
        assert body["total"] == want["steps"][1]["dropped"] and len(body["sessions"]) == min(5, body["total"])
        replay = await c.get(body["sessions"][0]["replay_url"])
        assert replay.status_code == 200, replay.text


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    params = {"definition": DEFINITION}
    async with client(app) as c:
        for path in ("funnels", "funnels/sessions"):
            assert (await c.get(f"/api/v1/projects/{shop}/{path}", params=params)).status_code == 401
        await sign_in(c, "viewer@example.com")
        for path in ("funnels", "funnels/sessions"):
            assert (await c.get(f"/api/v1/projects/2/{path}", params=params)).status_code == 404
            assert (await c.get(f"/api/v1/projects/999/{path}", params=params)).status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("funnels", {}, "definition"),
        ("funnels", {"definition": "{"}, "definition"),
        ("funnels", {"definition": '{"steps": [{"kind": "submit"}]}'}, "definition.steps"),
        ("funnels", {"definition": '{"steps": [{"kind": "submit"}, {"kind": "pageview", "match": "regex", '
                     '"path": "("}]}'}, "definition.steps[1].path"),
        ("funnels", {"definition": DEFINITION, "from": "2026-13-01"}, "from"),
        ("funnels", {"definition": DEFINITION, "country": "DEU"}, "country"),
        ("funnels/sessions", {"definition": DEFINITION, "step": "3"}, "step"),
        ("funnels/sessions", {"definition": DEFINITION, "step": "1", "outcome": "dropped"}, "step"),
        ("funnels/sessions", {"definition": DEFINITION, "outcome": "lost"}, "outcome"),
        ("funnels/sessions", {"definition": DEFINITION, "limit": "201"}, "limit"),
        ("funnels/sessions", {"definition": DEFINITION, "offset": "-1"}, "offset"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(
    app: Starlette, shop: int, path: str, params: dict, field: str
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/{path}", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]


async def test_quotes_backslashes_and_braces_in_the_definition_are_data(
    app: Starlette, shop: int, runtime: Runtime
) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N"):
            definition = json.dumps({"steps": [{"kind": "pageview", "path": text},
                                               {"kind": "custom", "name": text, "props": {text: text}}],
                                     "exclusions": [{"kind": "click", "selector": text, "text": text}]})
            answer = await c.get(f"/api/v1/projects/{shop}/funnels", headers=headers,
                                 params={**RANGE, "definition": definition, "browser": text})
            assert answer.status_code == 200, (text, answer.text)
        odd = json.dumps({"steps": [{"kind": "pageview", "path": "/it's/a\\b{x}"},
                                    {"kind": "custom", "name": "odd", "props": {"k": gt.ODD}}]})
        found = await c.get(f"/api/v1/projects/{shop}/funnels", headers=headers, params={**RANGE, "definition": odd})
        assert [s["sessions"] for s in found.json()["steps"]] == [1, 1]


def test_the_funnel_endpoints_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    for path in ("/api/v1/projects/{project_id}/funnels", "/api/v1/projects/{project_id}/funnels/sessions"):
        operation = paths[path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"project_id", "definition", "from", "to", "country", "device", "browser"} <= names
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
    assert {"step", "outcome", "offset", "limit"} <= {
        p["name"] for p in paths["/api/v1/projects/{project_id}/funnels/sessions"]["get"]["parameters"]}
