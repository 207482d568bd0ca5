"""GET /api/v1/projects/{id}/retention, /paths and /paths/sessions on the real app: the ground-truth answers in the
project's time zone, 401 signed out, 404 for a project the caller is not in, 400 naming a bad parameter, hostile
text as plain data, and the OpenAPI entries."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.analytics import test_paths as paths_truth
from tests.analytics import test_retention as retention_truth
from tests.web.analytics_fixtures import ZONE, generated_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
ENDPOINTS = ("retention", "retention/sessions", "paths", "paths/sessions")


traffic = generated_traffic(seed=11, visitors=60)
shop = shop_fixture()


async def test_a_viewer_reads_retention_paths_and_an_edges_sessions(
    app: Starlette, shop: int, traffic: gt.Traffic
) -> None:
    first, last = dt.date(2026, 9, 7), dt.date(2026, 10, 25)
    async with signed_in(app) as c:
        grid = await c.get(f"/api/v1/projects/{shop}/retention",
                           params={"from": first.isoformat(), "to": last.isoformat(), "period": "month",
                                   "periods": "2", "return_event": "purchase"})
        assert grid.status_code == 200, grid.text
        assert grid.headers["cache-control"] == "no-store"
        want = retention_truth.truth(traffic, first, last, ZONE, "month", 2, returned=("", "purchase"))
        assert grid.json() == want and want["cohorts"][0]["visitors"] > 0

        params = {"from": paths_truth.FIRST.isoformat(), "to": paths_truth.LAST.isoformat(), "start": "/",
                  "steps": "3", "limit": "4", "group": ["^/blog/=>/blog/*", "^/p/=>/p/*"]}
        walked = await c.get(f"/api/v1/projects/{shop}/paths", params=params)
        assert walked.status_code == 200, walked.text
        groups = [("^/blog/", "/blog/*"), ("^/p/", "/p/*")]
        want_paths = paths_truth.truth(traffic, ZONE, start="/", steps=3, limit=4, groups=groups)
        assert walked.json() == want_paths and want_paths["edges"]

        edge = next(e for e in want_paths["edges"] if not e["target"].endswith(":other"))
        listed = await c.get(f"/api/v1/projects/{shop}/paths/sessions",
                             params={**params, "edge": edge["id"], "page_size": "2"})
        assert listed.status_code == 200, listed.text
        step, near, far = edge["id"].split(":", 1)[0], edge["source"].split(":", 1)[1], edge["target"].split(":", 1)[1]
        want_ids = paths_truth.truth_sessions(traffic, (int(step), near, far), ZONE, "/", "", 3, 4, True, groups)
        assert [s["session_id"] for s in listed.json()["sessions"]] == want_ids[:2]
        assert listed.json()["has_more"] == (len(want_ids) > 2)
        replay = await c.get(listed.json()["sessions"][0]["replay_url"])
        assert replay.status_code == 200


async def test_a_viewer_reads_the_sessions_behind_a_retention_cell(
    app: Starlette, shop: int, traffic: gt.Traffic
) -> None:
    first, last = dt.date(2026, 9, 7), dt.date(2026, 10, 25)
    params = {"from": first.isoformat(), "to": last.isoformat(), "period": "week", "periods": "4",
              "return_page": "/blog/*"}
    want = retention_truth.truth_sessions(traffic, first, last, ZONE, "week", 4, returned=("/blog/*", ""))
    (cohort, offset), expected = max(((cell, found) for cell, found in want.items() if cell[1] > 0),
                                     key=lambda item: (len(item[1]), item[0]))
    assert len(expected) >= 2, "a cell with a few returning sessions"
    async with signed_in(app) as c:
        grid = (await c.get(f"/api/v1/projects/{shop}/retention", params=params)).json()
        cell = next(c for c in grid["cohorts"] if c["cohort"] == cohort)["cells"][offset]
        listed = await c.get(f"/api/v1/projects/{shop}/retention/sessions",
                             params={**params, "cohort_start": cohort, "offset": str(offset), "page_size": "1"})
        assert listed.status_code == 200, listed.text
        answer = listed.json()
        assert answer["total"] == len(expected) and answer["visitors"] == cell["visitors"] and answer["has_more"]
        assert [s["session_id"] for s in answer["sessions"]] == [expected[0].session_id]
        second = (await c.get(f"/api/v1/projects/{shop}/retention/sessions",
                              params={**params, "cohort_start": cohort, "offset": str(offset), "page": "2",
                                      "page_size": "1"})).json()
        assert [s["session_id"] for s in second["sessions"]] == [expected[1].session_id]
        replay_url = answer["sessions"][0]["replay_url"]
        assert replay_url.startswith(f"/projects/{shop}/sessions/{expected[0].session_id}?t=")
        replay = await c.get(replay_url)
        assert replay.status_code == 200


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    params = {"start": "/", "edge": "1:/->2:/pricing", "from": "2026-09-07", "to": "2026-10-25",
              "cohort_start": "2026-09-07", "offset": "1"}
    async with client(app) as c:
        for endpoint in ENDPOINTS:
            assert (await c.get(f"/api/v1/projects/{shop}/{endpoint}", params=params)).status_code == 401
        await sign_in(c, "viewer@example.com")
        for endpoint in ENDPOINTS:
            assert (await c.get(f"/api/v1/projects/2/{endpoint}", params=params)).status_code == 404
            assert (await c.get(f"/api/v1/projects/999/{endpoint}", params=params)).status_code == 404


@pytest.mark.parametrize(
    ("endpoint", "params", "field"),
    [
        ("retention", {"period": "year"}, "period"),
        ("retention", {"periods": "0"}, "periods"),
        ("retention", {"identity": "x"}, "identity"),
        ("retention", {"start_page": "/", "start_event": "e"}, "start_event"),
        ("retention", {"country": "DEU"}, "country"),
        ("retention", {"from": "2020-01-01", "to": "2022-01-01", "period": "day"}, "from"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "offset": "1"}, "cohort_start"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-08",
                                "offset": "1"}, "cohort_start"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-11-02",
                                "offset": "1"}, "cohort_start"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-31",
                                "offset": "1"}, "cohort_start"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-07"}, "offset"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-07",
                                "periods": "2", "offset": "3"}, "offset"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-07",
                                "offset": "-1"}, "offset"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-07",
                                "offset": "1", "page": "0"}, "page"),
        ("retention/sessions", {"from": "2026-09-07", "to": "2026-10-25", "cohort_start": "2026-09-07",
                                "offset": "1", "page_size": "201"}, "page_size"),
        ("retention/sessions", {"period": "year", "cohort_start": "2026-09-07", "offset": "1"}, "period"),
        ("paths", {}, "start"),
        ("paths", {"start": "/", "steps": "9"}, "steps"),
        ("paths", {"start": "/", "group": "(?=x)=>/y"}, "group"),
        ("paths", {"start": "/", "group": "x{1,99999}=>/y"}, "group"),
        ("paths", {"start": "/", "group": "nothing"}, "group"),
        ("paths", {"start": "/", "strip_ids": "2"}, "strip_ids"),
        ("paths/sessions", {"start": "/"}, "edge"),
        ("paths/sessions", {"start": "/", "edge": "1:/->2:other"}, "edge"),
        ("paths/sessions", {"start": "/", "edge": "1:/->2:/x", "page": "0"}, "page"),
        ("paths/sessions", {"start": "/", "edge": "1:/->2:/x", "page_size": "201"}, "page_size"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(
    app: Starlette, shop: int, endpoint: str, params: dict, field: str
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/{endpoint}", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]


async def test_quotes_backslashes_and_braces_in_every_parameter_are_data(app: Starlette, shop: int,
                                                                         runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    text_params = {
        "retention": ("start_page", "start_event", "return_page", "return_event", "browser", "url", "prop_key"),
        "retention/sessions": ("start_page", "start_event", "return_page", "return_event", "browser", "url"),
        "paths": ("start", "end", "browser", "url", "utm_source"),
        "paths/sessions": ("start", "end", "edge"),
    }
    async with client(app) as c:
        for endpoint, names in text_params.items():
            for name in names:
                for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N"):
                    params = {"from": "2026-09-07", "to": "2026-11-08", name: text}
                    if endpoint.startswith("paths") and name not in ("start", "end"):
                        params["start"] = "/"
                    if endpoint == "retention/sessions":
                        params.update(cohort_start="2026-09-07", offset="1")
                    if endpoint == "paths/sessions":
                        params["edge"] = f"1:{text}->2:{text}" if name == "edge" else "1:/->2:/x"
                    answer = await c.get(f"/api/v1/projects/{shop}/{endpoint}", params=params, headers=headers)
                    assert answer.status_code == 200, (endpoint, name, text, answer.text)
            rule = {"group": f"{gt.ODD}=>{gt.ODD}", "start": "/", "edge": "1:/->2:/x", "from": "2026-09-07",
                    "to": "2026-11-08", "cohort_start": "2026-09-07", "offset": "0"}
            answer = await c.get(f"/api/v1/projects/{shop}/{endpoint}", params=rule, headers=headers)
            assert answer.status_code == 200, (endpoint, answer.text)


def test_the_endpoints_are_in_the_openapi_document() -> None:
    document = openapi_document()["paths"]
    for endpoint in ENDPOINTS:
        operation = document[f"/api/v1/projects/{{project_id}}/{endpoint}"]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"project_id", "from", "to", "country", "device", "browser", "url", "identified", "prop_key"} <= names
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
    retention = {p["name"] for p in document["/api/v1/projects/{project_id}/retention"]["get"]["parameters"]}
    assert {"period", "periods", "identity", "start_page", "start_event", "return_page", "return_event"} <= retention
    cell = document["/api/v1/projects/{project_id}/retention/sessions"]["get"]["parameters"]
    assert {"period", "periods", "start_page", "return_event", "cohort_start", "offset", "page", "page_size"} <= {
        p["name"] for p in cell}
    assert {p["name"] for p in cell if p.get("required")} == {"project_id", "cohort_start", "offset"}
    sessions = {p["name"] for p in document["/api/v1/projects/{project_id}/paths/sessions"]["get"]["parameters"]}
    assert {"start", "end", "steps", "limit", "strip_ids", "group", "edge", "page", "page_size"} <= sessions
