"""A visit to the demo site in real Chromium is recorded, stored, and leaks nothing typed."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.datadir import files_containing
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path / "data", demo=True).start()
    yield s
    s.stop()


def demo_project_id(server: ServerProcess) -> int:
    projects = server.api("/api/v1/projects").json()
    return next(p["id"] for p in projects if p["name"] == "demo")


def visit_demo_site(page: Page, base: str, secrets_typed: dict[str, str], artifacts: Path) -> str:
    page.goto(base + "/demo/")
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    session_id = page.evaluate("() => window.hitmetrix.sessionId()")

    page.click("#nav-signup")  # SPA route
    page.wait_for_selector("#signup-form")
    page.fill("#name", secrets_typed["name"])
    page.type("#email", secrets_typed["email"])
    page.type("#password", secrets_typed["password"])
    page.fill("#bio", secrets_typed["bio"])
    page.click("#signup-submit")
    page.wait_for_selector("#signup-result:has-text('Thanks')")

    page.click("#nav-products")
    page.click("#buy-0")
    page.click("#nav-home")
    page.click("#break-button")
    page.wait_for_selector("#status:has-text('broke')")
    page.mouse.wheel(0, 3000)
    page.wait_for_function("() => window.scrollY > 1000")
    page.screenshot(path=str(artifacts / "recording-demo-home.png"))

    page.click("#nav-about")  # full page load
    page.wait_for_selector("#about-title")
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    assert page.evaluate("() => window.hitmetrix.sessionId()") == session_id
    page.click("#about-button")
    assert page.evaluate("() => window.hitmetrix._errors") == 0
    return str(session_id)


def test_demo_visit_is_recorded_and_typed_text_is_nowhere(
    server: ServerProcess, browser: Browser, artifacts: Path
) -> None:
    tag = secrets.token_hex(4)
    typed = {
        "name": f"Zorblat{tag}Name",
        "email": f"zorblat{tag}@mail.test",
        "password": f"Pw{tag}Hunter2",
        "bio": f"Bio{tag} loves long walks",
    }
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    session_id = visit_demo_site(page, server.url, typed, artifacts)
    page.goto("about:blank")  # pagehide: the tracker flushes with sendBeacon
    context.close()

    pid = demo_project_id(server)

    wanted = {"pageview", "click", "submit", "scroll", "error", "custom", "pageleave"}
    seen: set[str] = set()

    def session_complete() -> dict | None:
        r = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}")
        if r.status_code != 200:
            return None
        body = r.json()
        seen.update(e["type"] for e in body["events"])
        about = any(e["type"] == "pageview" and e["url"].endswith("/about.html") for e in body["events"])
        return body if wanted <= seen and about else None

    try:
        body = wait_for(session_complete, 30, 0.2, what="the visit's events")
    except AssertionError:
        raise AssertionError(f"missing event types {wanted - seen}; saw {seen}") from None
    events = body["events"]
    pageviews = [e for e in events if e["type"] == "pageview"]
    paths = [e["url"].removeprefix(server.url) for e in pageviews]
    assert paths[:5] == ["/demo/", "/demo/signup", "/demo/products", "/demo/", "/demo/about.html"], paths
    navs = [json.loads(e["props"] or "{}").get("nav") for e in pageviews]
    assert navs[:5] == ["load", "push", "push", "push", "load"], navs
    clicks = [e for e in events if e["type"] == "click"]
    assert any(e["selector"].endswith("#buy-0") or "buy-0" in e["selector"] for e in clicks)
    assert any(e["text"] == "Add to cart" for e in clicks)
    assert all(e["x"] > 0 and e["y"] > 0 for e in clicks)
    errors_seen = [json.loads(e["props"]) for e in events if e["type"] == "error"]
    assert any("checkout service unavailable" in err.get("message", "") for err in errors_seen)
    assert any(e["type"] == "submit" and "signup-form" in e["selector"] for e in events)
    assert any(e["type"] == "custom" and e["name"] == "add_to_cart" for e in events)
    assert errors == ["Demo failure: checkout service unavailable"], errors

    recording = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}/recording").json()
    kinds = [e["type"] for e in recording]
    assert kinds.count(2) >= 2, "a full snapshot per page load"
    assert kinds.count(3) >= 10, "incremental events"
    text = json.dumps(recording)
    assert "Welcome to the demo shop" in text and "About us" in text

    server.stop()  # drain the spool into the store, then look at every byte on disk
    data_dir = server.data_dir
    assert files_containing(data_dir, session_id), "control: the search must see into ClickHouse files"
    assert files_containing(data_dir, "Welcome to the demo shop"), "control: and into recordings"
    for what, secret in typed.items():
        assert files_containing(data_dir, secret) == [], f"typed {what} leaked to disk"
    assert "Blocked element: never recorded" not in text
