"""HitmetrixWSGI around plain WSGI apps, in process: events for list, iterator and write() bodies, and enforcement."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from hitmetrix.sdk import ROUTE_KEY, Client, HitmetrixWSGI, set_user
from hitmetrix.sdk.transport import Answer
from tests.sdk.memory import MemoryTransport
from tests.support import wait_for

SID = "sess_0123456789"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/profiles/"):
        environ[ROUTE_KEY] = "/profiles/<int:member_id>"  # as a Flask before_request hook would
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"profile ", path.rsplit("/", 1)[1].encode()]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"y" * 100 for _ in range(5))
    if path == "/legacy":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"z" * 50)
        return [b"!"]
    if path == "/crash":
        raise RuntimeError("the host's own bug")
    if path == "/signin":
        form = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        ok = form["password"] == "right"
        environ["hitmetrix.client"].track_auth("signin", form["username"], ok, request=environ)
        if ok:
            set_user(environ, "u-9")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok" if ok else b"wrong password"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def call(wsgi: Any, path: str, body: bytes = b"", **environ_extra: str) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST" if body else "GET",
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        **environ_extra,
    }
    setup_testing_defaults(environ)
    environ["hitmetrix.client"] = wsgi.client
    answer: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer.update(status=status, headers=dict(headers))
        return written.append

    result = wsgi(environ, start_response)
    try:
        written.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], b"".join(written)


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def client(transport: MemoryTransport) -> Iterator[Client]:
    made = Client(
        "http://127.0.0.1:9",
        "hm_sk_x",
        trusted_proxies="127.0.0.1",
        flush_interval_s=60,
        transport_factory=transport.factory,
    )
    yield made
    made.close(1)


def sent(client: Client, transport: MemoryTransport, count: int) -> list[dict[str, Any]]:
    assert client.flush(5)
    events = transport.events()
    assert len(events) == count, events
    return events


def test_one_event_per_request_with_every_field(client: Client, transport: MemoryTransport) -> None:
    wsgi = HitmetrixWSGI(app, client)
    status, _headers, body = call(
        wsgi,
        "/profiles/17?tab=photos",
        HTTP_USER_AGENT="Mozilla/5.0 Test",
        HTTP_COOKIE=f"hm_sid={SID}",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",
        HTTP_REFERER="https://site.example/",
        REMOTE_USER="u-17",
    )
    assert (status, body) == ("200 OK", b"profile 17")
    [event] = sent(client, transport, 1)
    assert {k: event[k] for k in event if k not in ("id", "ts", "duration_ms")} == {
        "type": "request",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 Test",
        "session_id": SID,
        "user_id": "u-17",
        "method": "GET",
        "path": "/profiles/17",
        "query": "tab=photos",
        "route": "/profiles/<int:member_id>",
        "status": 200,
        "bytes": 10,
        "referrer": "https://site.example/",
    }
    assert abs(event["ts"] - time.time() * 1000) < 10_000


def test_iterators_write_crashes_and_utf8_paths(client: Client, transport: MemoryTransport) -> None:
    wsgi = HitmetrixWSGI(app, client, route_of=lambda environ: environ["PATH_INFO"].upper())
    assert call(wsgi, "/stream")[2] == b"y" * 500
    assert call(wsgi, "/legacy")[2] == b"z" * 50 + b"!"
    with pytest.raises(RuntimeError, match="own bug"):
        call(wsgi, "/crash")
    call(wsgi, "/caf\u00c3\u00a9", SCRIPT_NAME="/app")  # "/café" as PEP 3333 hands it over (UTF-8 bytes as latin-1)
    events = sent(client, transport, 4)
    assert [(e["path"], e["status"], e["bytes"]) for e in events] == [
        ("/stream", 200, 500),
        ("/legacy", 200, 51),
        ("/crash", 500, 0),
        ("/app/café", 404, 9),
    ]
    assert events[0]["route"] == "/STREAM"
    assert client.stats()["errors"] == 0


def test_track_auth_with_the_environ(client: Client, transport: MemoryTransport) -> None:
    wsgi = HitmetrixWSGI(app, client)
    cookie = {"HTTP_COOKIE": f"hm_sid={SID}", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    call(wsgi, "/signin", b'{"username":"anna@example.com","password":"wrong"}', **cookie)
    call(wsgi, "/signin", b'{"username":"anna@example.com","password":"right"}', **cookie)
    events = sent(client, transport, 4)
    assert [(e["type"], e.get("ok"), e["user_id"], e["ip"], e["session_id"]) for e in events] == [
        ("auth", False, "", "203.0.113.7", SID),
        ("request", None, "", "203.0.113.7", SID),
        ("auth", True, "", "203.0.113.7", SID),
        ("request", None, "u-9", "203.0.113.7", SID),
    ]


def test_a_broken_route_of_never_fails_the_request(client: Client, transport: MemoryTransport) -> None:
    wsgi = HitmetrixWSGI(app, client, route_of=lambda environ: environ["no such key"])
    assert call(wsgi, "/profiles/3")[0] == "200 OK"
    [event] = sent(client, transport, 1)
    assert event["route"] == ""
    assert client.stats()["errors"] == 1


def test_enforcement_answers_before_the_app() -> None:
    expires_ms = int(time.time() * 1000) + 30_000
    decisions = [
        {"id": 1, "scope": "ip", "value": "k", "match": "203.0.113.7", "action": "block", "expires_ms": expires_ms},
        {"id": 2, "scope": "net", "value": "2001:db8:1:2::/64", "action": "challenge", "expires_ms": expires_ms},
    ]

    def answer(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        return Answer(200, {}, json.dumps({"decisions": decisions}).encode() if method == "GET" else b"{}")

    transport = MemoryTransport(answer)
    client = Client("http://127.0.0.1:9", "hm_sk_x", "127.0.0.1", enforce=True, transport_factory=transport.factory)
    try:
        wait_for(lambda: client.stats()["decisions"] == 2, 5, what="the decisions table")
        wsgi = HitmetrixWSGI(app, client)
        assert call(wsgi, "/profiles/1", HTTP_X_FORWARDED_FOR="203.0.113.7")[:3:2] == ("403 Forbidden", b"Forbidden\n")
        status, headers, _ = call(wsgi, "/profiles/1", REMOTE_ADDR="2001:db8:1:2::99")
        assert status == "429 Too Many Requests"
        assert 25 <= int(headers["Retry-After"]) <= 30
        assert call(wsgi, "/profiles/1", HTTP_X_FORWARDED_FOR="203.0.113.8")[0] == "200 OK"
        events = sent(client, transport, 3)
        assert [(e["status"], e["route"]) for e in events] == [(403, ""), (429, ""), (200, "/profiles/<int:member_id>")]
    finally:
        client.close(1)
