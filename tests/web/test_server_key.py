"""The project's server key in the dashboard and the API: owners only, rotation audited; the auth rules setting."""

from __future__ import annotations

import html

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import audit, projects
from tests.web.helpers import client, make_user, sign_in

pytestmark = pytest.mark.anyio


def setup_team(runtime: Runtime) -> tuple[int, str, str]:
    meta = runtime.meta
    owner = make_user(meta, "owner@example.com")
    project = projects.create_project(meta, "site", owner_id=owner)
    make_user(meta, "viewer@example.com", project.id, role="viewer")
    make_user(meta, "analyst@example.com", project.id, role="analyst")
    return project.id, project.server_key, "owner@example.com"


async def test_owners_see_the_server_key_and_others_do_not(app: Starlette, runtime: Runtime) -> None:
    project_id, key, owner = setup_team(runtime)
    async with client(app) as c:
        await sign_in(c, owner)
        answer = await c.get(f"/api/v1/projects/{project_id}")
        assert answer.json()["server_key"] == key
        page = await c.get(f"/projects/{project_id}/settings")
        assert key in page.text and "Rotate server key" in page.text
        for other in ("viewer@example.com", "analyst@example.com"):
            await sign_in(c, other)
            answer = await c.get(f"/api/v1/projects/{project_id}")
            assert answer.status_code == 200 and "server_key" not in answer.json()
            assert key not in answer.text
            assert (await c.get(f"/projects/{project_id}/settings")).status_code == 403


async def test_rotating_the_key_from_the_page_and_the_api_is_audited(app: Starlette, runtime: Runtime) -> None:
    project_id, key, owner = setup_team(runtime)
    async with client(app) as c:
        csrf = await sign_in(c, owner)
        refused = await c.post(f"/projects/{project_id}/server-key", data={})
        assert refused.status_code == 403
        assert runtime.meta.project(project_id).server_key == key  # type: ignore[union-attr]
        answer = await c.post(f"/projects/{project_id}/server-key", data={"csrf_token": csrf})
        assert answer.status_code == 303 and answer.headers["location"].endswith("?rotated=1#server-sources")
        from_page = runtime.meta.project(project_id).server_key  # type: ignore[union-attr]
        assert from_page != key and from_page.startswith("hm_sk_")
        assert runtime.meta.project_by_server_key(key) is None
        page = await c.get(answer.headers["location"])
        assert from_page in page.text and "New server key made" in html.unescape(page.text)

        api = await c.post(f"/api/v1/projects/{project_id}/server-key", headers={"X-CSRF-Token": csrf})
        assert api.status_code == 200, api.text
        assert api.json()["server_key"] == runtime.meta.project(project_id).server_key != from_page  # type: ignore[union-attr]
        await sign_in(c, "viewer@example.com")
        assert (await c.post(f"/api/v1/projects/{project_id}/server-key")).status_code in (403, 404)
    rotations = audit.entries(runtime.meta, project_id=project_id, action="server_key_rotated")
    assert len(rotations) == 2


async def test_auth_rules_are_checked_and_kept(app: Starlette, runtime: Runtime) -> None:
    project_id, _, owner = setup_team(runtime)
    async with client(app) as c:
        csrf = await sign_in(c, owner)
        headers = {"X-CSRF-Token": csrf}
        rules = [{"path": "^/account/enter$", "failed_bytes": [4000, 4200]}]
        answer = await c.patch(f"/api/v1/projects/{project_id}", json={"auth_rules": rules}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["auth_rules"] == '[{"path": "^/account/enter$", "failed_bytes": [4000, 4200]}]'
        bad = await c.patch(f"/api/v1/projects/{project_id}", json={"auth_rules": [{"path": "("}]}, headers=headers)
        assert bad.status_code == 400 and "auth_rules[0]" in bad.json()["error"]
        cleared = await c.patch(f"/api/v1/projects/{project_id}", json={"auth_rules": ""}, headers=headers)
        assert cleared.json()["auth_rules"] == ""
