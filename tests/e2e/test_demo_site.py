"""The demo dating site in real Chromium: a visit makes a session whose tracker sends automation signals
(webdriver=true under Playwright), sets the first-party cookie ``hm_sid`` to the tracker's session id, and the
site's server middleware joins its request and sign-in events to that same session."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from hitmetrix.web.demo.members import seeded_members
from tests.e2e.conftest import StaticSite
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

MEMBER = seeded_members()[2]
WRONG_PASSWORD = "not-my-password-7"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("demo_e2e") / "data", demo=True).start()
    yield s
    s.stop()


def demo_project(server: ServerProcess) -> dict[str, Any]:
    return next(p for p in server.api("/api/v1/projects").json() if p["name"] == "demo")


def tracker_session(page: Page) -> str:
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")
    return str(page.evaluate("() => window.hitmetrix.sessionId()"))


def hm_sid(context: BrowserContext, url: str) -> str | None:
    return next((c["value"] for c in context.cookies(url) if c["name"] == "hm_sid"), None)


def failed_sign_in(page: Page, base: str) -> str:
    """Type a wrong password into the sign-in form and submit it with a click; the tracker's session id."""
    page.goto(base + "/demo/signin")
    session_id = tracker_session(page)
    page.type("#signin-email", MEMBER.email)
    page.type("#signin-password", WRONG_PASSWORD)
    page.click("#signin-submit")
    page.wait_for_selector("#signin-error")  # the failed sign-in: a 200 page with an error text
    assert tracker_session(page) == session_id
    return session_id


def stored_events(server: ServerProcess, session_id: str, wanted: dict[str, int]) -> list[dict[str, Any]]:
    """The session's events once it holds at least ``wanted[type]`` events of each type."""
    pid = demo_project(server)["id"]
    seen: dict[str, int] = {}

    def complete() -> list[dict[str, Any]] | None:
        r = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}")
        events = r.json()["events"] if r.status_code == 200 else []
        seen.clear()
        for e in events:
            seen[e["type"]] = seen.get(e["type"], 0) + 1
        return events if all(seen.get(t, 0) >= n for t, n in wanted.items()) else None

    try:
        events: list[dict[str, Any]] = wait_for(complete, 30, 0.2, what=f"{wanted} in session {session_id}")
    except AssertionError:
        raise AssertionError(f"wanted {wanted}; saw {seen}") from None
    return events


def signals_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(e["props"]) for e in events if e["type"] == "signals"]


def test_a_playwright_visit_sends_signals_and_its_server_events_join_the_session(
    server: ServerProcess, browser: Browser, artifacts: Path
) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    session_id = failed_sign_in(page, server.url)
    assert hm_sid(context, server.url) == session_id, "the hm_sid cookie is the tracker's session id"
    cookie = next(c for c in context.cookies(server.url) if c["name"] == "hm_sid")
    assert cookie["path"] == "/" and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    page.screenshot(path=str(artifacts / "demo-site-failed-sign-in.png"))
    page.goto("about:blank")  # pagehide: the tracker flushes by beacon
    context.close()
    assert errors == [], errors

    events = stored_events(server, session_id, {"pageview": 2, "signals": 2, "request": 1, "auth": 1})
    signals = signals_of(events)
    # One per page: the sign-in form sent its signals at the click, the error page when it was left.
    assert len(signals) == 2, signals
    typed = signals[0]
    assert typed["webdriver"] is True, typed
    assert typed["keys"] == len(MEMBER.email) + len(WRONG_PASSWORD), typed
    assert typed["clicks"] == 1 and typed["pointer_moves"] >= 1 and typed["clicks_without_move"] == 0, typed
    intervals = typed["key_interval_ms"]
    assert set(intervals) == {"median", "mad", "min"} and 0 <= intervals["min"] <= intervals["median"], intervals
    assert re.fullmatch(r"[0-9a-f]{16}", typed["device"]) and typed["device"] == signals[1]["device"]
    assert isinstance(typed["headless"], list) and isinstance(typed["ua_ch_mismatch"], bool)
    assert typed["touch"] is False
    assert signals[1]["keys"] == 0 and signals[1]["clicks"] == 0

    auth = [(e["name"], json.loads(e["props"])) for e in events if e["type"] == "auth"]
    assert [(name, props["ok"]) for name, props in auth] == [("signin", False)], auth
    # The first page's request came before the tracker set the cookie; the form's POST carried it.
    requests = [(e["url"], json.loads(e["props"])) for e in events if e["type"] == "request"]
    assert any(url == "/demo/signin" and props["method"] == "POST" for url, props in requests), requests
    assert MEMBER.email not in json.dumps(events) and WRONG_PASSWORD not in json.dumps(events)


def test_signals_report_what_the_browser_says_not_a_constant(server: ServerProcess, browser: Browser) -> None:
    """Control: a browser that hides navigator.webdriver, clicked without a pointer move, reports both."""
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})")
    page = context.new_page()
    page.goto(server.url + "/demo/")
    session_id = tracker_session(page)
    page.dispatch_event("#like-1", "click")  # a script's click: no pointer went there
    page.goto("about:blank")
    context.close()
    signals = signals_of(stored_events(server, session_id, {"signals": 1}))
    assert signals[0]["webdriver"] is False, signals
    assert signals[0]["clicks"] == 1 and signals[0]["clicks_without_move"] == 1, signals
    assert signals[0]["pointer_moves"] == 0 and signals[0]["keys"] == 0, signals


def test_a_cookieless_tracker_sets_no_hm_sid(server: ServerProcess, static_site: StaticSite, browser: Browser) -> None:
    key = demo_project(server)["public_key"]
    pages = {}
    for name, extra in (("cookieless.html", " data-cookieless"), ("cookies.html", "")):
        pages[name] = static_site.write(
            name,
            f'<!doctype html><html><head><script async src="{server.url}/hm.js" data-key="{key}"{extra}>'
            f"</script></head><body><p>{name}</p></body></html>",
        )
    for name, url in pages.items():
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        session_id = tracker_session(page)
        expected = None if name == "cookieless.html" else session_id
        assert hm_sid(context, static_site.url) == expected, name
        context.close()
