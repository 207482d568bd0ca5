"""Analytics read speed: p50/p95 server time of each view at 10 M (and 100 M) events, a funnel against ClickHouse's
own ``windowFunnel`` over raw events on the same data, and loader throughput before and after the analytics work.

Run with ``make bench-analytics`` (``python -m bench.analytics --events 10000000,100000000``; a quick check that
it works: ``--quick``). For each size, synthetic traffic (``bench.analytics_data``) is made straight in a chDB
data directory under a temp dir, with the load-time aggregates the loader and migrations make; then each view
is called through its real query function, in process (server time, no HTTP), ``--repeat`` times after one
warm-up call. The machine may be shared: CPU time of each call and the load average are reported beside the
wall time. The loader throughput (``--loader-before TREE``: a tree of the release before, e.g. made with
``git archive``) is ``bench.run``'s end-to-end measurement run in both trees, alternately.
Results are printed and written to bench/results/analytics.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import analytics_data
from hitmetrix.analytics import funnels, overview, paths, retention
from hitmetrix.analytics.params import BadParameter
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY

HERE = Path(__file__).resolve().parent
SPAN_START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)  # a Monday: the weekly retention grid starts on it
ZONE = "UTC"
TARGETS_MS = {"overview": 300, "funnel_3_steps": 500, "retention": 1000, "paths": 1000}
TARGETS_100M_MS = {"funnel_3_steps": 2000}
# The funnel of the bench: land on the home page, see pricing, sign up (a custom event), within an hour.
FUNNEL = {
    "steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview", "path": "/pricing"},
              {"kind": "custom", "name": "signup"}],
    "window_s": 3600,
}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # chDB runs in this process: its threads count here
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """p50/p95/max wall time and p50 CPU time of ``fn`` over ``repeat`` calls, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        fn()
        walls.append((time.perf_counter() - wall0) * 1000)
        cpus.append((_cpu_s() - cpu0) * 1000)
    walls.sort()
    return {
        "p50_ms": round(statistics.median(walls), 1),
        "p95_ms": round(walls[min(len(walls) - 1, max(0, round(len(walls) * 0.95) - 1))], 1),
        "max_ms": round(walls[-1], 1),
        "cpu_p50_ms": round(statistics.median(cpus), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def views(store: ChdbStore, first: dt.date, last: dt.date) -> dict[str, Callable[[], Any]]:
    """The views measured, each as its page's query function would run it (the whole span as the range)."""
    base = overview.OverviewQuery(first, last)
    definition = funnels.FunnelDefinition.from_json(json.dumps(FUNNEL))
    out: dict[str, Callable[[], Any]] = {
        "overview": lambda: overview.overview(store, analytics_data.PROJECT_ID, base, ZONE),
        "funnel_3_steps": lambda: funnels.funnel(store, analytics_data.PROJECT_ID, base, definition, ZONE),
        "funnel_sessions_page": lambda: funnels.funnel_sessions(
            store, analytics_data.PROJECT_ID, base, definition, 3, "dropped", 0, 50, ZONE),
        "retention": lambda: retention.retention(
            store, analytics_data.PROJECT_ID, retention.RetentionQuery(base, "week", 8), ZONE),
        "paths": lambda: paths.paths(store, analytics_data.PROJECT_ID, paths.PathsQuery(base, start="/"), ZONE),
        "window_funnel_baseline": lambda: funnels.window_funnel_baseline(
            store, analytics_data.PROJECT_ID, base, definition, ZONE),
    }
    out.update(optional_views(store, first, last))
    return out


def optional_views(store: ChdbStore, first: dt.date, last: dt.date) -> dict[str, Callable[[], Any]]:
    """Trends, heatmaps and vitals when their modules exist, each built from URL parameters as its API does."""
    params = {"from": first.isoformat(), "to": last.isoformat()}
    found: dict[str, Callable[[], Any]] = {}
    for name, extra, build in (
        ("heatmaps", {"page": "/pricing"}, lambda m, q: lambda: m.heatmap(store, analytics_data.PROJECT_ID, q, ZONE)),
        ("vitals", {}, lambda m, q: lambda: m.vitals(store, analytics_data.PROJECT_ID, q, ZONE)),
    ):
        try:
            module = importlib.import_module(f"hitmetrix.analytics.{name}")
            query_class = next(getattr(module, c) for c in dir(module) if c.endswith("Query") and c != "OverviewQuery")
            query = query_class.from_query({**params, **extra}, last)
            found[name] = build(module, query)
        except (ImportError, StopIteration, BadParameter, TypeError, AttributeError) as exc:
            print(f"  {name}: not measured ({type(exc).__name__}: {exc})", flush=True)
    try:
        trends = importlib.import_module("hitmetrix.analytics.trends")
        base = overview.OverviewQuery(first, last)
        definition = trends.TrendDefinition.from_query(
            {**params, "series": json.dumps([{"kind": "pageview", "path": "/pricing"}])}, base)
        found["trends"] = lambda: trends.trend(store, analytics_data.PROJECT_ID, base, definition, ZONE)
    except (ImportError, BadParameter, TypeError, AttributeError, ValueError) as exc:
        print(f"  trends: not measured ({type(exc).__name__}: {exc})", flush=True)
    return found


# Background work ClickHouse may still do on data just written (merges, mutations), which would share the CPU with
# the views timed next.
_BACKGROUND = SYSTEM_QUERY(
    "SELECT (SELECT count() FROM system.merges) + (SELECT count() FROM system.mutations WHERE NOT is_done) AS n"
)
SETTLE_TIMEOUT_S = 600.0


def settle(store: ChdbStore) -> float:
    """Wait until ClickHouse has no merge or mutation running (at most SETTLE_TIMEOUT_S); the seconds waited."""
    start = time.monotonic()
    while int(store.query(_BACKGROUND)[0]["n"]) and time.monotonic() - start < SETTLE_TIMEOUT_S:
        time.sleep(0.5)
    return round(time.monotonic() - start, 1)


def bench_size(work: Path, n_events: int, repeat: int, only: set[str] | None = None,
               keep: bool = False) -> dict[str, Any]:
    """Generate ``n_events`` (or, with ``keep``, reuse the data a previous ``keep`` run left in ``work``) and
    time each view."""
    data_dir = work / f"analytics-{n_events}"
    built_file = work / f"analytics-{n_events}.built.json"
    reuse = keep and built_file.exists() and data_dir.exists()
    store = ChdbStore(data_dir)
    try:
        if reuse:
            print(f"{n_events:,} events: reusing {data_dir}", flush=True)
            built = json.loads(built_file.read_text())
        else:
            print(f"{n_events:,} events: generating", flush=True)
            built = analytics_data.build(store, n_events, SPAN_START, log=lambda line: print(line, flush=True))
            if keep:
                built_file.write_text(json.dumps(built))
        print(json.dumps(built), flush=True)
        print(f"  waited {settle(store)} s for background merges to finish", flush=True)
        first = SPAN_START.date()
        last = first + dt.timedelta(days=analytics_data.SPAN_DAYS - 1)
        result: dict[str, Any] = {"data": built, "range": [first.isoformat(), last.isoformat()], "views": {}}
        for name, fn in views(store, first, last).items():
            if only and name not in only:
                continue
            try:
                result["views"][name] = timed(fn, repeat)
            except Exception as exc:  # noqa: BLE001 - an optional view another engineer is still writing
                result["views"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            print(f"  {name}: {result['views'][name]}", flush=True)
        definition = funnels.FunnelDefinition.from_json(json.dumps(FUNNEL))
        base = overview.OverviewQuery(first, last)
        ours = funnels.funnel(store, analytics_data.PROJECT_ID, base, definition, ZONE)
        result["funnel_steps"] = [step["sessions"] for step in ours["steps"]]
        result["window_funnel_steps"] = funnels.window_funnel_baseline(
            store, analytics_data.PROJECT_ID, base, definition, ZONE)
        ours_ms = result["views"].get("funnel_3_steps", {}).get("p50_ms")
        theirs_ms = result["views"].get("window_funnel_baseline", {}).get("p50_ms")
        if ours_ms and theirs_ms:
            result["funnel_vs_window_funnel"] = round(ours_ms / theirs_ms, 2)
        return result
    finally:
        store.close()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


_THROUGHPUT = """
import json, sys, tempfile
from pathlib import Path
from bench.run import bench_throughput
with tempfile.TemporaryDirectory(prefix="hm-loader-") as tmp:
    print(json.dumps(bench_throughput(Path(tmp), int(sys.argv[1]), int(sys.argv[2]))))
"""


def loader_throughput(tree: Path, seconds: int, connections: int, env: dict[str, str] | None = None
                      ) -> dict[str, Any]:
    """``bench.run``'s capture → store measurement run in ``tree`` (its own code, its own server, with ``env``
    added to its environment), with the CPU time it and its children (server, wrk) used and the load average
    around it."""
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", _THROUGHPUT, str(seconds), str(connections)], cwd=tree,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(tree)})
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        return {"tree": str(tree), "error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "tree": str(tree),
        "end_to_end_events_per_s": result["end_to_end_events_per_s"],
        "acked_events_per_s": result["acked_events_per_s"],
        "events_stored": result["events_stored"],
        "cpu_s": round(cpu_s, 1),
        "cpu_ms_per_1000_events": round(1000 * cpu_s / max(1, result["events_stored"]), 2),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _sizes(text: str) -> list[int]:
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=_sizes, default=[10_000_000], help="sizes, e.g. 10000000,100000000")
    parser.add_argument("--quick", action="store_true", help="200 000 events, 3 calls each, no loader run")
    parser.add_argument("--repeat", type=int, default=20, help="calls per view (after one warm-up call)")
    parser.add_argument("--loader-before", type=Path, help="a tree of the release before (e.g. git archive)")
    parser.add_argument("--loader-after", type=Path, default=HERE.parent, help="the tree measured as 'after'")
    parser.add_argument("--loader-seconds", type=int, default=15)
    parser.add_argument("--loader-rounds", type=int, default=2, help="before/after pairs, alternating")
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--after-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the 'after' tree's server only (e.g. HITMETRIX_DETECT=false: the tree "
                        "before may not know it)")
    parser.add_argument("--views", default="", help="only these views, comma-separated (e.g. funnel_3_steps,"
                        "window_funnel_baseline)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "analytics.json")
    parser.add_argument("--data-dir", type=Path, help="keep the generated data here and reuse it on the next run "
                        "with the same --data-dir and size (generation takes minutes at 10 M events)")
    args = parser.parse_args()
    sizes, repeat = ([200_000], 3) if args.quick else (args.events, args.repeat)
    sizes = [size for size in sizes if size]  # --events 0: the loader comparison alone
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "targets_ms": TARGETS_MS,
        "targets_100m_ms": TARGETS_100M_MS, "funnel": FUNNEL, "sizes": {},
    }
    only = {name.strip() for name in args.views.split(",") if name.strip()}
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        for n_events in sizes:
            results["sizes"][str(n_events)] = bench_size(args.data_dir, n_events, repeat, only, keep=True)
    else:
        with tempfile.TemporaryDirectory(prefix="hm-bench-analytics-") as tmp:
            for n_events in sizes:
                results["sizes"][str(n_events)] = bench_size(Path(tmp), n_events, repeat, only)
    if not (args.quick or args.skip_loader):
        rounds: dict[str, list[dict[str, Any]]] = {"after": [], "before": []}
        for _ in range(args.loader_rounds):
            rounds["after"].append(loader_throughput(args.loader_after, args.loader_seconds, 64,
                                                     dict(kv.split("=", 1) for kv in args.after_env)))
            print(f"loader after: {rounds['after'][-1]}", flush=True)
            if args.loader_before:
                rounds["before"].append(loader_throughput(args.loader_before, args.loader_seconds, 64))
                print(f"loader before: {rounds['before'][-1]}", flush=True)
        results["loader"] = rounds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print_summary(results)
    return 0


def print_summary(results: dict[str, Any]) -> None:
    print(f"\n{'view':<24}{'events':>14}{'p50 ms':>10}{'p95 ms':>10}{'cpu ms':>10}{'load':>7}  target")
    for size, result in results["sizes"].items():
        for name, t in result["views"].items():
            if "error" in t:
                print(f"{name:<24}{int(size):>14,}  {t['error']}")
                continue
            target = (TARGETS_100M_MS if int(size) >= 100_000_000 else TARGETS_MS).get(name)
            verdict = "" if target is None else f"< {target} ms: {'met' if t['p50_ms'] < target else 'NOT met'}"
            print(f"{name:<24}{int(size):>14,}{t['p50_ms']:>10}{t['p95_ms']:>10}{t['cpu_p50_ms']:>10}"
                  f"{t['load_avg_1m']:>7}  {verdict}")
        if "funnel_vs_window_funnel" in result:
            print(f"funnel / windowFunnel at {int(size):,} events: {result['funnel_vs_window_funnel']}x "
                  f"(steps {result['funnel_steps']} vs windowFunnel {result['window_funnel_steps']})")
    for when, runs in results.get("loader", {}).items():
        for run in runs:
            print(f"loader {when}: {run}")


if __name__ == "__main__":
    sys.exit(main())
