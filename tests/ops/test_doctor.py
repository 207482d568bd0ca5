"""``hitmetrix doctor`` on real data directories: a healthy one, broken copies of it, and one a server runs on.

The healthy directory is made by a real server that stored a batch and
stopped; each broken case copies it and breaks one thing. The doctor runs as
the CLI does, in its own process (chDB allows one store per process).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hitmetrix.loader.quarantine import Quarantine
from hitmetrix.model import StoredBatch, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.meta import MetaStore
from tests.support import REPO, ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.integration


def doctor(data_dir: Path, *extra: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "hitmetrix.cli", "doctor", "--data-dir", str(data_dir), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not done.stderr.strip(), done.stderr
    return done.returncode, done.stdout


def line_of(output: str, check: str) -> str:
    found = [line for line in output.splitlines() if line[6:19].rstrip() == check]  # the name column
    assert len(found) == 1, f"no single line for {check!r} in:\n{output}"
    return found[0]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory a server made, stored a session in, and left cleanly."""
    data_dir = tmp_path_factory.mktemp("healthy") / "data"
    meta = MetaStore("", data_dir)
    project = meta.create_project("checked")
    meta.close()
    server = ServerProcess(data_dir, demo=False, env={"HITMETRIX_SPOOL_SEGMENT_MAX_AGE_S": "0.2"}).start()
    try:
        batch = make_batch(events=2)
        answer = httpx.post(f"{server.url}/api/v1/batch", params={"key": project.public_key}, json=batch, timeout=30)
        assert answer.status_code == 200
        path = f"/api/v1/projects/{project.id}/sessions/{batch['session_id']}"
        wait_for(lambda: server.api(path).status_code == 200, 30, 0.2, what="the batch stored")
    finally:
        server.stop()
    return data_dir


@pytest.fixture()
def copy(healthy: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the healthy directory; what the test adds is made 0600/0700, as the server makes it."""
    target = tmp_path / "data"
    shutil.copytree(healthy, target, symlinks=True)  # copy2 keeps the modes
    target.chmod(0o700)
    umask = os.umask(0o077)
    try:
        yield target
    finally:
        os.umask(umask)


def test_a_healthy_directory_is_all_ok(healthy: Path) -> None:
    code, out = doctor(healthy)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[-1] == "doctor: everything is OK"
    assert all(line.startswith("OK    ") for line in lines[:-1]), out
    for check in ("server", "permissions", "disk", "admin token", "spool", "quarantine", "inbox", "metadata",
                  "migrations", "store", "store schema", "tracker", "dashboard"):
        line_of(out, check)
    assert "opened it" in line_of(out, "store") and "not running" in line_of(out, "server")


def test_json_output_lists_each_check(healthy: Path) -> None:
    code, out = doctor(healthy, "--json")
    checks = json.loads(out)
    assert code == 0 and {c["status"] for c in checks} == {"OK"}
    assert {"name", "status", "detail", "hint"} <= set(checks[0])


def test_loose_permissions_fail_naming_the_files(copy: Path) -> None:
    (copy / "meta.sqlite3").chmod(0o644)
    (copy / "spool").chmod(0o755)
    code, out = doctor(copy)
    assert code == 2, out
    line = line_of(out, "permissions")
    assert line.startswith("FAIL") and "2 of" in line
    assert "meta.sqlite3 (0644)" in line and "spool (0755)" in line and f"chmod -R go= {copy}" in line
    assert out.splitlines()[-1] == "doctor: some checks FAIL"


def test_a_quarantined_item_warns_with_the_command_to_look(copy: Path) -> None:
    Quarantine(copy / "quarantine").put_batch(b"not a batch", "decode", ValueError("garbled"), segment_id=7)
    code, out = doctor(copy)
    assert code == 1, out
    line = line_of(out, "quarantine")
    assert line.startswith("WARN") and "1 items" in line and "1 batch" in line
    assert f"hitmetrix quarantine list --data-dir {copy}" in line


def test_a_spool_backlog_warns_while_no_server_runs(copy: Path) -> None:
    spool = Spool(copy / "spool", fsync="never")
    spool.start()
    batch = StoredBatch(batch_id="b1", project_id=1, received_at=1, session_id="waiting0001", anonymous_id="a")
    spool.append_blocking(encode_batch(batch), 30.0)
    spool.close()  # seals the segment: it waits for the loader of the next `serve`
    code, out = doctor(copy)
    assert code == 1, out
    line = line_of(out, "spool")
    assert line.startswith("WARN") and "1 sealed segments waiting" in line and "hitmetrix serve" in line


def test_recordings_waiting_in_the_inbox_warn(copy: Path) -> None:
    folder = copy / "inbox" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "abcdefgh.0000000000.chunk").write_bytes(b"x" * 2048)
    code, out = doctor(copy)
    assert code == 1 and line_of(out, "inbox").startswith("WARN"), out
    assert "1 recording chunks (2.0 KiB)" in line_of(out, "inbox")


def test_a_missing_admin_token_fails(copy: Path) -> None:
    (copy / "admin-token").unlink()
    code, out = doctor(copy)
    assert code == 2 and line_of(out, "admin token").startswith("FAIL"), out


def test_metadata_of_a_newer_release_fails(copy: Path) -> None:
    with sqlite3.connect(copy / "meta.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    code, out = doctor(copy)
    assert code == 2, out
    line = line_of(out, "migrations")
    assert line.startswith("FAIL") and "9999" in line and "newer release" in line


def test_metadata_behind_the_newest_revision_warns(copy: Path) -> None:
    with sqlite3.connect(copy / "meta.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    code, out = doctor(copy)
    assert code == 1 and line_of(out, "migrations").startswith("WARN"), out
    assert "revision 0001" in line_of(out, "migrations")


def test_a_missing_directory_fails(tmp_path: Path) -> None:
    code, out = doctor(tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in out


@pytest.fixture()
def running(copy: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(copy, demo=False).start()
    yield server
    server.stop()


def test_with_a_server_running_it_asks_the_server_about_the_store(running: ServerProcess) -> None:
    code, out = doctor(running.data_dir)
    assert code == 0, out
    assert f"running at {running.url}" in line_of(out, "server")
    assert "asked the running server" in line_of(out, "store")
    assert line_of(out, "store schema").startswith("OK")
    # Without the admin token the server says nothing about its store.
    assert "store" not in httpx.get(running.url + "/healthz", timeout=10).json()


def test_a_store_held_by_an_unknown_process_fails(running: ServerProcess) -> None:
    """A server whose marker is gone: the doctor takes it for stopped, and the store's lock says otherwise."""
    (running.data_dir / "server.json").unlink()
    code, out = doctor(running.data_dir)
    assert code == 2, out
    line = line_of(out, "store")
    assert line.startswith("FAIL") and "in use by another process" in line
