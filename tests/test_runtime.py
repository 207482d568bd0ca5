"""The data directory a real server leaves behind is readable by its owner alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.integration


def _open_to_others(data_dir: Path) -> list[str]:
    """Every file or directory under ``data_dir`` (itself included) with a group or other bit set."""
    found = []
    for root, dirs, files in os.walk(data_dir):
        for path in [Path(root)] + [Path(root) / name for name in dirs + files]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{oct(mode & 0o777)} {path.relative_to(data_dir.parent)}")
    return sorted(set(found))


def test_data_directory_is_private_and_an_old_one_is_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # An older data directory, made with a permissive umask, as earlier releases left it.
    old_umask = os.umask(0o022)
    try:
        data_dir.mkdir(0o755)
        project = MetaStore("", data_dir).create_project("shop")
        (data_dir / "notes.txt").write_text("left by an operator")
    finally:
        os.umask(old_umask)
    assert _open_to_others(data_dir), "the fixture should start out world-readable"

    server = ServerProcess(data_dir, demo=False).start()
    try:
        batch = make_batch(events=2, chunks=1)
        answer = httpx.post(server.url + "/api/v1/batch", params={"key": project.public_key}, json=batch, timeout=30)
        assert answer.status_code == 200, answer.text

        def stored() -> bool:
            r = server.api(f"/api/v1/projects/{project.id}/sessions/{batch['session_id']}")
            return r.status_code == 200 and len(r.json()["events"]) == 2 and len(r.json()["recording_chunks"]) == 1

        wait_for(stored, what="batch stored")
    finally:
        server.stop()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert _open_to_others(data_dir) == []
    assert any(data_dir.joinpath("recordings").rglob("*.zst")), "a recording chunk was written and checked"
