"""hitmetrix/ingest/parse.py: a corpus of combined and JSON lines, hostile ones included."""

from __future__ import annotations

import pytest

from hitmetrix.ingest.parse import LineError, parse_line

NGINX = (
    b'203.0.113.7 - - [01/Dec/2026:10:00:00 +0000] "POST /login?next=%2Fhome HTTP/1.1" 302 154 '
    b'"https://site.example/login" "Mozilla/5.0 (X11; Linux x86_64)"\n'
)


def test_a_combined_line() -> None:
    record = parse_line(NGINX, "combined")
    assert (record.ip, record.method, record.path, record.query, record.status, record.bytes) == (
        "203.0.113.7", "POST", "/login", "next=%2Fhome", 302, 154)
    assert record.ts_ms == 1_796_119_200_000
    assert record.referrer == "https://site.example/login" and record.user_agent == "Mozilla/5.0 (X11; Linux x86_64)"


@pytest.mark.parametrize(
    ("line", "method", "path", "agent"),
    [
        # Apache common (no referrer / agent), "-" bytes, IPv6, escaped quotes, TLS garbage, absolute URL.
        (b'2001:db8::1 - bob [01/Dec/2026:10:00:00 -0500] "GET / HTTP/1.0" 200 -', "GET", "/", ""),
        (b'198.51.100.2 - - [01/Dec/2026:10:00:00 +0100] "GET /q?x=\\"1\\" HTTP/1.1" 200 5 "-" "a \\"b\\""', "GET",
         "/q", 'a "b"'),
        (b'198.51.100.2 - - [01/Dec/2026:10:00:00 +0000] "\\x16\\x03\\x01\\x00" 400 157 "-" "-"', "", "", ""),
        (b'198.51.100.2 - - [01/Dec/2026:10:00:00 +0000] "-" 400 0 "-" "-"', "", "", ""),
        (b'198.51.100.2 - - [01/Dec/2026:10:00:00 +0000] "GET http://evil.example/x?y=1 HTTP/1.1" 404 0 "-" "zgrab"',
         "GET", "/x", "zgrab"),
        (b'198.51.100.2 - - [01/Dec/2026:10:00:00 +0000] "GET /../../etc/passwd HTTP/1.1" 404 0 "-" "-" "extra" 0.003',
         "GET", "/../../etc/passwd", ""),
    ],
)
def test_odd_but_valid_combined_lines(line: bytes, method: str, path: str, agent: str) -> None:
    record = parse_line(line, "combined")
    assert (record.method, record.path, record.user_agent) == (method, path, agent)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"garbage\n",
        b'not-an-ip - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
        b'1.2.3.4 - - [99/Foo/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
        b'1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 2000 1 "-" "-"',
        b"\xff\xfe\x00" * 10,
        b"1.2.3.4 " + b"a" * 70_000,
    ],
)
def test_hostile_combined_lines_are_refused_with_a_reason(line: bytes) -> None:
    with pytest.raises(LineError):
        parse_line(line, "combined")


def test_json_lines_with_our_names_and_nginx_names() -> None:
    ours = parse_line(
        b'{"time": "2026-12-01T10:00:00Z", "ip": "203.0.113.7", "method": "POST", "path": "/login", "status": 302,'
        b' "bytes": 10, "location": "/login?error=1", "duration_ms": 12.5, "session_id": "sess_0001"}', "json")
    assert (ours.ts_ms, ours.location, ours.duration_ms, ours.session_id) == (
        1_796_119_200_000, "/login?error=1", 12.5, "sess_0001")
    nginx = parse_line(
        b'{"msec": "1796119200.123", "remote_addr": "203.0.113.7", "request_method": "GET",'
        b' "request_uri": "/s?q=1", "status": "200", "body_bytes_sent": "512", "request_time": "0.020",'
        b' "http_user_agent": "UA", "http_referer": "-"}', "json")
    assert (nginx.ts_ms, nginx.path, nginx.query, nginx.status, nginx.bytes, nginx.duration_ms, nginx.referrer) == (
        1_796_119_200_123, "/s", "q=1", 200, 512, 20.0, "")


@pytest.mark.parametrize(
    "line",
    [b"[1,2]", b'{"ip": "1.2.3.4"}', b'{"time": "yesterday"}', b'{"time": 1796119200, "status": "x"}',
     b'{"time": 1796119200, "ip": "::::"}', b"[" * 5000, b'{"time": true}'],
)
def test_hostile_json_lines_are_refused(line: bytes) -> None:
    with pytest.raises(LineError):
        parse_line(line, "json")
