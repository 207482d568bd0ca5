"""A visit to the demo site in real Chromium is recorded, stored, and leaks nothing typed;
a batch the server did not acknowledge is sent again as built: same batch_id, same event ids.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, Route

from tests.datadir import files_containing
from tests.e2e.conftest import StaticSite
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

    page.click("#nav-signup")  # full page load
    page.wait_for_selector("#signup-form")
    page.fill("#name", secrets_typed["name"])
    page.type("#email", secrets_typed["email"])
    page.type("#password", secrets_typed["password"])
    page.fill("#age", "30")
    page.fill("#bio", secrets_typed["bio"])
    page.click("#signup-submit")  # the site stores the member and shows their profile
    page.wait_for_selector("#profile-name")
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")

    page.click("#nav-home")
    page.wait_for_selector("#like-1")
    page.click("#like-1")
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
    assert paths[:2] == ["/demo/", "/demo/signup"] and re.fullmatch(r"/demo/members/\d+", paths[2]), paths
    assert paths[3:5] == ["/demo/", "/demo/about.html"], paths
    navs = [json.loads(e["props"] or "{}").get("nav") for e in pageviews]
    assert navs[:5] == ["load"] * 5, navs
    clicks = [e for e in events if e["type"] == "click"]
    assert any(e["selector"].endswith("#like-1") or "like-1" in e["selector"] for e in clicks)
    assert any(e["text"] == "Like" for e in clicks)
    assert all(e["x"] > 0 and e["y"] > 0 for e in clicks)
    errors_seen = [json.loads(e["props"]) for e in events if e["type"] == "error"]
    assert any("matchmaking service unavailable" in err.get("message", "") for err in errors_seen)
    assert any(e["type"] == "submit" and "signup-form" in e["selector"] for e in events)
    assert any(e["type"] == "custom" and e["name"] == "like" for e in events)
    assert errors == ["Demo failure: matchmaking service unavailable"], errors

    recording = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}/recording").json()
    kinds = [e["type"] for e in recording]
    assert kinds.count(2) >= 2, "a full snapshot per page load"
    assert kinds.count(3) >= 10, "incremental events"
    text = json.dumps(recording)
    assert "Welcome to Lovebirds" in text and "About us" in text

    server.stop()  # drain the spool into the store, then look at every byte on disk
    data_dir = server.data_dir
    assert files_containing(data_dir, session_id), "control: the search must see into ClickHouse files"
    assert files_containing(data_dir, "Welcome to Lovebirds"), "control: and into recordings"
    # The demo site keeps what was submitted in its own database (it is the visited site, not Hitmetrix):
    # the typed text may be there, and nowhere else; the password not even there (a scrypt hash).
    assert files_containing(data_dir / "demo", typed["email"]), "control: the site's own database holds the sign-up"
    for what, secret in typed.items():
        leaked = [path for path in files_containing(data_dir, secret) if not path.startswith("demo/")]
        assert leaked == [], f"typed {what} leaked to disk: {leaked}"
    assert files_containing(data_dir, typed["password"]) == [], "the password is stored nowhere"
    assert "Blocked element: never recorded" not in text


UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def ids_of(batch: dict[str, Any]) -> tuple[str, list[str], list[int]]:
    return batch["batch_id"], [e["id"] for e in batch["events"]], [c["seq"] for c in batch["recording"]]


def assert_resent_as_built(first: dict[str, Any], again: dict[str, Any]) -> None:
    assert BATCH_ID.match(first["batch_id"]), first["batch_id"]
    assert first["events"] and all(UUID4.match(e["id"]) for e in first["events"]), first["events"]
    assert ids_of(again) == ids_of(first)
    assert again["sent_at"] >= first["sent_at"]  # the client clock at each attempt
    assert {**again, "sent_at": 0} == {**first, "sent_at": 0}


@pytest.mark.parametrize("failure", ["503", "429", "network error", "answer lost"])
def test_a_retried_batch_keeps_its_ids(server: ServerProcess, browser: Browser, failure: str) -> None:
    """The first batch fails; its retry carries the same ids, and the session's events are stored once."""
    context = browser.new_context()
    page = context.new_page()
    attempts: list[tuple[Request, dict[str, Any]]] = []

    def capture(route: Route) -> None:
        attempts.append((route.request, json.loads(route.request.post_data_buffer or b"{}")))
        if len(attempts) > 1:
            route.continue_()
        elif failure == "network error":
            route.abort("connectionreset")
        elif failure == "429":
            route.fulfill(status=429, headers={"Retry-After": "1"}, json={"error": "slow down"})
        else:
            if failure == "answer lost":  # stored by the server, but the tracker never hears so
                route.fetch()
            route.fulfill(status=503, json={"error": "unavailable"})

    page.route("**/api/v1/batch?*", capture)
    page.goto(server.url + "/demo/")

    def is_retry(request: Request) -> bool:
        if "/api/v1/batch" not in request.url or not attempts or request is attempts[0][0]:
            return False
        return json.loads(request.post_data_buffer or b"{}").get("batch_id") == attempts[0][1]["batch_id"]

    retry = page.wait_for_event("request", is_retry, timeout=15000)
    first = attempts[0][1]
    assert_resent_as_built(first, json.loads(retry.post_data_buffer or b"{}"))
    assert [e["type"] for e in first["events"]] == ["pageview"]
    session_id = first["session_id"]
    page.goto("about:blank")
    context.close()

    pid = demo_project_id(server)

    def pageviews() -> list[dict[str, Any]] | None:
        r = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}")
        return [e for e in r.json()["events"] if e["type"] == "pageview"] if r.status_code == 200 else None

    stored = wait_for(pageviews, 30, 0.2, what="the retried pageview in the store")
    # Let the loader finish with everything that arrived, then count again.
    server.stop()
    server.start()
    assert len(pageviews() or []) == len(stored) == 1, "the retried batch must be stored once"


def test_a_batch_waiting_for_its_retry_leaves_by_beacon_as_built(
    server: ServerProcess, static_site: StaticSite, browser: Browser
) -> None:
    """At page hide the queue goes by sendBeacon, a batch waiting to be retried included, ids unchanged."""
    key = next(p for p in server.api("/api/v1/projects").json() if p["name"] == "demo")["public_key"]
    static_site.forward_to = server.url
    static_site.refusals.append((503, {"Retry-After": "3600"}))  # the retry would wait an hour
    page_url = static_site.write(
        "page.html",
        f'<!doctype html><html><head><script async src="{server.url}/hm.js" data-key="{key}" '
        f'data-api="{static_site.url}"></script></head><body><p>Beacon page</p></body></html>',
    )
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_url)
    wait_for(lambda: static_site.posts, 15, 0.05, what="the first batch")
    page.goto("about:blank")  # pagehide: everything queued leaves by sendBeacon
    context.close()
    first = json.loads(static_site.posts[0])
    again = wait_for(
        lambda: next((b for b in map(json.loads, static_site.posts[1:]) if b["batch_id"] == first["batch_id"]), None),
        15,
        0.05,
        what="the refused batch sent again at page hide",
    )
    assert_resent_as_built(first, again)


@pytest.mark.parametrize("compression", ["CompressionStream", "none"])
def test_chunks_are_gzip_with_or_without_compression_stream(
    server: ServerProcess, browser: Browser, compression: str
) -> None:
    """Chunks are compressed by the browser; without CompressionStream they go as stored gzip, and replay alike."""
    context = browser.new_context()
    if compression == "none":
        context.add_init_script("delete window.CompressionStream")
    page = context.new_page()
    bodies: list[dict[str, Any]] = []

    def capture(route: Route) -> None:
        bodies.append(json.loads(route.request.post_data_buffer or b"{}"))
        route.continue_()

    page.route("**/api/v1/batch?*", capture)
    with page.expect_response(lambda r: b'"recording":[{' in (r.request.post_data_buffer or b"")):
        page.goto(server.url + "/demo/")  # its full snapshot is sent right away
    first = next(body for body in bodies if body["recording"])
    session_id = first["session_id"]
    page.goto("about:blank")
    context.close()

    chunk = base64.b64decode(first["recording"][0]["data"])
    assert chunk[:3] == b"\x1f\x8b\x08" and chunk[3] == 0, "gzip, no optional header fields"
    block_type = (chunk[10] >> 1) & 3  # of the first deflate block: 0 stored, 1 fixed, 2 dynamic Huffman
    assert block_type == 0 if compression == "none" else block_type in (1, 2)
    assert b"Welcome to Lovebirds" in gzip.decompress(chunk)

    pid = demo_project_id(server)

    def recording() -> str | None:
        r = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}/recording")
        return r.text if r.status_code == 200 and "Welcome to Lovebirds" in r.text else None

    wait_for(recording, 30, 0.2, what="the recording in the store")
