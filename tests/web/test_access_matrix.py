"""Access matrix generated from the app's routing table: every route, every kind of caller.

Every route of the real app is visited (a route added later is covered
without touching this file). Each must carry an access rule, ``guard`` or
``public`` (the test fails on a route that has neither), and the rule must hold:
signed out → 401 (API) or a redirect to sign in (pages); signed in as the owner
of another project → 404; a viewer → 403 on owner and analyst routes, and on
replays when the project withholds them from viewers; an analyst → 403 on owner
routes; a non-admin → 403 on admin routes. Callers come by cookie (with the CSRF
token) and by API token. Refused state-changing requests carry bodies that
would do harm if they got through (delete with the right name, remove a
member), and the test checks afterwards that nothing changed. Some routes must
be owner-only whatever their guard says (settings, members, deletion), and
replays must be marked as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.convertors import IntegerConvertor
from starlette.routing import Route

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, projects
from hitmetrix.web.app import build_app
from hitmetrix.web.auth import Access, access_of
from hitmetrix.web.render import TEMPLATES_DIR
from tests.web.helpers import client, close_runtime, endpoints, make_user, open_runtime, sign_in

pytestmark = pytest.mark.anyio

SAMPLE_PARAMS = {"session_id": "s3ss10nAbCdEf123", "rest": "about.html"}
MIN_ROUTE_METHODS = 40  # the app has more: a broken walk must not pass by checking nothing
MIN_PROJECT_ROUTE_METHODS = 20
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
RANK = accounts.ROLE_RANK
# Whatever a route's guard says, these are the owners' alone (settings, members, deletion).
OWNER_ONLY = re.compile(r"^/(api/v1/)?projects/\{project_id:int\}/(settings|members|delete)(/|$)")
# Routes that show what was recorded: viewers may be kept out of them by a project setting.
REPLAY = re.compile(r"^/projects/\{project_id:int\}/sessions/\{session_id\}$|/sessions/\{session_id\}/recording")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Caller:
    email: str
    user_id: int
    token: str
    roles: dict[int, str] = field(default_factory=dict)
    admin: bool = False


@dataclass
class World:
    app: Starlette
    runtime: Runtime
    shop: int  # viewers may watch replays
    vault: int  # viewers may not
    other: int  # only the outsider is a member
    callers: dict[str, Caller]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = open_runtime(tmp_path_factory.mktemp("matrix") / "data", demo=True)
    try:
        app = build_app(runtime)
        meta = runtime.meta
        shop, vault, other = (meta.create_project(name).id for name in ("shop", "vault", "other"))
        projects.update_settings(meta, vault, {"viewers_can_replay": False}, actor_id=None)
        callers: dict[str, Caller] = {}
        for name, roles, admin in (
            ("owner", {shop: "owner", vault: "owner"}, False),
            ("analyst", {shop: "analyst", vault: "analyst"}, False),
            ("viewer", {shop: "viewer", vault: "viewer"}, False),
            ("outsider", {other: "owner"}, False),
            ("admin", {}, True),  # an admin who is a member of nothing
        ):
            email = f"{name}@example.com"
            user_id = make_user(meta, email, admin=admin)
            for project_id, role in roles.items():
                accounts.add_member(meta, project_id, user_id, role)
            _, token = accounts.create_api_token(meta, user_id, "matrix", "write")
            callers[name] = Caller(email, user_id, token, roles, admin)
        yield World(app, runtime, shop, vault, other, callers)
    finally:
        close_runtime(runtime)


def concrete(path: str, route: Route, project_id: int, world: World) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "project_id":
            return str(project_id)
        if name == "user_id":  # a member whose removal (or deactivation) would show
            return str(world.callers["viewer"].user_id)
        if isinstance(route.param_convertors[name], IntegerConvertor):
            return "1"
        return SAMPLE_PARAMS.get(name, "sample1234")

    return re.sub(r"{([a-zA-Z_]+)(?::[a-z]+)?}", fill, path)


def harmful_body(path: str, project_name: str, csrf: str | None) -> dict[str, Any]:
    """What would change something if a refused request got through."""
    values = {
        "name": "taken",
        "email": "outsider@example.com",
        "role": "owner",
        "confirm_name": project_name,
        "viewers_can_replay": "1",
        "allowed_origins": "https://evil.example",
    }
    if path.startswith("/api/"):
        return {"json": {"name": "taken", "email": "outsider@example.com", "role": "owner"}}
    return {"data": {**values, "csrf_token": csrf or ""}}


def routes_with_rules(world: World) -> list[tuple[str, Route, str, Access]]:
    """Every endpoint with its access rule; fails on a route that has none."""
    found = []
    for path, route, method in endpoints(world.app):
        if method == "HEAD":  # Starlette's twin of GET: the same endpoint
            continue
        access = access_of(route.endpoint)
        assert access is not None, (
            f"{method} {path} has no access rule: decorate its handler with hitmetrix.web.auth.guard(...) "
            "or public(why)"
        )
        found.append((path, route, method, access))
    return found


async def sessions_of(world: World) -> dict[str, tuple[httpx.AsyncClient, str]]:
    """A signed-in cookie client and its CSRF token per caller."""
    signed: dict[str, tuple[httpx.AsyncClient, str]] = {}
    for name, caller in world.callers.items():
        c = client(world.app)
        signed[name] = (c, await sign_in(c, caller.email))
    return signed


def test_every_route_has_a_rule_that_fits_its_path(world: World) -> None:
    checked = 0
    for path, _, method, access in routes_with_rules(world):
        checked += 1
        where = f"{method} {path}"
        if access.public:
            assert access.why, f"{where}: say why it is public"
            continue
        assert access.api == path.startswith("/api/"), f"{where}: API routes answer JSON, pages redirect"
        if "{project_id" in path:
            assert access.role is not None or access.admin, f"{where}: names a project but checks no membership"
        if OWNER_ONLY.match(path):
            assert access.role == "owner", f"{where} must be for owners only"
        if REPLAY.search(path) and method == "GET":
            assert access.replay, f"{where} shows a recording: guard it with replay=True"
    assert checked >= MIN_ROUTE_METHODS


async def test_signed_out_callers_get_nothing(world: World) -> None:
    checked = 0
    async with client(world.app) as c:
        for path, route, method, access in routes_with_rules(world):
            if access.public:
                continue
            url = concrete(path, route, world.shop, world)
            answer = await c.request(method, url, **harmful_body(path, "shop", None))
            checked += 1
            where = f"{method} {url}"
            if access.api:
                assert answer.status_code == 401, where
            else:
                assert answer.status_code in (302, 303), where
                assert answer.headers["location"].startswith("/login"), where
    assert checked >= MIN_ROUTE_METHODS


async def test_the_guard_holds_for_every_role(world: World) -> None:
    """Each caller, by cookie and by token, on every route: the guard's answer, or the handler's."""
    signed = await sessions_of(world)
    names = {world.shop: "shop", world.vault: "vault", world.other: "other"}
    project_routes = 0
    try:
        for path, route, method, access in routes_with_rules(world):
            if access.public:
                continue
            project_routes += access.role is not None
            for project_id in (world.shop, world.vault) if access.role is not None else (world.shop,):
                url = concrete(path, route, project_id, world)
                for name, caller in world.callers.items():
                    expected = expected_refusal(access, caller, project_id, world)
                    if expected is None and method in UNSAFE:
                        continue  # allowed and state-changing: the feature's own tests do it
                    c, csrf = signed[name]
                    body = harmful_body(path, names[project_id], csrf)
                    for via, headers in (("cookie", {"X-CSRF-Token": csrf}), ("token", bearer(caller))):
                        answer = await c.request(method, url, headers=headers, **body)
                        where = f"{name} via {via}: {method} {url} → {answer.status_code}"
                        if expected is not None:
                            assert answer.status_code == expected, where
                        else:
                            assert answer.status_code not in (401, 403), where
                            assert not answer.headers.get("location", "").startswith("/login"), where
                            if set(route.param_convertors) <= {"project_id"}:
                                assert answer.status_code != 404, where
    finally:
        for c, _ in signed.values():
            await c.aclose()
    assert project_routes >= MIN_PROJECT_ROUTE_METHODS
    nothing_changed(world)


def expected_refusal(access: Access, caller: Caller, project_id: int, world: World) -> int | None:
    """The status the guard must answer this caller, or None when it must let them through."""
    if access.admin and not caller.admin:
        return 403
    if access.role is None:
        return None
    role = caller.roles.get(project_id)
    if role is None:
        return 404  # not a member: as if the project did not exist
    if RANK[role] < RANK[access.role]:
        return 403
    if access.replay and role == "viewer" and project_id == world.vault:
        return 403
    return None


def bearer(caller: Caller) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller.token}"}


def nothing_changed(world: World) -> None:
    meta = world.runtime.meta
    for project_id, name in ((world.shop, "shop"), (world.vault, "vault"), (world.other, "other")):
        project = meta.project(project_id)
        assert project is not None and project.name == name, f"project {name} was changed or deleted"
        assert project.origins() == [], f"project {name}'s settings were changed"
        members = {user.email: role for user, role in accounts.members_of(meta, project_id)}
        expected = {c.email: c.roles[project_id] for c in world.callers.values() if project_id in c.roles}
        assert members == expected, f"members of {name} were changed"
    assert meta.project(world.vault).viewers_can_replay is False  # type: ignore[union-attr]


async def test_the_matrix_catches_a_route_without_a_rule(world: World) -> None:
    """Control: an unguarded route added to the app makes the walk fail."""

    async def leaky(request: Any) -> Any:
        raise AssertionError("never called")

    world.app.router.routes.append(Route("/projects/{project_id:int}/leak", leaky))
    try:
        with pytest.raises(AssertionError, match="has no access rule"):
            routes_with_rules(world)
    finally:
        world.app.router.routes.pop()


async def test_dashboard_html_carries_security_headers(world: World) -> None:
    async with client(world.app) as c:
        page = await c.get("/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        await sign_in(c, "viewer@example.com")
        projects = await c.get("/projects")
        assert projects.headers["cache-control"] == "no-store"
        assert "content-security-policy" in projects.headers
        missing = await c.get(f"/projects/{world.other}/sessions")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        refused = await c.get(f"/projects/{world.shop}/settings")
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
        assert "owners" in refused.text
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
    assert {
        "/api/v1/projects/{project_id:int}/sessions",
        "/projects/{project_id:int}/settings",
        "/projects/{project_id:int}/members",
        "/projects/{project_id:int}/delete",
        "/login",
    } <= paths
