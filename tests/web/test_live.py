"""Live data over HTTP from a real server process: the server-sent events feed (read as a stream with httpx),
its JSON snapshot (the first-event check), the session list's newer rows, and who may see them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, new_id, wait_for

pytestmark = pytest.mark.integration

SSE = {"Accept": "text/event-stream"}
METRICS_TOKEN = "live-test-metrics-token"


@dataclass
class Site:
    server: ServerProcess
    project_id: int
    key: str
    other_project_id: int
    viewer: dict[str, str]  # Authorization header of a viewer of the project (not of the other one)

    def post(self, **batch: Any) -> dict[str, Any]:
        body = make_batch(**batch)
        answer = httpx.post(f"{self.server.url}/api/v1/batch", params={"key": self.key}, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return body

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.viewer, **kwargs.pop("headers", {})}
        return httpx.get(self.server.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("live") / "data"
    meta = MetaStore("", data_dir)
    try:
        project = meta.create_project("live")
        other = meta.create_project("elsewhere")
        user = accounts.create_user(meta, "viewer@example.test", "a long enough password")
        accounts.add_member(meta, project.id, user.id, "viewer")
        _, token = accounts.create_api_token(meta, user.id, "live test", "read")
    finally:
        meta.close()
    env = {"HITMETRIX_SPOOL_SEGMENT_MAX_AGE_S": "0.2", "HITMETRIX_METRICS_TOKEN": METRICS_TOKEN}
    server = ServerProcess(data_dir, demo=False, env=env).start()
    yield Site(server, project.id, project.public_key, other.id, {"Authorization": f"Bearer {token}"})
    server.stop()


class EventStream:
    """Server-sent events read from an open response, one event at a time, with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next_event(self) -> dict[str, str]:
        event: dict[str, str] = {}
        for line in self.lines:
            if not line:
                if event:
                    return event
                continue
            if line.startswith(":"):
                event.setdefault("comment", line)
                continue
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
        raise AssertionError(f"the stream ended; last partial event {event}")

    def next_batch(self) -> dict[str, Any]:
        while True:
            event = self.next_event()
            if event.get("event") == "batch":
                summary: dict[str, Any] = json.loads(event["data"])
                assert re.fullmatch(rf"[0-9a-f]{{8}}-{summary['id']}", event["id"]), event["id"]
                return summary


def stream(site: Site, headers: dict[str, str] | None = None, **params: str) -> Any:
    client = httpx.Client(base_url=site.server.url, timeout=httpx.Timeout(10.0))
    headers = {**site.viewer, **SSE, **(headers or {})}
    return client, client.stream("GET", f"/api/v1/projects/{site.project_id}/live", params=params, headers=headers)


def test_the_first_event_check_turns_true_when_data_arrives(site: Site) -> None:
    path = f"/api/v1/projects/{site.project_id}/live"
    check = site.get(path, params={"backlog": "0"})  # the first-event check: asks, keeps nothing
    assert check.status_code == 200 and check.headers["cache-control"] == "no-store"
    assert check.json() == {"has_data": False, "first_seen_at": None, "last_id": 0, "batches": []}
    unwatched = site.post(events=1)
    assert site.get(path, params={"backlog": "0"}).json()["has_data"] is True
    assert site.get(path).json()["batches"] == []  # nobody watched: the batch was not summarised
    watched = site.post(events=2)  # that snapshot (backlog 20) made the project watched
    snapshot = site.get(path).json()
    assert snapshot["has_data"] is True and snapshot["first_seen_at"] > 0
    assert [b["session_id"] for b in snapshot["batches"]] == [watched["session_id"]]
    assert unwatched["session_id"] != watched["session_id"]


def test_the_feed_streams_batches_as_they_are_accepted(site: Site) -> None:
    client, request = stream(site, backlog="0")
    with client, request as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = EventStream(response)
        assert events.next_event() == {"retry": "3000"}
        sent = [site.post(events=3, user_id="u-42"), site.post(events=1)]
        got = [events.next_batch(), events.next_batch()]
    assert [g["session_id"] for g in got] == [s["session_id"] for s in sent]
    first = got[0]
    assert first["events"] == 3 and first["user_id"] == "u-42" and len(first["shown"]) == 3
    assert first["shown"][0]["url"] == sent[0]["events"][0]["url"]
    assert got[1]["id"] > first["id"]


def test_a_reconnecting_browser_resumes_after_its_last_event(site: Site) -> None:
    client, request = stream(site, backlog="0")
    with client, request as response:
        events = EventStream(response)
        events.next_event()
        seen = site.post(events=1)
        event = events.next_event()
        assert json.loads(event["data"])["session_id"] == seen["session_id"]
    missed = [site.post(events=1), site.post(events=1)]  # while no stream was open
    client, request = stream(site, headers={"Last-Event-ID": event["id"]})
    with client, request as response:
        events = EventStream(response)
        got = [events.next_batch()["session_id"], events.next_batch()["session_id"]]
    assert got == [m["session_id"] for m in missed]
    # An id of another server process (before a restart): the browser is told it missed some.
    client, request = stream(site, headers={"Last-Event-ID": "00000000-1"}, backlog="0")
    with client, request as response:
        events = EventStream(response)
        assert events.next_event() == {"retry": "3000"}
        assert events.next_event()["event"] == "gap"


def test_bad_requests_are_clear_400s(site: Site) -> None:
    path = f"/api/v1/projects/{site.project_id}/live"
    for params, headers, field in (
        ({"backlog": "many"}, {}, "backlog"),
        ({"backlog": "100000"}, {}, "backlog"),
        ({}, {**SSE, "Last-Event-ID": "x" * 30}, None),
        ({}, {**SSE, "Last-Event-ID": "12"}, None),
        ({}, {**SSE, "Last-Event-ID": "abcdef01--1"}, None),
    ):
        answer = site.get(path, params=params, headers=headers)
        assert answer.status_code == 400, (params, headers)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json().get("field") == field and answer.json()["error"]


def test_only_members_see_a_projects_feed(site: Site) -> None:
    path = "/api/v1/projects/{}/live"
    anonymous = httpx.get(site.server.url + path.format(site.project_id), headers=SSE, timeout=10)
    assert anonymous.status_code == 401
    for headers in ({}, SSE):
        assert site.get(path.format(site.other_project_id), headers=headers).status_code == 404
    page = httpx.get(f"{site.server.url}/projects/{site.project_id}/live", timeout=10)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")
    assert site.get(f"/projects/{site.other_project_id}/live").status_code == 404
    assert site.get(f"/projects/{site.other_project_id}/live/sessions").status_code == 404


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr class="hm-row" data-session="([^"]+)"', html)


def test_newer_sessions_come_as_table_rows(site: Site) -> None:
    path = f"/projects/{site.project_id}/live/sessions"
    first = site.post(session_id="newer" + new_id(), events=2)
    wait_for(lambda: first["session_id"] in rows_of(site.get(path).text), 30, 0.2, what="the session stored")
    page = site.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-hitmetrix-more"] == "0" and "<html" not in page.text  # rows only, no page
    newest = re.search(rf'data-session="{first["session_id"]}" data-started="(\d+)"', page.text)
    assert newest, page.text[:500]
    after = {"after_ms": newest.group(1), "after_session": first["session_id"]}
    second = site.post(session_id="newer" + new_id(), events=1)
    wait_for(lambda: rows_of(site.get(path, params=after).text) == [second["session_id"]], 30, 0.2, what="newer")
    assert "(UTC)" in site.get(path, params=after).text  # the project's zone, named
    filtered = site.get(path, params={**after, "url": "no-such-page"})
    assert rows_of(filtered.text) == []
    for bad in ({"after_ms": "soon", "after_session": first["session_id"]}, {"after_ms": "1", "after_session": "x"}):
        answer = site.get(path, params=bad)
        assert answer.status_code == 400 and answer.json()["field"] in ("after_ms", "after_session")
    assert site.get(path, params={"from": "yesterday"}).status_code == 400


def test_the_live_page_names_the_feed_and_zone(site: Site) -> None:
    page = site.get(f"/projects/{site.project_id}/live")
    assert page.status_code == 200
    assert f'data-feed-url="/api/v1/projects/{site.project_id}/live"' in page.text
    assert 'data-time-zone="UTC"' in page.text
    assert '<script src="/static/dashboard/live.js" defer></script>' in page.text


def open_streams(site: Site) -> float:
    answer = httpx.get(site.server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    found = re.search(r"^hitmetrix_live_streams ([0-9.]+)$", answer.text, re.MULTILINE)
    assert found, answer.text[:300]
    return float(found.group(1))


def test_a_closed_stream_is_let_go(site: Site) -> None:
    before = open_streams(site)
    opened = [stream(site, backlog="0") for _ in range(3)]
    readers = []  # kept: a line iterator that is garbage-collected closes its response
    for _, request in opened:
        readers.append(EventStream(request.__enter__()))
        assert readers[-1].next_event() == {"retry": "3000"}
    assert open_streams(site) == before + 3
    for client, request in opened:
        request.__exit__(None, None, None)
        client.close()
    wait_for(lambda: open_streams(site) == before, 15, 0.1, what="the server to notice the streams closed")


def test_stopping_the_server_ends_open_streams(tmp_path: Path) -> None:
    """uvicorn waits for open responses before it stops: a live stream must not keep it running."""
    server = ServerProcess(tmp_path / "data", demo=True).start()
    opened = threading.Event()
    ended: list[str] = []

    def read() -> None:
        headers = {"Authorization": f"Bearer {server.admin_token}", **SSE}
        with httpx.stream("GET", f"{server.url}/api/v1/projects/1/live", headers=headers, timeout=60) as response:
            opened.set()
            for _ in response.iter_lines():
                pass
        ended.append("ended")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(30)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 8, "the server waited for the open stream"
    reader.join(10)
    assert ended == ["ended"]
