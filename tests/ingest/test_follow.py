"""hitmetrix/ingest/follow.py: reading, resuming, resending a pending batch, rotation — with an in-memory server."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from hitmetrix.ingest.follow import LogIngest
from hitmetrix.ingest.rules import DEFAULT_RULES
from hitmetrix.ingest.sender import BatchSender

NOW_S = time.time()


def log_line(n: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(NOW_S - 60))
    return f'203.0.113.{n % 250} - - [{stamp}] "GET /p/{n} HTTP/1.1" 200 {n} "-" "agent"\n'


class Server:
    """Acknowledges batches (or not, while ``down``) and keeps what it took, by batch id."""

    def __init__(self) -> None:
        self.batches: dict[str, list[dict[str, Any]]] = {}
        self.posts = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        if self.down:
            return httpx.Response(503, json={"error": "down"})
        batch = json.loads(gzip.decompress(request.content))
        self.batches.setdefault(batch["batch_id"], batch["events"])
        return httpx.Response(200, json={"ok": True})

    def event_ids(self) -> list[str]:
        return [e["id"] for events in self.batches.values() for e in events]


def ingest(path: Path, server: Server, state: Path, **kwargs: Any) -> LogIngest:
    sender = BatchSender("http://hm.test", "hm_sk_x", transport=httpx.MockTransport(server.handler),
                         sleep=lambda _s: None)
    return LogIngest(path, "combined", sender, state, DEFAULT_RULES, batch_lines=10, **kwargs)


def test_one_pass_then_a_restart_sends_only_new_lines(tmp_path: Path) -> None:
    log, state, server = tmp_path / "access.log", tmp_path / "state.json", Server()
    log.write_text("".join(log_line(n) for n in range(25)) + "broken line\n")
    stats = ingest(log, server, state).run()
    assert (stats.lines, stats.events, stats.skipped) == (26, 25, {"not a combined log line": 1})
    with log.open("a") as fh:
        fh.write("".join(log_line(n) for n in range(25, 30)))
    ingest(log, server, state).run()
    ids = server.event_ids()
    assert len(ids) == 30 == len(set(ids))


def test_a_batch_not_acknowledged_is_resent_as_the_same_batch(tmp_path: Path) -> None:
    log, state, server = tmp_path / "access.log", tmp_path / "state.json", Server()
    log.write_text("".join(log_line(n) for n in range(15)))
    server.down = True
    first = ingest(log, server, state)
    first.sender.sleep = lambda _s: first.stop()  # stopped while the server is down: the batch stays pending
    first.run()
    assert json.loads(state.read_text())["pending"] is not None and server.batches == {}
    with log.open("a") as fh:  # more lines arrive meanwhile: the pending batch must not grow
        fh.write("".join(log_line(n) for n in range(15, 40)))
    server.down = False
    ingest(log, server, state).run()
    assert len(server.event_ids()) == 40 == len(set(server.event_ids()))
    assert [len(events) for events in server.batches.values()][0] == 10


def test_a_file_rotated_while_stopped_is_finished_before_the_new_one(tmp_path: Path) -> None:
    log, state, server = tmp_path / "access.log", tmp_path / "state.json", Server()
    log.write_text("".join(log_line(n) for n in range(5)))
    ingest(log, server, state).run()
    with log.open("a") as fh:
        fh.write("".join(log_line(n) for n in range(5, 8)))
    os.rename(log, tmp_path / "access.log.1")
    log.write_text("".join(log_line(n) for n in range(100, 104)))
    ingest(log, server, state).run()
    paths = sorted(e["path"] for e in server.batches.values() for e in e)
    assert len(paths) == 12 == len(set(server.event_ids()))


def test_auth_lines_become_auth_events(tmp_path: Path) -> None:
    log, state, server = tmp_path / "access.log", tmp_path / "state.json", Server()
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(NOW_S - 60))
    log.write_text(f'198.51.100.4 - - [{stamp}] "POST /login HTTP/1.1" 401 20 "-" "python-requests/2.31"\n')
    ingest(log, server, state).run()
    (events,) = server.batches.values()
    assert [(e["type"], e.get("kind"), e.get("ok")) for e in events] == [("request", None, None),
                                                                        ("auth", "signin", False)]


def test_following_across_a_rename_and_a_truncation(tmp_path: Path) -> None:
    import threading

    from tests.support import wait_for

    log, state, server = tmp_path / "access.log", tmp_path / "state.json", Server()
    log.write_text("".join(log_line(n) for n in range(12)))
    follower = ingest(log, server, state, poll_s=0.01)
    thread = threading.Thread(target=follower.run, kwargs={"follow": True})
    thread.start()
    try:
        wait_for(lambda: len(server.event_ids()) == 12, 60, what="the first lines")
        with log.open("a") as fh:
            fh.write(log_line(12))
        os.rename(log, tmp_path / "access.log.1")
        with (tmp_path / "access.log.1").open("a") as fh:
            fh.write(log_line(13))  # written by the web server after the rename, before it reopened
        log.write_text("".join(log_line(n) for n in range(100, 103)))
        wait_for(lambda: len(server.event_ids()) == 17, 60, what="both files")
        log.write_text(log_line(200))  # copy-and-truncate: shorter than the offset
        wait_for(lambda: len(server.event_ids()) == 18, 60, what="the truncated file's new line")
        log.write_text("".join(log_line(n) for n in range(300, 340)))  # truncated, and already longer again
        wait_for(lambda: len(server.event_ids()) == 58, 60, what="the rewritten file from its start")
    finally:
        follower.stop()
        thread.join(10)
    assert len(set(server.event_ids())) == 58
    paths = sorted(int(e["path"].rsplit("/", 1)[1]) for events in server.batches.values() for e in events)
    assert paths == [*range(14), *range(100, 103), 200, *range(300, 340)]
