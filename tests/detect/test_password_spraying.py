"""password_spraying: many accounts, about one try each, slowly; fast lists are stuffing, one account is brute force."""

from __future__ import annotations

from hitmetrix.detect.detectors.password_spraying import PasswordSprayingDetector
from tests.detect.replay import at, ip_key, only, replay, settings, signin


def detector(**overrides: object) -> PasswordSprayingDetector:
    return PasswordSprayingDetector(settings(**overrides))


def test_one_try_per_account_slowly_fires() -> None:
    # One account every 2.5 min: 4 per 10 min (under stuffing's 10), 24 in the hour.
    events = [signin(at(i * 150), f"staff{i}@example.com", False, ip="203.0.113.80") for i in range(24)]
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind) == ("password_spraying", "high", "ip")
    assert finding.entity_value == ip_key("203.0.113.80")
    assert finding.reasons[0] == (
        "Sign-ins failed for 20 distinct usernames from one address in 1 h (threshold 20), "
        "1.0 tries per username (at most 1.5)."
    )
    assert finding.reasons[1].startswith("It stays slow: 4 usernames in the last 10 min")
    assert finding.numbers["usernames"] == 20


def test_spraying_from_several_addresses_of_one_net_fires_for_the_net() -> None:
    events = [signin(at(i * 150), f"staff{i}@example.com", False, ip=f"198.51.100.{i % 4 + 1}") for i in range(24)]
    found = replay(detector(), events)
    assert [f.entity_kind for f in found] == ["net"]
    assert found[0].reasons[0].startswith("Sign-ins failed for 20 distinct usernames from 4 addresses in 198.51.100")


def test_a_fast_list_is_stuffing_not_spraying() -> None:
    events = [signin(at(i * 3), f"victim{i}@example.com", False, ip="203.0.113.80") for i in range(40)]
    assert replay(detector(), events) == []


def test_many_tries_per_account_are_not_spraying() -> None:
    events = [signin(at(i * 60), f"staff{i % 10}@example.com", False, ip="203.0.113.80") for i in range(50)]
    assert replay(detector(), events) == []


def test_people_behind_one_address_who_mostly_succeed_are_quiet() -> None:
    events = []
    for i in range(40):
        events.append(signin(at(i * 80), f"employee{i}@example.com", False, ip="192.0.2.10"))
        events.append(signin(at(i * 80 + 20), f"employee{i}@example.com", True, ip="192.0.2.10"))
    assert replay(detector(), events) == []


def test_the_same_tries_spread_beyond_the_window_do_not_fire() -> None:
    events = [signin(at(i * 200), f"staff{i}@example.com", False, ip="203.0.113.80") for i in range(30)]
    assert replay(detector(), events) == []


def test_the_tail_of_a_stuffing_burst_is_not_spraying() -> None:
    events = [signin(at(i * 3), f"victim{i}@example.com", False, ip="203.0.113.80") for i in range(40)]
    events += [signin(at(1200 + i * 300), f"late{i}@example.com", False, ip="203.0.113.80") for i in range(8)]
    assert replay(detector(), events) == []
