"""credential_stuffing: many usernames failing from one address, net or (spread thin) one network operator."""

from __future__ import annotations

from hitmetrix.detect.detectors.credential_stuffing import CredentialStuffingDetector
from tests.detect.replay import BROWSER_UA, PHONE_UA, at, ip_key, only, replay, settings, signin


def detector(**overrides: object) -> CredentialStuffingDetector:
    return CredentialStuffingDetector(settings(**overrides))


def test_many_usernames_failing_from_one_address_fire() -> None:
    events = [signin(at(i * 3), f"victim{i}@example.com", False, ip="203.0.113.50") for i in range(12)]
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind) == ("credential_stuffing", "high", "ip")
    assert (finding.entity_value, finding.entity_label) == (ip_key("203.0.113.50"), "203.0.113.50")
    assert finding.reasons == (
        "Sign-ins failed for 10 distinct usernames from one address in 10 min (threshold 10).",
        "10 of its 10 sign-ins failed (100 %, threshold 80 %).",
    )
    assert finding.numbers["usernames"] == 10


def test_a_list_with_a_few_hits_still_fires() -> None:
    events = [signin(at(i * 3), f"victim{i}@example.com", i % 10 == 5, ip="203.0.113.50") for i in range(30)]
    finding = only(replay(detector(), events))
    assert finding.numbers["usernames"] == 10 and finding.numbers["attempts"] == 11


def test_many_addresses_of_one_net_fire_for_the_net() -> None:
    events = [signin(at(i * 2), f"victim{i}@example.com", False, ip=f"198.51.100.{i % 8 + 1}") for i in range(25)]
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value) == ("net", "198.51.100.0/24")
    assert finding.reasons[0] == (
        "Sign-ins failed for 20 distinct usernames from 8 addresses in 198.51.100.0/24 in 10 min (threshold 20)."
    )


def test_distributed_stuffing_from_one_network_operator_fires_for_the_as() -> None:
    # 25 addresses in 25 different /24s of one AS, each trying 1 or 2 usernames.
    events = []
    for i in range(25):
        ip = f"100.{64 + i}.{i}.9"
        for j in range(1 + i % 2):
            events.append(signin(at(i * 10 + j), f"u{i}-{j}@example.com", False, ip=ip, asn=64500, as_org="Botnet"))
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value, finding.entity_label) == ("asn", "AS64500", "AS64500 Botnet")
    assert finding.reasons[0].startswith("20 addresses of AS64500 Botnet failed sign-ins for ")
    assert "thresholds 20 addresses, 20 usernames" in finding.reasons[0]
    assert finding.numbers["sources"] == 20 and finding.numbers["per_source"] <= 3


def test_many_people_behind_one_nat_address_are_quiet() -> None:
    """30 people share an office address: a few mistype once, all of them sign in."""
    events = []
    for i in range(30):
        ua = BROWSER_UA if i % 2 else PHONE_UA
        person = f"employee{i}@example.com"
        if i % 3 == 0:
            events.append(signin(at(i * 10), person, False, ip="192.0.2.10", ua=ua, session=f"sess-{i}"))
        events.append(signin(at(i * 10 + 5), person, True, ip="192.0.2.10", ua=ua, session=f"sess-{i}"))
    assert replay(detector(), events) == []


def test_a_busy_network_operator_with_ordinary_failures_is_quiet() -> None:
    events = []
    for i in range(60):
        ip = f"100.{64 + i}.1.1"
        events.append(signin(at(i * 5), f"p{i}@example.com", False, ip=ip, asn=3320, as_org="Big ISP"))
        events.append(signin(at(i * 5 + 2), f"p{i}@example.com", True, ip=ip, asn=3320, as_org="Big ISP"))
    assert replay(detector(), events) == []


def test_the_same_attempts_spread_beyond_the_window_do_not_fire() -> None:
    events = [signin(at(i * 70), f"victim{i}@example.com", False, ip="203.0.113.50") for i in range(12)]
    assert replay(detector(), events) == []
