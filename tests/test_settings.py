"""Settings: one declaration drives flags, environment variables and docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitmetrix.cli import build_parser
from hitmetrix.settings import SETTINGS, load_settings, settings_markdown
from tests.support import REPO


def test_defaults_environment_and_overrides_in_that_order() -> None:
    s = load_settings({"port": "9001"}, environ={"HITMETRIX_PORT": "9000", "HITMETRIX_DEMO": "yes"})
    assert s.port == 9001
    assert s.demo is True
    assert s.data_dir == Path("./data")


def test_unknown_and_malformed_settings_fail_with_a_message() -> None:
    with pytest.raises(ValueError, match="unknown setting in environment: HITMETRIX_PROT"):
        load_settings(environ={"HITMETRIX_PROT": "1"})
    with pytest.raises(ValueError, match="setting port: expected int"):
        load_settings(environ={"HITMETRIX_PORT": "eighty"})
    with pytest.raises(ValueError, match="spool_fsync: must be one of"):
        load_settings({"spool_fsync": "sometimes"}, environ={})


def test_every_setting_is_a_serve_flag() -> None:
    args = build_parser().parse_args(["serve", "--spool-fsync", "interval", "--no-geoip", "--max-body-bytes", "10"])
    assert (args.spool_fsync, args.geoip, args.max_body_bytes) == ("interval", False, "10")
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for s in SETTINGS:
        assert "--" + s.name.replace("_", "-") in help_text


def test_settings_docs_are_generated_from_the_declaration() -> None:
    assert (REPO / "docs" / "settings.md").read_text() == settings_markdown(), "regenerate docs/settings.md"
