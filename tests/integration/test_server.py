"""The capture API and read API of a real `hitmetrix serve` process on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from hitmetrix.store.meta import MetaStore, Project
from tests.support import ServerProcess, make_batch, new_id, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Project]]]:
    data_dir = tmp_path_factory.mktemp("server") / "data"
    meta = MetaStore("", data_dir)
    projects = {
        "shop": meta.create_project("shop"),
        "limited": meta.create_project("limited"),
        "strict": meta.create_project("strict", allowed_origins="https://shop.example"),
    }
    meta.close()
    server = ServerProcess(
        data_dir, demo=False, env={"HITMETRIX_RATE_LIMIT_BURST": "20", "HITMETRIX_RATE_LIMIT_RPS": "1"}
    ).start()
    yield server, projects
    server.stop()


def post(server: ServerProcess, body: bytes | dict, key: str | None, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    params = {"key": key} if key else {}
    return httpx.post(
        server.url + "/api/v1/batch",
        params=params,
        content=content,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


def test_good_batch_is_stored_and_readable(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    project = projects["shop"]
    batch = make_batch(events=4, chunks=2)
    answer = post(server, batch, project.public_key)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "events": 4, "chunks": 2}

    sid = batch["session_id"]

    def loaded() -> dict | None:
        r = server.api(f"/api/v1/projects/{project.id}/sessions/{sid}")
        return r.json() if r.status_code == 200 and len(r.json()["events"]) == 4 else None

    detail = wait_for(loaded, what="session loaded")
    assert [e["type"] for e in detail["events"]] == ["pageview"] * 4
    assert [e["url"] for e in detail["events"]] == [f"https://shop.example/page/{i}" for i in range(4)]
    assert [c["seq"] for c in detail["recording_chunks"]] == [0, 1]
    # The list reads the per-session rows the loader writes after a segment's events: polled, as the detail was.
    def listed() -> bool:
        rows = server.api(f"/api/v1/projects/{project.id}/sessions").json()["sessions"]
        return sid in [s["session_id"] for s in rows]

    wait_for(listed, what="session listed")
    recording = server.api(f"/api/v1/projects/{project.id}/sessions/{sid}/recording").json()
    assert [e["type"] for e in recording] == [4, 2, 4, 2]


def test_gzip_body_and_text_plain_are_accepted(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    body = gzip.compress(json.dumps(make_batch(events=2)).encode())
    answer = post(server, body, projects["shop"].public_key, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    answer = httpx.post(
        server.url + "/api/v1/batch",
        params={"key": projects["shop"].public_key},
        content=json.dumps(make_batch(events=1)),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert answer.status_code == 200, answer.text


def test_unknown_or_missing_key_is_401(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, _ = env
    assert post(server, make_batch(), "hm_pk_nope").status_code == 401
    answer = post(server, make_batch(), None)
    assert answer.status_code == 401
    assert "key" in answer.json()["error"]


def test_malformed_and_invalid_bodies_are_400_naming_the_field(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    key = projects["shop"].public_key
    answer = post(server, b"{not json", key)
    assert answer.status_code == 400
    assert answer.json()["error"]
    bad = make_batch(events=2)
    bad["events"][1]["url"] = "x" * 5000
    answer = post(server, bad, key)
    assert answer.status_code == 400
    assert answer.json()["field"] == "$.events[1].url"
    bad = make_batch()
    bad["session_id"] = "no spaces allowed"
    answer = post(server, bad, key)
    assert answer.status_code == 400
    assert answer.json()["field"] == "$.session_id"


def test_oversized_bodies_are_413(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    key = projects["shop"].public_key
    assert post(server, b"x" * (1_048_576 + 10), key).status_code == 413
    bomb = gzip.compress(b" " * (9 * 1024 * 1024))  # 9 MiB of spaces, tiny when compressed
    assert post(server, bomb, key, **{"Content-Encoding": "gzip"}).status_code == 413
    assert post(server, make_batch(events=1001), key).status_code == 413


def test_rate_limit_is_429_with_retry_after(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    key = projects["limited"].public_key
    statuses = [post(server, make_batch(events=1), key) for _ in range(40)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert statuses[0].status_code == 200


def test_cors_preflight_and_origin_checks(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    preflight = httpx.options(
        server.url + "/api/v1/batch",
        params={"key": projects["shop"].public_key},
        headers={"Origin": "https://any.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "https://any.example"
    strict = projects["strict"].public_key
    assert post(server, make_batch(), strict, Origin="https://evil.example").status_code == 403
    ok = post(server, make_batch(), strict, Origin="https://shop.example")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"


def test_read_api_needs_a_token(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    pid = projects["shop"].id
    for path in ("/api/v1/projects", f"/api/v1/projects/{pid}/sessions"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.api("/api/v1/projects/999/sessions").status_code == 404
    assert server.api(f"/api/v1/projects/{pid}/sessions/{new_id()}").status_code == 404


def test_bad_session_filters_and_cursors_are_400_with_a_reason(
    env: tuple[ServerProcess, dict[str, Project]],
) -> None:
    server, projects = env
    base = f"/api/v1/projects/{projects['shop'].id}/sessions"
    for query, words in (("?cursor=not-a-cursor", "cursor"), ("?country=Germany", "country"), ("?from=soon", "from")):
        answer = server.api(base + query)
        assert answer.status_code == 400, query
        assert words in answer.json()["error"], answer.json()
    assert server.api(base + "?country=DE").status_code == 200


def test_openapi_and_tracker_are_served(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, _ = env
    doc = httpx.get(server.url + "/api/openapi.json").json()
    assert "/api/v1/batch" in doc["paths"]
    tracker = httpx.get(server.url + "/hm.js")
    assert tracker.status_code == 200
    assert "javascript" in tracker.headers["content-type"]


def test_cli_reads_from_the_running_server(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    batch = make_batch(events=2)
    assert post(server, batch, projects["shop"].public_key).status_code == 200
    sid = batch["session_id"]
    wait_for(lambda: server.api(f"/api/v1/projects/{projects['shop'].id}/sessions/{sid}").status_code == 200)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hitmetrix.cli",
            "sessions",
            "--data-dir",
            str(server.data_dir),
            "--project",
            str(projects["shop"].id),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert sid in out
    dump = subprocess.run(
        [
            sys.executable,
            "-m",
            "hitmetrix.cli",
            "session",
            sid,
            "--data-dir",
            str(server.data_dir),
            "--project",
            str(projects["shop"].id),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert [e["type"] for e in json.loads(dump)["events"]] == ["pageview", "pageview"]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(env: tuple[ServerProcess, dict[str, Project]]) -> None:
    server, projects = env
    project = projects["shop"]  # IP anonymisation 'truncate'; no trusted proxies configured
    batch = make_batch(events=1)
    answer = post(server, batch, project.public_key, **{"X-Forwarded-For": "8.8.8.8"})
    assert answer.status_code == 200
    sid = batch["session_id"]

    def stored() -> list | None:
        r = server.api(f"/api/v1/projects/{project.id}/sessions/{sid}")
        return r.json()["events"] if r.status_code == 200 and r.json()["events"] else None

    (event,) = wait_for(stored, what="event stored")
    assert event["ip"] == "127.0.0.0"
    assert event["country"] == ""
