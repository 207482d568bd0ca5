"""A real site with the real tracker (its web vitals chunk turned on) visited in real Chromium, for the web vitals
and errors pages' browser tests: two visitors, three page loads measured, a button that throws three times."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from hitmetrix.store import projects
from hitmetrix.store.meta import MetaStore
from tests.e2e.conftest import StaticSite
from tests.e2e.dashboard import Member, demo_member, open_page
from tests.support import ServerProcess, wait_for

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script src="{server}/hm.js" data-key="{key}"></script>
<style>body {{ font: 16px sans-serif; margin: 0 8vw; }} .hero {{ height: 240px; background: #d9e4f5; }}</style></head>
<body>
<h1>{title}</h1>
<div class="hero">A big picture of shoes</div>
<p>Everything you need to pay for your order, right here.</p>
<button id="more" type="button">Show details</button>
<button id="pay" type="button">Pay now</button>
<ul id="details"></ul>
<script>
document.getElementById('more').addEventListener('click', function () {{
  document.getElementById('details').insertAdjacentHTML('beforeend', '<li>Free returns</li>');
}});
document.getElementById('pay').addEventListener('click', function payNow() {{
  // A new order number each time: grouping must see one error, not one per order.
  throw new TypeError('payment widget failed for order ' + (100000 + Math.floor(Math.random() * 899999)));
}});
</script>
</body></html>
"""
MESSAGE_GROUPED = "TypeError: payment widget failed for order <n>"  # Chrome's "Uncaught " dropped
ERRORS_THROWN = 3
PAGE_LOADS = 3


@dataclass
class VitalsSite:
    server: ServerProcess
    member: Member
    site: StaticSite
    sessions: list[str]
    page_errors: list[str]

    @property
    def project_url(self) -> str:
        return f"{self.server.url}/projects/{self.member.project_id}"


def _ready(page: Page) -> str:
    page.wait_for_function("() => window.__hmVitals && window.hitmetrix && window.hitmetrix.sessionId()",
                           timeout=15_000)
    return str(page.evaluate("() => window.hitmetrix.sessionId()"))


def _pay(page: Page, errors: list[str], times: int) -> None:
    for _ in range(times):
        before = len(errors)
        page.click("#pay")
        wait_for(lambda before=before: len(errors) > before, 10, 0.05, what="the page's error")


def _visit(browser: Browser, site: StaticSite, errors: list[str], pages: list[tuple[str, int]]) -> str:
    """One visitor: each page loaded, its details shown (an interaction, for INP), its pay button pressed some
    times, then the tab closed (web vitals leave at page hide)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    session_id = ""
    for name, pays in pages:
        page.goto(f"{site.url}/{name}")
        session_id = _ready(page)
        page.click("#more")
        page.wait_for_selector("#details li")
        _pay(page, errors, pays)
    page.goto("about:blank")  # pagehide: the last page's vitals leave by beacon
    context.close()
    return session_id


@contextmanager
def vitals_site(base: Path, browser: Browser) -> Iterator[VitalsSite]:
    data_dir = base / "data"
    member = demo_member(data_dir, "vitals")
    meta = MetaStore("", data_dir)
    try:
        projects.update_settings(meta, member.project_id, {"record_vitals": True}, actor_id=None)
    finally:
        meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    (base / "site").mkdir()
    site = StaticSite(base / "site")
    try:
        for name, title in (("home.html", "Shoes"), ("checkout.html", "Checkout")):
            site.write(name, PAGE.format(server=server.url, key=member.project_key, title=title))
        errors: list[str] = []
        sessions = [
            _visit(browser, site, errors, [("home.html", 0), ("checkout.html", 1)]),
            _visit(browser, site, errors, [("checkout.html", 2)]),
        ]
        assert len(errors) == ERRORS_THROWN

        def stored() -> dict[str, Any] | None:
            vitals = server.api(f"/api/v1/projects/{member.project_id}/vitals").json()
            found = server.api(f"/api/v1/projects/{member.project_id}/errors").json()
            ok = vitals["totals"]["pageviews"] == PAGE_LOADS and found["totals"]["errors"] == ERRORS_THROWN
            return {"vitals": vitals, "errors": found} if ok else None

        try:
            wait_for(stored, 60, 0.3, what="the page loads' vitals and the errors in the store")
        except AssertionError:
            raise AssertionError(server.log_tail()) from None
        yield VitalsSite(server, member, site, sessions, errors)
        assert server.new_tracebacks() == []
    finally:
        site.stop()
        server.stop()


def open_signed_in(browser: Browser, site: VitalsSite, width: int) -> tuple[Page, list[str]]:
    """A dashboard page at this width, signed in; the list collects the page's own errors (there must be none)."""
    return open_page(browser, site, width)


def fits(page: Page) -> bool:
    """No sideways scrolling of the whole page (a wide table scrolls inside its own box)."""
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"))
