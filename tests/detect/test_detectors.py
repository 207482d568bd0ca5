"""The built-in detector set: one per rule, configured from settings, its state bounded and reported."""

from __future__ import annotations

import time

import msgspec

from hitmetrix.detect import keys
from hitmetrix.detect.detectors import DETECTORS, all_detectors
from hitmetrix.detect.observation import observations
from hitmetrix.detect.state import state_of
from hitmetrix.model import StoredBatch, StoredEvent
from tests.detect.replay import SECRET, at, auth, browser, replay, request, settings, signin

RULES = {
    "automation",
    "brute_force",
    "credential_stuffing",
    "password_spraying",
    "account_takeover",
    "session_hijack",
    "scraping",
    "probing",
    "signup_ring",
}


def test_every_rule_has_one_detector_configured_from_settings() -> None:
    detectors = all_detectors(settings(detect_brute_force_failures=3))
    assert [d.rule for d in detectors] == [make(settings()).rule for make in DETECTORS]
    assert {d.rule for d in detectors} == RULES and len(detectors) == len(RULES)
    brute = next(d for d in detectors if d.rule == "brute_force")
    assert [f.rule for f in replay(brute, [signin(at(i), "x@example.com", False) for i in range(3)])] == ["brute_force"]


def test_state_stays_within_detect_max_entities_and_is_reported() -> None:
    detectors = all_detectors(settings(detect_max_entities=50))
    events = []
    for i in range(300):
        ip = f"10.{i // 250}.{i % 250}.1"
        session = f"hm-{i}"
        events.append(request(at(i / 10), f"/members/{i}", route="/members/{id}", ip=ip, session=session))
        events.append(browser(at(i / 10), "pageview", session=session, ip=ip, user_id=f"u{i}", country="DE"))
        events.append(signin(at(i / 10), f"user{i}@example.com", i % 2 == 0, ip=ip))
        events.append(auth(at(i / 10), "signup", f"new{i}@example.com", True, ip=ip, session=session))
        events.append(request(at(i / 10), "/.env", status=404, ip=ip, session=session))
    for detector in detectors:
        replay(detector, events)
        containers = state_of(detector)
        assert containers, f"{detector.rule} keeps its state in the bounded containers of hitmetrix.detect.state"
        assert all(len(c) <= 50 for c in containers), detector.rule
        assert sum(c.bytes_estimate() for c in containers) > 0


def test_the_whole_set_stays_cheap_per_event() -> None:
    """About 20-40 µs per event for the whole set on an idle core; the bound leaves room for a machine busy with
    other tests (several times slower) and still fails a regression to work that grows with the window."""
    detectors = all_detectors(settings())
    events = []
    for i in range(3000):
        ip = f"10.0.{i % 200}.{i % 7}"
        events.append(request(at(i / 20), f"/members/{i % 500}", route="/members/{id}", ip=ip, session=f"hm-{i % 300}"))
        events.append(browser(at(i / 20), "click", session=f"hm-{i % 300}", ip=ip, user_id=f"u{i % 300}", country="DE"))
        if i % 5 == 0:
            events.append(signin(at(i / 20), f"user{i % 400}@example.com", i % 3 == 0, ip=ip))
    start = time.perf_counter()
    for obs in events:
        for detector in detectors:
            detector.observe(obs)
    per_event_us = (time.perf_counter() - start) / len(events) * 1e6
    assert per_event_us < 2000, f"{per_event_us:.0f} µs per event for the whole set"


def test_spooled_batches_reach_the_detectors_through_observations() -> None:
    """The stored form (props as JSON text, the batch's client fields) is what the detectors read."""
    events = [
        StoredEvent(
            event_id=f"e{i}",
            type="request",
            ts=at(i),
            client_ts=at(i),
            url=f"/.git/config{i}" if i % 2 else "/.env",
            name="",
            props=msgspec.json.encode({"method": "GET", "status": 404, "duration_ms": 1.0, "bytes": 9}).decode(),
        )
        for i in range(4)
    ]
    batch = StoredBatch(
        batch_id="b1.0",
        project_id=3,
        received_at=at(5),
        session_id="s-abc",
        anonymous_id="",
        ip="203.0.113.0",
        user_agent="sqlmap/1.8",
        events=events,
        source="log",
        ip_key=keys.ip_key(SECRET, "203.0.113.7"),
        ip_net="203.0.113.0/24",
    )
    probing = next(d for d in all_detectors(settings()) if d.rule == "probing")
    found = replay(probing, observations(batch))
    assert [set(f.numbers) for f in found] == [{"scanner_requests"}, {"sensitive_paths"}]
    assert all(f.project_id == 3 and f.entity_label == "203.0.113.0" for f in found)
