"""Saved views and cohorts through /api/v1 on the real app: viewers read, analysts and owners write (CSRF for
cookie callers), every change audited; 400s name the field; another project's view or cohort is a 404, and as a
``cohort=`` filter a 400. A cohort filters the overview, funnels, retention, paths and heatmaps endpoints as the
equivalent plain filter does (the generated visitors keep one country each), and its members are the library's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from hitmetrix.analytics import cohorts
from hitmetrix.runtime import Runtime
from hitmetrix.store import audit, saved
from hitmetrix.web.openapi import openapi_document
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import generated_traffic, open_shop
from tests.web.helpers import FakeClock, client, make_user, sign_in

pytestmark = pytest.mark.anyio
ZONE = "Europe/Berlin"
TODAY = dt.date(2026, 10, 20)
RANGE = {"from": "2026-09-07", "to": "2026-11-08"}
GERMANS = {"conditions": [{"type": "property", "property": "country", "value": "DE"}]}
BLOGGERS = {"conditions": [{"type": "behaviour", "event": {"kind": "pageview", "match": "prefix", "path": "/blog/"},
                            "at_least": 2, "days": 60}]}
FUNNEL = json.dumps({"steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview", "match": "prefix",
                                                                     "path": "/"}], "window_s": 3600})


traffic = generated_traffic(seed=17, visitors=90)


@pytest.fixture
def shop(runtime: Runtime, traffic: gt.Traffic, clock: FakeClock) -> int:
    clock.now = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC).timestamp()
    shop = open_shop(runtime, ZONE)
    make_user(runtime.meta, "analyst@example.com", 1, role="analyst")
    make_user(runtime.meta, "owner@example.com", 1, 2, role="owner")
    return shop


async def signed(c: httpx.AsyncClient, email: str) -> dict[str, str]:
    return {"X-CSRF-Token": await sign_in(c, email)}


def audit_of(runtime: Runtime, project_id: int) -> list[tuple[str, int | None]]:
    with runtime.meta.sessions() as db:
        rows = db.scalars(select(audit.AuditEntry).where(audit.AuditEntry.project_id == project_id)
                          .order_by(audit.AuditEntry.id))
        return [(e.action, e.actor_user_id) for e in rows if e.action.startswith(("saved_view", "cohort"))]


async def test_viewers_read_analysts_save_open_rename_and_delete_views(app: Starlette, shop: int,
                                                                       runtime: Runtime) -> None:
    base = f"/api/v1/projects/{shop}/saved-views"
    async with client(app) as c:
        csrf = await signed(c, "analyst@example.com")
        made = await c.post(base, json={"name": "DE mobile", "page": "overview",
                                        "query": "country=DE&device=mobile&from=2026-09-07"}, headers=csrf)
        assert made.status_code == 201, made.text
        view = made.json()
        assert view["url"] == f"/projects/{shop}/overview?country=DE&device=mobile&from=2026-09-07"
        assert (await c.post(base, json={"name": "x", "page": "overview"})).status_code == 403, "no CSRF token"
        renamed = await c.patch(f"{base}/{view['id']}", json={"name": "Germans on phones"}, headers=csrf)
        assert renamed.status_code == 200 and renamed.json()["name"] == "Germans on phones"
        taken = await c.post(base, json={"name": "Germans on phones", "page": "funnels"}, headers=csrf)
        assert taken.status_code == 409 and "exists already" in taken.json()["error"]

        csrf = await signed(c, "viewer@example.com")
        listed = await c.get(base)
        assert listed.status_code == 200 and [v["name"] for v in listed.json()["views"]] == ["Germans on phones"]
        assert (await c.get(f"{base}/{view['id']}")).json()["url"] == view["url"]
        opened = await c.get(view["url"])
        assert opened.status_code == 200, "the saved link opens its page"
        for refused in (c.post(base, json={"name": "mine", "page": "overview"}, headers=csrf),
                        c.patch(f"{base}/{view['id']}", json={"name": "mine"}, headers=csrf),
                        c.delete(f"{base}/{view['id']}", headers=csrf)):
            answer = await refused
            assert answer.status_code == 403 and "analyst" in answer.json()["error"]

        csrf = await signed(c, "owner@example.com")
        assert (await c.delete(f"{base}/{view['id']}", headers=csrf)).status_code == 204
        assert (await c.delete(f"{base}/{view['id']}", headers=csrf)).status_code == 404
        assert (await c.get(base)).json()["views"] == []
    actions = audit_of(runtime, shop)
    assert [a for a, _ in actions] == ["saved_view_created", "saved_view_renamed", "saved_view_deleted"]
    assert len({actor for _, actor in actions}) == 2 and None not in {actor for _, actor in actions}


async def test_a_cohort_is_built_read_with_its_members_changed_and_deleted(app: Starlette, shop: int,
                                                                           runtime: Runtime) -> None:
    base = f"/api/v1/projects/{shop}/cohorts"
    async with client(app) as c:
        csrf = await signed(c, "analyst@example.com")
        preview = await c.get(f"{base}/preview", params={"definition": json.dumps(BLOGGERS)})
        assert preview.status_code == 200, preview.text
        made = await c.post(base, json={"name": "Blog readers", "definition": BLOGGERS}, headers=csrf)
        assert made.status_code == 201, made.text
        cohort = made.json()
        definition = cohorts.CohortDefinition.from_data(BLOGGERS)
        want_size = cohorts.size(runtime.store, shop, definition, TODAY, ZONE)
        assert cohort["size"] == preview.json()["size"] == want_size > 0
        assert cohort["definition"] == definition.to_data()

        await signed(c, "viewer@example.com")
        assert [x["name"] for x in (await c.get(base)).json()["cohorts"]] == ["Blog readers"]
        page = await c.get(f"{base}/{cohort['id']}", params={"limit": "3"})
        assert page.status_code == 200, page.text
        body = page.json()
        want = cohorts.members(runtime.store, shop, definition, TODAY, ZONE, 0, 3)
        assert (body["size"], body["people"], body["next_offset"]) == (want_size, want["people"], want["next_offset"])
        first = body["people"][0]["recent_sessions"][0]
        assert (await c.get(first["replay_url"])).status_code == 200, "a member's session replays"

        csrf = await signed(c, "owner@example.com")
        changed = await c.patch(f"{base}/{cohort['id']}", json={"name": "Germans", "definition": GERMANS},
                                headers=csrf)
        assert changed.status_code == 200 and changed.json()["name"] == "Germans"
        assert (await c.get(f"{base}/{cohort['id']}")).json()["size"] == cohorts.size(
            runtime.store, shop, cohorts.CohortDefinition.from_data(GERMANS), TODAY, ZONE)
        assert (await c.delete(f"{base}/{cohort['id']}", headers=csrf)).status_code == 204
        assert (await c.get(f"{base}/{cohort['id']}")).status_code == 404
    assert [a for a, _ in audit_of(runtime, shop)] == ["cohort_created", "cohort_changed", "cohort_deleted"]


async def test_a_cohort_filters_every_view_as_the_same_plain_filter_does(app: Starlette, shop: int,
                                                                         traffic: gt.Traffic) -> None:
    """The generated visitors never change country, so "people who visited from DE" picks exactly the sessions
    that ``country=DE`` picks: the same answers, from every endpoint that parses the overview's filters."""
    assert all(len({s.country for s in traffic.sessions if s.anonymous_id == a}) == 1
               for a in {s.anonymous_id for s in traffic.sessions})
    async with client(app) as c:
        csrf = await signed(c, "analyst@example.com")
        cid = (await c.post(f"/api/v1/projects/{shop}/cohorts", json={"name": "DE", "definition": GERMANS},
                            headers=csrf)).json()["id"]
        plain = {**RANGE, "country": "DE"}
        by_cohort = {**RANGE, "cohort": str(cid)}
        for path, extra in (("overview", {}), ("funnels", {"definition": FUNNEL}),
                            ("funnels/sessions", {"definition": FUNNEL, "step": "2"}),
                            ("retention", {"period": "week"}), ("paths", {"start": "/"}),
                            ("heatmaps", {"page": "*"}), ("trends", {}), ("vitals", {}), ("errors", {}),
                            ("frustration", {}), ("sessions", {"limit": "200"})):
            want = await c.get(f"/api/v1/projects/{shop}/{path}", params={**plain, **extra})
            got = await c.get(f"/api/v1/projects/{shop}/{path}", params={**by_cohort, **extra})
            assert want.status_code == got.status_code == 200, (path, got.text)
            assert got.json() == want.json(), path
        everyone = (await c.get(f"/api/v1/projects/{shop}/overview", params=RANGE)).json()["totals"]
        germans = (await c.get(f"/api/v1/projects/{shop}/overview", params=by_cohort)).json()["totals"]
        assert 0 < germans["visitors"] < everyone["visitors"]
        page = await c.get(f"/projects/{shop}/overview", params=by_cohort)
        assert page.status_code == 200 and f">{germans['sessions']}<" in page.text.replace(",", "")


async def test_another_projects_cohort_or_view_is_not_found(app: Starlette, shop: int, runtime: Runtime) -> None:
    theirs = saved.add_cohort(runtime.meta, 2, "theirs", json.dumps(GERMANS), actor_id=None)
    their_view = saved.add_view(runtime.meta, 2, "theirs", "overview", "", actor_id=None)
    async with client(app) as c:
        csrf = await signed(c, "owner@example.com")  # an owner of both projects, asking through the wrong one
        for method, path in (("GET", f"cohorts/{theirs.id}"), ("PATCH", f"cohorts/{theirs.id}"),
                             ("DELETE", f"cohorts/{theirs.id}"), ("GET", f"saved-views/{their_view.id}"),
                             ("PATCH", f"saved-views/{their_view.id}"), ("DELETE", f"saved-views/{their_view.id}"),
                             ("GET", "cohorts/999999")):
            answer = await c.request(method, f"/api/v1/projects/{shop}/{path}", headers=csrf,
                                     json={"name": "stolen"} if method == "PATCH" else None)
            assert answer.status_code == 404, (method, path, answer.text)
        for view in ("overview", "funnels", "retention", "paths", "heatmaps"):
            params = {"cohort": str(theirs.id), "definition": FUNNEL, "start": "/", "page": "*"}
            answer = await c.get(f"/api/v1/projects/{shop}/{view}", params=params)
            assert answer.status_code == 400, (view, answer.text)
            assert answer.json() == {"error": "no such cohort in this project", "field": "cohort"}
        assert (await c.get("/api/v1/projects/2/overview", params={"cohort": str(theirs.id)})).status_code == 200
        await signed(c, "viewer@example.com")
        assert (await c.get(f"/api/v1/projects/2/cohorts/{theirs.id}")).status_code == 404, "not a member"
    assert saved.cohort(runtime.meta, 2, theirs.id) is not None and saved.view(runtime.meta, 2, their_view.id)


# (method, path under the project, JSON body, the field the 400 names)
BAD_REQUESTS: list[tuple[str, str, Any, str]] = [
    ("POST", "saved-views", {}, "name"),
    ("POST", "saved-views", {"name": "", "page": "overview"}, "name"),
    ("POST", "saved-views", {"name": "a\x00b", "page": "overview"}, "name"),
    ("POST", "saved-views", {"name": 7, "page": "overview"}, "name"),
    ("POST", "saved-views", {"name": "ok"}, "page"),
    ("POST", "saved-views", {"name": "ok", "page": "../../admin"}, "page"),
    ("POST", "saved-views", {"name": "ok", "page": "overview", "query": "a=" + "x" * 5000}, "query"),
    ("POST", "saved-views", {"name": "ok", "page": "overview", "query": ["a"]}, "query"),
    ("POST", "cohorts", {"name": "ok"}, "definition"),
    ("POST", "cohorts", {"name": "ok", "definition": []}, "definition"),
    ("POST", "cohorts", {"name": "ok", "definition": "{"}, "definition"),
    ("POST", "cohorts", {"name": "ok", "definition": {"conditions": [{"type": "property", "property": "os"}]}},
     "definition.conditions[0].value"),
    ("POST", "cohorts", {"name": "ok", "definition": {"conditions": [
        {"type": "behaviour", "event": {"kind": "pageview", "match": "regex", "path": "(["}}]}},
     "definition.conditions[0].event.path"),
    ("POST", "cohorts", {"name": "x" * 201, "definition": GERMANS}, "name"),
    ("PATCH", "cohorts/{cid}", {"colour": "red"}, "colour"),
    ("GET", "cohorts/{cid}?limit=0", None, "limit"),
    ("GET", "cohorts/{cid}?offset=x", None, "offset"),
    ("GET", "cohorts/preview", None, "definition"),
    ("GET", "overview?cohort=0", None, "cohort"),
    ("GET", "overview?cohort=1'", None, "cohort"),
    ("GET", "overview?cohort=99999999999999999999", None, "cohort"),
]


async def test_a_bad_request_is_a_400_that_names_the_field(app: Starlette, shop: int, runtime: Runtime) -> None:
    cid = saved.add_cohort(runtime.meta, shop, "kept", json.dumps(GERMANS), actor_id=None).id
    async with client(app) as c:
        csrf = await signed(c, "analyst@example.com")
        for method, path, body, field in BAD_REQUESTS:
            answer = await c.request(method, f"/api/v1/projects/{shop}/{path.format(cid=cid)}", headers=csrf,
                                     json=body)
            assert answer.status_code == 400, (method, path, body, answer.text)
            assert answer.json()["field"] == field and answer.json()["error"], (method, path, body, answer.text)
    assert [c.name for c in saved.cohorts(runtime.meta, shop)] == ["kept"] and saved.views(runtime.meta, shop) == []


async def test_signed_out_is_401(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        for path in ("saved-views", "cohorts", "cohorts/1", "cohorts/preview", "saved-views/1"):
            assert (await c.get(f"/api/v1/projects/{shop}/{path}")).status_code == 401


def test_the_endpoints_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    base = "/api/v1/projects/{project_id}"
    assert set(paths[f"{base}/saved-views"]) == {"get", "post"}
    assert set(paths[f"{base}/saved-views/{{view_id}}"]) == {"get", "patch", "delete"}
    assert set(paths[f"{base}/cohorts"]) == {"get", "post"}
    assert set(paths[f"{base}/cohorts/{{cohort_id}}"]) == {"get", "patch", "delete"}
    assert "cohort" in {p["name"] for p in paths[f"{base}/overview"]["get"]["parameters"]}
    assert "cohort" in {p["name"] for p in paths[f"{base}/funnels"]["get"]["parameters"]}
