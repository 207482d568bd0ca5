"""The background sender: batching by size and interval, the wire body, retries, drops, and closing in bounded time."""

from __future__ import annotations

import gzip
import http.client
import threading
import time
from collections.abc import Iterator

import pytest

from hitmetrix.capture.schema import decode_server_batch
from hitmetrix.sdk import Client
from hitmetrix.sdk.events import RawRequest
from hitmetrix.sdk.transport import Answer
from tests.sdk.memory import MemoryTransport
from tests.support import wait_for

KEY = "hm_sk_test_0123456789"


def raw(n: int = 0) -> RawRequest:
    return RawRequest(
        int(time.time() * 1000), "198.51.100.4", "", "ua", "", "", "GET", f"/p/{n}", "", "/p/{n}", 200, 1.0, 10, ""
    )


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close(1.0)
        assert client.stats()["errors"] == 0, client.stats()["last_error"]


def make(clients: list[Client], transport: MemoryTransport, **options: object) -> Client:
    settings: dict[str, object] = {"flush_interval_s": 60.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    settings.update(options)
    client = Client("http://127.0.0.1:9", KEY, transport_factory=transport.factory, **settings)  # type: ignore[arg-type]
    clients.append(client)
    return client


def test_a_full_batch_is_sent_at_once_gzipped_with_the_server_key(clients: list[Client]) -> None:
    transport = MemoryTransport()
    client = make(clients, transport, batch_size=5)
    for n in range(5):
        client.record(raw(n))
    wait_for(lambda: client.stats()["sent"] == 5, 5, what="a full batch sent before the (60 s) interval")
    [(path, body, headers)] = transport.posts()
    assert path == "/api/v1/server/batch"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "application/json"
    batch = decode_server_batch(gzip.decompress(body))  # capture's own validation
    assert batch.source == "middleware"
    assert [event.path for event in batch.events] == [f"/p/{n}" for n in range(5)]
    assert abs(batch.sent_at - time.time() * 1000) < 10_000
    stats = client.stats()
    assert (stats["queued"], stats["dropped"], stats["failed_posts"], stats["batches"]) == (0, 0, 0, 1)


def test_a_partial_batch_waits_for_the_interval(clients: list[Client]) -> None:
    transport = MemoryTransport()
    client = make(clients, transport, batch_size=100, flush_interval_s=0.3)
    started = time.monotonic()
    client.record(raw())
    wait_for(lambda: client.stats()["sent"] == 1, 5, what="the interval flush")
    assert time.monotonic() - started >= 0.2
    assert len(transport.posts()) == 1


def test_batches_are_cut_by_size_and_by_bytes(clients: list[Client]) -> None:
    transport = MemoryTransport()
    client = make(clients, transport, batch_size=10, max_batch_bytes=2_000)
    for n in range(25):
        client.record(raw(n))
    assert client.flush(5)
    sizes = [len(batch["events"]) for batch in transport.batches()]
    assert sum(sizes) == 25
    assert all(size <= 10 for size in sizes)
    assert max(size for size in sizes) < 10  # ~250-byte events: 2 000 bytes hold fewer than 10
    assert [e["path"] for e in transport.events()] == [f"/p/{n}" for n in range(25)]  # order kept


def test_a_full_queue_drops_and_counts_without_blocking(clients: list[Client]) -> None:
    release = threading.Event()

    def stuck(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        release.wait(10)
        return Answer(200, {}, b"{}")

    transport = MemoryTransport(stuck)
    client = make(clients, transport, batch_size=1, max_queue=10)
    client.record(raw(0))
    wait_for(lambda: len(transport.requests) == 1, 5, what="the sender stuck in its first post")
    started = time.perf_counter()
    for n in range(1, 111):
        client.record(raw(n))
    assert time.perf_counter() - started < 0.5  # never waits for the stuck sender
    stats = client.stats()
    assert stats["dropped"] == 100 and stats["dropped_by_reason"]["queue_full"] == 100
    assert stats["queued"] == 11  # 10 waiting + 1 in flight
    release.set()
    wait_for(lambda: client.stats()["sent"] == 11, 5, what="the queue drained once unstuck")


@pytest.mark.parametrize("failure", ["503", "429", "network"])
def test_retries_keep_the_batch_id_and_succeed(clients: list[Client], failure: str) -> None:
    attempts: list[int] = []

    def flaky(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        attempts.append(1)
        if len(attempts) <= 2:
            if failure == "network":
                raise ConnectionRefusedError(111, "Connection refused")
            return Answer(int(failure), {"retry-after": "0"}, b'{"error":"later"}')
        return Answer(200, {}, b"{}")

    transport = MemoryTransport(flaky)
    client = make(clients, transport, batch_size=3)
    for n in range(3):
        client.record(raw(n))
    wait_for(lambda: client.stats()["sent"] == 3, 5, what="the batch sent on the third attempt")
    batches = transport.batches()
    assert len(batches) == 3
    assert len({batch["batch_id"] for batch in batches}) == 1
    assert [batch["events"] for batch in batches] == [batches[0]["events"]] * 3  # same events, same ids
    assert client.stats()["failed_posts"] == 2
    assert client.stats()["dropped"] == 0


def test_a_4xx_drops_the_batch_at_once(clients: list[Client]) -> None:
    transport = MemoryTransport(lambda *_: Answer(400, {}, b'{"error":"bad","field":"$.events[0].ip"}'))
    client = make(clients, transport, batch_size=2)
    client.record(raw(0))
    client.record(raw(1))
    wait_for(lambda: client.stats()["dropped"] == 2, 5, what="the refused batch dropped")
    stats = client.stats()
    assert stats["dropped_by_reason"]["refused"] == 2
    assert stats["failed_posts"] == 1 and len(transport.posts()) == 1
    assert "400" in stats["last_error"]


def test_gives_up_after_max_attempts(clients: list[Client]) -> None:
    transport = MemoryTransport(lambda *_: Answer(502, {}, b"bad gateway"))
    client = make(clients, transport, batch_size=1, max_attempts=3)
    client.record(raw())
    wait_for(lambda: client.stats()["dropped_by_reason"]["gave_up"] == 1, 5, what="giving up")
    assert len(transport.posts()) == 3
    assert client.stats()["failed_posts"] == 3


def test_each_new_batch_gets_a_new_id(clients: list[Client]) -> None:
    transport = MemoryTransport()
    client = make(clients, transport, batch_size=1)
    for n in range(4):
        client.record(raw(n))
    assert client.flush(5)
    assert len({batch["batch_id"] for batch in transport.batches()}) == 4
    for batch in transport.batches():
        assert 8 <= len(batch["batch_id"]) <= 64


def test_close_sends_what_is_queued(clients: list[Client]) -> None:
    transport = MemoryTransport()
    client = make(clients, transport, batch_size=500)
    for n in range(7):
        client.record(raw(n))
    client.close(5)
    assert client.stats()["sent"] == 7
    client.record(raw(8))  # after close: dropped and counted, not raised
    assert client.stats()["dropped_by_reason"]["closed"] == 1


def test_close_is_bounded_when_hitmetrix_hangs(clients: list[Client]) -> None:
    def hangs(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        time.sleep(0.3)  # a slow server, as the transport's own timeout would end it
        raise http.client.RemoteDisconnected("timed out")

    transport = MemoryTransport(hangs)
    client = make(clients, transport, batch_size=500, max_attempts=100)
    for n in range(20):
        client.record(raw(n))
    started = time.monotonic()
    client.close(1.0)
    assert time.monotonic() - started < 2.5
    stats = client.stats()
    assert stats["sent"] == 0
    assert stats["dropped"] == 20
    assert stats["queued"] == 0
