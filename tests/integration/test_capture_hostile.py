"""Hostile input against a real `hitmetrix serve` process: every answer a 4xx with a message, no traceback,
and a good batch sent right after is still stored."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from hitmetrix.store.meta import MetaStore, Project
from tests.capture.hostile import AS_JSON, DEEP, GOOD, HOSTILE
from tests.support import ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Project]]:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("hostile")
    meta.close()
    server = ServerProcess(data_dir, demo=False, env={"HITMETRIX_RATE_LIMIT_RPS": "0"}).start()
    yield server, project
    server.stop()
    assert "Traceback" not in server.log_path.read_text(errors="replace")


def post(server: ServerProcess, key: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/batch?key={key}", content=body, headers=headers, timeout=30)


def raw_exchange(server: ServerProcess, request: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes as they are on one connection; what came back before the server closed it (or 5 s passed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def assert_stored_after(server: ServerProcess, project: Project) -> None:
    batch = make_batch(events=2, chunks=1)
    answer = post(server, project.public_key, json.dumps(batch).encode(), AS_JSON)
    assert answer.status_code == 200, answer.text
    sid = batch["session_id"]

    def stored() -> bool:
        r = server.api(f"/api/v1/projects/{project.id}/sessions/{sid}")
        return r.status_code == 200 and len(r.json()["events"]) == 2 and len(r.json()["recording_chunks"]) == 1

    wait_for(stored, what="the good batch stored")


def test_the_hostile_corpus(env: tuple[ServerProcess, Project]) -> None:
    server, project = env
    for what, body, headers, status in HOSTILE:
        answer = post(server, project.public_key, body, headers)
        assert answer.status_code == status, (what, answer.text)
        if status >= 400:
            assert answer.json()["error"], what
    assert_stored_after(server, project)


def test_findings_from_outside(env: tuple[ServerProcess, Project]) -> None:
    server, project = env
    now_ms = int(time.time() * 1000)
    deep_chunk = base64.b64encode(gzip.compress(DEEP)).decode()
    session = {"session_id": "sess_hostile", "anonymous_id": "anon_hostile", "sent_at": now_ms}
    cases = [
        (
            {**session, "events": [{"type": "pageview", "ts": now_ms}]}
            | {"recording": [{"seq": 0, "first_ts": now_ms, "last_ts": now_ms, "count": 1, "data": deep_chunk}]},
            "$.recording[0].data",
        ),
        ({**session, "events": [{"type": "pageview", "ts": 31_536_000_000}]}, "$.events[0].ts"),
        ({**session, "sent_at": 2**53 - 1, "events": [{"type": "pageview", "ts": now_ms}]}, "$.sent_at"),
        (
            {
                **session,
                "events": [{"type": "custom", "ts": now_ms, "props": {"a": json.loads(b"[" * 600 + b"]" * 600)}}],
            },
            "$",
        ),
    ]
    for body, field in cases:
        answer = post(server, project.public_key, json.dumps(body).encode(), AS_JSON)
        assert (answer.status_code, answer.json().get("field")) == (400, field), answer.text
    assert_stored_after(server, project)


def test_http_level_abuse(env: tuple[ServerProcess, Project]) -> None:
    server, project = env
    target = f"POST /api/v1/batch?key={project.public_key} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    target = target.encode()
    json_type = b"Content-Type: application/json\r\n"
    cases = {
        "huge header": target + b"X-Pad: " + b"a" * 200_000 + b"\r\n" + json_type + b"Content-Length: 2\r\n\r\n{}",
        "many headers": target + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"Content-Length: 2\r\n\r\n{}",
        "content-length says less": target + json_type + b"Content-Length: 10\r\n\r\n" + GOOD,
        "content-length not a number": target + json_type + b"Content-Length: ten\r\n\r\n" + GOOD,
        "bad chunk size": target + json_type + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "NUL in a header": target + json_type + b"X-Bad: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
        "key with NUL and a long tail": target.replace(b"key=", b"key=%00" + b"k" * 4000, 1)
        + json_type
        + b"Content-Length: %d\r\n\r\n" % len(GOOD)
        + GOOD,
    }
    for what, request in cases.items():
        status = status_of(raw_exchange(server, request))
        assert status is not None and 400 <= status < 500, (what, status)

    pieces = b"".join(b"%x\r\n%s\r\n" % (len(GOOD[i : i + 50]), GOOD[i : i + 50]) for i in range(0, len(GOOD), 50))
    chunked = target + json_type + b"Transfer-Encoding: chunked\r\n\r\n" + pieces + b"0\r\n\r\n"
    assert status_of(raw_exchange(server, chunked)) == 200
    # With both, the chunked framing is the one read (RFC 9112 §6.3): the whole body, nothing left over.
    both = target + json_type + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + pieces + b"0\r\n\r\n"
    assert status_of(raw_exchange(server, both)) == 200

    # Says 100 000 bytes, sends 100 and stops: the server gives up on it without an error of its own.
    lying = target + json_type + b"Content-Length: 100000\r\n\r\n" + GOOD[:100]
    answer = raw_exchange(server, lying, half_close=True)
    assert answer == b"" or 400 <= (status_of(answer) or 0) < 500, answer[:200]
    assert_stored_after(server, project)
