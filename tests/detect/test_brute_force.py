"""brute_force: many failed sign-ins for one username from any source; mistakes and spread-out failures stay quiet."""

from __future__ import annotations

from hitmetrix.detect.detectors.brute_force import BruteForceDetector
from tests.detect.replay import at, ip_key, only, replay, settings, signin, user_key


def detector(**overrides: object) -> BruteForceDetector:
    return BruteForceDetector(settings(**overrides))


def test_many_failures_for_one_username_fire_once_with_the_numbers() -> None:
    events = [signin(at(i * 20), "anna@example.com", False, ip=f"198.51.100.{i % 3}") for i in range(15)]
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity) == ("brute_force", "high")
    assert (finding.entity_kind, finding.entity_value) == ("username", user_key("anna@example.com"))
    assert finding.entity_label == "a…@example.com"
    assert finding.reasons[0] == "10 failed sign-ins for a…@example.com in 10 min (threshold 10)."
    assert finding.reasons[1] == "They came from 3 distinct addresses."
    assert finding.numbers["failures"] == 10
    assert finding.ts_ms == at(9 * 20), "raised at the failure that crossed the threshold"
    assert finding.sessions and all(ts <= finding.ts_ms for _, ts in finding.sessions)


def test_a_flood_of_failures_is_critical() -> None:
    events = [signin(at(i / 5), "bob", False) for i in range(200)]  # 5 a second for 40 s
    found = replay(detector(detect_brute_force_failures=10, detect_brute_force_window_s=30), events)
    assert [f.severity for f in found] == ["high", "critical"], "raised again once the window has passed"
    assert found[1].numbers["failures"] >= 50


def test_a_person_who_mistypes_twice_then_succeeds_is_quiet() -> None:
    events = [signin(at(0), "carol@example.com", False), signin(at(8), "carol@example.com", False)]
    events.append(signin(at(15), "carol@example.com", True))
    assert replay(detector(), events) == []


def test_failures_spread_beyond_the_window_do_not_fire() -> None:
    # 20 failures, one every 70 s: never 10 within 10 min.
    events = [signin(at(i * 70), "dave@example.com", False) for i in range(20)]
    assert replay(detector(), events) == []


def test_failures_of_different_usernames_are_not_brute_force() -> None:
    events = [signin(at(i), f"user{i}@example.com", False) for i in range(30)]
    assert replay(detector(), events) == []


def test_projects_are_counted_apart() -> None:
    import dataclasses

    events = [signin(at(i), "erin", False) for i in range(9)]
    events += [dataclasses.replace(signin(at(20 + i), "erin", False), project_id=2) for i in range(9)]
    assert replay(detector(), events) == []


def test_failures_inferred_from_an_access_log_without_usernames_count_per_address() -> None:
    events = [signin(at(i * 5), "", False, ip="203.0.113.33", source="log") for i in range(12)]
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value) == ("ip", ip_key("203.0.113.33"))
    assert finding.reasons == (
        "10 failed sign-ins from 203.0.113.33 in 10 min (threshold 10); the source does not name the usernames.",
    )
