"""Access matrix generated from the app's routing table: no route shows data to the wrong caller.

Every route of the real app is visited: signed out, each non-public route must
answer 401 (API) or send to the sign-in page; signed in as a member of project
A (by cookie and by API token), every route of project B must answer 404 or
403. A route added later is covered without touching this file, and fails here
until it is protected (or consciously added to ``PUBLIC``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.convertors import IntegerConvertor
from starlette.routing import Route

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.web.app import build_app
from hitmetrix.web.render import TEMPLATES_DIR
from tests.web.helpers import client, close_runtime, endpoints, make_user, open_runtime, sign_in

pytestmark = pytest.mark.anyio

# Routes anyone may call. Everything else needs a signed-in caller.
PUBLIC = {
    "/api/v1/batch",  # capture, with the project's public key
    "/hm.js",
    "/healthz",
    "/login",
    "/setup",  # works only with the one-time token, only while no user exists
    "/api/openapi.json",
    "/api/docs",
    "/",  # a bare redirect to /projects
    "/demo",  # the demo site (only with --demo)
    "/demo/",
    "/demo/{rest:path}",
}
SAMPLE_PARAMS = {"session_id": "s3ss10nAbCdEf123", "rest": "about.html"}
MIN_ROUTE_METHODS = 30  # the app has more: a broken walk must not pass by checking nothing
MIN_PROJECT_ROUTE_METHODS = 10


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    app: Starlette
    runtime: Runtime
    project_a: int
    project_b: int
    token_a: str
    ann: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = open_runtime(tmp_path_factory.mktemp("matrix") / "data", demo=True)
    try:
        app = build_app(runtime)
        a = runtime.meta.create_project("A")
        b = runtime.meta.create_project("B")
        ann = make_user(runtime.meta, "ann@example.com", a.id, role="owner")
        make_user(runtime.meta, "bob@example.com", b.id, role="owner", admin=True)
        _, token = accounts.create_api_token(runtime.meta, ann, "matrix", "write")
        yield World(app, runtime, a.id, b.id, token, ann)
    finally:
        close_runtime(runtime)


def concrete(path: str, route: Route, project_id: int) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "project_id":
            return str(project_id)
        if name in SAMPLE_PARAMS:
            return SAMPLE_PARAMS[name]
        return "1" if isinstance(route.param_convertors[name], IntegerConvertor) else "sample1234"

    return re.sub(r"{([a-zA-Z_]+)(?::[a-z]+)?}", fill, path)


async def test_signed_out_callers_get_nothing(world: World) -> None:
    checked = 0
    async with client(world.app) as c:
        for path, route, method in endpoints(world.app):
            if path in PUBLIC:
                continue
            url = concrete(path, route, world.project_a)
            answer = await c.request(method, url)
            checked += 1
            where = f"{method} {url}"
            if path.startswith("/api/"):
                assert answer.status_code == 401, where
            else:
                assert answer.status_code in (302, 303), where
                assert answer.headers["location"].startswith("/login"), where
    assert checked >= MIN_ROUTE_METHODS


async def test_members_of_one_project_never_reach_another(world: World) -> None:
    checked = 0
    async with client(world.app) as session:
        csrf = await sign_in(session, "ann@example.com")
        bearer = {"Authorization": f"Bearer {world.token_a}"}
        # Controls: the same caller does reach its own project.
        assert (await session.get(f"/projects/{world.project_a}/settings")).status_code == 200
        assert (await session.get(f"/api/v1/projects/{world.project_a}", headers=bearer)).status_code == 200
        for path, route, method in endpoints(world.app):
            if "project_id" not in route.param_convertors:
                continue
            url = concrete(path, route, world.project_b)
            body: dict[str, Any] = {}
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                if path.startswith("/api/"):
                    body = {"json": {"name": "taken"}}
                else:
                    body = {"data": {"csrf_token": csrf, "name": "taken", "email": "ann@example.com"}}
            for headers in ({"X-CSRF-Token": csrf}, bearer):
                answer = await session.request(method, url, headers=headers, **body)
                assert answer.status_code in (403, 404), f"{method} {url} via {list(headers)}: {answer.status_code}"
            checked += 1
    assert checked >= MIN_PROJECT_ROUTE_METHODS
    project_b = world.runtime.meta.project(world.project_b)
    assert project_b is not None and project_b.name == "B"
    assert accounts.role_in(world.runtime.meta, world.project_b, world.ann) is None  # "add member" did nothing


async def test_dashboard_html_carries_security_headers(world: World) -> None:
    async with client(world.app) as c:
        page = await c.get("/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        await sign_in(c, "ann@example.com")
        projects = await c.get("/projects")
        assert projects.headers["cache-control"] == "no-store"
        assert "content-security-policy" in projects.headers
        missing = await c.get(f"/projects/{world.project_b}/settings")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        api = await c.get("/api/v1/projects")
        assert api.headers["cache-control"] == "no-store" and api.headers["x-content-type-options"] == "nosniff"
        for path in ("/demo/", "/hm.js"):
            assert "content-security-policy" not in (await c.get(path)).headers, path


def test_templates_have_no_inline_script() -> None:
    """The CSP allows scripts from 'self' only: inline code would silently not run."""
    for template in TEMPLATES_DIR.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text, re.I):
            assert "src=" in tag, f"{template.name}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"{template.name}: inline event handler"
        assert "javascript:" not in text.lower(), f"{template.name}: javascript: URL"


def test_walk_sees_every_kind_of_route(world: World) -> None:
    paths = {path for path, _, _ in endpoints(world.app)}
    assert {"/api/v1/projects/{project_id:int}/sessions", "/projects/{project_id:int}/settings", "/login"} <= paths
