"""Prometheus metrics: read at scrape time from the parts' own counters, behind their own token.

The collector is checked against sources it is handed; /metrics against a real
server process, whose numbers must move when a batch flows through capture, the
spool and the loader.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hitmetrix.capture.enrich import StepStats
from hitmetrix.observe.feed import LiveFeed
from hitmetrix.observe.metrics import NodeSources, build_registry, spool_bytes, timed
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, wait_for

METRICS_TOKEN = "metrics-" + "s3cret-token-for-tests"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class FakeSpool:
    def __init__(self, directory: Path, failure: str | None = None) -> None:
        self.directory = directory
        self.failure = failure


class FakeLoader:
    def __init__(self, health: dict[str, Any]) -> None:
        self._health = health

    def health(self) -> dict[str, Any]:
        return self._health


LOADER_HEALTH = {
    "loader_lag_segments": 3,
    "loader_oldest_segment_age_s": 12.5,
    "recording_inbox_chunks": 4,
    "recording_inbox_bytes": 4096,
    "quarantine": {"batch": 1, "chunk": 2, "segment": 0, "spool_files": 1},
    "loader_counters": {"events_loaded": 700, "segments_loaded": 9},
}


def test_the_collector_reads_every_source_at_scrape_time(tmp_path: Path) -> None:
    (tmp_path / "0000000000000001.seg").write_bytes(b"x" * 100)
    (tmp_path / "0000000000000002.open").write_bytes(b"x" * 20)
    (tmp_path / "next_id").write_text("3")  # not a segment
    answers: Counter[int] = Counter({200: 5, 429: 2})
    accepted: Counter[str] = Counter({"batches": 5, "events": 40, "chunks": 3, "bytes": 9000})
    step = StepStats()
    for seconds in (0.000004, 0.00003, 0.00003, 0.2):
        step.observe(seconds)
    feed = LiveFeed()
    feed.readers = 2
    sources = NodeSources(
        spool=FakeSpool(tmp_path, failure="disk full"),
        loader=FakeLoader(LOADER_HEALTH),
        feed=feed,
        answers=answers,
        accepted=accepted,
        drops=Counter({"empty": 7}),
        step_timings={"scrub": step},
    )
    registry = build_registry(sources, process=False)
    got = samples(generate_latest(registry).decode())
    assert got[("hitmetrix_capture_requests_total", (("status", "200"),))] == 5
    assert got[("hitmetrix_capture_requests_total", (("status", "429"),))] == 2
    assert got[("hitmetrix_capture_events_accepted_total", ())] == 40
    assert got[("hitmetrix_capture_batches_accepted_total", ())] == 5
    assert got[("hitmetrix_spool_appended_bytes_total", ())] == 9000
    assert got[("hitmetrix_capture_batches_dropped_total", (("reason", "empty"),))] == 7
    assert got[("hitmetrix_spool_bytes", ())] == 120
    assert got[("hitmetrix_spool_failed", ())] == 1
    assert got[("hitmetrix_loader_lag_segments", ())] == 3
    assert got[("hitmetrix_loader_lag_seconds", ())] == 12.5
    assert got[("hitmetrix_recording_inbox_bytes", ())] == 4096
    assert got[("hitmetrix_quarantine_items", (("kind", "chunk"),))] == 2
    assert got[("hitmetrix_loader_events_loaded_total", ())] == 700
    assert got[("hitmetrix_live_streams", ())] == 2
    # The step histogram: cumulative buckets, +Inf equal to the count.
    bucket = "hitmetrix_capture_step_duration_seconds_bucket"
    assert got[(bucket, (("le", "1e-05"), ("step", "scrub")))] == 1
    assert got[(bucket, (("le", "5e-05"), ("step", "scrub")))] == 3
    assert got[(bucket, (("le", "+Inf"), ("step", "scrub")))] == 4
    assert got[("hitmetrix_capture_step_duration_seconds_count", (("step", "scrub"),))] == 4
    # Read again after the sources moved: nothing is cached.
    answers[200] += 1
    again = samples(generate_latest(registry).decode())
    assert again[("hitmetrix_capture_requests_total", (("status", "200"),))] == 6


def test_spool_bytes_of_a_missing_directory_is_zero(tmp_path: Path) -> None:
    assert spool_bytes(tmp_path / "never-made") == 0


def test_timed_observes_each_call_and_lets_errors_through(tmp_path: Path) -> None:
    registry = build_registry(NodeSources(spool=FakeSpool(tmp_path), loader=FakeLoader(LOADER_HEALTH)), process=False)

    def count() -> float:
        value = registry.get_sample_value("hitmetrix_query_duration_seconds_count", {"query": "test_timed"})
        return value or 0.0

    before = count()
    assert timed("test_timed", lambda a, b=0: a + b)(1, b=2) == 3

    def fails() -> None:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        timed("test_timed", fails)()
    assert count() == before + 2


# --- /metrics of a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, int]]:
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("metered")
    meta.close()
    env = {"HITMETRIX_METRICS_TOKEN": METRICS_TOKEN, "HITMETRIX_SPOOL_SEGMENT_MAX_AGE_S": "0.2"}
    server = ServerProcess(data_dir, demo=False, env=env).start()
    yield server, project.public_key, project.id
    server.stop()


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


@pytest.mark.integration
def test_metrics_need_their_token(server: tuple[ServerProcess, str, int]) -> None:
    srv, _, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS_TOKEN}"}):
        answer = httpx.get(srv.url + "/metrics", headers=headers, timeout=10)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "hitmetrix_" not in answer.text
    # The admin token is not the metrics token: a scraper's token reads no data, and data tokens scrape nothing.
    admin = httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {srv.admin_token}"}, timeout=10)
    assert admin.status_code == 401


@pytest.mark.integration
def test_metrics_move_when_data_flows(server: tuple[ServerProcess, str, int]) -> None:
    srv, key, project_id = server
    before = scrape(srv)

    def value(got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    # A snapshot of the live feed before any data asks the store: a timed query.
    snapshot = srv.api(f"/api/v1/projects/{project_id}/live")
    assert snapshot.status_code == 200 and snapshot.json()["has_data"] is False
    assert srv.api(f"/api/v1/projects/{project_id}/sessions").status_code == 200  # the session list, timed
    batch = make_batch(events=3, chunks=1)
    answer = httpx.post(srv.url + "/api/v1/batch", params={"key": key}, content=json.dumps(batch), timeout=30)
    assert answer.status_code == 200, answer.text
    refused = httpx.post(srv.url + "/api/v1/batch", params={"key": "hm_pk_nobody"}, content=b"{}", timeout=30)
    assert refused.status_code == 401

    after = scrape(srv)
    ok = "hitmetrix_capture_requests_total"
    assert value(after, ok, status="200") == value(before, ok, status="200") + 1
    assert value(after, ok, status="401") == value(before, ok, status="401") + 1
    accepted = "hitmetrix_capture_events_accepted_total"
    assert value(after, accepted) == value(before, accepted) + 3
    chunks = "hitmetrix_capture_chunks_accepted_total"
    assert value(after, chunks) == value(before, chunks) + 1
    assert value(after, "hitmetrix_spool_appended_bytes_total") > value(before, "hitmetrix_spool_appended_bytes_total")
    steps = "hitmetrix_capture_step_duration_seconds_count"
    assert value(after, steps, step="scrub") == value(before, steps, step="scrub") + 1
    queries = "hitmetrix_query_duration_seconds_count"
    assert value(after, queries, query="first_event") == value(before, queries, query="first_event") + 1
    assert value(after, queries, query="session_list") == value(before, queries, query="session_list") + 1
    assert value(after, "process_resident_memory_bytes") > 0

    def loaded() -> bool:
        got = scrape(srv)
        stored = "hitmetrix_loader_events_loaded_total"
        return value(got, stored) == value(before, stored) + 3 and value(got, "hitmetrix_loader_lag_segments") == 0

    wait_for(loaded, 30, 0.2, what="the loader's counters to show the batch stored")


@pytest.mark.integration
def test_metrics_are_off_without_a_token(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", demo=False).start()
    try:
        for headers in ({}, {"Authorization": f"Bearer {srv.admin_token}"}):
            answer = httpx.get(srv.url + "/metrics", headers=headers, timeout=10)
            assert answer.status_code == 404
            assert "hitmetrix_" not in answer.text
    finally:
        srv.stop()
