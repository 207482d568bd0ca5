"""Sign-in, sessions, throttling, first-admin setup, CSRF and API token scopes, through the real app."""

from __future__ import annotations

import datetime as dt
import html
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.web_sessions import issue_setup_token
from hitmetrix.web.app import build_app
from hitmetrix.web.render import http_error
from tests.support import REPO, ServerProcess
from tests.web.helpers import (
    PASSWORD,
    FakeClock,
    client,
    csrf_in,
    make_user,
    sign_in,
)

pytestmark = pytest.mark.anyio


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert found, f"no {name} cookie set"
    return found[0]


# --- signing in and out ------------------------------------------------------------------------------


async def test_sign_in_sets_a_hardened_session_cookie(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        form = await c.get("/login?next=/account/tokens")
        answer = await c.post(
            "/login",
            data={
                "email": "Ann@Example.com",
                "password": PASSWORD,
                "csrf_token": csrf_in(form.text),
                "next": "/account/tokens",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account/tokens"
        cookie = cookie_header(answer, "hm_session").lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "secure" not in cookie
        assert (await c.get("/account/tokens")).status_code == 200


async def test_cookie_is_secure_over_https(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app, https=True) as c:
        form = await c.get("/login")
        assert "secure" in cookie_header(form, "hm_login_csrf").lower()
        answer = await c.post(
            "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": csrf_in(form.text)}
        )
        assert answer.status_code == 303
        assert "; secure" in cookie_header(answer, "hm_session").lower()


async def test_sign_in_rotates_the_session_token(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as earlier:
        await sign_in(earlier, "ann@example.com")
        known = earlier.cookies["hm_session"]
    async with client(app) as c:
        form = await c.get("/login")
        c.cookies.set("hm_session", known)  # a session id the browser brought along (or was given)
        answer = await c.post(
            "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": csrf_in(form.text)}
        )
        assert answer.status_code == 303
        assert answer.cookies["hm_session"] != known
    async with client(app) as old:
        old.cookies.set("hm_session", known)
        assert (await old.get("/projects")).status_code == 303  # the old id was ended, not reused


async def test_wrong_password_and_unknown_email_get_the_same_answer(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    answers = []
    async with client(app) as c:
        for email, password in (("ann@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
            form = await c.get("/login")
            answer = await c.post(
                "/login", data={"email": email, "password": password, "csrf_token": csrf_in(form.text)}
            )
            answers.append(answer)
    assert [a.status_code for a in answers] == [401, 401]
    assert all("Wrong email or password." in a.text for a in answers)
    assert all("hm_session" not in a.headers.get("set-cookie", "") for a in answers)


async def test_sign_out_ends_the_session_on_the_server(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        csrf = await sign_in(c, "ann@example.com")
        stolen = c.cookies["hm_session"]
        assert (await c.post("/logout")).status_code == 403  # no CSRF token: no sign-out by a foreign page
        answer = await c.post("/logout", data={"csrf_token": csrf})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert 'hm_session=""' in answer.headers["set-cookie"]
    async with client(app) as replay:
        replay.cookies.set("hm_session", stolen)
        page = await replay.get("/projects")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await replay.get("/api/v1/projects")).status_code == 401


async def test_sessions_expire_when_idle_and_at_their_absolute_age(
    runtime: Runtime, app: Starlette, clock: FakeClock
) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        await sign_in(c, "ann@example.com")
        clock.advance(11 * 3600)
        assert (await c.get("/projects")).status_code == 200  # used within 12 h: still valid
        clock.advance(13 * 3600)
        assert (await c.get("/projects")).status_code == 303  # idle for 13 h
        await sign_in(c, "ann@example.com")
        for _ in range(15):  # busy every day, but 14 days after sign-in it ends anyway
            clock.advance(23 * 3600)
            if (await c.get("/projects")).status_code != 200:
                break
        else:
            pytest.fail("the session outlived its absolute age")


async def test_next_never_leaves_the_site(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        async with client(app) as c:
            form = await c.get("/login")
            answer = await c.post(
                "/login",
                data={
                    "email": "ann@example.com",
                    "password": PASSWORD,
                    "csrf_token": csrf_in(form.text),
                    "next": target,
                },
            )
            assert answer.headers["location"] == "/projects"


async def test_sign_ins_and_sign_outs_are_audited(runtime: Runtime, app: Starlette) -> None:
    ann = make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        form = await c.get("/login")
        await c.post("/login", data={"email": "ann@example.com", "password": "wrong password!",
                                     "csrf_token": csrf_in(form.text)})
        csrf = await sign_in(c, "ann@example.com")
        assert (await c.post("/logout", data={"csrf_token": csrf})).status_code == 303
    logged = [(e.action, e.actor_user_id, e.target) for e in reversed(audit.entries(runtime.meta))]
    assert logged == [
        ("sign_in_failed", None, "ann@example.com"),
        ("sign_in", ann, "ann@example.com"),
        ("sign_out", ann, ""),
    ]
    assert all(e.client_ip for e in audit.entries(runtime.meta))


# --- throttling --------------------------------------------------------------------------------------


async def failed_sign_in(c: httpx.AsyncClient, email: str, password: str = "wrong password!") -> httpx.Response:
    form = await c.get("/login")
    return await c.post("/login", data={"email": email, "password": password, "csrf_token": csrf_in(form.text)})


async def test_failed_sign_ins_per_email_are_slowed_down(runtime: Runtime, app: Starlette, clock: FakeClock) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        assert [(await failed_sign_in(c, "ann@example.com")).status_code for _ in range(5)] == [401] * 5
        locked = await failed_sign_in(c, "ann@example.com", PASSWORD)  # even the right password waits
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "30"
        assert "Too many failed sign-ins. Try again in 30 seconds." in locked.text
        clock.advance(31)
        assert (await failed_sign_in(c, "ann@example.com")).status_code == 401
        again = await failed_sign_in(c, "ann@example.com", PASSWORD)
        assert again.status_code == 429 and again.headers["retry-after"] == "60"  # the lockout doubles
        clock.advance(61)
        assert (await failed_sign_in(c, "ann@example.com", PASSWORD)).status_code == 303
    async with client(app) as c:  # a success forgets the email's failures
        assert (await failed_sign_in(c, "ann@example.com")).status_code == 401


async def test_failed_sign_ins_per_address_are_slowed_down(runtime: Runtime, app: Starlette) -> None:
    async with client(app) as c:
        statuses = [(await failed_sign_in(c, f"user{i}@example.com")).status_code for i in range(21)]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429  # a password-spraying client, many emails, one address


# --- first admin -------------------------------------------------------------------------------------


async def test_setup_token_creates_the_first_admin_once(runtime: Runtime, app: Starlette, clock: FakeClock) -> None:
    demo = runtime.meta.create_project("demo")
    token = issue_setup_token(runtime.meta, dt.datetime.fromtimestamp(clock(), dt.UTC))
    assert token is not None
    async with client(app) as c:
        assert (await c.get("/setup?token=wrong")).status_code == 403
        form = await c.get(f"/setup?token={token}")
        assert form.status_code == 200
        fields = {"csrf_token": csrf_in(form.text), "token": token, "email": "root@example.com"}
        short = await c.post("/setup", data={**fields, "password": "short", "password2": "short"})
        assert short.status_code == 400 and "at least 10 characters" in short.text
        done = await c.post("/setup", data={**fields, "password": PASSWORD, "password2": PASSWORD})
        assert done.status_code == 303 and done.headers["location"] == "/projects"
        projects = await c.get("/projects")
        assert projects.status_code == 200 and "demo" in projects.text  # signed in, owner of the demo
    admin = accounts.user_by_email(runtime.meta, "root@example.com")
    assert admin is not None and admin.is_admin
    assert accounts.role_in(runtime.meta, demo.id, admin.id) == "owner"
    async with client(app) as other:
        assert (await other.get(f"/setup?token={token}")).status_code == 403
        form = await other.get("/login")
        again = await other.post(
            "/setup",
            data={
                "csrf_token": csrf_in(form.text),
                "token": token,
                "email": "evil@example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        )
        assert again.status_code == 403
    assert issue_setup_token(runtime.meta) is None
    assert accounts.user_by_email(runtime.meta, "evil@example.com") is None


async def test_setup_token_expires(runtime: Runtime, app: Starlette, clock: FakeClock) -> None:
    token = issue_setup_token(runtime.meta, dt.datetime.fromtimestamp(clock(), dt.UTC))
    assert token is not None
    async with client(app) as c:
        assert (await c.get(f"/setup?token={token}")).status_code == 200
        clock.advance(24 * 3600 + 1)
        answer = await c.get(f"/setup?token={token}")
        assert answer.status_code == 403 and "expired" in answer.text


async def test_cli_user_create_and_sign_in(runtime: Runtime, tmp_path: Path, clock: FakeClock) -> None:
    data = tmp_path / "meta"  # the runtime's metadata directory
    project = runtime.meta.create_project("shop")
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "hitmetrix.cli",
            "user",
            "create",
            "cli@example.com",
            "--project",
            str(project.id),
            "--password-stdin",
            "--data-dir",
            str(data),
        ],
        input=PASSWORD + "\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert "created user cli@example.com" in created.stdout
    weak = subprocess.run(
        [
            sys.executable,
            "-m",
            "hitmetrix.cli",
            "user",
            "create",
            "weak@example.com",
            "--password-stdin",
            "--data-dir",
            str(data),
        ],
        input="123\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
    async with client(build_app(runtime)) as c:
        await sign_in(c, "cli@example.com")
        listed = (await c.get("/api/v1/projects")).json()
        assert [p["name"] for p in listed] == ["shop"]


# --- CSRF --------------------------------------------------------------------------------------------


async def test_state_changing_cookie_requests_need_the_csrf_token(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        csrf = await sign_in(c, "ann@example.com")
        missing = await c.post("/projects", data={"name": "x"})
        assert missing.status_code == 403 and "CSRF" in missing.text
        wrong = await c.post("/projects", data={"name": "x", "csrf_token": csrf[::-1]})
        assert wrong.status_code == 403
        api_missing = await c.post("/api/v1/projects", json={"name": "x"})
        assert api_missing.status_code == 403 and "X-CSRF-Token" in api_missing.json()["error"]
        js = await c.post("/api/v1/projects", json={"name": "from js"}, headers={"X-CSRF-Token": csrf})
        assert js.status_code == 201
        form = await c.post(
            "/projects", data={"name": "from form", "csrf_token": csrf}, headers={"Origin": "http://hitmetrix.test"}
        )
        assert form.status_code == 303
        foreign = await c.post(
            "/projects", data={"name": "x", "csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "cross-origin" in foreign.text
        foreign_js = await c.post(
            "/api/v1/projects", json={"name": "x"}, headers={"X-CSRF-Token": csrf, "Origin": "null"}
        )
        assert foreign_js.status_code == 403
    assert sorted(p.name for p in runtime.meta.projects()) == ["from form", "from js"]


async def test_sign_in_form_has_its_own_csrf_protection(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        no_token = await c.post("/login", data={"email": "ann@example.com", "password": PASSWORD})
        assert no_token.status_code == 403
        form = await c.get("/login")
        token = csrf_in(form.text)
        forged = await c.post(
            "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": token + "x"}
        )
        assert forged.status_code == 403
        foreign = await c.post(
            "/login",
            data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
    async with client(app) as no_cookie:  # a token lifted from another browser is useless without its cookie
        answer = await no_cookie.post(
            "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code == 403


async def test_bearer_token_calls_need_no_csrf(runtime: Runtime, app: Starlette) -> None:
    user_id = make_user(runtime.meta, "ann@example.com")
    _, plaintext = accounts.create_api_token(runtime.meta, user_id, "ci", "write")
    async with client(app) as c:
        answer = await c.post(
            "/api/v1/projects",
            json={"name": "ci"},
            headers={"Authorization": f"Bearer {plaintext}", "Origin": "https://ci.example"},
        )
        assert answer.status_code == 201


# --- API tokens --------------------------------------------------------------------------------------


async def test_token_scopes_and_revocation(runtime: Runtime, app: Starlette) -> None:
    mine = runtime.meta.create_project("mine")
    theirs = runtime.meta.create_project("theirs")
    ann = make_user(runtime.meta, "ann@example.com", mine.id, role="owner")
    make_user(runtime.meta, "bob@example.com", theirs.id, role="owner")
    _, read = accounts.create_api_token(runtime.meta, ann, "read", "read")
    write_token, write = accounts.create_api_token(runtime.meta, ann, "write", "write")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with client(app) as c:
        assert (await c.get(f"/api/v1/projects/{mine.id}", headers=auth(read))).status_code == 200
        assert (await c.get("/api/v1/tokens", headers=auth(read))).status_code == 200
        assert (await c.post("/api/v1/projects", json={"name": "x"}, headers=auth(read))).status_code == 403
        patch = {"ip_anonymisation": "hash"}
        assert (await c.patch(f"/api/v1/projects/{mine.id}", json=patch, headers=auth(read))).status_code == 403
        assert (await c.delete(f"/api/v1/tokens/{write_token.id}", headers=auth(read))).status_code == 403
        assert (await c.post("/projects", data={"name": "x"}, headers=auth(read))).status_code == 403

        changed = await c.patch(
            f"/api/v1/projects/{mine.id}",
            json={**patch, "allowed_origins": ["https://A.example/"]},
            headers=auth(write),
        )
        assert changed.status_code == 200
        assert changed.json()["allowed_origins"] == ["https://a.example"]
        bad = await c.patch(
            f"/api/v1/projects/{mine.id}", json={"allowed_origins": ["not an origin"]}, headers=auth(write)
        )
        assert bad.status_code == 400

        # A token is its user: never another user's project, listed or asked for directly.
        assert [p["id"] for p in (await c.get("/api/v1/projects", headers=auth(write))).json()] == [mine.id]
        for method in ("GET", "PATCH"):
            other = await c.request(method, f"/api/v1/projects/{theirs.id}", json=patch, headers=auth(write))
            assert other.status_code == 404
        assert (await c.get(f"/api/v1/projects/{theirs.id}/sessions", headers=auth(write))).status_code == 404

        created = await c.post("/api/v1/tokens", json={"name": "bot", "scope": "read"}, headers=auth(write))
        assert created.status_code == 201 and created.json()["token"].startswith("hm_pat_")
        assert (await c.delete(f"/api/v1/tokens/{write_token.id}", headers=auth(write))).status_code == 204
        assert (await c.get("/api/v1/projects", headers=auth(write))).status_code == 401
        assert (await c.get("/api/v1/projects", headers=auth(created.json()["token"]))).status_code == 200


async def test_tokens_page_shows_a_new_token_once(runtime: Runtime, app: Starlette) -> None:
    make_user(runtime.meta, "ann@example.com")
    async with client(app) as c:
        csrf = await sign_in(c, "ann@example.com")
        created = await c.post("/account/tokens", data={"name": "laptop", "scope": "read", "csrf_token": csrf})
        assert created.status_code == 201
        plaintext = created.text.split('class="token-value" type="text" readonly value="')[1].split('"')[0]
        assert plaintext.startswith("hm_pat_")
        listing = await c.get("/account/tokens")
        assert "laptop" in listing.text and plaintext not in listing.text
        (token,) = accounts.api_tokens_of(runtime.meta, accounts.user_by_email(runtime.meta, "ann@example.com").id)  # type: ignore[union-attr]
        assert token.token_hash != plaintext
        revoked = await c.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf})
        assert revoked.status_code == 303
    async with client(app) as api:
        assert (await api.get("/api/v1/projects", headers={"Authorization": f"Bearer {plaintext}"})).status_code == 401


# --- projects ----------------------------------------------------------------------------------------


async def test_projects_settings_and_members(runtime: Runtime, app: Starlette) -> None:
    ann = make_user(runtime.meta, "ann@example.com")
    make_user(runtime.meta, "bob@example.com")
    async with client(app) as c:
        csrf = await sign_in(c, "ann@example.com")
        created = await c.post("/projects", data={"name": "Shop", "csrf_token": csrf})
        assert created.status_code == 303
        pid = int(created.headers["location"].split("/")[2])
        assert accounts.role_in(runtime.meta, pid, ann) == "owner"
        page = await c.get(f"/projects/{pid}/settings")
        project = runtime.meta.project(pid)
        assert project is not None
        tag = f"&lt;script async src=&#34;http://hitmetrix.test/hm.js&#34; data-key=&#34;{project.public_key}&#34;"
        assert tag in page.text
        assert runtime.projects(project.public_key).origins() == []  # type: ignore[union-attr]
        bad = await c.post(
            f"/projects/{pid}/settings",
            data={"csrf_token": csrf, "name": "Shop", "allowed_origins": "shop.example", "ip_anonymisation": "hash"},
        )
        assert bad.status_code == 400 and "not an origin" in bad.text.lower()
        saved = await c.post(
            f"/projects/{pid}/settings",
            data={
                "csrf_token": csrf,
                "name": "Shop",
                "ip_anonymisation": "hash",
                "allowed_origins": "https://shop.example\nhttp://localhost:3000/",
            },
        )
        assert saved.status_code == 303
        cached = runtime.projects(project.public_key)  # capture sees the change at once
        assert cached is not None and cached.origins() == ["https://shop.example", "http://localhost:3000"]
        assert cached.ip_anonymisation == "hash"
        added = await c.post(
            f"/projects/{pid}/members", data={"csrf_token": csrf, "email": "bob@example.com", "role": "analyst"}
        )
        assert added.status_code == 303
        unknown = await c.post(f"/projects/{pid}/members", data={"csrf_token": csrf, "email": "x@example.com"})
        assert unknown.status_code == 400
    async with client(app) as bob:
        csrf = await sign_in(bob, "bob@example.com")
        assert "Shop" in (await bob.get("/projects")).text
        page = await bob.get(f"/projects/{pid}/settings")  # an analyst reads everything but settings
        assert page.status_code == 403 and "Only the project's owners may do this" in html.unescape(page.text)
        refused = await bob.post(f"/projects/{pid}/settings", data={"csrf_token": csrf, "ip_anonymisation": "none"})
        assert refused.status_code == 403
        api = await bob.patch(f"/api/v1/projects/{pid}", json={"name": "mine"}, headers={"X-CSRF-Token": csrf})
        assert api.status_code == 403


async def test_local_admin_token_still_sees_everything(runtime: Runtime, app: Starlette) -> None:
    runtime.meta.create_project("a")
    runtime.meta.create_project("b")
    async with client(app) as c:
        answer = await c.get("/api/v1/projects", headers={"Authorization": f"Bearer {runtime.admin_token}"})
        assert [p["name"] for p in answer.json()] == ["a", "b"]
        assert (await c.get("/api/v1/projects", headers={"Authorization": "Bearer hm_pat_nope"})).status_code == 401


# --- a real server -----------------------------------------------------------------------------------


def test_serve_prints_a_setup_link_only_while_no_user_exists(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", demo=True).start()
    try:
        line = next(x for x in server.log_tail().splitlines() if x.startswith("Create the first admin: "))
        url = line.removeprefix("Create the first admin: ")
        assert url.startswith(f"{server.url}/setup?token=")
        assert httpx.get(url).status_code == 200
        assert httpx.get(f"{server.url}/setup?token=guess").status_code == 403
        assert httpx.get(f"{server.url}/projects").status_code == 303
        assert httpx.get(f"{server.url}/api/v1/projects").status_code == 401
        assert server.api("/api/v1/projects").status_code == 200  # the CLI's local admin token
    finally:
        server.stop()
    meta = MetaStore("", server.data_dir)
    accounts.create_user(meta, "ann@example.com", PASSWORD)
    meta.close()
    server.start()
    try:
        assert server.log_tail().count("Create the first admin") == 1  # not printed again
        assert httpx.get(url).status_code == 403
    finally:
        server.stop()


async def test_unknown_addresses_get_an_html_or_json_error() -> None:
    app = Starlette(routes=[], exception_handlers={404: http_error})
    async with client(app) as c:
        page = await c.get("/nowhere")
        assert page.status_code == 404 and "There is nothing at this address." in page.text
        api = await c.get("/api/v1/nowhere")
        assert api.status_code == 404 and api.json() == {"error": "not found"}
