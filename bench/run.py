"""Benchmarks: events/s end to end (HTTP → spool → store), the session list, recorded bytes per minute,
time to first replay frame.

Run with `make bench` (sizes of the session list: `make bench BENCH_ARGS="--sessions 1000000,10000000"`).
Starts a real server on 127.0.0.1, drives it with wrk (50-event batches, ~22 KB
each), waits until every acknowledged event is in the store, times the session
list at each size, then records a scripted visit of the demo site in real
Chromium. Results are printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.replay_first_frame import bench_first_frame
from bench.sessions_list import bench_sessions
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, wait_for

HERE = Path(__file__).resolve().parent

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "rb"):read("*a")
"""


def realistic_batch() -> dict:
    batch = make_batch(events=50)
    for i, event in enumerate(batch["events"]):
        event.update(
            type="click" if i % 3 else "pageview",
            title="Blue mug — Demo shop",
            referrer="https://search.example/?q=blue+mug" if i % 3 == 0 else "",
            selector=f"body > main#view > div.product:nth-of-type({i % 7}) > button.buy.primary",
            tag="button",
            text="Add to cart",
            x=100 + i,
            y=200 + i,
            vw=1280,
            vh=800,
            props={
                "product": f"sku-{i:05d}",
                "price": 12.5,
                "currency": "EUR",
                "position": i,
                "campaign": "winter-sale-2026",
            },
        )
    return batch


def run_wrk(url: str, body_path: Path, seconds: int, connections: int) -> dict:
    script = body_path.with_suffix(".lua")
    script.write_text(LUA.format(body=body_path))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    return {
        "requests": total,
        "acked": total - (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": errors.group(1) if errors else "",
        "mean_latency": latency.group(1) if latency else "",
        "raw": out,
    }


def bench_throughput(work: Path, seconds: int, connections: int) -> dict:
    data_dir = work / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("bench", ip_anonymisation="truncate")
    meta.close()
    server = ServerProcess(
        data_dir, demo=False, env={"HITMETRIX_RATE_LIMIT_RPS": "1000000", "HITMETRIX_RATE_LIMIT_BURST": "1000000"}
    )
    server.start()
    try:
        batch = realistic_batch()
        body = work / "batch.json"
        body.write_bytes(json.dumps(batch).encode())
        started = time.monotonic()
        result = run_wrk(f"{server.url}/api/v1/batch?key={project.public_key}", body, seconds, connections)
        capture_s = time.monotonic() - started
        expected = result["acked"] * 50

        def stored() -> int:
            rows = server.api(f"/api/v1/projects/{project.id}/sessions?limit=1").json()["sessions"]
            return int(rows[0]["events"]) if rows else 0

        wait_for(lambda: stored() >= expected, 300, 0.2, what="all acknowledged events stored")
        total_s = time.monotonic() - started
        # Requests in flight when wrk stops are stored but not counted by wrk: stored >= acknowledged.
        stored_events = stored()
        assert stored_events >= expected, (stored_events, expected)
    finally:
        server.stop()
    return {
        "batch_bytes": body.stat().st_size,
        "events_per_batch": 50,
        "connections": connections,
        "duration_s": seconds,
        "requests_per_s": round(result["requests"] / capture_s),
        "acked_events_per_s": round(expected / capture_s),
        "end_to_end_events_per_s": round(stored_events / total_s),
        "events_acknowledged": expected,
        "events_stored": stored_events,
        "non_2xx": result["requests"] - result["acked"],
        "socket_errors": result["socket_errors"],
        "mean_latency": result["mean_latency"],
    }


def bench_recording(work: Path, seconds: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    server = ServerProcess(work / "rec-data", demo=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + "/demo/")
            page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId")
            session_id = page.evaluate("() => window.hitmetrix.sessionId()")
            started = time.monotonic()
            i = 0
            # A scripted, busy visitor on the demo's home page: clicks, typing, mouse movement and scrolling.
            while time.monotonic() - started < seconds:
                i += 1
                page.click(f"#like-{1 + i % 3}")
                page.mouse.move(100 + i % 400, 200 + i % 300, steps=10)
                page.fill("#home-q", f"visitor {i}")
                page.type("#home-q", " hello there", delay=20)
                page.mouse.wheel(0, 600)
                page.mouse.wheel(0, -600)
            duration_s = time.monotonic() - started
            visit_end_ms = int(page.evaluate("() => Date.now()"))
            page.goto("about:blank")  # pagehide: the tracker sends the last chunk
            browser.close()
        pid = next(p["id"] for p in server.api("/api/v1/projects").json() if p["name"] == "demo")

        def whole_recording() -> list[dict] | None:
            """The chunk index once every chunk is stored: seq 0..n-1 with none missing, reaching the
            visit's last scroll (under a second before its end)."""
            r = server.api(f"/api/v1/projects/{pid}/sessions/{session_id}")
            chunks = r.json()["recording_chunks"] if r.status_code == 200 else []
            complete = [c["seq"] for c in chunks] == list(range(len(chunks)))
            reaches_end = bool(chunks) and max(c["last_ts"] for c in chunks) >= visit_end_ms - 2000
            return chunks if complete and reaches_end else None

        chunks = wait_for(whole_recording, 60, 0.2, what="the whole recording stored")
    finally:
        server.stop()
    minutes = duration_s / 60
    raw = sum(c["raw_bytes"] for c in chunks)
    stored = sum(c["bytes"] for c in chunks)
    return {
        "visit_s": round(duration_s, 1),
        "loops": i,
        "chunks": len(chunks),
        "raw_kib_per_min": round(raw / 1024 / minutes, 1),
        "stored_kib_per_min": round(stored / 1024 / minutes, 1),
        "compression": round(raw / stored, 2) if stored else None,
    }


def _sizes(text: str) -> list[int]:
    """"1000000,10000000" → [1000000, 10000000]; "0" → [] (skip the list benchmark)."""
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    if any(size < 0 for size in sizes):
        raise argparse.ArgumentTypeError("sizes are 0 or more")
    return [size for size in sizes if size]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20, help="wrk duration")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--visit-seconds", type=int, default=60, help="length of the recorded demo visit")
    parser.add_argument("--skip-recording", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-first-frame", action="store_true", help="skip the time to first replay frame")
    parser.add_argument(
        "--sessions",
        type=_sizes,
        default=[100_000],
        help="synthetic sessions for the list benchmark, comma-separated sizes (e.g. 1000000,10000000; 0 skips)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: `make bench` installs it (Debian package wrk)", file=sys.stderr)
        return 2
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": __import__("os").cpu_count()}
    size = json.loads((HERE.parent / "tracker" / "dist" / "size.json").read_text())
    results["tracker"] = size
    with tempfile.TemporaryDirectory(prefix="hm-bench-") as tmp:
        if not args.skip_throughput:
            results["throughput"] = bench_throughput(Path(tmp), args.seconds, args.connections)
            print(json.dumps(results["throughput"], indent=2), flush=True)
        for n_sessions in args.sessions:
            result = bench_sessions(Path(tmp), n_sessions)
            results.setdefault("session_list", {})[str(n_sessions)] = result
            print(json.dumps(result, indent=2), flush=True)
            shutil.rmtree(Path(tmp) / f"sessions-{n_sessions}", ignore_errors=True)
        if not args.skip_recording:
            results["recording"] = bench_recording(Path(tmp), args.visit_seconds)
            print(json.dumps(results["recording"], indent=2), flush=True)
        if not args.skip_first_frame:
            results["replay_first_frame"] = bench_first_frame(Path(tmp))
            print(json.dumps(results["replay_first_frame"], indent=2), flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"tracker: {size['gzip_bytes']} bytes gzipped")
    if "throughput" in results:
        print(f"end to end: {results['throughput']['end_to_end_events_per_s']} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
