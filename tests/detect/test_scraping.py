"""scraping: profiles per minute, id enumeration, bulk exports, no-JavaScript readers of personal pages."""

from __future__ import annotations

from hitmetrix.detect.detectors.scraping import ScrapingDetector
from tests.detect.replay import at, browser, ip_key, only, replay, request, settings


def detector(**overrides: object) -> ScrapingDetector:
    return ScrapingDetector(settings(**overrides))


def profile(ts_ms: int, member: int | str, **kw: object) -> object:
    return request(ts_ms, f"/members/{member}", route="/members/{id}", **kw)


def test_many_profiles_a_minute_from_one_session_fire() -> None:
    # Random-looking ids (no enumeration) read by a JavaScript-running browser: only the rate is judged.
    ids = [(i * 7919) % 100_000 for i in range(35)]
    events = [profile(at(i * 1.5), m, session="hm-s", ip="203.0.113.40") for i, m in enumerate(ids)]
    events.append(browser(at(0.5), "pageview", session="hm-s", ip="203.0.113.40"))
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind) == ("scraping", "high", "ip")
    assert finding.entity_value == ip_key("203.0.113.40")
    assert finding.reasons == ("30 distinct profile pages read by one session in 1 min (threshold 30).",)


def test_sequential_ids_fire_even_slowly() -> None:
    events = [profile(at(i * 20), 1000 + i, session="hm-e", user_id="u-9") for i in range(12)]
    events.append(browser(at(1), "pageview", session="hm-e", user_id="u-9"))
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value) == ("user", "u-9")
    assert finding.reasons == (
        "10 profile ids read right next to one already read (latest 1010) in 1 h: enumeration of ids (threshold 10).",
    )


def test_exports_of_many_accounts_from_one_address_fire() -> None:
    events = [
        request(at(i * 30), "/account/export", route="/account/export", user_id=f"u-{i}", ip="203.0.113.41")
        for i in range(4)
    ]
    finding = only(replay(detector(), events))
    assert finding.entity_kind == "ip"
    assert finding.reasons == ("Exports of 3 distinct accounts in 1 h (threshold 3).",)


def test_a_no_javascript_reader_of_personal_pages_fires() -> None:
    events = [profile(at(i * 45), (i * 37) % 500, ip="203.0.113.42") for i in range(12)]
    finding = only(replay(detector(), events))
    assert finding.severity == "medium"
    assert finding.reasons == (
        "10 distinct profile pages read in 1 h by a client that never ran the tracker's JavaScript (threshold 10).",
    )


def test_people_reading_profiles_behind_one_address_a_person_exporting_and_a_crawler_are_quiet() -> None:
    events = []
    for person in range(12):  # 12 people behind one NAT, each reading 6 profiles in a minute, with the tracker
        session = f"hm-p{person}"
        events.append(browser(at(person), "pageview", session=session, ip="192.0.2.10"))
        events += [
            profile(at(person + i * 9), person * 1000 + i * 17, session=session, ip="192.0.2.10") for i in range(6)
        ]
    events += [request(at(100 + i * 600), "/account/export", user_id="u-1", ip="192.0.2.11") for i in range(2)]
    events += [
        profile(at(i * 0.5), i, ua="Googlebot/2.1", crawler="googlebot:verified", ip="66.249.66.1") for i in range(200)
    ]
    assert replay(detector(), events) == []


def test_profiles_spread_beyond_the_window_do_not_fire() -> None:
    ids = [(i * 7919) % 100_000 for i in range(40)]
    events = [profile(at(i * 2.5), m, session="hm-slow") for i, m in enumerate(ids)]  # 24 a minute
    events.append(browser(at(0), "pageview", session="hm-slow"))
    assert replay(detector(), events) == []


def test_reading_the_json_behind_profile_pages_counts_too() -> None:
    events = [
        request(at(i), f"/api/members/{(i * 7919) % 100_000}", route="/api/members/{id}", session="hm-api")
        for i in range(30)
    ]
    events.append(browser(at(0), "pageview", session="hm-api"))
    assert only(replay(detector(), events)).numbers == {"profiles": 30}
