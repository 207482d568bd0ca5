"""The server batch route on a real server: stored and queryable, hostile bodies refused with a message,
a retry stored once, a wrong key 401."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.integration
PATH = "/api/v1/server/batch"


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "request", "id": str(uuid.uuid4()), "ts": int(time.time() * 1000) - 500, "ip": "203.0.113.9",
            "user_agent": "curl/8.5.0", "method": "GET", "path": "/profiles/3", "query": "q=anna", "status": 200,
            "route": "/profiles/{id}", **fields}


def post(server: ServerProcess, key: str, body: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + PATH, content=content, timeout=30,
                      headers={"Content-Type": "application/json", **headers})


def session_events(server: ServerProcess, project_id: int, session_id: str) -> list[dict[str, Any]]:
    answer = server.api(f"/api/v1/projects/{project_id}/sessions/{session_id}")
    return answer.json()["events"] if answer.status_code == 200 else []


def test_server_batches_end_to_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("site")
    meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    try:
        key, pid = project.server_key, project.id
        assert key.startswith("hm_sk_")
        session = "sess_" + uuid.uuid4().hex[:12]
        body = {"batch_id": "b-" + uuid.uuid4().hex[:10], "sent_at": int(time.time() * 1000), "source": "middleware",
                "events": [event(session_id=session),
                           event(session_id=session, type="auth", path="/login", kind="signin", ok=False,
                                 username="anna@example.com")]}
        answer = post(server, key, gzip.compress(json.dumps(body).encode()), **{"Content-Encoding": "gzip"})
        assert answer.status_code == 200, answer.text
        assert post(server, key, body).status_code == 200  # the retry after a lost answer
        stored = wait_for(lambda: session_events(server, pid, session), 30, what="the server batch stored")
        wait_for(lambda: httpx.get(server.url + "/healthz").json()["loader_lag_segments"] == 0, 30)
        stored = session_events(server, pid, session)
        assert sorted(e["event_id"] for e in stored) == sorted(e["id"] for e in body["events"])  # once, not twice
        by_type = {e["type"]: e for e in stored}
        assert by_type["request"]["url"] == "/profiles/3?q=*" and by_type["request"]["name"] == "/profiles/{id}"
        assert "anna" not in json.dumps(stored) and "a…@example.com" in by_type["auth"]["props"]

        hostile: list[tuple[dict[str, Any] | bytes, int, str]] = [
            ({**body, "events": [event(password="x")]}, 400, "unknown field"),
            ({**body, "events": [event(ip="999.1.1.1")]}, 400, "not an IP address"),
            ({**body, "events": [event(type="auth")]}, 400, "kind"),
            ({**body, "events": [event(ts=5)]}, 400, "outside the times"),
            ({**body, "batch_id": "x"}, 400, "length"),
            (b"{" * 100_000, 400, "deep"),
            (b"\x1f\x8bnot gzip", 400, "UTF-8"),
            (b"\x1f\x8bnot gzip", 400, "malformed gzip"),
            (b"x" * 2_000_000, 413, "larger"),
        ]
        for payload, status, message in hostile:
            gzipped = {"Content-Encoding": "gzip"} if message == "malformed gzip" else {}
            answer = post(server, key, payload, **gzipped)
            assert answer.status_code == status and message in answer.json()["error"], answer.text
        for wrong in ("", "hm_sk_wrong", project.public_key):
            answer = post(server, wrong, body)
            assert answer.status_code == 401 and answer.json()["error"], answer.text
        assert httpx.get(server.url + PATH, timeout=10).status_code == 405
    finally:
        server.stop()
