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
