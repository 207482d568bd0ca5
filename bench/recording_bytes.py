"""Bytes a recorded minute costs on disk: real Chromium records scripted visits of a shop-like site with the real
tracker, a real `hitmetrix serve` stores them, and the recordings directory of each visit's project is measured.

    python -m bench.recording_bytes [--minutes 10] [--single-minutes 1] [--singles 3] [--out FILE] [--keep DIR]

Two kinds of visit, each in a project of its own: one multi-page visit (browsing the catalogue, a product, the
journal, the cart and the checkout, page after page, with mouse moves, scrolls, clicks and typing) that lasts
``--minutes`` of real time, since the figure is bytes per recorded minute; and ``--singles`` visits of one page
each, ``--single-minutes`` long. Measured twice: as the chunk worker stores chunks, and once the sessions are
compacted into units (what the worker does to a session quiet for a few minutes). The site
(bench/recording_site) has a shared 40 KB stylesheet and inline critical CSS on every page, as real shops do: a
full snapshot per page view carries both.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Route, sync_playwright

from bench.fidelity.harness import recording_in
from hitmetrix.store.blobs import BlobStore
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.dashboard import Member, demo_member, project_member
from tests.support import ServerProcess, wait_for

SITE = Path(__file__).resolve().parent / "recording_site"
VIEWPORT = {"width": 1280, "height": 800}
PAGES = ("index", "product", "article", "cart", "checkout")
# The order a shopper goes through the site in the multi-page visit (then round again).
ROUTE = ("index", "product", "index", "product", "article", "index", "product", "cart", "checkout")


# --- the site --------------------------------------------------------------------------------------------------


def shop_css(rng: random.Random) -> str:
    """A ~40 KB stylesheet shaped like a small framework's: components, utilities, breakpoints."""
    colours = ["#1f2937", "#374151", "#6b7280", "#2456c7", "#d4380d", "#16a34a", "#f59e0b", "#f3f4f6", "#ffffff"]
    out = [
        ":root { --brand: #2456c7; --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --radius: 6px;"
        " --font: 'Helvetica Neue', Arial, sans-serif; }",
        "body { margin: 0; font: 16px/1.5 var(--font); color: var(--ink); background: #fafafa; }",
        ".site-header { display: flex; gap: 24px; align-items: center; padding: 12px 32px; background: #fff;"
        " border-bottom: 1px solid var(--line); position: sticky; top: 0; }",
        ".main-nav a { margin-right: 16px; color: var(--ink); text-decoration: none; }",
        ".container { max-width: 1120px; margin: 0 auto; padding: 24px 32px; }",
        ".grid { display: grid; grid-template-columns: repeat(4, 1fr); gap: 20px; }",
        ".card { background: #fff; border: 1px solid var(--line); border-radius: var(--radius); padding: 16px; }",
        ".card .swatch { height: 120px; border-radius: var(--radius); margin-bottom: 12px; }",
        ".toast { position: fixed; right: 24px; bottom: 24px; background: var(--ink); color: #fff; padding: 12px; }",
        ".tab { display: inline-block; padding: 8px 16px; cursor: pointer; } .tab.active { border-bottom: 2px solid"
        " var(--brand); }",
        "input, select, textarea { font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius:"
        " var(--radius); }",
        ".btn, .add { background: var(--brand); color: #fff; border: 0; padding: 10px 18px; border-radius:"
        " var(--radius); cursor: pointer; }",
    ]
    for name, prop in (("m", "margin"), ("p", "padding")):
        for side, suffix in (("", ""), ("t", "-top"), ("b", "-bottom"), ("l", "-left"), ("r", "-right")):
            for step in range(13):
                out.append(f".{name}{side}-{step} {{ {prop}{suffix}: {step * 0.25:g}rem; }}")
    for i, colour in enumerate(colours):
        out.append(f".text-{i} {{ color: {colour}; }} .bg-{i} {{ background-color: {colour}; }}")
        out.append(f".border-{i} {{ border-color: {colour}; }} .hover\\:bg-{i}:hover {{ background-color: {colour}; }}")
    for bp in (640, 768, 1024, 1280):
        rules = " ".join(
            f".w-{bp}-{i} {{ width: {i * 100 // 12}%; }} .cols-{bp}-{i} {{ grid-template-columns: repeat({i}, 1fr); }}"
            for i in range(1, 13)
        )
        out.append(f"@media (min-width: {bp}px) {{ {rules} }}")
    for i in range(120):
        out.append(
            f".component-{i} {{ display: {rng.choice(['flex', 'block', 'grid'])}; gap: {rng.randint(2, 24)}px;"
            f" font-size: {rng.choice([12, 13, 14, 16, 18, 20])}px; line-height: {rng.choice([1.2, 1.4, 1.5])};"
            f" color: {rng.choice(colours)}; border-radius: {rng.randint(0, 12)}px; }}"
        )
    return "\n".join(out) + "\n"


def critical_css() -> str:
    """Inline critical CSS (~8 KB) in every page's head, as build tools emit it."""
    rules = [f".above-fold-{i} {{ min-height: {20 + i}px; margin: 0 0 {i % 7}px; font-weight: {400 + i % 3 * 100};"
             f" letter-spacing: {i % 5 * 0.01:.2f}em; }}" for i in range(80)]
    return " ".join(rules)


def page_body(name: str, rng: random.Random) -> str:
    products = [(f"Product {i}", rng.choice(["#2456c7", "#d4380d", "#16a34a", "#f59e0b"])) for i in range(24)]
    lorem = ("Our outfitters test every jacket on the coast before it reaches the catalogue, in rain, wind and salt."
             " Seams are taped, zips are covered and the fabric breathes on the climb. ")
    if name == "index":
        cards = "".join(
            f'<div class="card component-{i}"><div class="swatch" style="background:{c}"></div><h3>{p}</h3>'
            f'<p class="text-2">From ${19 + i * 3}</p><button class="add" data-name="{p}">Add to cart</button></div>'
            for i, (p, c) in enumerate(products)
        )
        return f'<h1>New arrivals</h1><section class="grid">{cards}</section>'
    if name == "product":
        reviews = "".join(f'<article class="card m-4"><h4>Review {i}</h4><p>{lorem}</p></article>' for i in range(8))
        return (
            '<h1>Harbour shell jacket</h1><div class="grid"><div class="card"><div class="swatch bg-3"></div></div>'
            f'<div class="card"><p>{lorem * 3}</p><select id="size"><option>S</option><option>M</option>'
            '<option>L</option></select> <button class="add" data-name="Harbour shell">Add to cart</button></div></div>'
            '<nav><span class="tab active">Details</span><span class="tab">Care</span><span class="tab">Reviews</span>'
            f"</nav>{reviews}"
        )
    if name == "article":
        paragraphs = "".join(f"<h2>Section {i}</h2><p>{lorem * 4}</p>" for i in range(14))
        return f'<article class="card"><h1>Packing for a week on the coast</h1>{paragraphs}</article>'
    if name == "cart":
        rows = "".join(f"<tr><td>{p}</td><td>1</td><td>${29 + i}</td></tr>" for i, (p, _) in enumerate(products[:5]))
        return (
            f'<h1>Your cart</h1><table class="card">{rows}</table><label>Voucher <input id="voucher"></label>'
            ' <a class="btn" href="checkout.html">Check out</a>'
        )
    return (
        '<h1>Checkout</h1><form class="card" onsubmit="return false"><label>Name <input id="name"></label>'
        '<label>Email <input id="email" type="email"></label><label>Address <textarea id="address"></textarea></label>'
        '<label>Card <input id="card" autocomplete="cc-number"></label><button class="btn">Pay</button></form>'
    )


def publish_site(root: Path, tracker_tag: str) -> None:
    rng = random.Random(10)
    root.mkdir(parents=True, exist_ok=True)
    (root / "shop.css").write_text(shop_css(rng))
    template = (SITE / "page.html").read_text()
    critical = critical_css()
    for name in PAGES:
        html = (
            template.replace("{title}", name.title())
            .replace("{critical}", critical)
            .replace("{name}", name)
            .replace("{body}", page_body(name, rng))
            .replace("<!-- hitmetrix -->", tracker_tag)
        )
        (root / f"{name}.html").write_text(html)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


class _Site(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a page that leaves drops its connections


# --- the visitor -----------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    project_id: int
    session_ids: set[str]
    events_sent: int
    seconds: float


def wander(page: Page, rng: random.Random, seconds: float) -> None:
    """Mouse moves, scrolls, hovers and clicks on the page in view for `seconds`: a reader's pace, not a bot's."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        action = rng.random()
        if action < 0.5:
            page.mouse.move(rng.randint(20, VIEWPORT["width"] - 20), rng.randint(80, VIEWPORT["height"] - 20), steps=8)
        elif action < 0.75:
            page.mouse.wheel(0, rng.choice([-400, 250, 400, 600]))
        elif action < 0.85:
            buttons = page.locator("button.add, .tab")
            if buttons.count():
                buttons.nth(rng.randrange(buttons.count())).click()
        else:
            field = page.locator("#q, #voucher, #name, #email, #address").first
            field.fill("")
            field.type(rng.choice(["rain jacket", "wool socks", "Ada Lovelace", "ada@example.test"]), delay=60)
        page.wait_for_timeout(rng.randint(300, 1200))  # pacing a human visitor, not synchronisation


def flush_sent(page: Page, sent: list[dict[str, Any]]) -> None:
    """Make the recorder emit one more event and wait until the tracker has sent it (it sends in order)."""
    mark = int(page.evaluate("() => Date.now()"))
    page.mouse.move(3, 3)
    page.mouse.move(7, 7)
    deadline = time.monotonic() + 20
    while not any(e["timestamp"] > mark for e in sent):
        if time.monotonic() > deadline:
            raise AssertionError("the tracker did not send the visit's events")
        page.evaluate("() => window.hitmetrix.flush()")
        page.wait_for_timeout(100)


def visit(
    browser: Browser, base_url: str, pages: list[str], seconds: float, page_seconds: float, rng: random.Random
) -> tuple[set[str], int]:
    """One visitor going through `pages`, `page_seconds` on each (round again until `seconds` are over); their
    sessions and how many events the tracker sent."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    sent: list[dict[str, Any]] = []

    def tap(route: Route) -> None:
        sent.extend(recording_in(route.request))
        route.continue_()

    page.route("**/api/v1/batch?*", tap)
    sessions: set[str] = set()
    started = time.monotonic()
    per_page_s = min(page_seconds, seconds / len(pages)) if len(pages) > 1 else seconds
    i = 0
    while True:
        page.goto(f"{base_url}/{pages[i % len(pages)]}.html")
        page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId()")
        sessions.add(str(page.evaluate("() => window.hitmetrix.sessionId()")))
        left_s = seconds - (time.monotonic() - started)
        wander(page, rng, min(per_page_s, left_s))
        flush_sent(page, sent)
        i += 1
        if time.monotonic() - started >= seconds:
            break
    page.goto("about:blank")
    context.close()
    return sessions, len(sent)


# --- measuring -------------------------------------------------------------------------------------------------


def wait_stored(server: ServerProcess, member: Member, sessions: set[str], events_sent: int) -> None:
    def stored_events() -> int:
        total = 0
        for sid in sessions:
            r = server.api(f"/api/v1/projects/{member.project_id}/sessions/{sid}")
            if r.status_code == 200:
                total += sum(c["event_count"] for c in r.json().get("recording_chunks", []))
        return total

    wait_for(lambda: stored_events() >= events_sent, 120, 0.5, what="the visits' recordings in the store")


def disk_bytes(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".tmp" not in p.name)


def stored_bytes(data_dir: Path, project_id: int) -> dict[str, int]:
    """A project's recording bytes on disk: chunk blobs, and the stylesheets and texts stored once per project."""
    recordings = data_dir / "recordings" / str(project_id)
    texts = recordings / "texts"
    texts_bytes = disk_bytes(texts)
    return {"chunks": disk_bytes(recordings) - texts_bytes, "texts": texts_bytes}


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    httpd = _Site(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(workdir / "site")))
    site_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    data_dir = workdir / "data"
    viewer = demo_member(data_dir)
    multi = project_member(data_dir, viewer, "multi-page", allowed_origins=site_url)
    single = project_member(data_dir, viewer, "single-page", allowed_origins=site_url)
    server = ServerProcess(data_dir, demo=False).start()
    results: dict[str, Any] = {}
    sessions_of: dict[str, tuple[int, set[str]]] = {}
    try:
        rng = random.Random(42)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for label, member, runs in (
                    ("multi_page", multi, [(list(ROUTE), args.minutes * 60)]),
                    ("single_page", single, [([PAGES[i % len(PAGES)]], args.single_minutes * 60)
                                             for i in range(args.singles)]),
                ):
                    tag = f'<script async src="{server.url}/hm.js" data-key="{member.project_key}"></script>'
                    publish_site(workdir / "site", tag)
                    sessions: set[str] = set()
                    events = 0
                    started = time.monotonic()
                    for pages, seconds in runs:
                        found, sent = visit(browser, site_url, pages, seconds, args.page_seconds, rng)
                        sessions |= found
                        events += sent
                        print(f"  {label}: visited {pages} for {seconds:.0f} s", file=sys.stderr, flush=True)
                    recorded_minutes = sum(seconds for _, seconds in runs) / 60
                    wait_stored(server, member, sessions, events)
                    on_disk = stored_bytes(data_dir, member.project_id)
                    total = sum(on_disk.values())
                    sessions_of[label] = (member.project_id, sessions)
                    results[label] = {
                        "visits": len(runs),
                        "sessions": len(sessions),
                        "recorded_minutes": round(recorded_minutes, 2),
                        "wall_seconds": round(time.monotonic() - started, 1),
                        "events": events,
                        "bytes_on_disk": on_disk,
                        "bytes_per_recorded_minute": round(total / recorded_minutes),
                    }
            finally:
                browser.close()
    finally:
        server.stop()
        httpd.shutdown()
    # What the chunk worker does to a session that has gone quiet (after minutes: not waited for here, done now
    # with the server stopped): its chunks into one zstd unit.
    blobs = BlobStore(data_dir / "recordings")
    for label, (project_id, sessions) in sessions_of.items():
        for sid in sessions:
            blobs.compact_session(project_id, sid)
        on_disk = stored_bytes(data_dir, project_id)
        results[label]["bytes_on_disk_compacted"] = on_disk
        results[label]["bytes_per_recorded_minute_compacted"] = round(
            sum(on_disk.values()) / results[label]["recorded_minutes"]
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the multi-page visit (real time)")
    parser.add_argument("--page-seconds", type=float, default=40.0, help="time on each page of the multi-page visit")
    parser.add_argument("--single-minutes", type=float, default=1.0, help="length of each single-page visit")
    parser.add_argument("--singles", type=int, default=3, help="how many single-page visits")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here too")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data directory here (for inspection)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = measure(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="hm-recording-bytes-") as tmp:
            results = measure(args, Path(tmp))
    report = {"python": platform.python_version(), "args": vars(args) | {"out": str(args.out), "keep": str(args.keep)},
              **results}
    for label, r in results.items():
        print(
            f"{label:<12} {r['recorded_minutes']:>6.2f} min  {r['sessions']} session(s)  {r['events']:>6} events  "
            f"chunks {r['bytes_on_disk']['chunks']:>9,} B  texts {r['bytes_on_disk']['texts']:>8,} B  "
            f"{r['bytes_per_recorded_minute']:>9,} B per recorded minute as stored; "
            f"{r['bytes_per_recorded_minute_compacted']:>9,} B once compacted into units"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
