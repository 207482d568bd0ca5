"""Projects in the dashboard and the API: deletion with confirmation, members and roles, admins joining,
withholding replays from viewers, the settings form — through the real app over a started runtime."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit, projects
from hitmetrix.web.app import build_app
from tests.support import make_batch, new_id
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
    runtime = open_runtime(tmp_path_factory.mktemp("projects") / "data")
    runtime.start()  # spool and loader: recorded sessions really arrive in the store
    try:
        yield Node(runtime, build_app(runtime))
    finally:
        if runtime.started:
            runtime.stop()
        else:
            close_runtime(runtime)


@dataclass
class Team:
    project: int
    name: str
    owner: str
    analyst: str
    viewer: str


@pytest.fixture
def team(node: Node) -> Team:
    """A fresh project with one member of each role (emails unique per test)."""
    tag = new_id()[:8]
    meta = node.runtime.meta
    owner = make_user(meta, f"owner-{tag}@example.com")
    project = projects.create_project(meta, f"shop {tag}", owner_id=owner)
    make_user(meta, f"analyst-{tag}@example.com", project.id, role="analyst")
    make_user(meta, f"viewer-{tag}@example.com", project.id, role="viewer")
    return Team(project.id, project.name, f"owner-{tag}@example.com", f"analyst-{tag}@example.com",
                f"viewer-{tag}@example.com")


async def record_session(node: Node, c: httpx.AsyncClient, project_id: int) -> str:
    """Send a session with a recording through capture and wait until the store has it."""
    project = node.runtime.meta.project(project_id)
    assert project is not None
    batch = make_batch(events=2, chunks=1)
    answer = await c.post("/api/v1/batch", params={"key": project.public_key}, json=batch)
    assert answer.status_code == 200, answer.text
    admin = {"Authorization": f"Bearer {node.runtime.admin_token}"}

    async def stored() -> bool:
        found = await c.get(f"/api/v1/projects/{project_id}/sessions/{batch['session_id']}", headers=admin)
        return found.status_code == 200 and bool(found.json()["recording_chunks"])

    await wait_async(stored)
    return str(batch["session_id"])


async def wait_async(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll an async condition until it holds (the store is polled, not slept on)."""
    with anyio.fail_after(timeout_s):
        while not await condition():
            await anyio.sleep(0.1)


def text_of(answer: httpx.Response) -> str:
    return html.unescape(answer.text)


# --- deleting a project --------------------------------------------------------------------------------


async def test_an_owner_deletes_a_project_after_typing_its_name(node: Node, team: Team) -> None:
    meta = node.runtime.meta
    public_key = meta.project(team.project).public_key  # type: ignore[union-attr]
    async with client(node.app) as c:
        sid = await record_session(node, c, team.project)
        blob_dir = node.runtime.blobs.root / str(team.project)
        assert blob_dir.is_dir()
        csrf = await sign_in(c, team.owner)
        confirm = await c.get(f"/projects/{team.project}/delete")
        assert confirm.status_code == 200 and "Type the project's name" in text_of(confirm)
        wrong = await c.post(f"/projects/{team.project}/delete", data={"csrf_token": csrf, "confirm_name": "shop"})
        assert wrong.status_code == 400 and "nothing was deleted" in wrong.text
        assert meta.project(team.project) is not None
        done = await c.post(
            f"/projects/{team.project}/delete", data={"csrf_token": csrf, "confirm_name": team.name}
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/projects?deleted=")
        listing = await c.get(done.headers["location"])
        assert f"Project “{team.name}” and all of its data were deleted." in text_of(listing)
        assert (await c.get(f"/projects/{team.project}/sessions")).status_code == 404
    assert meta.project(team.project) is None
    assert not blob_dir.exists()
    rows = node.runtime.store.query(
        "SELECT count() AS n FROM hitmetrix.events WHERE project_id = {p:UInt32}", {"p": team.project}
    )
    assert rows[0]["n"] == 0, f"session {sid}'s events are still stored"
    assert audit.entries(meta, team.project)[0].action == "project_deleted"
    async with client(node.app) as c:  # capture refuses the project's key at once
        answer = await c.post("/api/v1/batch", params={"key": public_key}, json=make_batch(events=1))
        assert answer.status_code == 401, answer.text


async def test_the_api_deletes_only_with_the_name_and_only_for_owners(node: Node, team: Team) -> None:
    meta = node.runtime.meta
    async with client(node.app) as c:
        for email in (team.viewer, team.analyst):
            csrf = await sign_in(c, email)
            refused = await c.delete(
                f"/api/v1/projects/{team.project}", params={"confirm": team.name}, headers={"X-CSRF-Token": csrf}
            )
            assert refused.status_code == 403, email
        csrf = await sign_in(c, team.owner)
        headers = {"X-CSRF-Token": csrf}
        unconfirmed = await c.delete(f"/api/v1/projects/{team.project}", headers=headers)
        assert unconfirmed.status_code == 400 and "confirm must repeat the project's name" in unconfirmed.text
        assert meta.project(team.project) is not None
        deleted = await c.delete(f"/api/v1/projects/{team.project}", params={"confirm": team.name}, headers=headers)
        assert deleted.status_code == 204
        assert (await c.get(f"/api/v1/projects/{team.project}", headers=headers)).status_code == 404
    assert meta.project(team.project) is None


# --- members -------------------------------------------------------------------------------------------


async def test_owners_manage_members_and_keep_one_owner(node: Node, team: Team) -> None:
    meta = node.runtime.meta
    newcomer = make_user(meta, f"new-{new_id()[:8]}@example.com")
    newcomer_email = accounts.user_by_id(meta, newcomer).email  # type: ignore[union-attr]
    owner_id = accounts.user_by_email(meta, team.owner).id  # type: ignore[union-attr]
    async with client(node.app) as c:
        csrf = await sign_in(c, team.owner)
        page = await c.get(f"/projects/{team.project}/members")
        assert page.status_code == 200
        assert all(email in page.text for email in (team.owner, team.analyst, team.viewer))
        assert "last owner" in page.text
        added = await c.post(
            f"/projects/{team.project}/members", data={"csrf_token": csrf, "email": newcomer_email, "role": "analyst"}
        )
        assert added.status_code == 303
        assert accounts.role_in(meta, team.project, newcomer) == "analyst"
        unknown = await c.post(
            f"/projects/{team.project}/members", data={"csrf_token": csrf, "email": "nobody@example.com"}
        )
        assert unknown.status_code == 400 and "No user has that email" in unknown.text
        changed = await c.post(
            f"/projects/{team.project}/members/{newcomer}/role", data={"csrf_token": csrf, "role": "viewer"}
        )
        assert changed.status_code == 303 and accounts.role_in(meta, team.project, newcomer) == "viewer"
        for action, data in (("role", {"role": "viewer"}), ("remove", {})):
            last = await c.post(
                f"/projects/{team.project}/members/{owner_id}/{action}", data={"csrf_token": csrf, **data}
            )
            assert last.status_code == 400 and "A project keeps at least one owner" in last.text, action
        assert accounts.role_in(meta, team.project, owner_id) == "owner"
        removed = await c.post(f"/projects/{team.project}/members/{newcomer}/remove", data={"csrf_token": csrf})
        assert removed.status_code == 303 and accounts.role_in(meta, team.project, newcomer) is None
    logged = [e.action for e in audit.entries(meta, team.project)][:3]
    assert logged == ["member_removed", "member_role_changed", "member_added"]


async def test_the_members_api(node: Node, team: Team) -> None:
    meta = node.runtime.meta
    owner_id = accounts.user_by_email(meta, team.owner).id  # type: ignore[union-attr]
    viewer_id = accounts.user_by_email(meta, team.viewer).id  # type: ignore[union-attr]
    base = f"/api/v1/projects/{team.project}/members"
    async with client(node.app) as c:
        csrf = await sign_in(c, team.owner)
        h = {"X-CSRF-Token": csrf}
        listed = (await c.get(f"/api/v1/projects/{team.project}", headers=h)).json()["members"]
        assert {m["email"]: m["role"] for m in listed} == {team.owner: "owner", team.analyst: "analyst",
                                                           team.viewer: "viewer"}
        promoted = await c.patch(f"{base}/{viewer_id}", json={"role": "owner"}, headers=h)
        assert promoted.status_code == 200 and promoted.json()["role"] == "owner"
        assert (await c.patch(f"{base}/{viewer_id}", json={"role": "god"}, headers=h)).status_code == 400
        assert (await c.patch(f"{base}/{viewer_id}", json={"role": 1}, headers=h)).status_code == 400
        assert (await c.delete(f"{base}/{viewer_id}", headers=h)).status_code == 204
        last = await c.patch(f"{base}/{owner_id}", json={"role": "viewer"}, headers=h)
        assert last.status_code == 409 and "at least one owner" in last.json()["error"]
        assert (await c.delete(f"{base}/{owner_id}", headers=h)).status_code == 409
        assert (await c.delete(f"{base}/{viewer_id}", headers=h)).status_code == 404  # not a member any more
        readded = await c.post(base, json={"email": team.viewer.upper()}, headers=h)
        assert readded.status_code == 201 and readded.json()["role"] == "viewer"
        unknown = await c.post(base, json={"email": "nobody@example.com", "role": "viewer"}, headers=h)
        assert unknown.status_code == 400 and "No user has that email" in unknown.json()["error"]
        csrf = await sign_in(c, team.analyst)
        assert (await c.post(base, json={"email": team.viewer}, headers={"X-CSRF-Token": csrf})).status_code == 403


# --- admins --------------------------------------------------------------------------------------------


async def test_an_admin_sees_other_projects_and_may_join_them(node: Node, team: Team) -> None:
    meta = node.runtime.meta
    tag = new_id()[:8]
    admin_id = make_user(meta, f"admin-{tag}@example.com", admin=True)
    async with client(node.app) as c:
        csrf = await sign_in(c, f"admin-{tag}@example.com")
        assert (await c.get(f"/projects/{team.project}/sessions")).status_code == 404  # admin is no member
        listing = await c.get("/projects")
        others = re.search(r'<section class="card" id="other-projects">.*?</section>', listing.text, re.S)
        assert others and team.name in others.group(0)
        joined = await c.post(f"/projects/{team.project}/join", data={"csrf_token": csrf})
        assert joined.status_code == 303
        assert (await c.get(f"/projects/{team.project}/sessions")).status_code == 200
    assert accounts.role_in(meta, team.project, admin_id) == "owner"
    async with client(node.app) as c:
        csrf = await sign_in(c, team.analyst)
        assert "other-projects" not in (await c.get("/projects")).text
        assert (await c.post(f"/projects/{team.project}/join", data={"csrf_token": csrf})).status_code == 403


# --- settings and replays ------------------------------------------------------------------------------


async def test_viewers_can_be_kept_from_replays(node: Node, team: Team) -> None:
    async with client(node.app) as c:
        sid = await record_session(node, c, team.project)
        replay = f"/projects/{team.project}/sessions/{sid}"
        recording = f"/api/v1/projects/{team.project}/sessions/{sid}/recording"
        csrf = await sign_in(c, team.viewer)
        assert (await c.get(replay)).status_code == 200  # allowed by default
        assert (await c.get(recording)).status_code == 200
        csrf = await sign_in(c, team.owner)
        page = await c.get(f"/projects/{team.project}/settings")
        assert 'name="viewers_can_replay" value="1" checked' in page.text
        saved = await c.post(
            f"/projects/{team.project}/settings", data={"csrf_token": csrf, "viewers_can_replay": "0"}
        )
        assert saved.status_code == 303
        assert node.runtime.meta.project(team.project).viewers_can_replay is False  # type: ignore[union-attr]
        csrf = await sign_in(c, team.viewer)
        withheld = await c.get(replay)
        assert withheld.status_code == 403 and "does not let viewers watch replays" in withheld.text
        assert (await c.get(recording)).status_code == 403
        assert (await c.get(f"{recording}/0")).status_code == 403
        assert (await c.get(f"/projects/{team.project}/sessions")).status_code == 200  # the list stays
        await sign_in(c, team.analyst)
        assert (await c.get(replay)).status_code == 200
    viewed = audit.entries(node.runtime.meta, team.project, action="replay_viewed")
    assert [e.target for e in viewed][:1] == [sid]


async def test_the_settings_page_explains_origins_and_query_keys(node: Node, team: Team) -> None:
    async with client(node.app) as c:
        csrf = await sign_in(c, team.owner)
        page = text_of(await c.get(f"/projects/{team.project}/settings"))
        assert "Query keys kept in URLs" in page
        assert "which hosts a replay may load images, fonts and styles from; empty means none but the dashboard" in (
            " ".join(page.split())
        )
        bad = await c.post(
            f"/projects/{team.project}/settings", data={"csrf_token": csrf, "allowed_query_keys": "page, <b>"}
        )
        assert bad.status_code == 400 and "Not a query key" in text_of(bad)
        saved = await c.post(
            f"/projects/{team.project}/settings", data={"csrf_token": csrf, "allowed_query_keys": "page, q"}
        )
        assert saved.status_code == 303
        api = await c.get(f"/api/v1/projects/{team.project}", headers={"X-CSRF-Token": csrf})
        assert api.json()["allowed_query_keys"] == ["page", "q"]
        patched = await c.patch(
            f"/api/v1/projects/{team.project}", json={"allowed_query_keys": ["sku"]}, headers={"X-CSRF-Token": csrf}
        )
        assert patched.status_code == 200 and patched.json()["allowed_query_keys"] == ["sku"]
    project = node.runtime.projects(node.runtime.meta.project(team.project).public_key)  # type: ignore[union-attr]
    assert project is not None and project.query_allowlist == ("sku",), "capture sees the change at once"


async def test_metadata_calls_run_off_the_event_loop(
    node: Node, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard loads the project in a worker thread: while that call waits, the event loop (which capture
    shares) keeps running. Here the call waits until a task on the loop lets it go; on the loop, it never would."""
    meta = node.runtime.meta
    released = threading.Event()
    original = meta.project

    def waiting_project(project_id: int) -> object:
        if not released.wait(10):
            raise AssertionError("the event loop stood still while a metadata call waited")
        return original(project_id)

    async with client(node.app) as c:
        await sign_in(c, team.viewer)
        monkeypatch.setattr(meta, "project", waiting_project)

        async def release_from_the_loop() -> None:
            await anyio.sleep(0.05)
            released.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(release_from_the_loop)
            page = await c.get(f"/projects/{team.project}/sessions")
        assert page.status_code == 200
