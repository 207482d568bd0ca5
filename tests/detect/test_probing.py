"""probing: 404 bursts, sensitive paths, injection patterns, scanner user agents; dead links and searches are quiet."""

from __future__ import annotations

from hitmetrix.detect.detectors.probing import ProbingDetector, injection_kinds
from tests.detect.replay import at, ip_key, only, replay, request, settings


def detector(**overrides: object) -> ProbingDetector:
    return ProbingDetector(settings(**overrides))


def test_a_burst_of_not_found_paths_fires() -> None:
    words = ["admin", "login.asp", "old", "test", "api/v0", "portal", "manager", "console", "shell", "v1", "setup"]
    events = [request(at(i * 2), f"/{w}", status=404, ip="203.0.113.90") for i, w in enumerate(words)]
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind) == ("probing", "medium", "ip")
    assert finding.entity_value == ip_key("203.0.113.90")
    assert finding.reasons == ("10 distinct paths answered 400/403/404 in 1 min (threshold 10).",)
    assert finding.numbers == {"error_paths": 10}


def test_sensitive_paths_fire() -> None:
    paths = ["/.env", "/.git/config", "/wp-admin/", "/phpmyadmin/index.php", "/backup.sql"]
    events = [request(at(i), p, status=404, ip="203.0.113.91") for i, p in enumerate(paths)]
    finding = only(replay(detector(), events))
    assert finding.severity == "high"
    assert finding.reasons == ("3 distinct sensitive paths requested in 5 min, the latest '/wp-admin/' (threshold 3).",)


def test_injection_patterns_in_path_and_query_fire() -> None:
    urls = [
        "/members/1%27%20OR%201=1--",
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/files/..%2f..%2f..%2fetc%2fpasswd",
        "/search?q={{7*7}}",
    ]
    events = [request(at(i * 10), u, ip="203.0.113.92") for i, u in enumerate(urls)]
    finding = only(replay(detector(), events))
    assert finding.reasons == ("3 requests with injection patterns (path_traversal, sql, xss) in 5 min (threshold 3).",)


def test_injection_kinds_capture_found_in_the_masked_query_count() -> None:
    events = [request(at(i), "/search?q=*", ip="203.0.113.93", props={"injection": ["sql"]}) for i in range(3)]
    assert only(replay(detector(), events)).numbers == {"injections": 3}


def test_scanner_user_agents_fire() -> None:
    events = [
        request(at(i), "/", ua="Mozilla/5.0 (compatible; Nmap Scripting Engine)", ip="203.0.113.94") for i in range(2)
    ]
    finding = only(replay(detector(), events))
    assert finding.reasons == ("2 requests from the scanner 'Nmap' (its user agent) in 5 min (threshold 2).",)


def test_people_with_dead_links_and_odd_searches_and_missing_images_are_quiet() -> None:
    events = [request(at(i * 30), f"/old-page-{i}", status=404) for i in range(3)]
    events += [request(at(100 + i), f"/img/{i}.png", status=404) for i in range(50)]
    events += [request(at(200 + i), u) for i, u in enumerate(["/search?q=O'Brien", "/search?q=a<b", "/search?q=50%25"])]
    events += [
        request(at(300 + i), f"/missing{i}", status=404, crawler="bingbot:verified", ip="40.77.167.1")
        for i in range(40)
    ]
    assert replay(detector(), events) == []
    assert injection_kinds("/search?q=rock+%26+roll") == ()


def test_errors_spread_beyond_the_window_do_not_fire() -> None:
    events = [request(at(i * 8), f"/nothing-{i}", status=404, ip="203.0.113.95") for i in range(20)]
    assert replay(detector(), events) == [], "one every 8 s: 8 in a minute"
