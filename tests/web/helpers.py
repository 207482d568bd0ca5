"""Dashboard test helpers: a runtime on a temporary data directory, clients, sign-in, CSRF tokens, the route table."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from hitmetrix.runtime import ProjectCache, Runtime, build_runtime
from hitmetrix.settings import load_settings
from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore

PASSWORD = "correct horse battery"
PUBLIC_MOUNTS = {"/static", "/demo/static"}  # static files only: checked by the access matrix, not walked
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class FakeClock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_runtime(data_dir: Path, *, demo: bool = False) -> Runtime:
    """A full runtime (not started: no lifespan runs under ASGITransport). Close with ``close_runtime``."""
    settings = load_settings({"data_dir": data_dir, "demo": demo, "geoip": False, "spool_fsync": "never"}, environ={})
    return build_runtime(settings)


def close_runtime(runtime: Runtime) -> None:
    runtime.store.close()
    runtime.meta.close()


def with_fresh_meta(runtime: Runtime, data_dir: Path, clock: FakeClock) -> Runtime:
    """The same runtime over a metadata store of its own, so a test starts with no users."""
    meta = MetaStore("", data_dir)
    return dataclasses.replace(runtime, meta=meta, projects=ProjectCache(meta), clock=clock)


def client(app: Starlette, *, https: bool = False) -> httpx.AsyncClient:
    base = "https://hitmetrix.test" if https else "http://hitmetrix.test"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base, follow_redirects=False)


def csrf_in(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def make_user(meta: MetaStore, email: str, *projects: int, admin: bool = False, role: str = "viewer") -> int:
    user = accounts.create_user(meta, email, PASSWORD, admin=admin)
    for project_id in projects:
        accounts.add_member(meta, project_id, user.id, role)
    return user.id


async def sign_in(c: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form (as someone else, if the client was signed in); returns the session's CSRF token."""
    if "hm_session" in c.cookies:
        c.cookies.delete("hm_session")
    form = await c.get("/login")
    answer = await c.post("/login", data={"email": email, "password": password, "csrf_token": csrf_in(form.text)})
    assert answer.status_code == 303, answer.text
    page = await c.get("/projects")
    assert page.status_code == 200, page.text
    return csrf_in(page.text)


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every endpoint route with its full path template, and every mounted app (static files)."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from walk(list(inner), prefix + route.path)
            else:
                yield prefix + route.path, route
        elif isinstance(route, Route):
            yield prefix + route.path, route
        else:
            pytest.fail(f"unknown kind of route {route!r}: teach the access matrix about it")


def endpoints(app: Starlette) -> list[tuple[str, Route, str]]:
    """(path template, route, method) for every endpoint of the app; mounts must be public static files."""
    found = []
    for path, route in walk(list(app.routes)):
        if isinstance(route, Mount):
            assert path in PUBLIC_MOUNTS, f"mounted app at {path} is neither public nor checked"
            continue
        assert isinstance(route, Route)
        found += [(path, route, method) for method in sorted(route.methods or {"GET"})]
    return found
