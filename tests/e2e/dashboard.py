"""Helpers for browser tests of the dashboard: a user who may see a project, signing in, forged recordings."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from playwright.sync_api import Browser, Page

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, gzip_b64, wait_for


@dataclass(frozen=True)
class Member:
    email: str
    password: str
    project_id: int
    project_key: str


def demo_member(data_dir: Path, project_name: str = "demo") -> Member:
    """Before the server starts: the demo project (the server adopts it by name) and a member of it."""
    meta = MetaStore("", data_dir)
    try:
        project = meta.project_by_name(project_name) or meta.create_project(project_name)
        email = f"viewer-{secrets.token_hex(3)}@example.test"
        password = "pw-" + secrets.token_urlsafe(12)
        user = accounts.create_user(meta, email, password, admin=True)
        accounts.add_member(meta, project.id, user.id)
        return Member(email, password, project.id, project.public_key)
    finally:
        meta.close()


def sign_in(page: Page, base_url: str, member: Member) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=email]", member.email)
    page.fill("input[name=password]", member.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)


class Served(Protocol):
    """A running server and a member who may sign in to it (what a test's module fixture holds)."""

    @property
    def server(self) -> ServerProcess: ...

    @property
    def member(self) -> Member: ...


def open_page(browser: Browser, served: Served, width: int) -> tuple[Page, list[str]]:
    """A new page of this width, signed in; the list collects the dashboard's own errors (there must be none)."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"{exc}\n{exc.stack}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    sign_in(page, served.server.url, served.member)
    return page, problems


def project_member(data_dir: Path, member: Member, project_name: str, allowed_origins: str = "") -> Member:
    """Before the server starts: another project with these allowed origins, which `member` may see too."""
    meta = MetaStore("", data_dir)
    try:
        project = meta.create_project(project_name, allowed_origins=allowed_origins)
        user = accounts.user_by_email(meta, member.email)
        assert user is not None, member.email
        accounts.add_member(meta, project.id, user.id)
        return Member(member.email, member.password, project.id, project.public_key)
    finally:
        meta.close()


def forge_recording(server: ServerProcess, member: Member, rrweb_events: list[dict[str, Any]], page_url: str) -> str:
    """Send a recording straight to the capture API (as anyone with the public key can) and wait until it is
    stored; returns its session id."""
    now = int(time.time() * 1000)
    session_id = "forged" + secrets.token_hex(6)
    first, last = min(e["timestamp"] for e in rrweb_events), max(e["timestamp"] for e in rrweb_events)
    batch = {
        "session_id": session_id,
        "anonymous_id": "anon" + session_id,
        "sent_at": now,
        "events": [{"type": "pageview", "ts": first, "url": page_url}],
        "recording": [
            {"seq": 0, "first_ts": first, "last_ts": last, "count": len(rrweb_events), "data": gzip_b64(rrweb_events)}
        ],
    }
    answer = httpx.post(
        f"{server.url}/api/v1/batch", params={"key": member.project_key}, content=json.dumps(batch), timeout=30
    )
    assert answer.status_code == 200, answer.text

    def stored() -> bool:
        r = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}")
        return r.status_code == 200 and bool(r.json()["recording_chunks"])

    wait_for(stored, 30, 0.2, what=f"session {session_id} in the store")
    return session_id


def wait_replay_loaded(page: Page) -> None:
    """The replay page's player exists and every chunk of the recording is loaded."""
    page.wait_for_function("() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=20_000)
    assert page.evaluate("() => window.hmReplay.error") is None
    page.wait_for_function("() => window.hmReplay.loadedChunks === window.hmReplay.totalChunks", timeout=20_000)


def play_to_end(page: Page) -> None:
    """Replay from the start at 8× and wait for rrweb's `finish` (the player's own state, not a timer)."""
    page.evaluate(
        """() => {
          const p = window.hmReplay.player;
          window.HM_TEST_FINISHED = false;
          p.getReplayer().on('finish', () => { window.HM_TEST_FINISHED = true; });
          p.setSpeed(8);
          p.goto(0, true);
        }"""
    )
    page.wait_for_function("() => window.HM_TEST_FINISHED === true", timeout=30_000)


def heading_document(heading_id: str, text: str) -> dict[str, Any]:
    """An rrweb full-snapshot document of one page holding one <h1 id=heading_id>text</h1> (forged recordings)."""
    h1 = {"type": 2, "id": 4, "tagName": "h1", "attributes": {"id": heading_id},
          "childNodes": [{"type": 3, "id": 5, "textContent": text}]}  # fmt: skip
    body = {"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [h1]}
    html = {"type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [body]}
    return {"type": 0, "id": 1, "childNodes": [html]}
