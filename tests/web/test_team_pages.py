"""The admins' user list through the real app: invite by link, deactivate, reactivate, reset links, audit pages."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit
from tests.support import REPO
from tests.web.helpers import (
    PASSWORD,
    FakeClock,
    client,
    csrf_in,
    make_user,
    sign_in,
)

pytestmark = pytest.mark.anyio
NEW_PASSWORD = "a brand new passphrase"
_LINK = re.compile(r'id="made-link" type="text" readonly value="([^"]+)"')


def made_link(html: str) -> str:
    match = _LINK.search(html)
    assert match, "no one-time link on the page"
    return match.group(1).replace("&amp;", "&")


async def invite(c: httpx.AsyncClient, csrf: str, email: str, project_id: int | None, role: str = "viewer") -> str:
    answer = await c.post(
        "/admin/users/invite",
        data={"csrf_token": csrf, "email": email, "project_id": str(project_id or ""), "role": role},
    )
    assert answer.status_code == 201, answer.text
    return made_link(answer.text)


async def choose_password(c: httpx.AsyncClient, url: str, password: str = PASSWORD) -> httpx.Response:
    path = url.removeprefix("http://hitmetrix.test")
    form = await c.get(path)
    assert form.status_code == 200, form.text
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token
    return await c.post(
        path.split("?")[0],
        data={"csrf_token": csrf_in(form.text), "token": token.group(1), "password": password, "password2": password},
    )


async def test_an_invited_user_sets_a_password_and_sees_only_their_project(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    p = meta.create_project("P")
    other = meta.create_project("Other")
    make_user(meta, "admin@example.com", p.id, other.id, admin=True, role="owner")
    async with client(app) as admin:
        csrf = await sign_in(admin, "admin@example.com")
        users = await admin.get("/admin/users")
        assert users.status_code == 200 and 'value="' + str(p.id) + '"' in users.text
        url = await invite(admin, csrf, "New@Example.com", p.id, "viewer")
        assert url.startswith("http://hitmetrix.test/invite?token=")
        assert "new@example.com" in (await admin.get("/admin/users")).text  # listed as pending
    async with client(app) as invitee:
        landed = await choose_password(invitee, url)
        assert landed.status_code == 303 and landed.headers["location"] == "/projects"
        projects = await invitee.get("/projects")
        assert projects.status_code == 200 and "new@example.com" in projects.text
        assert f"/projects/{p.id}/sessions" in projects.text
        assert f"/projects/{other.id}/sessions" not in projects.text
        assert (await invitee.get(f"/projects/{other.id}/sessions")).status_code == 404
        assert (await invitee.get("/admin/users")).status_code == 403
    user = accounts.user_by_email(meta, "new@example.com")
    assert user is not None and accounts.memberships_of(meta, user.id) == {p.id: "viewer"}
    async with client(app) as again:
        page = await again.get(url.removeprefix("http://hitmetrix.test"))
        assert page.status_code == 403 and "already used" in page.text
    accepted, invited = audit.entries(meta, p.id)[:2]
    assert (accepted.action, invited.action) == ("invitation_accepted", "user_invited")
    assert invited.actor == "admin@example.com" and invited.client_ip == "127.0.0.1"
    assert accepted.actor == "new@example.com" and accepted.client_ip == "127.0.0.1"


async def test_invitations_refuse_bad_input_with_a_message(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    mine = meta.create_project("Mine")
    theirs = meta.create_project("Theirs")
    make_user(meta, "admin@example.com", mine.id, admin=True, role="owner")
    make_user(meta, "ann@example.com", theirs.id, role="viewer")
    async with client(app) as c:
        csrf = await sign_in(c, "admin@example.com")
        cases = [
            ({"email": "not an email"}, "Not an email address"),
            ({"email": "ann@example.com"}, "already has an account"),
            ({"email": "x@example.com", "project_id": str(theirs.id)}, "only into projects you own"),
            ({"email": "x@example.com", "project_id": "9" * 40}, "Choose a project"),
            ({"email": "x@example.com", "project_id": "²"}, "Choose a project"),
            ({"email": "x" * 5000 + "@example.com"}, "Not an email address"),
            ({"email": "x@example.com", "project_id": str(mine.id), "role": "emperor"}, "Role must be one of"),
        ]
        for fields, message in cases:
            answer = await c.post("/admin/users/invite", data={"csrf_token": csrf, **fields})
            assert answer.status_code == 400, fields
            assert message in answer.text, fields
    assert accounts.user_count(meta) == 2
    assert audit.entries(meta, action="user_invited") == []


async def test_only_admins_manage_users(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    p = meta.create_project("P")
    make_user(meta, "owner@example.com", p.id, role="owner")
    victim = make_user(meta, "victim@example.com", p.id)
    async with client(app) as c:
        csrf = await sign_in(c, "owner@example.com")
        for path in ("/admin/users", "/admin/audit"):
            assert (await c.get(path)).status_code == 403, path
        for path in (f"/admin/users/{victim}/deactivate", f"/admin/users/{victim}/reset-link", "/admin/users/invite"):
            answer = await c.post(path, data={"csrf_token": csrf, "email": "x@example.com"})
            assert answer.status_code == 403, path
    assert accounts.verify_login(meta, "victim@example.com", PASSWORD) is not None
    assert team_links(runtime) == 0


def team_links(runtime: Runtime) -> int:
    from hitmetrix.store import team

    return len(team.pending_links(runtime.meta))


async def test_deactivation_stops_open_sessions_and_tokens_at_once(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    p = meta.create_project("P")
    make_user(meta, "admin@example.com", p.id, admin=True, role="owner")
    ann = make_user(meta, "ann@example.com", p.id)
    _, token = accounts.create_api_token(meta, ann, "ci", "read")
    bearer = {"Authorization": f"Bearer {token}"}
    async with client(app) as admin, client(app) as victim:
        await sign_in(victim, "ann@example.com")
        assert (await victim.get(f"/api/v1/projects/{p.id}/sessions", headers=bearer)).status_code == 200
        csrf = await sign_in(admin, "admin@example.com")
        answer = await admin.post(f"/admin/users/{ann}/deactivate", data={"csrf_token": csrf})
        assert answer.status_code == 303
        listing = await admin.get(answer.headers["location"])
        assert "deactivated" in listing.text and "sessions ended" in listing.text
        page = await victim.get("/projects")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await victim.get(f"/api/v1/projects/{p.id}/sessions", headers=bearer)).status_code == 401
        form = await victim.get("/login")
        refused = await victim.post(
            "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": csrf_in(form.text)}
        )
        assert refused.status_code == 401

        mine = accounts.user_by_email(meta, "admin@example.com")
        assert mine is not None
        self_off = await admin.post(f"/admin/users/{mine.id}/deactivate", data={"csrf_token": csrf})
        assert self_off.status_code == 400 and "cannot deactivate yourself" in self_off.text
        assert (await admin.post("/admin/users/999999/deactivate", data={"csrf_token": csrf})).status_code == 404

        back = await admin.post(f"/admin/users/{ann}/reactivate", data={"csrf_token": csrf})
        assert back.status_code == 303
    async with client(app) as victim:
        await sign_in(victim, "ann@example.com")  # the password works again; the token stays revoked
        assert (await victim.get(f"/api/v1/projects/{p.id}/sessions", headers=bearer)).status_code == 401
    entry = audit.entries(meta, action="user_deactivated")[0]
    assert entry.actor == "admin@example.com" and entry.target == "ann@example.com"
    assert entry.details == {"sessions_ended": 1, "tokens_revoked": 1}


async def test_a_reset_link_sets_a_new_password_once(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    make_user(meta, "admin@example.com", admin=True)
    ann = make_user(meta, "ann@example.com")
    async with client(app) as admin, client(app) as old_session:
        await sign_in(old_session, "ann@example.com")
        csrf = await sign_in(admin, "admin@example.com")
        answer = await admin.post(f"/admin/users/{ann}/reset-link", data={"csrf_token": csrf})
        assert answer.status_code == 201 and "Mail is not configured" in answer.text
        url = made_link(answer.text)
        assert "/reset?token=" in url
        async with client(app) as c:
            weak = await c.get(url.removeprefix("http://hitmetrix.test"))
            token = re.search(r'name="token" value="([^"]+)"', weak.text)
            assert token
            short = await c.post(
                "/reset",
                data={"csrf_token": csrf_in(weak.text), "token": token.group(1), "password": "x", "password2": "x"},
            )
            assert short.status_code == 400 and "at least 10" in short.text
            landed = await choose_password(c, url, NEW_PASSWORD)
            assert landed.status_code == 303
            assert (await c.get("/projects")).status_code == 200
        assert (await old_session.get("/projects")).status_code == 303  # ended by the reset
        async with client(app) as c:
            assert (await c.get(url.removeprefix("http://hitmetrix.test"))).status_code == 403
    assert accounts.verify_login(meta, "ann@example.com", NEW_PASSWORD) is not None
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is None


async def test_link_pages_refuse_missing_wrong_and_forged_posts(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "admin@example.com", admin=True)
    async with client(app) as admin:
        csrf = await sign_in(admin, "admin@example.com")
        url = await invite(admin, csrf, "new@example.com", None)
    async with client(app) as c:
        for path in ("/invite", "/invite?token=nope", "/reset", "/reset?token=" + "x" * 5000):
            assert (await c.get(path)).status_code == 403, path
        token = url.split("token=")[1]
        no_csrf = await c.post("/invite", data={"token": token, "password": PASSWORD, "password2": PASSWORD})
        assert no_csrf.status_code == 403
        form = await c.get(url.removeprefix("http://hitmetrix.test"))
        differ = await c.post(
            "/invite",
            data={"csrf_token": csrf_in(form.text), "token": token, "password": PASSWORD, "password2": PASSWORD + "!"},
        )
        assert differ.status_code == 400 and "The passwords differ." in differ.text
    assert accounts.user_by_email(runtime.meta, "new@example.com") is None
    async with client(app) as c:
        assert (await choose_password(c, url)).status_code == 303  # still usable after the refusals


async def test_withdrawn_invitations_stop_working(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "admin@example.com", admin=True)
    async with client(app) as admin:
        csrf = await sign_in(admin, "admin@example.com")
        url = await invite(admin, csrf, "new@example.com", None)
        page = await admin.get("/admin/users")
        link_id = re.search(r'/admin/invitations/(\d+)/revoke', page.text)
        assert link_id
        answer = await admin.post(f"/admin/invitations/{link_id.group(1)}/revoke", data={"csrf_token": csrf})
        assert answer.status_code == 303
        again = await admin.post(f"/admin/invitations/{link_id.group(1)}/revoke", data={"csrf_token": csrf})
        assert again.status_code == 404
    async with client(app) as c:
        assert (await c.get(url.removeprefix("http://hitmetrix.test"))).status_code == 403


async def test_audit_pages_for_owners_and_admins(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    p = meta.create_project("P")
    q = meta.create_project("Q")
    make_user(meta, "admin@example.com", p.id, admin=True, role="owner")
    make_user(meta, "owner@example.com", q.id, role="owner")
    make_user(meta, "viewer@example.com", q.id, role="viewer")
    audit.record(meta, None, "member_added", q.id, "viewer@example.com")
    audit.record(meta, None, "member_added", p.id, "secret-of-p@example.com")
    async with client(app) as c:
        await sign_in(c, "viewer@example.com")
        assert (await c.get(f"/projects/{q.id}/audit")).status_code == 403
    async with client(app) as c:
        await sign_in(c, "owner@example.com")
        page = await c.get(f"/projects/{q.id}/audit")
        assert page.status_code == 200 and "viewer@example.com" in page.text
        assert "secret-of-p" not in page.text
        assert (await c.get(f"/projects/{p.id}/audit")).status_code == 404
        assert (await c.get(f"/projects/{q.id}/audit?before=abc")).status_code == 400
    async with client(app) as c:
        await sign_in(c, "admin@example.com")
        page = await c.get("/admin/audit")
        assert page.status_code == 200
        assert "secret-of-p@example.com" in page.text and "viewer@example.com" in page.text
        assert "Signed in" in page.text  # the sign-ins above
        only = await c.get("/admin/audit?action=member_added")
        assert "Signed in" not in only.text.split("<tbody>")[1]


async def test_the_cli_prints_an_invitation_link_that_works(
    runtime: Runtime, app: Starlette, clock: FakeClock
) -> None:
    clock.now = time.time()  # the CLI's invitation expires by the wall clock
    meta_dir = Path(str(runtime.meta.engine.url.database)).parent  # the CLI opens this test's metadata store
    p = runtime.meta.create_project("P")
    command = [sys.executable, "-m", "hitmetrix.cli", "user", "invite", "new@example.com", "--project", str(p.id)]
    command += ["--role", "analyst", "--base-url", "https://hm.example/", "--data-dir", str(meta_dir)]
    made = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("https://hm.example/invite?token=") and "new@example.com" in made.stderr
    async with client(app) as c:
        landed = await choose_password(c, url.replace("https://hm.example", "http://hitmetrix.test"))
        assert landed.status_code == 303
    user = accounts.user_by_email(runtime.meta, "new@example.com")
    assert user is not None and accounts.memberships_of(runtime.meta, user.id) == {p.id: "analyst"}
    taken = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert taken.returncode == 1 and "already has an account" in taken.stderr
