"""Exactly once from the browser, on a real server: a batch resent with its batch id and event ids (the
tracker's retry after a lost response) is stored once: at once, later, and across a kill -9."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, new_id, wait_for

pytestmark = pytest.mark.integration


def client_batch(events: int, chunks: int = 0) -> dict[str, Any]:
    """A batch as the tracker makes it: its own batch id and event ids, kept across retries."""
    batch = make_batch(events=events, chunks=chunks, batch_id=new_id())
    for event in batch["events"]:
        event["id"] = str(uuid.uuid4())
    return batch


def send(server: ServerProcess, key: str, batch: dict[str, Any]) -> None:
    answer = httpx.post(server.url + "/api/v1/batch", params={"key": key}, json=batch, timeout=30)
    assert answer.status_code == 200, answer.text


def stored(server: ServerProcess, project_id: int, batch: dict[str, Any]) -> dict[str, Any] | None:
    answer = server.api(f"/api/v1/projects/{project_id}/sessions/{batch['session_id']}")
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    return body if len(body["events"]) >= len(batch["events"]) else None


def test_resent_batches_are_stored_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("resends")
    meta.close()
    server = ServerProcess(data_dir, demo=False, env={"HITMETRIX_RATE_LIMIT_RPS": "100000"})
    server.start()
    key, pid = project.public_key, project.id
    same_segment = [client_batch(events=3, chunks=1) for _ in range(5)]
    later = [client_batch(events=2) for _ in range(3)]
    across_a_kill = [client_batch(events=4, chunks=1) for _ in range(3)]
    try:
        for batch in same_segment:  # resent at once: the copies share a spool segment
            send(server, key, batch)
            send(server, key, batch)
        for batch in later:  # resent once the first copy is stored: another segment
            send(server, key, batch)
            wait_for(lambda batch=batch: stored(server, pid, batch), 30, what="the first copy stored")
            send(server, key, batch)
        for batch in across_a_kill:  # acknowledged, then the server dies before or while loading it
            send(server, key, batch)
        server.kill9()
        server.start()
        for batch in across_a_kill:
            send(server, key, batch)
        everything = same_segment + later + across_a_kill
        for batch in everything:
            wait_for(lambda batch=batch: stored(server, pid, batch), 30, what="every batch stored")
        wait_for(lambda: httpx.get(server.url + "/healthz").json()["loader_lag_segments"] == 0, 30)
        for batch in everything:
            body = stored(server, pid, batch)
            assert body is not None
            assert sorted(e["event_id"] for e in body["events"]) == sorted(e["id"] for e in batch["events"])
            assert body["summary"]["events"] == len(batch["events"])
            assert len(body["recording_chunks"]) == len(batch["recording"])
        listed = server.api(f"/api/v1/projects/{pid}/sessions?limit=100").json()["sessions"]
        assert sorted(s["session_id"] for s in listed) == sorted(b["session_id"] for b in everything)
        assert {s["session_id"]: s["events"] for s in listed} == {
            b["session_id"]: len(b["events"]) for b in everything
        }
        counters = httpx.get(server.url + "/healthz").json()["loader_counters"]
        assert counters["batches_duplicate"] >= len(across_a_kill)  # counted since the restart
    finally:
        server.stop()
