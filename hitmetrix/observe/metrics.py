"""Prometheus metrics of one node, read at scrape time from the counters the parts already keep.

Capture (answers by status, what it accepted, its pipeline's step timings), the
spool (bytes on disk, sealed segments waiting and the oldest one's age), the
loader (its counters, recordings inbox, quarantine) and the live feed are read
when ``/metrics`` is scraped, so the hot path counts each thing once, in its
own module. Query latencies are the one histogram observed as they happen:
wrap a store call with ``timed(name, fn)``.

Each app has its own ``CollectorRegistry`` (never the process-global one), so
that several apps in one process (tests) do not mix their numbers.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hitmetrix.capture.enrich import DROPS, STEP_TIMINGS, StepStats
from hitmetrix.capture.routes import ACCEPTED, ANSWERS
from hitmetrix.observe.feed import LiveFeed
from hitmetrix.spool.segment import parse_segment_name

P = ParamSpec("P")
R = TypeVar("R")

QUERY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Observed as queries run; registered in every app's registry (registry=None keeps it out of the global one).
QUERY_SECONDS = Histogram(
    "hitmetrix_query_duration_seconds",
    "Time the store took to answer a dashboard or API query, by query.",
    ["query"],
    buckets=QUERY_BUCKETS_S,
    registry=None,
)


def timed(name: str, fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` timed under ``query=name`` in ``hitmetrix_query_duration_seconds`` (failures too)."""
    histogram = QUERY_SECONDS.labels(query=name)

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return run


class SpoolLike(Protocol):
    directory: Path

    @property
    def failure(self) -> str | None: ...


class LoaderLike(Protocol):
    def health(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NodeSources:
    """Where the node's numbers are read from at scrape time."""

    spool: SpoolLike
    loader: LoaderLike
    feed: LiveFeed | None = None
    # The process-wide counters capture keeps; tests pass their own.
    answers: Mapping[int, int] = field(default_factory=lambda: ANSWERS)
    accepted: Mapping[str, int] = field(default_factory=lambda: ACCEPTED)
    drops: Mapping[str, int] = field(default_factory=lambda: DROPS)
    step_timings: Mapping[str, StepStats] = field(default_factory=lambda: STEP_TIMINGS)


def spool_bytes(directory: Path) -> int:
    """Bytes of every segment file (sealed or being written) in the spool directory: data not loaded yet."""
    total = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if parse_segment_name(entry.name) is None:
            continue
        try:
            total += entry.stat().st_size
        except FileNotFoundError:  # loaded and removed meanwhile
            continue
    return total


def step_histogram(timings: Mapping[str, StepStats]) -> HistogramMetricFamily:
    """The capture pipeline's step timings (kept by ``run_pipeline``) as one Prometheus histogram."""
    family = HistogramMetricFamily(
        "hitmetrix_capture_step_duration_seconds", "Time each capture pipeline step took per batch.", labels=["step"]
    )
    for name, stats in sorted(dict(timings).items()):
        counts = list(stats.buckets)  # a copy: the event loop keeps counting while we read
        total_s = stats.total_s
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(StepStats.BUCKET_BOUNDS_S, counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric([name], buckets, total_s)
    return family


class NodeCollector(Collector):
    """Reads ``NodeSources`` on every scrape; a few directory listings, no store queries."""

    def __init__(self, sources: NodeSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._capture()
        yield from self._spool_and_loader()
        yield from self._live()

    def _capture(self) -> Iterator[Metric]:
        src = self.sources
        requests = CounterMetricFamily(
            "hitmetrix_capture_requests", "Capture requests answered, by HTTP status.", labels=["status"]
        )
        for status, count in sorted(dict(src.answers).items()):
            requests.add_metric([str(status)], count)
        yield requests
        accepted = dict(src.accepted)
        for key, help_text in (
            ("batches", "Batches accepted (durable in the spool)."),
            ("events", "Events accepted (durable in the spool)."),
            ("chunks", "Recording chunks accepted (durable in the spool)."),
            ("bytes", "Bytes appended to the spool by accepted batches."),
        ):
            name = "hitmetrix_spool_appended_bytes" if key == "bytes" else f"hitmetrix_capture_{key}_accepted"
            yield CounterMetricFamily(name, help_text, value=accepted.get(key, 0))
        drops = CounterMetricFamily(
            "hitmetrix_capture_batches_dropped", "Batches answered 200 but not stored, by reason.", labels=["reason"]
        )
        for reason, count in sorted(dict(src.drops).items()):
            drops.add_metric([reason], count)
        yield drops
        yield step_histogram(src.step_timings)

    def _spool_and_loader(self) -> Iterator[Metric]:
        src = self.sources
        health = src.loader.health()
        gauges = (
            ("spool_bytes", "Bytes of spool segments on disk, not loaded yet.", spool_bytes(src.spool.directory)),
            ("spool_failed", "1 while the spool refuses appends until restarted.", int(bool(src.spool.failure))),
            ("loader_lag_segments", "Sealed spool segments waiting for the loader.", health["loader_lag_segments"]),
            (
                "loader_lag_seconds",
                "Age of the oldest sealed spool segment waiting for the loader.",
                health["loader_oldest_segment_age_s"],
            ),
            ("recording_inbox_chunks", "Recording chunks waiting to be stored.", health["recording_inbox_chunks"]),
            (
                "recording_inbox_bytes",
                "Bytes (gzip, as received) of recording chunks waiting to be stored.",
                health["recording_inbox_bytes"],
            ),
        )
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(f"hitmetrix_{name}", help_text, value=value)
        quarantine = GaugeMetricFamily(
            "hitmetrix_quarantine_items",
            "Open quarantine items by kind; spool_files are files start-up recovery moved aside.",
            labels=["kind"],
        )
        for kind, count in sorted(health["quarantine"].items()):
            quarantine.add_metric([kind], count)
        yield quarantine
        for name, count in sorted(health["loader_counters"].items()):
            yield CounterMetricFamily(
                f"hitmetrix_loader_{name}", f"Loader counter {name} since the server started.", value=count
            )

    def _live(self) -> Iterator[Metric]:
        feed = self.sources.feed
        if feed is None:
            return
        yield GaugeMetricFamily(
            "hitmetrix_live_streams", "Open live-view streams (server-sent events).", value=feed.readers
        )
        yield CounterMetricFamily(
            "hitmetrix_live_feed_errors",
            "Errors the live feed swallowed to keep capture answering.",
            value=feed.swallowed_errors,
        )


def build_registry(sources: NodeSources, *, process: bool = True) -> CollectorRegistry:
    """A registry of its own with the node's metrics, the query histogram and (by default) the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(sources))
    registry.register(QUERY_SECONDS)
    if process:
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
