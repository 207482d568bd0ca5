"""Dashboard test helpers: a runtime on a temporary data directory, clients, sign-in, CSRF tokens."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
from starlette.applications import Starlette

from hitmetrix.runtime import ProjectCache, Runtime, build_runtime
from hitmetrix.settings import load_settings
from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore

PASSWORD = "correct horse battery"
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


def make_user(meta: MetaStore, email: str, *projects: int, admin: bool = False, role: str = "member") -> int:
    user = accounts.create_user(meta, email, PASSWORD, admin=admin)
    for project_id in projects:
        accounts.add_member(meta, project_id, user.id, role)
    return user.id


async def sign_in(c: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token (from the next page)."""
    form = await c.get("/login")
    answer = await c.post("/login", data={"email": email, "password": password, "csrf_token": csrf_in(form.text)})
    assert answer.status_code == 303, answer.text
    page = await c.get("/projects")
    assert page.status_code == 200, page.text
    return csrf_in(page.text)
