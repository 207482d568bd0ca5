"""The saved-view and cohort pages on the real app: the bar's "Save view" form saves the page with its query
string (CSRF-checked), the list opens and deletes views, the cohort editor previews and saves, a bad condition
comes back as a 400 page naming it with what was typed kept, and viewers read without the forms."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import projects, saved
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import generated_traffic
from tests.web.helpers import client, make_user, sign_in

pytestmark = pytest.mark.anyio


traffic = generated_traffic(seed=5, visitors=40)


@pytest.fixture
def shop(runtime: Runtime, traffic: gt.Traffic) -> int:
    projects.create_project(runtime.meta, "shop", owner_id=None)
    make_user(runtime.meta, "viewer@example.com", 1)
    make_user(runtime.meta, "analyst@example.com", 1, role="analyst")
    return 1


async def test_the_bar_saves_a_view_that_the_list_opens_and_deletes(app: Starlette, shop: int,
                                                                    runtime: Runtime) -> None:
    async with client(app) as c:
        csrf = await sign_in(c, "analyst@example.com")
        page = await c.get(f"/projects/{shop}/overview", params={"from": "2026-09-07", "country": "DE"})
        assert page.status_code == 200
        form = re.search(r'<details class="hm-sv-save">.*?</details>', page.text, re.S)
        assert form is not None, "the bar carries the Save view form"
        assert 'name="page" value="overview"' in form.group(0)
        assert 'name="query" value="from=2026-09-07&amp;country=DE"' in form.group(0)
        refused = await c.post(f"/projects/{shop}/saved", data={"name": "x", "page": "overview", "query": ""})
        assert refused.status_code == 403, "no CSRF token"
        made = await c.post(f"/projects/{shop}/saved", data={"csrf_token": csrf, "name": "Germans", "page": "overview",
                                                             "query": "from=2026-09-07&country=DE"})
        assert made.status_code == 303 and "/saved?created=" in made.headers["location"]
        listed = await c.get(made.headers["location"])
        assert "Saved “Germans”." in listed.text and "country" in listed.text
        (view,) = saved.views(runtime.meta, shop)
        opened = await c.get(f"/projects/{shop}/saved/{view.id}")
        assert opened.status_code == 303 and opened.headers["location"] == (
            f"/projects/{shop}/overview?from=2026-09-07&country=DE")
        again = await c.post(f"/projects/{shop}/saved", data={"csrf_token": csrf, "name": "Germans",
                                                              "page": "overview", "query": ""})
        assert again.status_code == 409 and "exists already" in again.text
        bad = await c.post(f"/projects/{shop}/saved", data={"csrf_token": csrf, "name": "x", "page": "admin"})
        assert bad.status_code == 400 and "cannot be saved" in bad.text
        gone = await c.post(f"/projects/{shop}/saved/{view.id}/delete", data={"csrf_token": csrf})
        assert gone.status_code == 303 and saved.views(runtime.meta, shop) == []
        assert (await c.get(f"/projects/{shop}/saved/{view.id}")).status_code == 404


async def test_the_cohort_editor_previews_keeps_a_bad_row_and_saves(app: Starlette, shop: int,
                                                                   runtime: Runtime) -> None:
    rows = {"c0_type": "property", "c0_property": "device", "c0_value": "mobile",
            "c1_type": "behaviour", "c1_kind": "pageview", "c1_match": "prefix", "c1_path": "/blog/",
            "c1_at_least": "1", "c1_days": "3650"}
    async with client(app) as c:
        csrf = await sign_in(c, "analyst@example.com")
        preview = await c.post(f"/projects/{shop}/cohorts", data={"csrf_token": csrf, "action": "preview",
                                                                  "name": "Mobile bloggers", **rows})
        assert preview.status_code == 200
        size = re.search(r'id="hm-co-size"[^>]*><strong>([0-9,]+)</strong>', preview.text)
        assert size is not None and int(size.group(1).replace(",", "")) > 0
        assert 'value="/blog/"' in preview.text and 'value="Mobile bloggers"' in preview.text
        bad = await c.post(f"/projects/{shop}/cohorts", data={"csrf_token": csrf, "action": "save", "name": "B",
                                                              **rows, "c1_days": "99999"})
        assert bad.status_code == 400 and "Condition 2: days must be a whole number" in bad.text
        assert 'class="hm-co-row has-error" data-row="1"' in bad.text and 'value="/blog/"' in bad.text
        assert saved.cohorts(runtime.meta, shop) == []
        made = await c.post(f"/projects/{shop}/cohorts", data={"csrf_token": csrf, "action": "save",
                                                               "name": "Mobile bloggers", **rows})
        assert made.status_code == 303
        cohort_page = await c.get(made.headers["location"])
        assert cohort_page.status_code == 200 and f">{size.group(1)}</strong>" in cohort_page.text
        assert "Device is mobile" in cohort_page.text and "starting with /blog/" in cohort_page.text

        await sign_in(c, "viewer@example.com")
        listed = await c.get(f"/projects/{shop}/cohorts")
        assert "Mobile bloggers" in listed.text and 'id="hm-co-builder"' not in listed.text
        assert "Delete this cohort" not in (await c.get(made.headers["location"])).text
        overview = await c.get(f"/projects/{shop}/overview")
        assert 'name="cohort"' in overview.text and "Mobile bloggers</option>" in overview.text
        assert 'class="hm-sv-save"' not in overview.text, "viewers do not save views"
