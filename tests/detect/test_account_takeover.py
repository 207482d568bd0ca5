"""account_takeover: success after failures, new device in a new country or network, impossible travel."""

from __future__ import annotations

from hitmetrix.detect.detectors.account_takeover import AccountTakeoverDetector
from tests.detect.replay import BROWSER_UA, PHONE_UA, at, browser, only, replay, settings, signin, user_key

HOUR = 3600


def detector(**overrides: object) -> AccountTakeoverDetector:
    return AccountTakeoverDetector(settings(**overrides))


def test_a_success_after_many_failures_fires() -> None:
    events = [signin(at(i * 10), "anna@example.com", False, ip="203.0.113.9") for i in range(6)]
    events.append(signin(at(70), "anna@example.com", True, ip="203.0.113.9", session="attacker-session"))
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity) == ("account_takeover", "high")
    assert (finding.entity_kind, finding.entity_value) == ("username", user_key("anna@example.com"))
    assert finding.reasons == (
        "a…@example.com signed in after 6 failed sign-ins in 15 min (threshold 5), from 1 address.",
    )
    assert finding.sessions[-1] == ("attacker-session", at(70)), "the evidence ends at the successful sign-in"


def test_a_person_who_mistypes_twice_then_succeeds_is_quiet() -> None:
    events = [signin(at(0), "carol", False), signin(at(9), "carol", False), signin(at(20), "carol", True)]
    assert replay(detector(), events) == []


def test_failures_long_before_the_success_do_not_count() -> None:
    events = [signin(at(i * 300), "carol", False) for i in range(6)]  # one every 5 min: 3 in 15 min
    events.append(signin(at(6 * 300), "carol", True))
    assert replay(detector(), events) == []


def test_a_new_device_in_a_new_country_fires() -> None:
    usual = {"ua": BROWSER_UA, "country": "DE", "asn": 3320, "ip": "192.0.2.1"}
    events = [signin(at(i * 24 * HOUR), "bob@example.com", True, **usual) for i in range(3)]
    events.append(
        signin(at(3 * 24 * HOUR), "bob@example.com", True, ua=PHONE_UA, country="BR", asn=28573, ip="198.51.100.4")
    )
    finding = only(replay(detector(), events))
    assert finding.severity == "high"
    assert finding.reasons == (
        "b…@example.com signed in from a device not seen in its 3 earlier sign-ins (1 known device).",
        "And from a new country, BR (known: DE).",
        "And from a new network, AS28573 (known: AS3320).",
    )
    assert finding.numbers["prior_logins"] == 3


def test_a_traveller_on_their_usual_device_and_a_new_phone_at_home_are_quiet() -> None:
    events = [signin(at(0), "tina", True, country="DE", asn=3320)]
    events.append(signin(at(9 * HOUR), "tina", True, country="FR", asn=3215))  # same laptop, Paris, plausible
    events.append(signin(at(30 * HOUR), "tina", True, ua=PHONE_UA, country="FR", asn=3215))  # a phone, same place
    assert replay(detector(), events) == []


def test_impossible_travel_between_two_sign_ins_fires() -> None:
    events = [signin(at(0), "eve@example.com", True, country="DE", session="s1")]
    events.append(signin(at(HOUR), "eve@example.com", True, country="US", session="s2"))
    finding = only(replay(detector(), events))
    assert finding.reasons[0].startswith("e…@example.com: a sign-in from US 60 min after one from DE, 7860 km apart:")
    assert "7360 km/h needed (after 500 km of slack; threshold 1000 km/h)" in finding.reasons[0]
    assert finding.numbers["speed_kmh"] == 7360


def test_impossible_travel_between_sessions_of_a_signed_in_user_fires_for_the_user() -> None:
    events = [browser(at(0), "pageview", session="home", user_id="u-17", country="GB")]
    events.append(browser(at(20 * 60), "pageview", session="far", user_id="u-17", country="AU"))
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value) == ("user", "u-17")
    assert finding.sessions == (("home", at(0)), ("far", at(20 * 60)))


def test_a_plausible_journey_is_quiet() -> None:
    events = [browser(at(0), "pageview", session="a", user_id="u-1", country="DE")]
    events.append(browser(at(2 * HOUR), "pageview", session="b", user_id="u-1", country="ES"))  # 1 500 km in 2 h
    events.append(browser(at(16 * HOUR), "pageview", session="c", user_id="u-1", country="US"))  # a flight
    assert replay(detector(), events) == []
