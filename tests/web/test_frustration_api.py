"""GET /api/v1/projects/{id}/frustration and …/sessions/{sid}/frustration on the real app, and the session list (API
and page) filtered by signal and by the overview's filters: the generator's answers, 401 signed out, 404 for
another project, 400 naming a bad parameter, hostile text as plain data, the OpenAPI entries and the card partial."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from hitmetrix.analytics.frustration_query import pages_with_most_frustration
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.runtime import Runtime
from hitmetrix.web.openapi import openapi_document
from hitmetrix.web.render import templates
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_frustration as gf
from tests.analytics.test_frustration_query import FIRST, LAST
from tests.web.analytics_fixtures import load_traffic, open_shop, signed_in
from tests.web.helpers import client, sign_in

pytestmark = pytest.mark.anyio
RANGE = {"from": FIRST.isoformat(), "to": LAST.isoformat()}


@pytest.fixture(scope="module")
def generated(base_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[gf.Session]]:
    made, traffic = gf.generate(seed=3, sessions=40)
    load_traffic(base_runtime, tmp_path_factory, traffic)
    yield made


@pytest.fixture
def shop(runtime: Runtime, generated: list[gf.Session]) -> int:
    return open_shop(runtime, zone=None)


async def test_a_viewer_reads_the_pages_with_most_and_a_sessions_marks(
    app: Starlette, shop: int, generated: list[gf.Session], runtime: Runtime
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/frustration", params={**RANGE, "limit": "3"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        want = pages_with_most_frustration(runtime.store, shop, OverviewQuery(FIRST, LAST, limit=3), "UTC")
        assert answer.json() == want and len(want["pages"]) == 3 and want["totals"]["frustrated_sessions"] > 0
        busiest = max((s for s in generated if s.project_id == 1), key=lambda s: len(s.marks()))
        marks = await c.get(f"/api/v1/projects/{shop}/sessions/{busiest.session_id}/frustration")
        assert marks.status_code == 200, marks.text
        assert [(m["ts"], m["kind"], m["path"]) for m in marks.json()["marks"]] == busiest.marks()
        assert marks.json()["counts"] == busiest.counts()


async def test_the_session_list_takes_signals_and_overview_filters(
    app: Starlette, shop: int, generated: list[gf.Session]
) -> None:
    want = {s.session_id for s in generated if s.project_id == 1 and s.utm_source() == "news"
            and (s.counts()["dead"] or s.counts()["quick_back"])}
    assert want
    async with signed_in(app) as c:
        listed = await c.get(f"/api/v1/projects/{shop}/sessions",
                             params={"frustration": "dead,quick_back", "utm_source": "news", "limit": "500"})
        assert listed.status_code == 200, listed.text
        rows = listed.json()["sessions"]
        assert {r["session_id"] for r in rows} == want
        assert all(r["dead_clicks"] or r["quick_backs"] for r in rows)
        # The page: the same sessions, each with its badges; the overview filter kept as a chip and hidden input.
        page = await c.get(f"/projects/{shop}/sessions",
                           params=[("frustration", "dead"), ("frustration", "quick_back"), ("utm_source", "news")])
        assert page.status_code == 200, page.text
        for sid in want:
            assert f'data-session="{sid}"' in page.text
        assert 'data-signal="dead"' in page.text or 'data-signal="quick_back"' in page.text
        assert 'name="utm_source" value="news"' in page.text and "UTM source: news" in page.text
        assert 'value="dead" checked' in page.text and 'value="rage" checked' not in page.text


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("frustration", {"country": "DEU"}, "country"),
        ("frustration", {"limit": "0"}, "limit"),
        ("frustration", {"from": "2026-10-10", "to": "2026-10-01"}, "from"),
        ("sessions", {"frustration": "angry"}, "frustration"),
        ("sessions", {"frustration_page": "x" * 501}, "frustration_page"),
        ("sessions", {"identified": "maybe"}, "identified"),
        ("sessions", {"prop_value": "pro"}, "prop_value"),
    ],
)
async def test_a_bad_parameter_is_a_400_that_names_it(app: Starlette, shop: int, path: str, params: dict,
                                                       field: str) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/api/v1/projects/{shop}/{path}", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == field and answer.json()["error"]
        if path == "sessions":  # the list's page says the same
            page = await c.get(f"/projects/{shop}/sessions", params=params)
            assert page.status_code == 400 and "Filter not applied" in page.text


async def test_signed_out_is_401_and_another_project_is_404(app: Starlette, shop: int,
                                                            generated: list[gf.Session]) -> None:
    sid = generated[0].session_id
    async with client(app) as c:
        for path in ("frustration", f"sessions/{sid}/frustration"):
            assert (await c.get(f"/api/v1/projects/{shop}/{path}")).status_code == 401
        await sign_in(c, "viewer@example.com")
        for path in ("frustration", f"sessions/{sid}/frustration"):
            assert (await c.get(f"/api/v1/projects/2/{path}")).status_code == 404
            assert (await c.get(f"/api/v1/projects/999/{path}")).status_code == 404
        assert (await c.get(f"/api/v1/projects/{shop}/sessions/no-such-session-x/frustration")).status_code == 404
        assert (await c.get(f"/api/v1/projects/{shop}/sessions/bad%20id/frustration")).status_code == 404


async def test_quotes_backslashes_and_braces_in_every_filter_are_data(app: Starlette, shop: int,
                                                                      runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    names = {
        "frustration": ("url", "browser", "referrer", "utm_source", "utm_medium", "utm_campaign", "prop_key"),
        "sessions": ("frustration_page", "referrer", "utm_source", "utm_medium", "utm_campaign", "prop_key"),
    }
    async with client(app) as c:
        for path, filters in names.items():
            for name in filters:
                for text in (gt.ODD, "'", "\\", "{}", "{p1:String}", "{ov3_p1:String}", "a\x00b", "\\N"):
                    answer = await c.get(f"/api/v1/projects/{shop}/{path}", params={**RANGE, name: text},
                                         headers=headers)
                    assert answer.status_code == 200, (path, name, text, answer.text)
                    found = answer.json().get("sessions", answer.json().get("pages"))
                    assert found == [], (path, name, text)
            answer = await c.get(f"/api/v1/projects/{shop}/{path}",
                                 params={**RANGE, "prop_key": gt.ODD, "prop_value": gt.ODD}, headers=headers)
            assert answer.status_code == 200, answer.text


def test_the_endpoints_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    assert "/api/v1/projects/{project_id}/frustration" in paths
    assert "/api/v1/projects/{project_id}/sessions/{session_id}/frustration" in paths
    listed = {p["name"] for p in paths["/api/v1/projects/{project_id}/sessions"]["get"]["parameters"]}
    assert {"frustration", "frustration_page", "referrer", "utm_source", "identified", "prop_key"} <= listed


def test_the_card_partial_renders_the_answer_with_links(runtime: Runtime, generated: list[gf.Session]) -> None:
    class Links:
        def sessions(self, **extra: str) -> str:
            return "/projects/1/sessions?" + "&".join(f"{k}={v}" for k, v in extra.items())

    answer = pages_with_most_frustration(runtime.store, 1, OverviewQuery(FIRST, LAST, limit=4), "UTC")
    html = templates.env.get_template("_frustration_card.html").render(frustration=answer, links=Links())
    for page in answer["pages"]:
        assert f'data-page="{page["path"]}"' in html
        assert f"frustration_page={page['path']}" in html
    assert "frustration=rage" in html and f'{answer["totals"]["frustrated_sessions"]} of' in html
    bare = templates.env.get_template("_frustration_card.html").render(frustration=answer)
    assert "frustration_page=" not in bare and "Pages with most" in bare
