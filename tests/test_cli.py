"""The `hitmetrix` CLI with no server running: projects, and reads answered in process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def hitmetrix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hitmetrix.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_project_create_prints_key_and_tag_and_reads_work_in_process(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = hitmetrix("project", "create", "My site", "--data-dir", data, "--base-url", "https://hm.example")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split("key: ")[1].split()[0]
    assert f'<script async src="https://hm.example/hm.js" data-key="{key}"></script>' in created.stdout
    assert key in hitmetrix("project", "list", "--data-dir", data).stdout

    projects = hitmetrix("get", "/api/v1/projects", "--data-dir", data)
    assert projects.returncode == 0, projects.stderr
    assert [p["name"] for p in json.loads(projects.stdout)] == ["My site"]
    empty = hitmetrix("sessions", "--data-dir", data, "--project", "1")
    assert empty.returncode == 0 and empty.stdout == ""
    missing = hitmetrix("session", "nosuchsession1", "--data-dir", data, "--project", "1")
    assert missing.returncode == 1
    assert "no such session" in missing.stderr


def test_session_date_filters_are_days_of_the_projects_time_zone(tmp_path: Path) -> None:
    """00:30 on 2 December in UTC+14 (10:30 UTC on 1 December) is on 2 December for the CLI too."""
    from hitmetrix.loader import Loader
    from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
    from hitmetrix.spool import Spool
    from hitmetrix.store.blobs import BlobStore
    from hitmetrix.store.clickhouse import ChdbStore
    from hitmetrix.store.meta import MetaStore

    data = tmp_path / "data"
    meta = MetaStore("", data)
    project = meta.update_project(meta.create_project("kiritimati").id, time_zone="Pacific/Kiritimati")
    meta.close()
    ts = 1_796_121_000_000  # 2026-12-01 10:30 UTC
    event = StoredEvent(event_id="00000000-0000-7000-8000-000000000001", type="pageview", ts=ts, client_ts=ts)
    batch = StoredBatch(
        batch_id="b1",
        project_id=project.id,
        received_at=ts,
        session_id="sess-kiri-0001",
        anonymous_id="a",
        events=[event],
    )
    spool = Spool(data / "spool", fsync="never")
    spool.start()
    spool.append_blocking(encode_batch(batch), 10.0)
    spool.close()
    store = ChdbStore(data / "clickhouse")
    try:
        assert Loader(spool, store, BlobStore(data / "recordings")).load_once() == 1
    finally:
        store.close()

    def listed(day: str) -> str:
        done = hitmetrix("sessions", "--data-dir", str(data), "--project", str(project.id), "--from", day, "--to", day)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "sess-kiri-0001" in listed("2026-12-02")
    assert listed("2026-12-01") == ""
