"""Wire events: what the sender makes of recorded requests and auth calls, checked with capture's own decoder."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from hitmetrix.capture.schema import CaptureError, decode_server_batch
from hitmetrix.sdk.events import RawAuth, RawRequest, uuid4_text, wire_event
from hitmetrix.sdk.network import AddressResolver, parse_trusted_proxies

TRUSTED = AddressResolver(parse_trusted_proxies("127.0.0.1"))
NOW_MS = int(time.time() * 1000)


def request(**changes: object) -> RawRequest:
    raw = RawRequest(
        ts_ms=NOW_MS,
        peer="127.0.0.1",
        forwarded_for="203.0.113.7",
        user_agent="Mozilla/5.0 Test",
        cookie="hm_sid=sess_0123456789",
        user_id="u-17",
        method="GET",
        path="/profiles/17",
        query="tab=photos",
        route="/profiles/{id}",
        status=200,
        duration_ms=3.21456,
        response_bytes=5120,
        referrer="https://site.example/search?q=anna",
    )
    return raw._replace(**changes)


def auth(**changes: object) -> RawAuth:
    raw = RawAuth(NOW_MS, "127.0.0.1", "203.0.113.7", "curl/8", "", "", "signin", False, "anna@example.com", "")
    return raw._replace(**changes)


def accepted_by_capture(events: list[dict]) -> list:
    body = {"batch_id": "b_0123456789", "sent_at": NOW_MS, "source": "middleware", "events": events}
    return decode_server_batch(json.dumps(body).encode()).events


def test_request_event_fields() -> None:
    event = wire_event(request(), TRUSTED)
    assert event.pop("id")
    assert event == {
        "type": "request",
        "ts": NOW_MS,
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 Test",
        "session_id": "sess_0123456789",
        "user_id": "u-17",
        "method": "GET",
        "path": "/profiles/17",
        "query": "tab=photos",
        "route": "/profiles/{id}",
        "status": 200,
        "duration_ms": 3.215,
        "bytes": 5120,
        "referrer": "https://site.example/search?q=anna",
    }
    [decoded] = accepted_by_capture([wire_event(request(), TRUSTED)])
    assert (decoded.route, decoded.status, decoded.session_id) == ("/profiles/{id}", 200, "sess_0123456789")


def test_auth_event_fields_and_no_password_anywhere() -> None:
    event = wire_event(auth(cookie="a=b; hm_sid=sess_0123456789", user_id="42", reason="bad password"), TRUSTED)
    assert {k: v for k, v in event.items() if k != "id"} == {
        "type": "auth",
        "ts": NOW_MS,
        "ip": "203.0.113.7",
        "user_agent": "curl/8",
        "session_id": "sess_0123456789",
        "user_id": "42",
        "kind": "signin",
        "ok": False,
        "username": "anna@example.com",
        "reason": "bad password",
    }
    [decoded] = accepted_by_capture([event])
    assert (decoded.kind, decoded.ok, decoded.username) == ("signin", False, "anna@example.com")


def test_ids_are_fresh_uuids() -> None:
    ids = {wire_event(request(), TRUSTED)["id"] for _ in range(100)}
    assert len(ids) == 100
    accepted_by_capture([wire_event(request(), TRUSTED)])  # the id pattern is capture's


@pytest.mark.parametrize(
    "changes",
    [
        {"path": "/" + "p" * 5000, "query": "q=" + "x" * 9000, "referrer": "r" * 5000, "route": "/" + "r" * 900},
        {"user_agent": "U" * 3000, "user_id": "i" * 1000},
        {"method": "G E T"},  # not a token: sent as ""
        {"method": "X" * 40},
        {"status": 0},
        {"status": 1234},
        {"duration_ms": -5.0},
        {"duration_ms": 1e12},
        {"response_bytes": -1},
        {"response_bytes": 2**60},
        {"cookie": "hm_sid=bad id!"},
        {"peer": "not an address", "forwarded_for": ""},
        {"path": "/caf\udcc3\udca9", "user_agent": "bad \ud800 surrogate"},  # what surrogateescape leaves
        {"path": "", "query": ""},
    ],
)
def test_odd_requests_still_make_events_capture_accepts(changes: dict) -> None:
    event = wire_event(request(**changes), TRUSTED)
    json.dumps(event).encode("utf-8")  # encodable as UTF-8 JSON
    [decoded] = accepted_by_capture([event])
    assert decoded.type == "request"
    assert 100 <= decoded.status <= 599


def test_long_auth_fields_are_cut_to_the_limits() -> None:
    event = wire_event(auth(username="a" * 1000 + "@example.com", reason="r" * 1000), TRUSTED)
    [decoded] = accepted_by_capture([event])
    assert len(decoded.username) == 320
    assert len(decoded.reason) == 200


def test_capture_refuses_a_password_field_the_sdk_never_sends() -> None:
    event = wire_event(auth(), TRUSTED)
    assert "password" not in event
    with pytest.raises(CaptureError):
        accepted_by_capture([{**event, "password": "hunter2"}])


def test_uuid4_text_is_a_canonical_version_4_uuid() -> None:
    for _ in range(200):
        random16 = os.urandom(16)
        text = uuid4_text(random16)
        assert text == str(uuid.UUID(text)) and uuid.UUID(text).version == 4
        assert uuid.UUID(text).variant == uuid.RFC_4122
    assert uuid4_text(b"\x00" * 16) == "00000000-0000-4000-8000-000000000000"
