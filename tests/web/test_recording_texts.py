"""Texts kept once per project (stylesheets out of recordings): served to who may watch its replays, 404 to others."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.web.app import build_app
from tests.web.helpers import client, close_runtime, make_user, open_runtime, sign_in

pytestmark = pytest.mark.anyio
CSS = ".card { padding: var(--pad); padding-bottom: 20px }\n" * 40


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    app: Starlette
    runtime: Runtime
    project: int
    other: int
    hidden: int
    sha: str
    other_sha: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = open_runtime(tmp_path_factory.mktemp("recording-texts") / "data")
    try:
        meta = runtime.meta
        project, other = meta.create_project("shop"), meta.create_project("other")
        hidden = meta.create_project("no-replays-for-viewers")
        meta.update_project(hidden.id, viewers_can_replay=False)  # type: ignore[arg-type]
        make_user(meta, "viewer@example.com", project.id, other.id, hidden.id)
        make_user(meta, "stranger@example.com")
        sha = runtime.blobs.put_text(project.id, CSS.encode())
        runtime.blobs.put_text(hidden.id, CSS.encode())
        other_sha = runtime.blobs.put_text(other.id, b".secret { color: red }" * 60)
        yield World(build_app(runtime), runtime, project.id, other.id, hidden.id, sha, other_sha)
    finally:
        close_runtime(runtime)


async def test_a_member_gets_the_text_as_inert_plain_text(world: World) -> None:
    async with client(world.app) as c:
        await sign_in(c, "viewer@example.com")
        answer = await c.get(f"/projects/{world.project}/texts/{world.sha}")
        assert answer.status_code == 200 and answer.text == CSS
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert "sandbox" in answer.headers["content-security-policy"]


async def test_another_projects_hash_and_other_callers_get_nothing(world: World) -> None:
    path = f"/projects/{world.project}/texts/{world.sha}"
    async with client(world.app) as c:
        signed_out = await c.get(path)
        assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
        await sign_in(c, "stranger@example.com")
        assert (await c.get(path)).status_code == 404, "not a member"
    async with client(world.app) as c:
        await sign_in(c, "viewer@example.com")
        # The viewer may read both projects, but each hash only through the project that keeps it.
        assert (await c.get(f"/projects/{world.project}/texts/{world.other_sha}")).status_code == 404
        assert (await c.get(f"/projects/{world.other}/texts/{world.sha}")).status_code == 404
        assert (await c.get(f"/projects/{world.other}/texts/{world.other_sha}")).status_code == 200
        assert (await c.get(f"/projects/{world.hidden}/texts/{world.sha}")).status_code == 403
        for bad in ("0" * 64, "nothex", world.sha.upper(), world.sha + "0", "..%2F..%2Ftexts"):
            assert (await c.get(f"/projects/{world.project}/texts/{bad}")).status_code == 404, bad
