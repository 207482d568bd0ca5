"""hitmetrix/ingest/command.py and the `ingest-log` CLI: where it sends, and the errors that say what to pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitmetrix.cli import main
from hitmetrix.ingest.command import default_state_path, target_of_project
from hitmetrix.store.meta import MetaStore


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name --project NAME, or --server URL with --key"),
        (["--server", "http://127.0.0.1:9", "--project", "p"], "name --project NAME"),
        (["--server", "http://127.0.0.1:9"], "--server needs --key"),
        (["--project", "nope"], "no project named 'nope'"),
        (["--project", "site"], "no running server"),
        (["--server", "http://127.0.0.1:9", "--key", "hm_sk_x", "--rules", "missing.json"], "missing.json"),
    ],
)
def test_cli_errors_say_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                     message: str) -> None:
    MetaStore("", tmp_path).create_project("site")
    log = tmp_path / "access.log"
    log.write_text("")
    assert main(["ingest-log", str(log), "--data-dir", str(tmp_path), *args]) == 1
    assert message in capsys.readouterr().err


def test_a_project_brings_its_own_rules_when_its_server_runs(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path)
    project = meta.create_project("site")
    meta.update_project(project.id, auth_rules='[{"path": "^/enter$", "failed_on_200": true}]')
    meta.close()
    url, key, rules = target_of_project(tmp_path, "", "site", find_server=lambda _data_dir: "http://127.0.0.1:8123")
    assert (url, key) == ("http://127.0.0.1:8123", project.server_key)
    assert [rule.path.pattern for rule in rules] == ["^/enter$"]


def test_state_files_differ_per_log_path(tmp_path: Path) -> None:
    a, b = default_state_path(tmp_path, Path("/a/access.log")), default_state_path(tmp_path, Path("/b/access.log"))
    assert a != b and a.parent == tmp_path / "ingest"
