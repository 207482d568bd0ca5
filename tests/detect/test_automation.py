"""automation: browser signals, clients that never run JavaScript, tool user agents, cadence, fake crawlers."""

from __future__ import annotations

from typing import Any

from hitmetrix.detect.detectors.automation import AutomationDetector
from tests.detect.replay import at, browser, ip_key, only, replay, request, settings

HUMAN_SIGNALS: dict[str, Any] = {
    "webdriver": False,
    "headless": [],
    "ua_ch_mismatch": False,
    "pointer_moves": 240,
    "clicks": 4,
    "clicks_without_move": 0,
    "keys": 42,
    "key_interval_ms": {"median": 145, "mad": 38, "min": 61},
    "touch": False,
    "device": "0123456789abcdef",
}


def jittered(i: int, mean_s: float) -> float:
    """The i-th moment of a client pausing about ``mean_s`` between pages, as unevenly as a person."""
    return i * mean_s + (i * 7919 % 13) / 13 * mean_s * 0.8


def detector(**overrides: object) -> AutomationDetector:
    return AutomationDetector(settings(**overrides))


def signals(ts_ms: int, session: str = "tab-1", **changes: Any) -> Any:
    return browser(ts_ms, "signals", session=session, props={**HUMAN_SIGNALS, **changes})


def test_a_webdriver_browser_typing_like_a_script_fires_for_its_session() -> None:
    bot = signals(
        at(5),
        session="bot-1",
        webdriver=True,
        headless=["HeadlessChrome", "no-plugins"],
        pointer_moves=0,
        clicks=3,
        clicks_without_move=3,
        key_interval_ms={"median": 4, "mad": 0, "min": 3},
    )
    finding = only(replay(detector(), [bot]))
    assert (finding.rule, finding.severity) == ("automation", "high")
    assert (finding.entity_kind, finding.entity_value) == ("session", "bot-1")
    assert finding.reasons == (
        "The browser reports navigator.webdriver = true (it is driven by automation).",
        "2 headless-browser hints: HeadlessChrome, no-plugins.",
        "42 keys typed 4 ms apart (median), faster than a person (threshold 30 ms).",
    )
    assert finding.sessions == (("bot-1", at(5)),)


def test_clicks_without_any_pointer_movement_or_keys_fire_as_medium() -> None:
    # A script that fills fields programmatically (no key events) and clicks through the DOM.
    bot = signals(at(2), pointer_moves=0, clicks=4, clicks_without_move=4, keys=0, key_interval_ms={})
    finding = only(replay(detector(), [bot]))
    assert finding.severity == "medium"
    assert finding.reasons == ("4 of 4 clicks came with no pointer movement at all on the page (threshold 3).",)


def test_two_weak_headless_hints_fire_as_medium() -> None:
    finding = only(replay(detector(), [signals(at(1), headless=["no-plugins", "no-languages"])]))
    assert finding.severity == "medium"
    assert finding.reasons == ("2 headless-browser hints: no-plugins, no-languages.",)


def test_evenly_timed_typing_alone_fires_as_inhuman() -> None:
    finding = only(replay(detector(), [signals(at(1), key_interval_ms={"median": 100, "mad": 1, "min": 99})]))
    assert finding.reasons == (
        "42 keys typed with a spread of 1 ms (median absolute deviation), more even than a person (threshold 3 ms).",
    )
    assert finding.numbers["key_mad_ms"] == 1


def test_a_person_typing_and_moving_the_mouse_is_quiet_and_so_are_few_keys() -> None:
    events = [signals(at(i * 30), session=f"tab-{i}") for i in range(5)]
    events.append(signals(at(200), session="short", keys=3, key_interval_ms={"median": 5, "mad": 0, "min": 5}))
    events.append(signals(at(210), session="phone", pointer_moves=0, clicks=5, clicks_without_move=5, touch=True))
    events.append(signals(at(220), session="phone-2", headless=["no-plugins"], touch=True))  # phones list no plugins
    keyboard = {"pointer_moves": 0, "clicks": 6, "clicks_without_move": 6, "keys": 58}  # Tab and Enter, no mouse
    events.append(signals(at(230), session="keyboard-user", **keyboard))
    assert replay(detector(), events) == []


def test_a_client_that_never_runs_javascript_fires_for_its_address() -> None:
    events = [request(at(jittered(i, 4)), f"/members/{i}", route="/members/{id}", ip="203.0.113.20") for i in range(25)]
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value, finding.severity) == ("ip", ip_key("203.0.113.20"), "medium")
    assert finding.reasons == (
        "20 page requests in 10 min (20 distinct paths) and no tracker event from its session or address: "
        "it never ran JavaScript (threshold 20).",
    )


def test_a_browser_that_runs_the_tracker_is_not_a_no_js_client() -> None:
    events = []
    for i in range(25):
        events.append(request(at(jittered(i, 4)), f"/members/{i}", route="/members/{id}", ip="203.0.113.21"))
        if i == 1:  # the tracker's first batch lands after the first two page requests; joined by address
            events.append(browser(at(jittered(i, 4) + 1), "pageview", session="hm-abc", ip="203.0.113.21"))
    assert replay(detector(), events) == []


def test_tool_user_agents_fire_once_they_walk_several_paths() -> None:
    events = [request(at(i), p, ua="python-requests/2.32.3") for i, p in enumerate(["/", "/search", "/members/3"])]
    finding = only(replay(detector(), events))
    assert finding.reasons == (
        "The user agent names the HTTP tool 'python-requests'; it fetched 3 distinct paths in 10 min (threshold 3).",
    )


def test_an_uptime_monitor_polling_one_url_is_quiet() -> None:
    monitor = [request(at(i * 30), "/health", ua="curl/8.5.0") for i in range(100)]  # regular, no JS, a tool
    monitor += [request(at(i * 60), "/", ua="Mozilla/5.0+(compatible; UptimeRobot/2.0)") for i in range(50)]
    assert replay(detector(), monitor) == []


def test_fast_and_regular_page_cadence_fire() -> None:
    fast = [request(at(i * 0.25), f"/page/{i}", ip="203.0.113.30", session="hm-fast") for i in range(45)]
    finding = only([f for f in replay(detector(), fast) if "faster than a person" in f.reasons[0]])
    assert finding.reasons[0] == "40 page requests within 20 s, faster than a person reads (threshold 40)."
    regular = [request(at(i * 7), f"/page/{i}", ip="203.0.113.31", session="hm-timer") for i in range(24)]
    regular.append(browser(at(1), "pageview", session="hm-timer", ip="203.0.113.31"))
    finding = only(replay(detector(), regular))
    assert finding.reasons[0] == (
        "20 page intervals of 7.0 s on average vary by only 0.0 % (threshold 10 %): a timer, not a person."
    )


def test_a_fast_human_power_user_is_quiet() -> None:
    """A page every 1-4 s with human jitter, the tracker running, for ten minutes."""
    gaps = [1.2, 3.5, 0.9, 2.2, 4.1, 1.7, 2.9, 1.1, 3.3, 2.4]
    events, t = [], 0.0
    for i in range(200):
        t += gaps[i % len(gaps)] * (1 + (i % 7) / 10)
        events.append(request(at(t), f"/members/{i}", route="/members/{id}", session="hm-power"))
        events.append(browser(at(t + 0.3), "pageview", session="hm-power"))
    assert replay(detector(), events) == []


def test_crawlers_unverified_ones_fire_verified_ones_are_allowed() -> None:
    fake = [
        request(at(i), f"/p{i}", ua="Googlebot/2.1", crawler="googlebot:unverified", ip="203.0.113.66")
        for i in range(3)
    ]
    finding = only(replay(detector(), fake))
    assert finding.reasons == ("Claims to be the crawler 'googlebot', but the address failed its reverse-DNS check.",)
    real = [
        request(at(i * 0.2), f"/p{i}", ua="Googlebot/2.1", crawler="googlebot:verified", ip="66.249.66.1")
        for i in range(300)
    ]
    assert replay(detector(), real) == []


def test_no_js_pages_spread_beyond_the_window_do_not_fire() -> None:
    events = [
        request(at(jittered(i, 40)), f"/members/{i}", route="/members/{id}", ip="203.0.113.22") for i in range(30)
    ]
    assert replay(detector(), events) == [], "one page every 40 s: at most 15 in 10 min"
