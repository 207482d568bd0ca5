"""Prometheus metrics of the detection engine, read from ``DetectionEngine.health()`` at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hitmetrix.detect.engine import DetectionEngine
from hitmetrix.detect.process import DetectionProcess

_GAUGES = (
    ("detect_events_per_second", "detect_events_per_s", "Events the detectors observed per second (last 10 s)."),
    ("detect_lag_milliseconds", "detect_lag_ms", "From a batch's acknowledgement to its observation, last batch."),
    ("detect_lag_p95_milliseconds", "detect_lag_ms_p95", "95th percentile of the lag over the last 1000 batches."),
    (
        "detect_alert_latency_p95_milliseconds",
        "detect_alert_latency_ms_p95",
        "95th percentile from the acknowledgement of the batch that crossed a rule to its new alert.",
    ),
    ("detect_state_entries", "detect_state_entries", "Entities held in the detectors' windowed state."),
    ("detect_state_bytes", "detect_state_bytes", "Estimated memory of the detectors' windowed state."),
    ("detect_segments_behind", "detect_segments_behind", "Sealed spool segments the engine has not observed yet."),
)


class DetectionCollector(Collector):
    def __init__(self, engine: DetectionEngine | DetectionProcess) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        health = self.engine.health()
        for name, key, help_text in _GAUGES:
            yield GaugeMetricFamily(f"hitmetrix_{name}", help_text, value=health.get(key, 0))
        for name, count in sorted(health.get("detect_counters", {}).items()):
            yield CounterMetricFamily(
                f"hitmetrix_detect_{name}", f"Detection engine counter {name} since the server started.", value=count
            )
