"""Detection benchmarks: engine rate, capture rate with detection on and off, state memory, alert latency.

Run with `python -m bench.detect` (add `--quick` for a short run). Four figures:

1. detection rate: events/s through the engine and every built-in detector, in process, from a
   synthetic spool of sealed segments, for two kinds of traffic: "browser_heavy", the common case (tracker
   batches of pageviews, clicks and scrolls, a tenth of server requests, few sign-ins), and "alert_heavy", an
   attack flood (requests from HTTP tools, 404s, failed sign-ins: an alert every ~35 events);
2. capture rate with detection on and off: a real server driven by wrk (50-event batches, as
   `bench/run.py` sends them), acknowledged events/s each way, whether detection kept up, and the CPU
   seconds the detection process spent (events per CPU second: the capture rate it could follow);
3. state memory with 1 M distinct IPs: every detector fed one request per address, the state's
   entries and estimated bytes and the process's resident memory growth;
4. alert latency over real HTTP: a brute force posted to /api/v1/server/batch, from its
   acknowledgement until /healthz counts the new alert (p50 / p95 over repeated attacks).

Results are printed and written to bench/results/detect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.run import realistic_batch, run_wrk
from hitmetrix.detect.detectors import all_detectors
from hitmetrix.detect.engine import DetectionEngine
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import state_of
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.settings import load_settings
from hitmetrix.spool import Spool
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, wait_for

HERE = Path(__file__).resolve().parent
SECRET = b"b" * 32
UAS = ("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0", "curl/8.5.0", "python-requests/2.32", "Mozilla/5.0 Firefox/128")


def synthetic_batch(project_id: int, rng: random.Random, now_ms: int, client: int) -> StoredBatch:
    """50 events of one client: page and profile requests, some 404s and failed sign-ins, or browser clicks."""
    events = []
    source = "middleware" if client % 4 else ""
    for i in range(50):
        ts = now_ms + i * 50
        roll = rng.random()
        if source == "":
            kind, url, name, props = "click", f"https://date.example/profiles/{rng.randrange(5000)}", "", ""
        elif roll < 0.08:
            kind, url, name = "auth", "/login", "signin"
            props = json.dumps({"ok": roll < 0.02, "user_key": f"{rng.randrange(20000):016x}",
                                "user_display": "m…@example.com", "reason": ""})
        else:
            status = 404 if roll > 0.95 else 200
            url = f"/profiles/{rng.randrange(5000)}" if roll < 0.7 else f"/search?q={rng.randrange(99)}"
            name = "/profiles/{id}" if roll < 0.7 else "/search"
            kind = "request"
            props = json.dumps({"method": "GET", "status": status, "duration_ms": 3.1, "bytes": 5120})
        events.append(StoredEvent(event_id=uuid.uuid4().hex, type=kind, ts=ts, client_ts=ts, url=url, name=name,
                                  props=props))
    net = f"10.{client // 65536 % 256}.{client // 256 % 256}.0"
    return StoredBatch(
        batch_id=uuid.uuid4().hex, project_id=project_id, received_at=now_ms, session_id=f"s-{client:08d}",
        anonymous_id="", ip=net, country="DE", asn=64500 + client % 50, as_org="Example Net",
        user_agent=UAS[client % len(UAS)], source=source, ip_key=f"{client:016x}", ip_net=net + "/24", events=events,
    )


BROWSER_KINDS = ("pageview", "click", "click", "scroll", "scroll", "scroll", "input", "vitals")
PAGES = ("/", "/products/{id}", "/category/{id}", "/cart", "/search", "/about")


def browser_heavy_batch(project_id: int, rng: random.Random, now_ms: int, client: int) -> StoredBatch:
    """The common case: a tracker batch of pageviews, clicks and scrolls (9 in 10), else a server batch of the
    same visitor's page, asset and API requests with now and then a sign-in that mostly succeeds."""
    events = []
    source = "middleware" if rng.random() < 0.1 else ""
    for i in range(50):
        ts = now_ms + i * 200
        route = rng.choice(PAGES)
        page = route.replace("{id}", str(rng.randrange(500)))
        if source == "":
            kind = rng.choice(BROWSER_KINDS)
            props = json.dumps({"depth": rng.randrange(100)}) if kind == "scroll" else ""
            if kind == "click":
                props = json.dumps({"product": f"sku-{rng.randrange(500):05d}", "price": 12.5, "currency": "EUR"})
            events.append(StoredEvent(event_id=uuid.uuid4().hex, type=kind, ts=ts, client_ts=ts,
                                      url="https://shop.example" + page, title="Blue mug — Demo shop",
                                      selector="body > main > div.product > button.buy", tag="button",
                                      text="Add to cart", x=100 + i, y=200 + i, vw=1280, vh=800, props=props))
            continue
        roll = rng.random()
        if roll < 0.01:
            kind, url, name = "auth", "/login", "signin"
            props = json.dumps({"ok": roll < 0.009, "user_key": f"{client:016x}", "user_display": "m…@example.com",
                                "reason": ""})
        else:
            kind, url, name = "request", page, route
            if roll > 0.6:
                url = name = f"/static/app.{rng.randrange(9)}.js"
            props = json.dumps({"method": "GET", "status": 200, "duration_ms": 3.1, "bytes": 5120})
        events.append(StoredEvent(event_id=uuid.uuid4().hex, type=kind, ts=ts, client_ts=ts, url=url, name=name,
                                  props=props))
    net = f"10.{client // 65536 % 256}.{client // 256 % 256}.0"
    return StoredBatch(
        batch_id=uuid.uuid4().hex, project_id=project_id, received_at=now_ms, session_id=f"b-{client:08d}",
        anonymous_id=f"a-{client:08d}", ip=net, country="DE", asn=64500 + client % 50, as_org="Example Net",
        browser="Chrome", device_type="desktop", user_agent=UAS[0] + f" r{client % 7}", source=source,
        ip_key=f"{client:016x}", ip_net=net + "/24", events=events,
    )


TRAFFIC = {"alert_heavy": synthetic_batch, "browser_heavy": browser_heavy_batch}


def bench_engine_rate(work: Path, batches: int, traffic: str = "alert_heavy") -> dict[str, Any]:
    data_dir = work / f"engine-{traffic}"
    make_batch = TRAFFIC[traffic]
    meta = MetaStore("", data_dir)
    project = meta.create_project("bench")
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    spool = Spool(data_dir / "spool", fsync="never", segment_max_bytes=4 * 1024 * 1024, segment_max_age_s=3600)
    spool.start()
    for n in range(batches):
        spool.append_blocking(encode_batch(make_batch(project.id, rng, now_ms + n * 10, rng.randrange(20000))))
    spool.close()
    settings = load_settings({"data_dir": data_dir}, environ={})
    alone = _detectors_alone(data_dir / "spool", all_detectors(settings))
    engine = DetectionEngine(data_dir / "spool", meta, data_dir=data_dir, detectors=all_detectors(settings),
                             secret=SECRET, durable=False)
    started = time.perf_counter()
    started_cpu_s = time.process_time()
    segments = engine.run_once()
    elapsed_s = time.perf_counter() - started
    cpu_s = time.process_time() - started_cpu_s
    entries, size = engine.state_size()
    counters = engine.counters
    meta.close()
    return {
        "traffic": traffic,
        "events": counters["events"],
        "segments": segments,
        "seconds": round(elapsed_s, 2),
        "events_per_s": round(counters["events"] / elapsed_s),
        # The machine is shared: CPU time says what one core of its own would do.
        "events_per_cpu_s": round(counters["events"] / cpu_s),
        "alerts_raised": counters["alerts_raised"],
        "alerts_merged": counters["alerts_merged"],
        "detectors": len(engine.detectors),
        "state_entries": entries,
        "state_bytes_estimate": size,
        "detectors_alone_events_per_s": alone,
    }


def _detectors_alone(spool_dir: Path, detectors: list[Any]) -> int:
    """Events/s of the detectors on observations decoded beforehand: the engine's cost minus decoding and store."""
    from hitmetrix.detect.observation import observations
    from hitmetrix.model import decode_batch
    from hitmetrix.spool.segment import read_records

    decoded = [
        obs
        for path in sorted(spool_dir.glob("*.seg"))
        for record in read_records(path)
        for obs in observations(decode_batch(record))
    ]
    # Routed by kind as the engine routes them (a detector declaring ``kinds`` sees only those events).
    routes = {
        kind: [d for d in detectors if getattr(d, "kinds", None) is None or kind in d.kinds]
        for kind in {obs.kind for obs in decoded}
    }
    started = time.perf_counter()
    for obs in decoded:
        for detector in routes[obs.kind]:
            detector.observe(obs)
    return round(len(decoded) / (time.perf_counter() - started))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def bench_state_memory(ips: int, max_entities: int) -> dict[str, Any]:
    settings = load_settings({"detect_max_entities": max_entities}, environ={})
    detectors = all_detectors(settings)
    now_ms = int(time.time() * 1000)
    props = {"method": "GET", "status": 200, "duration_ms": 3.0, "bytes": 4096}
    before = _rss_bytes()
    started = time.perf_counter()
    for i in range(ips):
        obs = Observation(
            project_id=1, ts_ms=now_ms + i // 100, kind="request", session_id=f"s-{i:010d}", source="middleware",
            ip_key=f"{i:016x}", ip_net=f"10.{i >> 16 & 255}.{i >> 8 & 255}.0/24", ip_display=f"10.{i >> 16 & 255}.0.0",
            country="DE", asn=64500 + i % 1000, as_org="Example Net", user_agent=UAS[i % len(UAS)],
            url=f"/profiles/{i % 5000}", name="/profiles/{id}", props=props,
        )
        for detector in detectors:
            detector.observe(obs)
    elapsed_s = time.perf_counter() - started
    entries = size = 0
    by_rule: dict[str, dict[str, int]] = {}
    for detector in detectors:
        containers = state_of(detector)
        rule_bytes = sum(c.bytes_estimate() for c in containers)
        rule_entries = sum(len(c) for c in containers)
        by_rule[detector.rule] = {"containers": len(containers), "entries": rule_entries, "bytes": rule_bytes}
        entries += rule_entries
        size += rule_bytes
    return {
        "distinct_ips": ips,
        "detect_max_entities": max_entities,
        "state_entries": entries,
        "state_bytes_estimate": size,
        "rss_growth_bytes": _rss_bytes() - before,
        "events_per_s": round(ips / elapsed_s),
        "by_detector": by_rule,
    }


def bench_capture(work: Path, detect: bool, seconds: int, connections: int) -> dict[str, Any]:
    data_dir = work / f"capture-{'on' if detect else 'off'}"
    meta = MetaStore("", data_dir)
    project = meta.create_project("bench", ip_anonymisation="truncate")
    meta.close()
    env = {"HITMETRIX_RATE_LIMIT_RPS": "1000000", "HITMETRIX_RATE_LIMIT_BURST": "1000000",
           "HITMETRIX_DETECT": "1" if detect else "0"}
    server = ServerProcess(data_dir, demo=False, env=env).start()
    try:
        if detect:
            wait_for(lambda: "detect_cursor" in httpx.get(server.url + "/healthz", timeout=10).json()["detection"], 60)
        body = work / "batch.json"
        body.write_bytes(json.dumps(realistic_batch()).encode())
        started = time.monotonic()
        result = run_wrk(f"{server.url}/api/v1/batch?key={project.public_key}", body, seconds, connections)
        capture_s = time.monotonic() - started
        acked_events = result["acked"] * 50
        answer: dict[str, Any] = {
            "detection": "on" if detect else "off",
            "requests_per_s": round(result["requests"] / capture_s),
            "acked_events_per_s": round(acked_events / capture_s),
            "mean_latency": result["mean_latency"],
            "non_2xx": result["requests"] - result["acked"],
        }
        if detect:
            def observed() -> int:
                health = httpx.get(server.url + "/healthz", timeout=10).json()["detection"]
                return int(health["detect_counters"]["events"])

            wait_for(lambda: observed() >= acked_events, 600, 0.2, what="detection caught up")
            caught_up_s = time.monotonic() - started
            health = httpx.get(server.url + "/healthz", timeout=10).json()["detection"]
            assert server.proc is not None
            detect_cpu_s = _children_cpu_s(server.proc.pid, "hitmetrix.detect.process")
            answer.update(
                # CPU seconds the detection process spent (on a loaded machine, what it would need of a core):
                # events observed per CPU second is how fast capture could go before detection fell behind.
                detection_cpu_s=round(detect_cpu_s, 2),
                detection_events_per_cpu_s=round(health["detect_counters"]["events"] / detect_cpu_s)
                if detect_cpu_s
                else None,
                detection_caught_up_after_s=round(caught_up_s - capture_s, 2),
                detection_events_observed=health["detect_counters"]["events"],
                detection_lag_ms_p95=health["detect_lag_ms_p95"],
                detection_state_bytes=health["detect_state_bytes"],
            )
        return answer
    finally:
        server.stop()


def _children_cpu_s(pid: int, command_part: str) -> float:
    """User + system CPU seconds of the child processes of ``pid`` whose command line contains ``command_part``."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        try:
            if command_part not in Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                continue
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def bench_alert_latency(work: Path, attacks: int) -> dict[str, Any]:
    data_dir = work / "latency"
    meta = MetaStore("", data_dir)
    project = meta.create_project("bench")
    meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    latencies_ms: list[float] = []
    try:
        wait_for(lambda: "detect_cursor" in httpx.get(server.url + "/healthz", timeout=10).json()["detection"], 60)
        for n in range(attacks):
            def raised() -> int:
                health = httpx.get(server.url + "/healthz", timeout=10).json()["detection"]
                return int(health["detect_counters"]["alerts_raised"])

            before = raised()
            now = int(time.time() * 1000)
            events = [
                {"type": "auth", "id": str(uuid.uuid4()), "ts": now - 100 + i, "ip": f"203.0.113.{n % 250 + 1}",
                 "user_agent": "python-requests/2.32", "path": "/login", "kind": "signin", "ok": False,
                 "username": f"victim{n}@example.com"}
                for i in range(12)
            ]
            body = {"batch_id": "bf" + uuid.uuid4().hex[:16], "sent_at": now, "source": "middleware", "events": events}
            answer = httpx.post(server.url + "/api/v1/server/batch", json=body, timeout=30,
                                headers={"Authorization": f"Bearer {project.server_key}"})
            acked = time.monotonic()
            assert answer.status_code == 200, answer.text
            wait_for(lambda before=before: raised() > before, 30, 0.02, what="the alert")  # type: ignore[misc]
            latencies_ms.append((time.monotonic() - acked) * 1000)
        health = httpx.get(server.url + "/healthz", timeout=10).json()["detection"]
    finally:
        server.stop()
    ordered = sorted(latencies_ms)
    return {
        "attacks": attacks,
        "p50_ms": round(statistics.median(ordered)),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
        "max_ms": round(ordered[-1]),
        "engine_p95_ms": health["detect_alert_latency_ms_p95"],
        "note": "ack → alert counted in /healthz; the spool seals a segment 1 s (spool_segment_max_age_s) after its "
        "first record, which dominates",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about a minute")
    parser.add_argument("--batches", type=int, default=20_000, help="50-event batches in the synthetic spool")
    parser.add_argument("--ips", type=int, default=1_000_000, help="distinct IPs for the state memory figure")
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration for each capture run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--attacks", type=int, default=20, help="brute-force attacks timed over HTTP")
    parser.add_argument("--skip-capture", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.ips, args.seconds, args.attacks = 1000, 50_000, 3, 3
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hm-bench-detect-") as tmp:
        work = Path(tmp)
        results["engine_rate"] = [bench_engine_rate(work, args.batches, traffic) for traffic in TRAFFIC]
        for row in results["engine_rate"]:
            print("detection rate:", json.dumps(row), flush=True)
        default_max = int(load_settings(environ={}).detect_max_entities)
        results["state_memory"] = [bench_state_memory(args.ips, default_max)]
        print("state memory:", json.dumps(results["state_memory"][0]), flush=True)
        if not args.skip_capture:
            results["capture"] = [bench_capture(work, d, args.seconds, args.connections) for d in (False, True)]
            for row in results["capture"]:
                print("capture:", json.dumps(row), flush=True)
        results["alert_latency"] = bench_alert_latency(work, args.attacks)
        print("alert latency:", json.dumps(results["alert_latency"]), flush=True)
    out = HERE / "results" / "detect.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
