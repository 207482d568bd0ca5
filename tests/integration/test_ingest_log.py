"""`hitmetrix ingest-log --follow` killed with SIGKILL mid-file and started again loses and repeats no line:
the request events in the store are exactly the file's lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CLIENTS = 40


def lines(start: int, count: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(time.time() - 120))
    return "".join(
        f'198.51.100.{n % CLIENTS} - - [{stamp}] "GET /profiles/{n} HTTP/1.1" 200 {n} "-" "reader/{n % CLIENTS}"\n'
        for n in range(start, start + count)
    )


def ingest(log: Path, state: Path, url: str, key: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "hitmetrix.cli", "ingest-log", "--format", "combined", str(log), "--follow",
           "--server", url, "--key", key, "--state", str(state)]
    with open(log.with_suffix(".err"), "ab") as err:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


def offset(state: Path) -> int:
    try:
        return int(json.loads(state.read_text())["offset"])
    except (OSError, ValueError):
        return 0


def stored_events(server: ServerProcess, project_id: int) -> int:
    sessions = server.api(f"/api/v1/projects/{project_id}/sessions?limit=200").json()["sessions"]
    return sum(s["events"] for s in sessions)


def test_follow_survives_sigkill_without_losing_or_repeating_a_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("logs")
    meta.close()
    server = ServerProcess(data_dir, demo=False).start()
    log, state = tmp_path / "access.log", tmp_path / "ingest-state.json"
    log.write_text(lines(0, 20_000))
    first = ingest(log, state, server.url, project.server_key)
    try:
        wait_for(lambda: offset(state) > 0, 60, interval_s=0.01, what="some lines acknowledged")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = offset(state)
        assert 0 < killed_at < log.stat().st_size, "killed mid-file"
        with log.open("a") as fh:
            fh.write(lines(20_000, 1_000))  # written while ingest-log was down
        second = ingest(log, state, server.url, project.server_key)
        try:
            wait_for(lambda: offset(state) == log.stat().st_size, 120, what="the whole file acknowledged")
            with log.open("a") as fh:
                fh.write(lines(21_000, 500))  # followed as it grows
            wait_for(lambda: offset(state) == log.stat().st_size, 60, what="appended lines acknowledged")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        wait_for(lambda: stored_events(server, project.id) >= 21_500, 120, what="every line stored")
        wait_for(lambda: httpx.get(server.url + "/healthz").json()["loader_lag_segments"] == 0, 60)
        assert stored_events(server, project.id) == 21_500
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        server.stop()
