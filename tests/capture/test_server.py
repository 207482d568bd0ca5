"""hitmetrix/capture/server.py: the server batch route over ASGI with an in-memory spool, and its grouping."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from hitmetrix.capture import CaptureContext
from hitmetrix.capture.server import SERVER_BATCH_PATH, server_capture_routes, timeline_session_id
from hitmetrix.detect.keys import ip_key, ip_net, user_key
from hitmetrix.model import StoredBatch, decode_batch
from hitmetrix.settings import load_settings
from hitmetrix.store.meta import Project
from tests.capture.builders import CHROME_UA, NOW_MS, project

SERVER_KEY = "hm_sk_test_server_key"
SECRET = b"s" * 32
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "request", "id": str(uuid.uuid4()), "ts": NOW_MS - 1000, "ip": "203.0.113.7",
            "user_agent": CHROME_UA, "method": "GET", "path": "/profiles/17", "route": "/profiles/{id}",
            "status": 200, **fields}


def body(*events: dict[str, Any], batch_id: str = "batch-0001") -> dict[str, Any]:
    return {"batch_id": batch_id, "sent_at": NOW_MS, "source": "middleware", "events": list(events)}


class Harness:
    def __init__(self, tmp_path: Path | None = None, dns_file: str = "") -> None:
        proj = project(mode="truncate")
        proj.server_key = SERVER_KEY
        self.project: Project = proj
        self.appended: list[bytes] = []
        self.settings = load_settings({"crawler_dns_file": dns_file, "geoip": False}, environ={})

    async def _append(self, payload: bytes) -> None:
        self.appended.append(payload)

    def post(self, payload: dict[str, Any] | bytes, key: str | None = SERVER_KEY, **headers: str) -> httpx.Response:
        ctx = CaptureContext(
            settings=self.settings,
            resolve_project=lambda _key: None,
            spool_append=self._append,
            clock=lambda: NOW_MS / 1000,
            install_secret=SECRET,
            resolve_server_key=lambda k: self.project if k == SERVER_KEY else None,
        )
        app = Starlette(routes=server_capture_routes(ctx))
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://capture.test") as client:
                return await client.post(SERVER_BATCH_PATH, content=content, headers=headers)

        return asyncio.run(go())

    def stored(self) -> list[StoredBatch]:
        return [decode_batch(p) for p in self.appended]


def test_a_good_batch_is_grouped_enriched_and_spooled() -> None:
    h = Harness()
    answer = h.post(body(
        event(query="q=anna@example.com&page=2"),
        event(session_id="sess_browser_1", path="/messages"),
        event(type="auth", path="/login", kind="signin", ok=False, username="Anna@Example.com", reason="bad password"),
        event(ip="2001:db8::7", user_agent="curl/8.0"),
    ))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "events": 4, "batches": 3}
    first, browser, other = h.stored()
    assert [b.batch_id for b in h.stored()] == ["batch-0001.0", "batch-0001.1", "batch-0001.2"]
    assert first.source == "middleware" and first.project_id == 1
    assert first.session_id == timeline_session_id(SECRET, "203.0.113.7", CHROME_UA, NOW_MS - 1000)
    assert first.ip == "203.0.113.0"  # the project truncates
    assert first.ip_key == ip_key(SECRET, "203.0.113.7") and first.ip_net == "203.0.113.0/24"
    assert first.browser == "Chrome" and first.crawler == ""
    request, auth = first.events
    assert request.url == "/profiles/17?q=*&page=*" and request.name == "/profiles/{id}"
    assert json.loads(request.props) == {"method": "GET", "status": 200, "duration_ms": 0.0, "bytes": 0}
    assert auth.type == "auth" and auth.name == "signin"
    props = json.loads(auth.props)
    assert props == {"ok": False, "user_key": user_key(SECRET, "anna@example.com"), "user_display": "a…@example.com",
                     "reason": "bad password"}
    assert b"anna" not in b"".join(h.appended).lower()
    assert browser.session_id == "sess_browser_1"
    assert other.ip_net == ip_net("2001:db8::7") == "2001:db8::/64"


def test_a_retry_makes_the_same_child_batches() -> None:
    h = Harness()
    payload = body(event(id="0f8fad5b-d9cb-469f-a165-70867728950e"), event(ip="198.51.100.1"))
    h.post(payload)
    h.post(payload)
    first, second = h.stored()[:2], h.stored()[2:]
    assert [(b.batch_id, b.session_id, [e.event_id for e in b.events]) for b in first] == [
        (b.batch_id, b.session_id, [e.event_id for e in b.events]) for b in second
    ]


def test_without_or_with_a_wrong_key_it_is_401() -> None:
    h = Harness()
    for key in (None, "hm_sk_wrong", "hm_pk_test"):
        answer = h.post(body(event()), key=key)
        assert answer.status_code == 401 and "key" in answer.json()["error"]
    assert h.appended == []


def test_hostile_bodies_are_refused_with_the_field() -> None:
    h = Harness()
    cases = [
        (body(event(password="hunter2")), "$.events[0]", "unknown field `password`"),
        (body(event(ip="not-an-ip")), "$.events[0].ip", "not an IP address"),
        (body(event(type="pageview")), "$.events[0].type", "Invalid enum value"),
        (body(event(type="auth")), "$.events[0].kind", "needs kind"),
        (body(event(type="auth", kind="signin")), "$.events[0].ok", "needs ok"),
        (body(event(ts=1)), "$.events[0].ts", "outside the times"),
        (body(event(status=1000)), "$.events[0].status", "<= 999"),
        (body(event(session_id="x")), "$.events[0].session_id", ""),
        ({**body(event()), "source": "browser"}, "$.source", "Invalid enum"),
        ({**body(event()), "extra": 1}, "$", "unknown field"),
        (b"[" * 10_000, "$", "deep"),
        (b"{not json", "$", "malformed JSON"),
    ]
    for payload, field, message in cases:
        answer = h.post(payload)
        assert answer.status_code == 400, (payload, answer.text)
        assert answer.json()["field"] == field and message in answer.json()["error"], answer.text
    assert h.appended == []


def test_gzip_and_size_caps() -> None:
    h = Harness()
    assert h.post(gzip.compress(json.dumps(body(event())).encode()), **{"Content-Encoding": "gzip"}).status_code == 200
    assert h.post(b"x" * (2 * 1024 * 1024)).status_code == 413
    too_many = body(*[event() for _ in range(1001)])
    assert h.post(too_many).status_code == 413


def test_a_claimed_crawler_is_verified_by_reverse_and_forward_dns(tmp_path: Path) -> None:
    hosts = tmp_path / "dns"
    hosts.write_text(
        "66.249.66.1 crawl-66-249-66-1.googlebot.com\n"
        "PTR 198.51.100.9 crawl-fake.googlebot.com\n"  # PTR claims Google, but the name does not resolve back
        "A crawl-fake.googlebot.com 66.249.66.2\n"
    )
    h = Harness(dns_file=str(hosts))
    h.post(body(event(ip="66.249.66.1", user_agent=GOOGLEBOT), event(ip="198.51.100.9", user_agent=GOOGLEBOT),
                event(ip="203.0.113.8", user_agent=GOOGLEBOT)))
    assert [b.crawler for b in h.stored()] == ["googlebot:verified", "googlebot:unverified", "googlebot:unverified"]


def test_the_browser_routes_hostile_corpus_is_refused_here_too() -> None:
    """Every hostile body of the capture corpus: a 4xx with a message, never a 5xx, nothing spooled."""
    from tests.capture.hostile import HOSTILE

    h = Harness()
    for what, payload, headers, _status in HOSTILE:
        answer = h.post(payload, **headers)
        assert 400 <= answer.status_code < 500 and answer.json()["error"], (what, answer.text)
    assert h.appended == []


def test_an_injection_in_the_query_reaches_detection_as_a_verdict_not_as_text() -> None:
    h = Harness()
    answer = h.post(body(
        event(path="/search", query="q=%27%20OR%201%3D1--&page=1"),
        event(path="/search", query="q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        event(path="/search", query="q=anna"),
    ))
    assert answer.status_code == 200, answer.text
    sql, xss, plain = h.stored()[0].events
    assert json.loads(sql.props)["injection"] == ["sql"] and sql.url == "/search?q=*&page=*"
    assert json.loads(xss.props)["injection"] == ["xss"]
    assert "injection" not in json.loads(plain.props)
    assert b"script" not in b"".join(h.appended)
