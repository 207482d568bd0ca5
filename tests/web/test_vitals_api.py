"""GET /api/v1/projects/{id}/vitals, /errors and /errors/{group} on the real app: the ground-truth answers in the
project's time zone, 401 signed out, 404 for a project the caller is not in (and for a group with nothing in the
range), 400 naming a bad parameter, hostile text as plain data, and the OpenAPI entries."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_vitals as gv
from tests.web.analytics_fixtures import ZONE, load_traffic, shop_fixture, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
RANGE = {"from": gv.FIRST.isoformat(), "to": gv.LAST.isoformat()}
GROUP = "0123456789abcdef"
ENDPOINTS = ("vitals", "errors", f"errors/{GROUP}")


@pytest.fixture(scope="module")
def sessions(base_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[gt.TruthSession]]:
    traffic, sessions = gv.generate(seed=21, visitors=60)
    load_traffic(base_runtime, tmp_path_factory, traffic)
    yield sessions


shop = shop_fixture("sessions")


async def test_a_viewer_reads_vitals_errors_and_a_groups_sessions(
    app: Starlette, shop: int, sessions: list[gt.TruthSession]
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/vitals",
                             params={**RANGE, "sort": "lcp", "group": ["^/blog/=>/blog/*"], "device": "desktop"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        got = answer.json()
        want = gv.vitals_answer(sessions, 1, ZONE, {"device": "desktop"}, True, [("^/blog/", "/blog/*")],
                                sort="lcp")
        assert got["totals"] == want["totals"] and got["totals"]["pageviews"] > 0
        assert got["pages"] == want["pages"] and got["series"] == want["series"]
        assert got["previous"]["totals"] == want["previous_totals"]
        assert got["range"]["time_zone"] == ZONE

        listed = await c.get(f"/api/v1/projects/{shop}/errors", params=RANGE)
        assert listed.status_code == 200, listed.text
        want_errors = gv.errors_answer(sessions, 1, ZONE)
        assert listed.json()["groups"] == want_errors["groups"][:50] and want_errors["groups"]
        assert listed.json()["totals"] == want_errors["totals"]

        top = want_errors["groups"][0]
        detail = await c.get(top["url"], params={**RANGE, "page_size": "2"})
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert body["group"] == top["group"] and body["count"] == top["count"]
        want_sessions = gv.group_sessions(sessions, top["group"], 1, ZONE)
        assert [s["session_id"] for s in body["session_list"]] == [s["session_id"] for s in want_sessions[:2]]
        assert body["has_more"] == (len(want_sessions) > 2)
        first = body["session_list"][0]
        link = urlsplit(first["replay_url"])
        assert round(float(parse_qs(link.query)["t"][0]) * 1000) == want_sessions[0]["offset_ms"]
        replay = await c.get(first["replay_url"])
        assert replay.status_code == 200
        # An upper-case id is the same group; one with nothing in the range is a 404 that says so.
        upper = await c.get(f"/api/v1/projects/{shop}/errors/{top['group'].upper()}", params=RANGE)
        assert upper.status_code == 200 and upper.json()["group"] == top["group"]
        gone = await c.get(top["url"], params={"from": "2020-01-01", "to": "2020-01-02"})
        assert gone.status_code == 404 and gone.json()["error"]


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        for endpoint in ENDPOINTS:
            assert (await c.get(f"/api/v1/projects/{shop}/{endpoint}")).status_code == 401
        await sign_in(c, "viewer@example.com")
        for endpoint in ENDPOINTS:
            assert (await c.get(f"/api/v1/projects/2/{endpoint}")).status_code == 404
            assert (await c.get(f"/api/v1/projects/999/{endpoint}")).status_code == 404


async def test_project_2_sees_only_its_own(app: Starlette, runtime: Runtime, shop: int,
                                          sessions: list[gt.TruthSession]) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        theirs = (await c.get("/api/v1/projects/2/errors", params=RANGE, headers=headers)).json()
        assert theirs["groups"] == gv.errors_answer(sessions, 2, "UTC")["groups"][:50]
        vitals = (await c.get("/api/v1/projects/2/vitals", params=RANGE, headers=headers)).json()
        assert vitals["totals"] == gv.vitals_answer(sessions, 2, "UTC")["totals"]
        assert vitals["totals"]["pageviews"] > 0


@pytest.mark.parametrize(
    ("endpoint", "params", "field"),
    [
        ("vitals", {"sort": "speed"}, "sort"),
        ("vitals", {"order": "sideways"}, "order"),
        ("vitals", {"pages": "0"}, "pages"),
        ("vitals", {"pages": "201"}, "pages"),
        ("vitals", {"group": "(?=x)=>/y"}, "group"),
        ("vitals", {"group": "nothing"}, "group"),
        ("vitals", {"strip_ids": "2"}, "strip_ids"),
        ("vitals", {"country": "DEU"}, "country"),
        ("vitals", {"from": "2026-13-01"}, "from"),
        ("errors", {"sort": "loud"}, "sort"),
        ("errors", {"groups": "-1"}, "groups"),
        ("errors", {"search": "x" * 501}, "search"),
        ("errors", {"prop_value": "x"}, "prop_value"),
        (f"errors/{GROUP}", {"page": "0"}, "page"),
        (f"errors/{GROUP}", {"page_size": "201"}, "page_size"),
        ("errors/nothex", {}, "group"),
        ("errors/0123456789abcdef0", {}, "group"),
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
        "vitals": ("page", "browser", "os", "url", "referrer", "utm_source", "utm_medium", "utm_campaign",
                   "prop_key"),
        "errors": ("search", "browser", "os", "url", "referrer", "utm_campaign", "prop_key"),
    }
    async with client(app) as c:
        for endpoint, names in text_params.items():
            for name in names:
                for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "a\x00b", "\\N", "a\tb"):
                    answer = await c.get(f"/api/v1/projects/{shop}/{endpoint}", params={**RANGE, name: text},
                                         headers=headers)
                    assert answer.status_code == 200, (endpoint, name, text, answer.text)
        rule = {**RANGE, "group": f"{gt.ODD}=>{gt.ODD}"}
        answer = await c.get(f"/api/v1/projects/{shop}/vitals", params=rule, headers=headers)
        assert answer.status_code == 200, answer.text
        for text in (gt.ODD, "{p1:String}"):
            answer = await c.get(f"/api/v1/projects/{shop}/errors/{GROUP}", params={**RANGE, "search": text,
                                                                                   "url": text}, headers=headers)
            assert answer.status_code == 404, answer.text


def test_the_endpoints_are_in_the_openapi_document() -> None:
    document = openapi_document()["paths"]
    for endpoint in ("vitals", "errors", "errors/{group}"):
        operation = document[f"/api/v1/projects/{{project_id}}/{endpoint}"]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"project_id", "from", "to", "country", "device", "browser", "url", "identified", "prop_key"} <= names
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
    vitals = {p["name"] for p in document["/api/v1/projects/{project_id}/vitals"]["get"]["parameters"]}
    assert {"page", "sort", "order", "pages", "strip_ids", "group"} <= vitals
    group = {p["name"] for p in document["/api/v1/projects/{project_id}/errors/{group}"]["get"]["parameters"]}
    assert {"group", "search", "page", "page_size"} <= group


async def test_the_pages_render_the_same_answers(app: Starlette, shop: int, sessions: list[gt.TruthSession]) -> None:
    """The pages show what the endpoints answer; hostile messages are text, a bad parameter is a 400 page naming
    it, a group with nothing in the range a 404 page."""
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/vitals", params={**RANGE, "sort": "lcp", "chart": "inp"})
        assert page.status_code == 200, page.text
        want = gv.vitals_answer(sessions, 1, ZONE, sort="lcp")
        rows = re.findall(r'<tr data-page="([^"]*)">', page.text)
        assert [html.unescape(r) for r in rows] == [p["page"] for p in want["pages"]]
        assert f'data-measured="{want["totals"]["pageviews"]}"' in page.text
        assert 'id="hm-vitals-data"' in page.text and 'href="/projects/1/vitals?' in page.text

        listed = await c.get(f"/projects/{shop}/errors", params=RANGE)
        assert listed.status_code == 200, listed.text
        groups = gv.errors_answer(sessions, 1, ZONE)["groups"]
        assert re.findall(r'<tr data-group="([0-9a-f]{16})">', listed.text) == [g["group"] for g in groups]
        assert "<script>" not in listed.text.split("<body>", 1)[1].replace('<script src="', "")
        hostile = next(g for g in groups if "brien" in g["message"])
        assert html.escape(hostile["message"], quote=False) in listed.text or str(escape(hostile["message"])) in (
            listed.text)

        detail = await c.get(f"/projects/{shop}/errors/{hostile['group']}", params=RANGE)
        assert detail.status_code == 200, detail.text
        want_sessions = gv.group_sessions(sessions, hostile["group"], 1, ZONE)
        links = re.findall(r'<a class="hm-er-replay" href="([^"]+)"', detail.text)
        assert [urlsplit(html.unescape(u)).path.rsplit("/", 1)[1] for u in links] == [
            s["session_id"] for s in want_sessions[:50]]

        bad = await c.get(f"/projects/{shop}/vitals", params={"sort": "speed"})
        assert bad.status_code == 400 and 'data-field="sort"' in bad.text
        assert (await c.get(f"/projects/{shop}/errors/nothex")).status_code == 400
        gone = await c.get(f"/projects/{shop}/errors/{GROUP}", params=RANGE)
        assert gone.status_code == 404 and "did not happen in this range" in gone.text
        assert (await c.get("/projects/2/vitals")).status_code == 404
