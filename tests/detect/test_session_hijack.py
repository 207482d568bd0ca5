"""session_hijack: one session id from two user agents, devices or networks; a phone changing network is quiet."""

from __future__ import annotations

from hitmetrix.detect.detectors.session_hijack import SessionHijackDetector
from tests.detect.replay import PHONE_UA, at, browser, only, replay, request, settings

HOME = {"ip": "192.0.2.10", "asn": 3320, "country": "DE"}
MOBILE = {"ip": "198.51.100.77", "asn": 6805, "country": "DE"}
ABROAD = {"ip": "203.0.113.5", "asn": 4134, "country": "CN"}


def detector(**overrides: object) -> SessionHijackDetector:
    return SessionHijackDetector(settings(**overrides))


def test_a_stolen_cookie_used_by_another_user_agent_fires() -> None:
    events = [browser(at(0), "pageview", session="hm-1", **HOME), request(at(5), "/messages", session="hm-1", **HOME)]
    events.append(request(at(60), "/messages", session="hm-1", ua="python-requests/2.31", **HOME))
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind, finding.entity_value) == (
        "session_hijack",
        "high",
        "session",
        "hm-1",
    )
    assert finding.reasons[0].startswith("The session is used by a second user agent: 'python-requests/2.31' after ")
    assert finding.sessions == (("hm-1", at(60)),)


def test_a_changed_device_fingerprint_on_another_network_fires() -> None:
    events = [browser(at(0), "signals", session="hm-2", props={"device": "aaaaaaaaaaaaaaaa"}, **HOME)]
    events.append(browser(at(30), "signals", session="hm-2", props={"device": "bbbbbbbbbbbbbbbb"}, **MOBILE))
    finding = only(replay(detector(), events))
    assert finding.reasons == (
        "The session's device fingerprint changed from aaaaaaaaaaaaaaaa (192.0.2.0/24) to bbbbbbbbbbbbbbbb "
        "(198.51.100.0/24).",
    )


def test_a_zoomed_page_changing_the_fingerprint_on_the_same_network_is_quiet() -> None:
    events = [browser(at(0), "signals", session="hm-7", props={"device": "aaaaaaaaaaaaaaaa"}, **HOME)]
    events.append(browser(at(30), "signals", session="hm-7", props={"device": "cccccccccccccccc"}, **HOME))
    assert replay(detector(), events) == []


def test_two_networks_taking_turns_fire() -> None:
    events = []
    for i in range(4):
        events.append(request(at(i * 20), f"/a{i}", session="hm-3", **HOME))
        events.append(request(at(i * 20 + 10), f"/b{i}", session="hm-3", **MOBILE))
    finding = only(replay(detector(), events))
    assert finding.reasons == (
        "The session switched 3 times between 2 networks, each time within 120 s of the other's last request "
        "(threshold 3): two clients taking turns.",
    )
    assert finding.ts_ms == at(30), "home, mobile, home, mobile: the third switch"


def test_a_session_moving_to_another_country_and_operator_fires() -> None:
    events = [request(at(0), "/", session="hm-4", **HOME), request(at(600), "/messages", session="hm-4", **ABROAD)]
    finding = only(replay(detector(), events))
    assert finding.reasons == (
        "The session moved from 192.0.2.0/24 (DE) to 203.0.113.0/24 (CN), another network in another country, "
        "10 min after its last use there.",
    )


def test_a_phone_leaving_wifi_for_mobile_data_is_quiet() -> None:
    events = [request(at(i * 15), f"/p{i}", session="hm-5", ua=PHONE_UA, **HOME) for i in range(10)]
    events += [request(at(150 + i * 15), f"/q{i}", session="hm-5", ua=PHONE_UA, **MOBILE) for i in range(10)]
    events.append(request(at(400), "/back-home", session="hm-5", ua=PHONE_UA, **HOME))  # back on Wi-Fi later
    assert replay(detector(), events) == []


def test_cookieless_day_sessions_and_new_sessions_after_the_life_are_quiet() -> None:
    events = [request(at(0), "/", **HOME), request(at(1), "/", ua=PHONE_UA, **HOME)]  # derived s- sessions
    events.append(request(at(10), "/", session="hm-6", **HOME))
    events.append(request(at(10 + 3600), "/", session="hm-6", ua=PHONE_UA, **ABROAD))  # idle > 30 min: forgotten
    assert replay(detector(), events) == []


def test_a_site_behind_a_cdn_reporting_the_edge_address_is_not_a_second_client() -> None:
    """The tracker sees the visitor's address; a server without its proxy rule set sees the CDN's."""
    edge = {"ip": "104.16.0.9", "asn": 13335, "country": "DE"}
    events = []
    for i in range(6):
        events.append(browser(at(i * 20), "click", session="hm-cdn", **HOME))
        events.append(request(at(i * 20 + 1), f"/p{i}", session="hm-cdn", **edge))
    assert replay(detector(), events) == []
