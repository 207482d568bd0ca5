"""Projects and roles in real Chromium: an owner deletes a project (typing its name) and its sessions are
gone; a viewer cannot open settings; a project made with the README's `hitmetrix project create` can be
opened by its owner."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from hitmetrix.store import accounts, projects
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.schema import DATABASE
from tests.e2e.dashboard import Member, forge_recording, sign_in
from tests.support import REPO, ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password " + secrets.token_hex(4)


@dataclass(frozen=True)
class Site:
    server: ServerProcess
    admin: Member  # the first admin; owner of "doomed"
    viewer: Member  # a viewer of "doomed"
    doomed: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("roles") / "data"
    meta = MetaStore("", data_dir)
    try:
        admin = accounts.create_user(meta, "admin@example.test", PASSWORD, admin=True)
        viewer = accounts.create_user(meta, "viewer@example.test", PASSWORD)
        doomed = projects.create_project(meta, "Doomed shop", owner_id=admin.id)
        projects.set_role(meta, doomed.id, viewer.id, "viewer", actor_id=admin.id)
    finally:
        meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    try:
        yield Site(
            server,
            Member(admin.email, PASSWORD, doomed.id, doomed.public_key),
            Member(viewer.email, PASSWORD, doomed.id, doomed.public_key),
            doomed.id,
        )
    finally:
        server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    yield context.new_page()
    context.close()


def test_a_viewer_cannot_open_settings(site: Site, page: Page, artifacts: Path) -> None:
    sign_in(page, site.server.url, site.viewer)
    page.goto(f"{site.server.url}/projects/{site.doomed}/sessions")
    expect(page.locator(".project-nav")).to_be_visible()
    expect(page.locator(".project-nav a", has_text="Settings")).to_have_count(0)  # not offered
    answer = page.goto(f"{site.server.url}/projects/{site.doomed}/settings")
    assert answer is not None and answer.status == 403
    expect(page.locator(".error-code")).to_have_text("403")
    expect(page.locator(".error-card")).to_contain_text("Only the project's owners may do this")
    page.screenshot(path=str(artifacts / "roles-viewer-settings-403.png"), full_page=True)


def test_an_owner_deletes_a_project_and_its_sessions_are_gone(site: Site, page: Page, artifacts: Path) -> None:
    now_ms = int(time.time() * 1000)
    rrweb = [
        {"type": 4, "timestamp": now_ms, "data": {"href": "https://shop.example/"}},
        {"type": 2, "timestamp": now_ms + 1, "data": {}},
    ]
    session_id = forge_recording(site.server, site.admin, rrweb, "https://shop.example/")
    recordings = site.server.data_dir / "recordings" / str(site.doomed)
    assert recordings.is_dir()

    sign_in(page, site.server.url, site.admin)
    page.goto(f"{site.server.url}/projects/{site.doomed}/sessions")
    expect(page.locator(f'tr[data-session="{session_id}"]')).to_have_count(1)
    page.goto(f"{site.server.url}/projects/{site.doomed}/settings")
    page.click("text=Delete project…")
    page.wait_for_url(f"**/projects/{site.doomed}/delete")
    page.fill("input[name=confirm_name]", "Doomed")  # not quite its name
    page.click("button:has-text('Delete this project and its data')")
    expect(page.locator(".alert-error")).to_contain_text("nothing was deleted")
    assert site.server.api(f"/api/v1/projects/{site.doomed}").status_code == 200
    page.fill("input[name=confirm_name]", "Doomed shop")
    page.screenshot(path=str(artifacts / "roles-delete-confirm.png"), full_page=True)
    page.click("button:has-text('Delete this project and its data')")
    page.wait_for_url("**/projects?deleted=*")
    expect(page.locator(".alert-success")).to_contain_text("“Doomed shop” and all of its data were deleted")
    expect(page.locator("table")).to_have_count(0)  # no project left to list
    page.screenshot(path=str(artifacts / "roles-deleted.png"), full_page=True)

    assert page.goto(f"{site.server.url}/projects/{site.doomed}/sessions").status == 404  # type: ignore[union-attr]
    assert site.server.api(f"/api/v1/projects/{site.doomed}/sessions/{session_id}").status_code == 404
    assert not recordings.exists()
    site.server.stop()  # the store is the server's while it runs: look at it now
    try:
        store = ChdbStore(site.server.data_dir / "clickhouse")
        try:
            for table in projects.project_tables(store):
                rows = store.query(
                    f"SELECT count() AS n FROM {DATABASE}.{table} WHERE project_id = {{p:UInt32}}",
                    {"p": site.doomed},
                )
                assert rows[0]["n"] == 0, f"{table} still holds rows of the deleted project"
        finally:
            store.close()
    finally:
        site.server.start()


def test_a_project_made_from_the_cli_opens_for_its_owner(site: Site, page: Page, artifacts: Path) -> None:
    def hitmetrix(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hitmetrix.cli", *args, "--data-dir", str(site.server.data_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )

    made = hitmetrix("project", "create", "My site", "--allowed-origin", "https://www.example.com",
                     "--base-url", "https://hitmetrix.example.com")  # the README's command, as it stands
    assert made.returncode == 0, made.stderr
    assert "owner: admin@example.test" in made.stdout
    project_id = int(made.stdout.split()[1])
    for_viewer = hitmetrix("project", "create", "Viewer's site", "--owner", site.viewer.email)
    assert for_viewer.returncode == 0 and f"owner: {site.viewer.email}" in for_viewer.stdout
    unknown = hitmetrix("project", "create", "Nobody's", "--owner", "nobody@example.test")
    assert unknown.returncode == 1 and "no user has the email nobody@example.test" in unknown.stderr

    sign_in(page, site.server.url, site.admin)
    page.goto(f"{site.server.url}/projects")
    page.click("a.strong:has-text('My site')")
    page.wait_for_url(f"**/projects/{project_id}/sessions")
    expect(page.locator("h1")).to_contain_text("Sessions")
    page.goto(f"{site.server.url}/projects/{project_id}/settings")
    expect(page.locator("textarea[name=allowed_origins]")).to_have_value("https://www.example.com")
    page.screenshot(path=str(artifacts / "roles-cli-project.png"), full_page=True)
