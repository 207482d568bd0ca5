"""The detection engine's Prometheus metrics: gauges and counters read from its health at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from hitmetrix.detect.metrics import DetectionCollector
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore
from tests.detect.test_engine import auth_batch, make_engine, seal


def test_the_scrape_shows_the_engines_numbers(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path / "meta")
    try:
        pid = meta.create_project("site").id
        seal(tmp_path / "spool", auth_batch(pid, 4))
        engine = make_engine(tmp_path, meta)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DetectionCollector(engine))
        before = generate_latest(registry).decode()
        assert "hitmetrix_detect_segments_behind 1.0" in before
        engine.run_once()
        after = generate_latest(registry).decode()
        assert len(security.alerts(meta, pid)) == 1
        assert "hitmetrix_detect_alerts_raised_total 1.0" in after
        assert "hitmetrix_detect_events_total 4.0" in after
        assert "hitmetrix_detect_segments_behind 0.0" in after
        assert "hitmetrix_detect_state_entries 1.0" in after
    finally:
        meta.close()
