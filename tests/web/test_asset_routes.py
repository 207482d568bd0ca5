"""Captured assets served by the dashboard: only to who may watch the project's replays, and inert when opened."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette

from hitmetrix.assets.store import AssetStore
from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.web.app import build_app
from hitmetrix.web.asset_routes import ASSET_CSP
from tests.web.helpers import client, close_runtime, make_user, open_runtime, sign_in

pytestmark = pytest.mark.anyio
SITE = "https://www.example.com"
CSS = b"@font-face { font-family: T; src: url(../fonts/t.woff2) }\n.x { background: url(/img/missing.png) }"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    app: Starlette
    runtime: Runtime
    store: AssetStore
    project: int
    hidden_project: int
    shas: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = open_runtime(tmp_path_factory.mktemp("asset-routes") / "data")
    try:
        meta = runtime.meta
        project = meta.create_project("site", allowed_origins=SITE)
        hidden = meta.create_project("no-replays-for-viewers", allowed_origins=SITE)
        meta.update_project(hidden.id, viewers_can_replay=False)  # type: ignore[arg-type]
        make_user(meta, "viewer@example.com", project.id, hidden.id)
        make_user(meta, "stranger@example.com")
        assert runtime.assets is not None
        store = runtime.assets.store
        shas = {}
        for name, url, body, kind in [
            ("css", f"{SITE}/css/site.css", CSS, "text/css"),
            ("font", f"{SITE}/fonts/t.woff2", b"wOF2 font", "font/woff2"),
            ("svg", f"{SITE}/img/logo.svg", SVG, "image/svg+xml"),
        ]:
            shas[name] = store.put_blob(body)
            for pid in (project.id, hidden.id):
                store.record_ok(pid, url, shas[name], kind)
        yield World(build_app(runtime), runtime, store, project.id, hidden.id, shas)
    finally:
        close_runtime(runtime)
        if runtime.assets is not None:
            runtime.assets.store.close()


async def test_a_member_gets_the_asset_with_headers_that_make_it_inert(world: World) -> None:
    async with client(world.app) as c:
        await sign_in(c, "viewer@example.com")
        font = await c.get(f"/projects/{world.project}/assets/{world.shas['font']}")
        assert font.status_code == 200 and font.content == b"wOF2 font"
        assert font.headers["content-type"] == "font/woff2"
        assert font.headers["content-security-policy"] == ASSET_CSP
        assert "default-src 'none'" in ASSET_CSP and "sandbox" in ASSET_CSP and "script-src" not in ASSET_CSP
        assert font.headers["x-content-type-options"] == "nosniff"
        assert font.headers["cache-control"] == "no-store"
        assert font.headers["content-disposition"] == "attachment"
        assert font.headers["cross-origin-resource-policy"] == "same-origin"
        svg = await c.get(f"/projects/{world.project}/assets/{world.shas['svg']}")
        assert svg.headers["content-type"] == "image/svg+xml", "an image, never text/html or inline"
        assert svg.headers["content-security-policy"] == ASSET_CSP


async def test_a_stylesheet_is_served_with_its_urls_rewritten(world: World) -> None:
    async with client(world.app) as c:
        await sign_in(c, "viewer@example.com")
        css = await c.get(f"/projects/{world.project}/assets/{world.shas['css']}")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert f'url("/projects/{world.project}/assets/{world.shas["font"]}")' in css.text
        assert f'url("{SITE}/img/missing.png" referrer-policy(no-referrer))' in css.text, "uncaptured: the site's"


async def test_nobody_else_gets_it(world: World) -> None:
    path = f"/projects/{world.project}/assets/{world.shas['font']}"
    async with client(world.app) as c:
        signed_out = await c.get(path)
        assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
        await sign_in(c, "stranger@example.com")
        assert (await c.get(path)).status_code == 404, "not a member"
    async with client(world.app) as c:
        await sign_in(c, "viewer@example.com")
        hidden = await c.get(f"/projects/{world.hidden_project}/assets/{world.shas['font']}")
        assert hidden.status_code == 403, "a viewer of a project whose replays viewers may not watch"
        other = world.runtime.meta.create_project("other")
        world.runtime.meta.update_project(other.id, allowed_origins=SITE)
        user = accounts.user_by_email(world.runtime.meta, "viewer@example.com")
        assert user is not None
        accounts.add_member(world.runtime.meta, other.id, user.id, "viewer")
        # The same bytes exist, but this project never fetched them: it may not read them.
        assert (await c.get(f"/projects/{other.id}/assets/{world.shas['font']}")).status_code == 404
        for bad in ("0" * 64, "nothex", world.shas["font"].upper(), world.shas["font"] + "0"):
            assert (await c.get(f"/projects/{world.project}/assets/{bad}")).status_code == 404, bad


async def test_the_session_map_needs_a_recording(world: World) -> None:
    async with client(world.app) as c:
        answer = await c.get(f"/api/v1/projects/{world.project}/sessions/s3ss10nAbCdEf123/assets")
        assert answer.status_code == 401
        await sign_in(c, "viewer@example.com")
        answer = await c.get(f"/api/v1/projects/{world.project}/sessions/s3ss10nAbCdEf123/assets")
        assert answer.status_code == 404 and answer.json() == {"error": "no recording for this session"}
        assert (await c.get(f"/api/v1/projects/{world.project}/sessions/bad!/assets")).status_code == 404
