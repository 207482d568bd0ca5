"""Time to first replay frame: from opening a replay page until its player shows the recorded page.

Run with `python -m bench.replay_first_frame` (also part of `make bench`). Starts a real server on
127.0.0.1, records a multi-page visit of a small static site (three pages, typing, scrolling) with the
real tracker in Chromium, then opens the session's replay page `--runs` times, each in a fresh browser
context (signed in, empty cache), and measures on the page's own clock (`performance.now()`, from the
start of the navigation) when the replay iframe first holds the rebuilt full snapshot. Prints p50/p95
and writes bench/results/replay_first_frame.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The replay iframe holds the recorded page once rrweb rebuilt its first full snapshot into it.
FIRST_FRAME = """() => {
  const frame = document.querySelector('.replayer-wrapper iframe');
  const doc = frame && frame.contentDocument;
  return doc && doc.getElementById('bench-title') ? performance.now() : false;
}"""


def site_pages(hm: str, key: str) -> dict[str, str]:
    def page(n: int, next_page: str) -> str:
        rows = "\n".join(f"<p>Paragraph {i} of page {n}: some text to record and to lay out.</p>" for i in range(60))
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>Page {n}</title>
<script async src="{hm}/hm.js" data-key="{key}"></script>
<style>body {{ font: 16px/1.5 sans-serif; margin: 24px; }} header {{ background: #1d2330; color: #fff; padding: 12px; }}
</style></head><body><header><h1 id="bench-title">Bench page {n}</h1></header>
<label>Name <input id="name"></label> <a id="next" href="{next_page}">Next page</a>
{rows}</body></html>"""

    return {"p1.html": page(1, "p2.html"), "p2.html": page(2, "p3.html"), "p3.html": page(3, "p1.html")}


def record_visit(browser: Any, site_url: str) -> str:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(site_url + "/p1.html")
    page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId && window.hitmetrix.sessionId()")
    session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
    for _ in range(3):
        page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId && window.hitmetrix.sessionId()")
        page.type("#name", "bench visitor", delay=30)
        page.mouse.wheel(0, 1200)
        page.wait_for_timeout(600)  # a visitor reading: the recording spans time, not only events
        page.mouse.wheel(0, -1200)
        page.click("#next")
        page.wait_for_selector("#bench-title")
    page.goto("about:blank")  # pagehide: the tracker sends the rest
    context.close()
    return session_id


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def bench_first_frame(work: Path, runs: int = 20) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, StaticSite
    from tests.e2e.dashboard import demo_member
    from tests.support import ServerProcess, wait_for

    data_dir = work / "first-frame-data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    site_root = work / "first-frame-site"
    site_root.mkdir(parents=True, exist_ok=True)
    site = StaticSite(site_root)
    try:
        for name, text in site_pages(server.url, member.project_key).items():
            site.write(name, text)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            session_id = record_visit(browser, site.url)

            def stored() -> dict[str, Any] | None:
                r = server.api(f"/api/v1/projects/{member.project_id}/sessions/{session_id}")
                body = r.json() if r.status_code == 200 else None
                pages = body and sum(e["type"] == "pageview" for e in body["events"])
                return body if body and pages and pages >= 4 and body["recording_chunks"] else None

            body = wait_for(stored, 60, 0.2, what="the recorded visit in the store")
            progress = f"/api/v1/projects/{member.project_id}/sessions/{session_id}/recording/chunks"
            # A finished visit, replayed as such (not followed live): the page was left over 10 s ago.
            wait_for(lambda: server.api(progress).json()["live"] is False, 60, 0.5, what="the visit to end")
            login = browser.new_context()
            page = login.new_page()
            page.goto(server.url + "/login")
            page.fill("input[name=email]", member.email)
            page.fill("input[name=password]", member.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
            signed_in = login.storage_state()
            login.close()
            url = f"{server.url}/projects/{member.project_id}/sessions/{session_id}"
            first_frame_ms: list[float] = []
            for _ in range(runs):
                context = browser.new_context(viewport={"width": 1280, "height": 860}, storage_state=signed_in)
                page = context.new_page()
                page.goto(url, wait_until="commit")
                handle = page.wait_for_function(FIRST_FRAME, polling="raf", timeout=30_000)
                first_frame_ms.append(round(float(handle.json_value()), 1))
                context.close()
            browser.close()
    finally:
        site.stop()
        server.stop()
    chunks = body["recording_chunks"]
    return {
        "runs": runs,
        "pageviews": sum(e["type"] == "pageview" for e in body["events"]),
        "chunks": len(chunks),
        "recording_bytes": sum(c["bytes"] for c in chunks),
        "p50_ms": round(statistics.median(first_frame_ms), 1),
        "p95_ms": round(percentile(first_frame_ms, 0.95), 1),
        "min_ms": min(first_frame_ms),
        "max_ms": max(first_frame_ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="replay page openings to time")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="hm-first-frame-") as tmp:
        result = bench_first_frame(Path(tmp), args.runs)
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "replay_first_frame.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"time to first replay frame: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms ({args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
