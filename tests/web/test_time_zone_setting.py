"""A project's time zone through the dashboard and the API: the creator's browser zone on creation, owners
change it, unknown zones are a clear 400, and the pages show it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, projects
from hitmetrix.web.app import build_app
from tests.support import new_id
from tests.web.helpers import client, close_runtime, make_user, open_runtime, sign_in

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Node:
    runtime: Runtime
    app: Starlette


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    runtime = open_runtime(tmp_path_factory.mktemp("zones") / "data")
    try:
        yield Node(runtime, build_app(runtime))
    finally:
        close_runtime(runtime)


def owner(node: Node) -> tuple[str, int]:
    email = f"owner-{new_id()[:8]}@example.com"
    user_id = make_user(node.runtime.meta, email)
    return email, user_id


async def created_from_the_form(node: Node, sent_zone: str) -> int:
    email, _ = owner(node)
    async with client(node.app) as c:
        csrf = await sign_in(c, email)
        form = {"csrf_token": csrf, "name": "zoned " + new_id()[:6], "time_zone": sent_zone}
        answer = await c.post("/projects", data=form)
        assert answer.status_code == 303, answer.text
        return int(re.findall(r"/projects/(\d+)/settings", answer.headers["location"])[0])


async def test_the_create_form_takes_the_browsers_zone(node: Node) -> None:
    project_id = await created_from_the_form(node, "Pacific/Kiritimati")
    project = node.runtime.meta.project(project_id)
    assert project is not None and project.time_zone == "Pacific/Kiritimati"


@pytest.mark.parametrize("sent", ["", "Mars/Olympus", "x" * 500])
async def test_an_unknown_or_missing_browser_zone_falls_back_to_utc(node: Node, sent: str) -> None:
    project = node.runtime.meta.project(await created_from_the_form(node, sent))
    assert project is not None and project.time_zone == "UTC"


async def test_the_projects_page_asks_the_browser_for_its_zone(node: Node) -> None:
    email, _ = owner(node)
    async with client(node.app) as c:
        await sign_in(c, email)
        page = await c.get("/projects")
    assert '<input type="hidden" name="time_zone" value="" data-browser-zone>' in page.text
    assert '<script src="/static/dashboard/onboarding.js" defer></script>' in page.text


async def test_owners_change_the_zone_in_the_settings_form(node: Node) -> None:
    email, user_id = owner(node)
    project = projects.create_project(node.runtime.meta, "form " + new_id()[:6], owner_id=user_id)
    async with client(node.app) as c:
        csrf = await sign_in(c, email)
        page = await c.get(f"/projects/{project.id}/settings")
        assert '<option selected>UTC</option>' in page.text and "<option>Asia/Kolkata</option>" in page.text
        form = {"csrf_token": csrf, "name": project.name, "time_zone": "Asia/Kolkata"}
        saved = await c.post(f"/projects/{project.id}/settings", data=form)
        assert saved.status_code == 303
        again = await c.get(f"/projects/{project.id}/settings")
        assert "<option selected>Asia/Kolkata</option>" in again.text
        refused = await c.post(f"/projects/{project.id}/settings", data={**form, "time_zone": "Asia/Atlantis"})
    assert refused.status_code == 400
    assert "Unknown time zone &#39;Asia/Atlantis&#39;" in refused.text
    stored = node.runtime.meta.project(project.id)
    assert stored is not None and stored.time_zone == "Asia/Kolkata"


async def test_the_api_reads_sets_and_checks_the_zone(node: Node) -> None:
    _, user_id = owner(node)
    _, token = accounts.create_api_token(node.runtime.meta, user_id, "zones", "write")
    bearer = {"Authorization": f"Bearer {token}"}
    async with client(node.app) as c:
        body = {"name": "api zoned", "time_zone": "Europe/Berlin"}
        created = await c.post("/api/v1/projects", json=body, headers=bearer)
        assert created.status_code == 201, created.text
        assert created.json()["time_zone"] == "Europe/Berlin"
        path = f"/api/v1/projects/{created.json()['id']}"
        changed = await c.patch(path, json={"time_zone": "America/New_York"}, headers=bearer)
        assert changed.status_code == 200 and changed.json()["time_zone"] == "America/New_York"
        for bad in ("Mars/Olympus", "", 14, None, "Europe/Berlin/", "../Europe/Berlin"):
            refused = await c.patch(path, json={"time_zone": bad}, headers=bearer)
            assert refused.status_code == 400, bad
            assert "time zone" in refused.json()["error"] or "time_zone" in refused.json()["error"]
        assert (await c.get(path, headers=bearer)).json()["time_zone"] == "America/New_York"
        no_name = await c.post("/api/v1/projects", json={"name": "bad zone", "time_zone": "Nowhere"}, headers=bearer)
        assert no_name.status_code == 400
    assert all(p.name != "bad zone" for p in node.runtime.meta.projects())  # refused before anything was made

