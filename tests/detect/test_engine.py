"""The detection engine on real spool files: its cursor, its rebuild after a restart, the loader's removals,
poison records, allow-lists, rule decisions, retention and its own thread woken by the spool's seals."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.engine import CURSOR_FILE, DETECT_DIR, DetectionEngine
from hitmetrix.detect.keys import ip_key
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import SlidingCounter
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.spool.writer import DONE_DIR
from hitmetrix.store import security
from hitmetrix.store.meta import MetaStore
from tests.support import wait_for

SECRET = b"s" * 32
THRESHOLD = 3
RULE = "test_failed_signins"


class FailedSignIns:
    """A test detector: a finding on every failed sign-in from the THRESHOLD-th on (no throttle of its own,
    so the engine's folding and merging are what keep one alert)."""

    rule = RULE

    def __init__(self) -> None:
        self.failures = SlidingCounter(300, 1000)

    def observe(self, obs: Observation) -> list[Finding]:
        if obs.kind != "auth" or obs.ok:
            return []
        if obs.name == "explode":
            raise RuntimeError("a detector bug")
        failures = self.failures.add((obs.project_id, obs.user_key), obs.ts_ms)
        if failures < THRESHOLD:
            return []
        return [
            Finding(
                rule=RULE,
                severity="high",
                entity_kind="ip",
                entity_value=obs.ip_key,
                entity_label=obs.ip_display,
                reasons=(f"{failures} failed sign-ins in 5 min (threshold {THRESHOLD})",),
                ts_ms=obs.ts_ms,
                project_id=obs.project_id,
                numbers={"failures": failures},
                sessions=((obs.session_id, obs.ts_ms),),
            )
        ]


def auth_batch(project_id: int, n: int, *, ok: bool = False, ts_ms: int | None = None, **fields: Any) -> StoredBatch:
    now = ts_ms or int(time.time() * 1000)
    props = json.dumps({"ok": ok, "user_key": "u-anna", "user_display": "a…@example.com", "reason": ""})
    events = [
        StoredEvent(event_id=str(uuid.uuid4()), type="auth", ts=now + i, client_ts=now + i, name="signin", props=props)
        for i in range(n)
    ]
    base: dict[str, Any] = {
        "batch_id": uuid.uuid4().hex,
        "project_id": project_id,
        "received_at": now,
        "session_id": "s-" + uuid.uuid4().hex[:12],
        "anonymous_id": "",
        "ip": "203.0.113.0",
        "user_agent": "curl/8.0",
        "source": "middleware",
        "ip_key": ip_key(SECRET, "203.0.113.7"),
        "ip_net": "203.0.113.0/24",
        "events": events,
    }
    return StoredBatch(**{**base, **fields})


def seal(spool_dir: Path, *records: StoredBatch | bytes) -> int:
    """One sealed segment holding the records (a batch encoded, or raw bytes as they are); its id."""
    spool = Spool(spool_dir, fsync="never", segment_max_age_s=3600)
    spool.start()
    before = set(spool.sealed_segments())
    for record in records:
        spool.append_blocking(record if isinstance(record, bytes) else encode_batch(record), 10.0)
    spool.close()
    spool = Spool(spool_dir, fsync="never")
    (new,) = set(spool.sealed_segments()) - before
    return new


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path / "meta")
    yield store
    store.close()


def make_engine(root: Path, meta: MetaStore, **kwargs: Any) -> DetectionEngine:
    kwargs.setdefault("detectors", [FailedSignIns()])
    return DetectionEngine(root / "spool", meta, data_dir=root, secret=SECRET, durable=False, **kwargs)


def test_findings_become_one_alert_and_new_alerts_reach_the_sinks(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    first = seal(tmp_path / "spool", auth_batch(pid, 5))
    second = seal(tmp_path / "spool", auth_batch(pid, 4))
    engine = make_engine(tmp_path, meta)
    raised: list[security.Alert] = []
    engine.add_alert_listener(raised.append)
    assert engine.run_once() == 2
    (alert,) = security.alerts(meta, pid)
    # 7 findings (failures 3..9) merged into one alert: folded per segment, merged across them.
    assert (alert.rule, alert.count, alert.severity) == (RULE, 7, "high")
    assert alert.reason_list == ["9 failed sign-ins in 5 min (threshold 3)"]
    assert [a.id for a in raised] == [alert.id], "the sink hears of the new alert once"
    assert engine.cursor == second > first
    assert (tmp_path / DETECT_DIR / CURSOR_FILE).read_text().strip() == str(second)
    health = engine.health()
    counters = health["detect_counters"]
    assert (counters["events"], counters["alerts_raised"], counters["alerts_merged"]) == (9, 1, 6)
    assert health["detect_segments_behind"] == 0 and health["detect_state_entries"] == 1
    assert 0 <= health["detect_alert_latency_ms_p95"] < 60_000
    assert engine.run_once() == 0, "nothing new: nothing observed twice"


def test_after_a_restart_the_cursor_holds_state_is_rebuilt_and_no_alert_is_raised_twice(
    tmp_path: Path, meta: MetaStore
) -> None:
    pid = meta.create_project("site").id
    other = meta.create_project("other").id
    seal(tmp_path / "spool", auth_batch(pid, 4), auth_batch(other, 2, user_id="u2"))
    engine = make_engine(tmp_path, meta)
    engine.run_once()
    (alert,) = security.alerts(meta, pid)
    assert alert.count == 2 and security.alerts(meta, other) == []

    restarted = make_engine(tmp_path, meta)  # a new process: fresh detectors, the cursor from disk
    assert restarted.cursor == engine.cursor
    assert restarted.run_once() == 0
    assert [(a.id, a.count) for a in security.alerts(meta, pid)] == [(alert.id, 2)], "the replay raised nothing"
    assert restarted.counters["segments_replayed"] == 1
    # The other project had 2 failures before the restart: the rebuilt state makes the third one cross.
    seal(tmp_path / "spool", auth_batch(other, 1))
    restarted.run_once()
    (crossed,) = security.alerts(meta, other)
    assert crossed.number_map == {"failures": 3.0}


def test_a_restart_without_the_rebuild_window_starts_empty(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    seal(tmp_path / "spool", auth_batch(pid, 2))
    make_engine(tmp_path, meta).run_once()
    restarted = make_engine(tmp_path, meta, rebuild_window_s=0.001)
    wait_for(lambda: restarted.run_once() == 0 and restarted.counters["segments_replayed"] == 0, 5.0)
    seal(tmp_path / "spool", auth_batch(pid, 1))
    restarted.run_once()
    assert security.alerts(meta, pid) == [], "state older than the window is not rebuilt"


def test_segments_the_loader_removed_are_kept_for_the_engine(tmp_path: Path, meta: MetaStore) -> None:
    from tests.loader.helpers import World

    pid = meta.create_project("site").id
    world = World(tmp_path)
    try:
        segment = world.segment(auth_batch(pid, 5))
        world.spool.retain_removed_segments()  # as the runtime does with detection on (segment() reopens the spool)
        loader = world.loader()
        assert loader.load_once() == 1, "the loader stores the segment and removes it"
        assert world.spool.sealed_segments() == []
        assert (tmp_path / "spool" / DONE_DIR / f"{segment:016d}.seg").exists()
        engine = make_engine(tmp_path, meta)
        assert engine.run_once() == 1
        (alert,) = security.alerts(meta, pid)
        assert alert.count == 3
    finally:
        world.close()


def test_poison_records_and_a_failing_detector_do_not_stop_the_engine(
    tmp_path: Path, meta: MetaStore, caplog: pytest.LogCaptureFixture
) -> None:
    pid = meta.create_project("site").id
    explode = auth_batch(pid, 1)
    explode.events[0].name = "explode"
    seal(tmp_path / "spool", b"\x92not a batch", auth_batch(pid, 2), explode, b"", auth_batch(pid, 2))
    engine = make_engine(tmp_path, meta)
    assert engine.run_once() == 1
    counters = engine.counters
    assert (counters["bad_records"], counters["detector_errors"], counters["events"]) == (2, 1, 5)
    (alert,) = security.alerts(meta, pid)
    assert alert.count == 2, "failures 3 and 4, after the poison"
    assert "a record is not a batch" in caplog.text and "detector test_failed_signins failed" in caplog.text


def test_a_damaged_segment_is_observed_up_to_the_damage(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    segment = seal(tmp_path / "spool", auth_batch(pid, 3), auth_batch(pid, 3))
    path = tmp_path / "spool" / f"{segment:016d}.seg"
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # the second record's tail is gone
    engine = make_engine(tmp_path, meta)
    engine.run_once()
    assert engine.counters["damaged_segments"] == 1 and engine.counters["events"] == 3
    assert [a.count for a in security.alerts(meta, pid)] == [1]


def test_allow_listed_clients_and_entities_raise_nothing(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    security.add_allow_entry(meta, pid, "user_agent", "UptimeRobot", "our monitor")
    security.add_allow_entry(meta, pid, "cidr", "198.51.100.0/22")
    security.add_allow_entry(meta, pid, "ip", "192.0.2.9")
    seal(
        tmp_path / "spool",
        auth_batch(pid, 5, user_agent="Mozilla/5.0 (compatible; UptimeRobot/2.0)"),
        auth_batch(pid, 5, ip_key=ip_key(SECRET, "198.51.101.3"), ip_net="198.51.101.0/24"),
        auth_batch(pid, 5, ip_key=ip_key(SECRET, "192.0.2.9"), ip_net="192.0.2.0/24"),
    )
    engine = make_engine(tmp_path, meta)
    engine.run_once()
    assert security.alerts(meta, pid) == []
    assert engine.counters["events_allowed"] == 15
    other = meta.create_project("other").id  # another project's list does not apply
    seal(tmp_path / "spool", auth_batch(other, 5, user_agent="UptimeRobot/2.0"))
    engine.run_once()
    assert len(security.alerts(meta, other)) == 1


def test_auto_block_decides_for_high_alerts(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    seal(tmp_path / "spool", auth_batch(pid, 5))
    engine = make_engine(tmp_path, meta, auto_block=True, block_ttl_s=600)
    engine.run_once()
    (alert,) = security.alerts(meta, pid)
    now_ms = int(time.time() * 1000)
    (decision,) = security.active_decisions(meta, pid, now_ms)
    assert (decision.scope, decision.value, decision.action, decision.origin, decision.alert_id) == (
        "ip",
        ip_key(SECRET, "203.0.113.7"),
        "block",
        "rule",
        alert.id,
    )
    assert decision.expires_ms is not None and 500_000 < decision.expires_ms - now_ms <= 600_000
    assert engine.counters["decisions"] == 1
    assert security.active_decisions(meta, pid, now_ms + 700_000) == [], "it expires"


def test_findings_of_a_deleted_project_are_dropped(tmp_path: Path, meta: MetaStore) -> None:
    seal(tmp_path / "spool", auth_batch(999, 5))
    engine = make_engine(tmp_path, meta)
    engine.run_once()
    assert engine.counters["findings_unknown_project"] == 3 and engine.counters["store_errors"] == 0


def test_observed_segments_leave_done_once_older_than_the_window(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    spool_dir = tmp_path / "spool"
    old, recent, unread = (seal(spool_dir, auth_batch(pid, 1)) for _ in range(3))
    engine = make_engine(tmp_path, meta, rebuild_window_s=600)
    engine.run_once()
    done = spool_dir / DONE_DIR
    done.mkdir()
    for segment in (old, recent):
        os.replace(spool_dir / f"{segment:016d}.seg", done / f"{segment:016d}.seg")
    hour_ago = time.time() - 3600
    os.utime(done / f"{old:016d}.seg", (hour_ago, hour_ago))
    # A segment the engine has not read stays whatever its age.
    os.utime(spool_dir / f"{unread:016d}.seg", (hour_ago, hour_ago))
    engine.cursor = recent
    engine._cleanup()
    assert sorted(p.name for p in done.iterdir()) == [f"{recent:016d}.seg"]
    assert (spool_dir / f"{unread:016d}.seg").exists() and engine.counters["segments_deleted"] == 1


def test_the_engine_thread_wakes_on_seal(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    spool = Spool(tmp_path / "spool", fsync="never", segment_max_age_s=0.05)
    engine = make_engine(tmp_path, meta, poll_interval_s=60.0)  # only the seal can wake it in time
    spool.add_seal_listener(engine.wake)
    spool.start()
    engine.start()
    try:
        started = time.monotonic()
        spool.append_blocking(encode_batch(auth_batch(pid, 3)), 10.0)
        wait_for(lambda: security.alerts(meta, pid), 10.0, what="an alert")
        assert time.monotonic() - started < 5.0
    finally:
        spool.close()
        engine.stop(10.0)


@pytest.mark.integration
def test_a_brute_force_is_alerted_within_5_s_of_its_ack_by_a_real_server(tmp_path: Path) -> None:
    import httpx

    from tests.support import ServerProcess

    data_dir = tmp_path / "data"
    setup = MetaStore("", data_dir)
    project = setup.create_project("site")
    setup.close()
    server = ServerProcess(data_dir, demo=False).start()
    try:
        # Detection runs in a process of its own, which reports once it has started.
        wait_for(lambda: "detect_cursor" in httpx.get(server.url + "/healthz", timeout=5).json()["detection"], 30.0)
        now = int(time.time() * 1000)
        failures = [
            {"type": "auth", "id": str(uuid.uuid4()), "ts": now - 2000 + i, "ip": "203.0.113.66",
             "user_agent": "python-requests/2.32", "path": "/login", "kind": "signin", "ok": False,
             "username": "anna@example.com"}
            for i in range(12)
        ]
        body = {"batch_id": "bf-" + uuid.uuid4().hex[:12], "sent_at": now, "source": "middleware", "events": failures}
        answer = httpx.post(server.url + "/api/v1/server/batch", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {project.server_key}"})
        acked = time.monotonic()
        assert answer.status_code == 200, answer.text

        def raised() -> bool:
            detection = httpx.get(server.url + "/healthz", timeout=5).json()["detection"]
            return bool(detection["detect_counters"]["alerts_raised"] >= 1)

        wait_for(raised, 10.0, interval_s=0.05, what="an alert")
        assert time.monotonic() - acked <= 5.0, "alerted more than 5 s after the ack"
    finally:
        server.stop()
    meta = MetaStore("", data_dir)
    try:
        brute = [a for a in security.alerts(meta, project.id) if a.rule == "brute_force"]
        assert len(brute) == 1 and brute[0].entity_label == "a…@example.com"
        assert "failed sign-ins for a…@example.com" in brute[0].reason_list[0]
        assert "(threshold 10)" in brute[0].reason_list[0]
        assert "anna@example.com" not in json.dumps(security.alert_json(brute[0])), "the username is never stored"
    finally:
        meta.close()


class KindsSeen:
    """A test detector that records the kinds it was given; ``kinds`` as the engine reads it (None: all)."""

    rule = "test_kinds"

    def __init__(self, kinds: frozenset[str] | None) -> None:
        self.kinds = kinds
        self.seen: list[str] = []

    def observe(self, obs: Observation) -> list[Finding]:
        self.seen.append(obs.kind)
        return []


def test_a_detector_declaring_kinds_is_given_only_those(tmp_path: Path, meta: MetaStore) -> None:
    pid = meta.create_project("site").id
    clicks = [StoredEvent(event_id=str(uuid.uuid4()), type=kind, ts=1_000 + i, client_ts=1_000 + i)
              for i, kind in enumerate(["pageview", "click", "scroll"])]
    browser = auth_batch(pid, 0, source="", events=clicks)
    seal(tmp_path / "spool", browser, auth_batch(pid, 2))
    auth_only, everything = KindsSeen(frozenset({"auth"})), KindsSeen(None)
    engine = make_engine(tmp_path, meta, detectors=[auth_only, everything])
    assert engine.run_once() == 1
    assert auth_only.seen == ["auth", "auth"]
    assert everything.seen == ["pageview", "click", "scroll", "auth", "auth"]
    assert engine.counters["events"] == 5


def test_a_retried_batch_is_observed_once_also_after_a_restart(tmp_path: Path, meta: MetaStore) -> None:
    """A sender retries after a lost answer with the same batch id: the loader stores it once, and
    detection must not count its failures twice (2 failures sent twice would cross THRESHOLD=3)."""
    pid = meta.create_project("site").id
    retried = auth_batch(pid, 2)
    seal(tmp_path / "spool", retried, retried)
    engine = make_engine(tmp_path, meta)
    engine.run_once()
    assert security.alerts(meta, pid) == []
    assert engine.health()["detect_counters"]["duplicate_batches"] == 1
    seal(tmp_path / "spool", retried)  # retried again, after a restart that rebuilt the state
    restarted = make_engine(tmp_path, meta)
    restarted.run_once()
    assert security.alerts(meta, pid) == []
    # One repeat met again while the window was replayed, one new: both skipped.
    assert restarted.health()["detect_counters"]["duplicate_batches"] == 2
    # Control: a new batch of the same client does count.
    seal(tmp_path / "spool", auth_batch(pid, 1, session_id=retried.session_id))
    restarted.run_once()
    assert [a.rule for a in security.alerts(meta, pid)] == [RULE]
