"""hitmetrix/capture/routes.py: the endpoint over ASGI, with an in-memory spool."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hitmetrix.capture import BATCH_PATH, CaptureContext, capture_routes
from hitmetrix.capture.enrich import STEP_TIMINGS
from hitmetrix.capture.routes import ANSWERS, INLINE_RECORDING_BYTES
from hitmetrix.model import StoredBatch, decode_batch
from hitmetrix.settings import load_settings
from hitmetrix.store.meta import Project
from tests.capture.builders import CHROME_UA, NOW_MS, batch_dict, body_bytes, project
from tests.capture.hostile import AS_JSON, GOOD, HOSTILE

KEY = "hm_pk_test"
URL = f"{BATCH_PATH}?key={KEY}"


class SpoolFull(Exception):
    pass


@dataclass
class Harness:
    """The capture routes in a Starlette app, a spool list, a fake clock and the projects by key."""

    projects: dict[str, Project] = field(default_factory=lambda: {KEY: project(key=KEY, mode="truncate")})
    settings: dict[str, Any] = field(default_factory=dict)
    appended: list[bytes] = field(default_factory=list)
    fail_with: Exception | None = None
    lookup_fails_with: Exception | None = None
    monotonic_s: float = 0.0
    clock_s: float = NOW_MS / 1000  # the wall clock capture reads; a test may move it
    peer: str = "8.8.8.8"

    async def _append(self, payload: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.appended.append(payload)

    def _resolve(self, key: str) -> Project | None:
        if self.lookup_fails_with is not None:
            raise self.lookup_fails_with
        return self.projects.get(key)

    def client(self) -> httpx.AsyncClient:
        ctx = CaptureContext(
            settings=load_settings(self.settings, environ={}),
            resolve_project=self._resolve,
            spool_append=self._append,
            unavailable_errors=(SpoolFull,),
            clock=lambda: self.clock_s,
            monotonic=lambda: self.monotonic_s,
        )
        app = Starlette(routes=capture_routes(ctx))
        transport = httpx.ASGITransport(app=app, client=(self.peer, 51000))
        return httpx.AsyncClient(transport=transport, base_url="http://capture.test")

    def stored(self) -> list[StoredBatch]:
        return [decode_batch(payload) for payload in self.appended]

    def run(self, request: Callable[[httpx.AsyncClient], Coroutine[Any, Any, httpx.Response]]) -> httpx.Response:
        async def go() -> httpx.Response:
            async with self.client() as client:
                return await request(client)

        return asyncio.run(go())

    def post(self, body: dict[str, Any] | bytes, url: str = URL, **kwargs: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else body_bytes(body)
        headers = {"Content-Type": "application/json", "User-Agent": CHROME_UA, **kwargs.pop("headers", {})}
        return self.run(lambda client: client.post(url, content=content, headers=headers, **kwargs))


def test_good_batch_is_appended_and_acknowledged() -> None:
    harness = Harness()
    response = harness.post(batch_dict(events=3, chunks=2, user_id="alice"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True, "events": 3, "chunks": 2}
    [stored] = harness.stored()
    assert (stored.project_id, stored.session_id, stored.user_id, stored.received_at) == (
        1,
        "sess_0001",
        "alice",
        NOW_MS,
    )
    assert (stored.ip, stored.country, stored.as_org, stored.browser, stored.device_type) == (
        "8.8.8.0",
        "US",
        "GOOGLE",
        "Chrome",
        "desktop",
    )
    assert [e.url for e in stored.events] == [f"https://shop.example/p/{i}" for i in range(3)]
    assert [e.props for e in stored.events] == ['{"nav": "load"}'] * 3
    assert [c.seq for c in stored.recording] == [0, 1]
    assert json.loads(gzip.decompress(stored.recording[0].data))[0]["type"] == 4
    assert b"8.8.8.8" not in harness.appended[0]


def test_gzip_body() -> None:
    harness = Harness()
    response = harness.post(gzip.compress(body_bytes(batch_dict(events=5))), headers={"Content-Encoding": "gzip"})
    assert response.json() == {"ok": True, "events": 5, "chunks": 0}
    assert len(harness.stored()[0].events) == 5


def test_sendbeacon_text_plain_with_key_in_body() -> None:
    harness = Harness()
    response = harness.post(
        batch_dict(events=1, key=KEY), url=BATCH_PATH, headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert response.status_code == 200 and len(harness.appended) == 1


def test_key_in_header() -> None:
    harness = Harness()
    response = harness.post(batch_dict(events=1), url=BATCH_PATH, headers={"X-Hitmetrix-Key": KEY})
    assert response.status_code == 200


def test_empty_batch_is_acknowledged_but_not_appended() -> None:
    harness = Harness()
    response = harness.post(batch_dict(events=0))
    assert response.json() == {"ok": True, "events": 0, "chunks": 0}
    assert harness.appended == []


def test_schema_error_is_400_with_field() -> None:
    harness = Harness()
    body = batch_dict(events=4)
    body["events"][3]["url"] = "u" * 3000
    response = harness.post(body)
    assert response.status_code == 400
    assert response.json()["field"] == "$.events[3].url"
    assert harness.appended == []


def test_malformed_json_and_gzip_are_400() -> None:
    harness = Harness()
    assert harness.post(b"{not json").status_code == 400
    response = harness.post(b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in response.json()["error"]


def test_missing_or_unknown_key_is_401() -> None:
    harness = Harness()
    for url in (BATCH_PATH, f"{BATCH_PATH}?key=hm_pk_nope"):
        response = harness.post(batch_dict(events=1), url=url)
        assert response.status_code == 401
        assert response.json() == {"error": "unknown project key"}
    assert harness.appended == []


def test_origin_checks() -> None:
    harness = Harness(projects={KEY: project(key=KEY, origins="https://shop.example\nhttps://www.shop.example/")})
    allowed = harness.post(batch_dict(events=1), headers={"Origin": "https://www.shop.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://www.shop.example"
    refused = harness.post(batch_dict(events=1), headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "origin not allowed"}
    assert "access-control-allow-origin" not in refused.headers
    assert harness.post(batch_dict(events=1)).status_code == 200  # no Origin: a server-side sender
    assert len(harness.appended) == 2


def test_any_origin_when_the_project_sets_none() -> None:
    response = Harness().post(batch_dict(events=1), headers={"Origin": "https://anything.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://anything.example"


def test_body_too_large_is_413() -> None:
    harness = Harness(settings={"max_body_bytes": 2000})
    response = harness.post(batch_dict(events=40))
    assert response.status_code == 413 and "body" in response.json()["error"]

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(100):
            yield b" " * 100

    response = harness.run(
        lambda client: client.post(URL, content=streamed(), headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 413
    assert harness.appended == []


def test_decompressed_body_too_large_is_413() -> None:
    harness = Harness(settings={"max_decompressed_bytes": 5000})
    small = gzip.compress(body_bytes(batch_dict(events=100)))
    assert len(small) < 5000
    response = harness.post(small, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompressed" in response.json()["error"]


def test_too_many_events_is_413() -> None:
    response = Harness(settings={"max_events_per_batch": 5}).post(batch_dict(events=6))
    assert response.status_code == 413 and "too many events" in response.json()["error"]


def test_unsupported_media_is_415() -> None:
    harness = Harness()
    assert harness.post(batch_dict(), headers={"Content-Encoding": "br"}).status_code == 415
    assert harness.post(batch_dict(), headers={"Content-Type": "application/xml"}).status_code == 415


def test_rate_limit_is_429_with_retry_after() -> None:
    harness = Harness(settings={"rate_limit_rps": 0.5, "rate_limit_burst": 2})

    async def three(client: httpx.AsyncClient) -> httpx.Response:
        for _ in range(2):
            assert (await client.post(URL, content=body_bytes(batch_dict(events=1)))).status_code == 200
        return await client.post(URL, content=body_bytes(batch_dict(events=1)))

    response = harness.run(three)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()
    harness.monotonic_s += 2.0
    assert harness.post(batch_dict(events=1)).status_code == 200


def test_rate_limit_is_per_client_address() -> None:
    harness = Harness(settings={"rate_limit_rps": 0.5, "rate_limit_burst": 1})

    async def two_clients(client: httpx.AsyncClient) -> httpx.Response:
        await client.post(URL, content=body_bytes(batch_dict(events=1)))
        return await client.post(URL, content=body_bytes(batch_dict(events=1)))

    assert harness.run(two_clients).status_code == 429
    harness.peer = "9.9.9.9"
    assert harness.post(batch_dict(events=1)).status_code == 200


def test_spool_unavailable_is_503_with_retry_after() -> None:
    harness = Harness(fail_with=SpoolFull("disk full"))
    response = harness.post(batch_dict(events=1))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "error" in response.json()


def test_unexpected_error_is_a_generic_500() -> None:
    harness = Harness(fail_with=RuntimeError("secret detail"))
    before = ANSWERS[500]
    response = harness.post(batch_dict(events=1))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert ANSWERS[500] == before + 1


def test_preflight() -> None:
    harness = Harness()
    response = harness.run(
        lambda client: client.options(
            URL,
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert response.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert "X-Hitmetrix-Key" in response.headers["access-control-allow-headers"]
    assert "Content-Encoding" in response.headers["access-control-allow-headers"]
    assert response.headers["access-control-max-age"] == "86400"
    assert response.headers["vary"] == "Origin"


def test_preflight_for_a_disallowed_origin() -> None:
    harness = Harness(projects={KEY: project(key=KEY, origins="https://shop.example")})
    response = harness.run(lambda client: client.options(URL, headers={"Origin": "https://evil.example"}))
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_errors_carry_cors_headers() -> None:
    response = Harness().post(batch_dict(), url=BATCH_PATH, headers={"Origin": "https://shop.example"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert response.headers["vary"] == "Origin"


def test_other_methods_are_405_json() -> None:
    response = Harness().run(lambda client: client.get(URL))
    assert response.status_code == 405
    assert response.json() == {"error": "method not allowed: use POST"}


def test_forwarded_for_from_a_trusted_proxy() -> None:
    harness = Harness(settings={"trusted_proxies": "10.0.0.0/8"}, peer="10.0.0.7")
    harness.projects[KEY].ip_anonymisation = "none"
    harness.post(batch_dict(events=1), headers={"X-Forwarded-For": "6.6.6.6, 1.1.1.1"})
    assert (harness.stored()[0].ip, harness.stored()[0].country) == ("1.1.1.1", "AU")


def test_project_lookup_unavailable_is_503() -> None:
    harness = Harness()

    harness.lookup_fails_with = SpoolFull("metadata database down")
    response = harness.post(batch_dict(events=1))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_rate_limit_zero_switches_it_off() -> None:
    harness = Harness(settings={"rate_limit_rps": 0, "rate_limit_burst": 1})

    async def many(client: httpx.AsyncClient) -> list[int]:
        return [(await client.post(URL, content=body_bytes(batch_dict(events=1)))).status_code for _ in range(5)]

    async def go() -> list[int]:
        async with harness.client() as client:
            return await many(client)

    assert asyncio.run(go()) == [200] * 5


def test_several_forwarded_for_lines_form_one_list() -> None:
    harness = Harness(settings={"trusted_proxies": "10.0.0.0/8"}, peer="10.0.0.7")
    harness.projects[KEY].ip_anonymisation = "none"
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.1.1.1"), ("Content-Type", "application/json")]
    harness.run(lambda client: client.post(URL, content=body_bytes(batch_dict(events=1)), headers=headers))
    assert harness.stored()[0].ip == "1.1.1.1"


# --- hostile input: refuse now, naming the field, whatever the loader would fail on later ---


def test_the_271_byte_deep_chunk_request_is_400_not_acknowledged() -> None:
    deep = base64.b64encode(gzip.compress(b"[" * 100_000 + b"]" * 100_000)).decode()
    body = json.dumps(
        {
            "session_id": "sess_0001",
            "anonymous_id": "anon_0001",
            "events": [{"type": "pageview", "ts": NOW_MS}],
            "recording": [{"seq": 0, "first_ts": NOW_MS, "last_ts": NOW_MS, "count": 1, "data": deep}],
        },
        separators=(",", ":"),
    ).encode()
    assert len(body) < 600
    harness = Harness()
    response = harness.post(body)
    assert response.status_code == 400
    assert response.json()["field"] == "$.recording[0].data"
    assert "nested deeper than 512" in response.json()["error"]
    assert harness.appended == []


def test_chunk_and_request_recording_caps_are_413() -> None:
    big_json = [{"type": 3, "data": {"n": i, "pad": "x" * 40}} for i in range(1000)]
    medium = big_json[:500]
    assert len(json.dumps(big_json)) > 50_000 > len(json.dumps(medium)) > 100_000 / 3  # one fits; not three
    harness = Harness(settings={"max_chunk_json_bytes": 50_000, "max_recording_bytes_per_batch": 100_000})
    response = harness.post(batch_dict(events=1, chunks=1) | {"recording": [_chunk(0, big_json)]})
    assert (response.status_code, response.json()["field"]) == (413, "$.recording[0].data")
    response = harness.post(batch_dict(events=1) | {"recording": [_chunk(i, medium) for i in range(3)]})
    assert (response.status_code, response.json()["field"]) == (413, "$.recording")
    assert harness.post(batch_dict(events=1) | {"recording": [_chunk(i, medium) for i in range(2)]}).status_code == 200
    assert len(harness.appended) == 1


def test_a_big_recording_is_checked_off_the_event_loop_and_stored() -> None:
    rng = random.Random(5)
    noisy = [{"type": 3, "data": {"text": f"{rng.getrandbits(128):032x}"}} for _ in range(5000)]
    chunk = _chunk(0, noisy)
    assert len(base64.b64decode(chunk["data"])) > INLINE_RECORDING_BYTES
    before = STEP_TIMINGS["check_recording"].count if "check_recording" in STEP_TIMINGS else 0
    harness = Harness()
    response = harness.post(batch_dict(events=1) | {"recording": [chunk]})
    assert response.status_code == 200, response.text
    assert json.loads(gzip.decompress(harness.stored()[0].recording[0].data)) == noisy
    assert STEP_TIMINGS["check_recording"].count == before + 1


def test_deep_json_in_the_body_is_400() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    good = body_bytes(batch_dict(events=1))
    harness = Harness()
    for raw in (good[:-1] + b', "zz": ' + deep + b"}", good.replace(b'{"nav": "load"}', b'{"a": ' + deep + b"}")):
        response = harness.post(raw)
        assert (response.status_code, response.json()["field"]) == (400, "$")
        assert "nested deeper than 512" in response.json()["error"]
        response = harness.post(raw, url=BATCH_PATH)  # no key before the body: same answer
        assert response.status_code == 400
    assert harness.appended == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"events": 4, "ts_of_event_3": 31_536_000_000}, "$.events[3].ts"),  # 1971
        ({"sent_at": 2**53 - 1}, "$.sent_at"),
        ({"first_ts": 2**53}, "$.recording[0].first_ts"),
        ({"last_ts": 10}, "$.recording[0].last_ts"),
    ],
)
def test_times_the_store_cannot_keep_are_400_naming_the_field(change: dict[str, int], field: str) -> None:
    body = batch_dict(events=change.get("events", 1), chunks=1)
    if "ts_of_event_3" in change:
        body["events"][3]["ts"] = change["ts_of_event_3"]
    if "sent_at" in change:
        body["sent_at"] = change["sent_at"]
    for name in ("first_ts", "last_ts"):
        if name in change:
            body["recording"][0][name] = change[name]
    harness = Harness()
    response = harness.post(body)
    assert (response.status_code, response.json()["field"]) == (400, field), response.text
    assert harness.appended == []


def test_upload_time_is_not_taken_for_clock_skew() -> None:
    """The request arrives at NOW; its body takes 5 s to come in; the client clock is right."""
    harness = Harness()
    body = body_bytes(batch_dict(events=3))

    pieces = [body[start : start + 100] for start in range(0, len(body), 100)]

    async def slow_upload() -> AsyncIterator[bytes]:
        for piece in pieces:
            harness.clock_s += 5.0 / len(pieces)  # the clock moves on while the body is read
            yield piece

    response = harness.run(
        lambda client: client.post(URL, content=slow_upload(), headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 200
    assert round(harness.clock_s * 1000) == NOW_MS + 5000
    [stored] = harness.stored()
    assert stored.received_at == NOW_MS
    assert [e.ts for e in stored.events] == [e.client_ts for e in stored.events]  # no shift


def test_personal_data_never_reaches_the_spool() -> None:
    harness = Harness(projects={KEY: project(key=KEY, query_keys="page")})
    body = batch_dict(events=2)
    body["events"][0].update(url="https://shop.example/a?email=alice@example.com&page=2", title="alice@example.com")
    body["events"][1].update(type="error", props={"message": "card 4111 1111 1111 1111 declined"})
    assert harness.post(body).status_code == 200
    assert b"alice@example.com" not in harness.appended[0] and b"4111" not in harness.appended[0]
    first, error = harness.stored()[0].events
    assert (first.url, first.title) == ("https://shop.example/a?email=*&page=2", "[email]")
    assert json.loads(error.props) == {"message": "card [card] declined"}


@pytest.mark.parametrize(("what", "body", "headers", "status"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_request(what: str, body: bytes, headers: dict[str, str], status: int) -> None:
    harness = Harness()
    before_500 = ANSWERS[500]
    response = harness.run(lambda client: client.post(URL, content=body, headers=headers))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["error"]
        assert harness.appended == []
    else:
        assert len(harness.appended) == 1
    assert ANSWERS[500] == before_500


def test_streamed_chunked_body_is_read_like_any_other() -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(GOOD), 7):
            yield GOOD[start : start + 7]

    harness = Harness()
    response = harness.run(lambda client: client.post(URL, content=chunked(), headers=AS_JSON))
    assert response.status_code == 200 and len(harness.appended) == 1


def _chunk(seq: int, rrweb_events: list[dict[str, Any]]) -> dict[str, Any]:
    data = base64.b64encode(gzip.compress(json.dumps(rrweb_events).encode())).decode()
    return {"seq": seq, "first_ts": NOW_MS - 50, "last_ts": NOW_MS - 10, "count": len(rrweb_events), "data": data}
