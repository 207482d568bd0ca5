"""The audit log: entries written, read back newest first per project or globally, never raising."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hitmetrix.store import accounts, audit
from hitmetrix.store.meta import MetaStore

PASSWORD = "correct horse battery"
T0 = dt.datetime(2027, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path)
    yield store
    store.close()


def test_entries_read_back_newest_first_per_project_and_globally(meta: MetaStore) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    assert audit.record(meta, ann, "sign_in", client_ip="10.0.0.1", at=T0)
    assert audit.record(meta, ann, "member_added", 7, "bob@example.com", {"role": "viewer"}, at=T0)
    assert audit.record(meta, None, "sign_in_failed", target="eve@example.com", at=T0)
    assert audit.record(meta, ann, "project_settings_changed", 8, details={"changed": ["name"]}, at=T0)
    everything = audit.entries(meta)
    assert [e.action for e in everything] == ["project_settings_changed", "sign_in_failed", "member_added", "sign_in"]
    assert everything[1].actor == "" and everything[1].target == "eve@example.com"
    assert everything[3].client_ip == "10.0.0.1" and everything[3].label == "Signed in"
    assert everything[3].at == T0
    project = audit.entries(meta, 7)
    assert len(project) == 1 and project[0].actor == "ann@example.com" and project[0].details == {"role": "viewer"}
    assert project[0].as_json()["at"] == T0.isoformat()
    assert audit.entries(meta, 9) == []


def test_pages_by_keyset_and_filter_by_action(meta: MetaStore) -> None:
    for n in range(7):
        audit.record(meta, None, "replay_viewed", 1, f"session-{n}", at=T0)
    audit.record(meta, None, "sign_out", 1, at=T0)
    first = audit.entries(meta, 1, limit=3)
    second = audit.entries(meta, 1, before_id=first[-1].id, limit=3)
    third = audit.entries(meta, 1, before_id=second[-1].id, limit=3)
    assert [e.target for e in first + second + third] == ["", *(f"session-{n}" for n in range(6, -1, -1))]
    assert len(audit.entries(meta, 1, action="replay_viewed", limit=500)) == 7


def test_unknown_actions_get_a_label_made_from_the_name(meta: MetaStore) -> None:
    audit.record(meta, None, "alert.handled", 1, at=T0)
    assert audit.entries(meta)[0].label == "Alert.handled"


def test_long_targets_and_details_are_cut(meta: MetaStore) -> None:
    audit.record(meta, None, "sign_in_failed", target="x" * 5000, details={"blob": "y" * 10_000}, at=T0)
    entry = audit.entries(meta)[0]
    assert len(entry.target) == audit.MAX_TARGET_CHARS
    assert set(entry.details) == {"truncated"}


def test_a_failure_to_record_is_counted_and_logged_not_raised(
    meta: MetaStore, caplog: pytest.LogCaptureFixture
) -> None:
    before = audit.swallowed_errors.value
    with caplog.at_level(logging.WARNING, "hitmetrix.store.audit"):
        assert not audit.record(meta, None, "Not An Action!")
        with meta.engine.begin() as db:  # a store that lost the table: every write fails
            db.execute(text("DROP TABLE audit_log"))
        assert not audit.record(meta, None, "sign_in")
    assert audit.swallowed_errors.value == before + 2
    assert "not recorded" in caplog.text
    audit.swallowed_errors.value = before  # expected here: do not fail the other tests' checks


def test_token_use_is_recorded_at_most_once_a_minute(meta: MetaStore) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    token, plaintext = accounts.create_api_token(meta, ann, "ci", "read")
    for seconds in (0, 10, 59, 61, 62, 200):
        assert accounts.api_token(meta, plaintext, T0 + dt.timedelta(seconds=seconds)) is not None
    used = audit.entries(meta, action="token_used")
    assert [e.at for e in used] == [T0 + dt.timedelta(seconds=s) for s in (200, 61, 0)]
    assert used[0].details == {"token_id": token.id} and used[0].actor == "ann@example.com"
    assert accounts.revoke_api_token(meta, ann, token.id, T0)
    assert [e.action for e in audit.entries(meta)][:1] == ["token_revoked"]
    assert [e.action for e in audit.entries(meta)][-1] == "token_created"
