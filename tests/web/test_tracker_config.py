"""The optional tracker features: owners switch them on the settings page and the API (audited), and the
tracker reads them from ``GET /api/v1/tracker-config?key=`` (public, cacheable, readable from any site)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import audit, projects
from hitmetrix.web.tracker_config import CONFIG_PATH
from tests.web.helpers import client, make_user, sign_in

pytestmark = pytest.mark.anyio

OFF = {"console": False, "network": False, "vitals": False}


async def config_of(c: httpx.AsyncClient, key: str) -> httpx.Response:
    return await c.get(CONFIG_PATH, params={"key": key}, headers={"Origin": "https://shop.example"})


async def test_a_new_project_has_every_feature_off_and_the_answer_is_public_and_cacheable(
    runtime: Runtime, app: Starlette
) -> None:
    project = projects.create_project(runtime.meta, "shop", owner_id=None)
    async with client(app) as c:
        answer = await config_of(c, project.public_key)
    assert answer.status_code == 200 and answer.json() == OFF
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"] == "public, max-age=60"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "key must be"),
        ({"key": ""}, 400, "key must be"),
        ({"key": "k" * 65}, 400, "key must be"),
        ({"key": "hm_pk_unknown"}, 404, "no project has this key"),
    ],
)
async def test_a_missing_or_unknown_key_is_a_clear_refusal(
    app: Starlette, params: dict[str, str], status: int, message: str
) -> None:
    async with client(app) as c:
        answer = await c.get(CONFIG_PATH, params=params)
    assert answer.status_code == status and message in answer.json()["error"]


async def test_owners_switch_features_in_the_settings_form_and_the_tracker_sees_them(
    runtime: Runtime, app: Starlette
) -> None:
    owner = make_user(runtime.meta, "owner@example.com")
    project = projects.create_project(runtime.meta, "shop", owner_id=owner)
    async with client(app) as c:
        csrf = await sign_in(c, "owner@example.com")
        page = await c.get(f"/projects/{project.id}/settings")
        for flag in projects.RECORDING_FEATURES:
            assert f'name="{flag}" value="1" >' in page.text, f"{flag} is offered, unticked"
        form = {"csrf_token": csrf, "record_console": "1", "record_network": "0", "record_vitals": "1"}
        saved = await c.post(f"/projects/{project.id}/settings", data=form)
        assert saved.status_code == 303, saved.text
        assert (await config_of(c, project.public_key)).json() == {"console": True, "network": False, "vitals": True}
        page = await c.get(f"/projects/{project.id}/settings")
        assert 'name="record_console" value="1" checked' in page.text
        assert 'name="record_network" value="1" >' in page.text
    changed = audit.entries(runtime.meta, project.id, action="project_settings_changed")
    assert changed and changed[0].details["changed"] == ["record_console", "record_vitals"]


async def test_owners_switch_features_in_the_api_and_bad_values_are_refused(runtime: Runtime, app: Starlette) -> None:
    owner = make_user(runtime.meta, "owner@example.com")
    project = projects.create_project(runtime.meta, "shop", owner_id=owner)
    make_user(runtime.meta, "analyst@example.com", project.id, role="analyst")
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    async with client(app) as c:
        url = f"/api/v1/projects/{project.id}"
        refused = await c.patch(url, json={"record_network": "yes"}, headers=headers)
        assert refused.status_code == 400 and "record_network must be true or false" in refused.json()["error"]
        answer = await c.patch(url, json={"record_network": True}, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["record_console"], body["record_network"], body["record_vitals"]) == (False, True, False)
        assert (await config_of(c, project.public_key)).json() == {**OFF, "network": True}
        csrf = await sign_in(c, "analyst@example.com")
        refused = await c.post(f"/projects/{project.id}/settings", data={"csrf_token": csrf, "record_console": "1"})
        assert refused.status_code == 403
    assert (await config_of(client(app), project.public_key)).json() == {**OFF, "network": True}
