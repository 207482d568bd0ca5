"""Saved views and cohorts on real SQLite: names unique per project, query strings re-encoded, rows isolated per
project and deleted with it, every change audited, and revision 0009 upgrading an existing database without
losing a row (and downgrading cleanly)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from hitmetrix.store import accounts, audit, migrations, projects, saved
from hitmetrix.store.meta import MetaStore
from tests.store.test_migrations import previous_release_meta, sqlite_rows

DEFINITION = json.dumps({"conditions": [{"type": "property", "property": "country", "value": "DE"}]})


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path / "meta")
    yield store
    store.close()


def audit_actions(meta: MetaStore, project_id: int) -> list[str]:
    with meta.sessions() as db:
        entries = db.scalars(select(audit.AuditEntry).where(audit.AuditEntry.project_id == project_id)
                             .order_by(audit.AuditEntry.id))
        return [e.action for e in entries if e.action.startswith(("saved_view", "cohort"))]


def test_a_view_is_saved_listed_opened_renamed_and_deleted(meta: MetaStore) -> None:
    pid = meta.create_project("shop").id
    user = accounts.create_user(meta, "ana@example.com", "a long password 123").id
    view = saved.add_view(meta, pid, "  DE mobile  ", "overview", "?country=DE&device=mobile&url=a%26b c",
                          actor_id=user)
    assert (view.name, view.page, view.created_by) == ("DE mobile", "overview", user)
    assert view.query == "country=DE&device=mobile&url=a%26b+c", "re-encoded from its pairs, the & kept as data"
    assert view.url() == f"/projects/{pid}/overview?country=DE&device=mobile&url=a%26b+c"
    second = saved.add_view(meta, pid, "All", "funnels", "", actor_id=user)
    assert [v.name for v in saved.views(meta, pid)] == ["All", "DE mobile"]
    assert saved.view(meta, pid, view.id) is not None
    renamed = saved.rename_view(meta, pid, view.id, "Germans on phones", actor_id=user)
    assert renamed is not None and renamed.name == "Germans on phones"
    assert saved.delete_view(meta, pid, second.id, actor_id=user)
    assert not saved.delete_view(meta, pid, second.id, actor_id=user), "gone already"
    assert [v.name for v in saved.views(meta, pid)] == ["Germans on phones"]
    assert audit_actions(meta, pid) == ["saved_view_created", "saved_view_created", "saved_view_renamed",
                                        "saved_view_deleted"]


def test_names_are_unique_per_project_not_across_projects(meta: MetaStore) -> None:
    shop, blog = meta.create_project("shop").id, meta.create_project("blog").id
    saved.add_view(meta, shop, "Weekly", "overview", "", actor_id=None)
    with pytest.raises(saved.NameTaken, match="exists already"):
        saved.add_view(meta, shop, " Weekly ", "retention", "", actor_id=None)
    assert saved.add_view(meta, blog, "Weekly", "overview", "", actor_id=None).project_id == blog
    other = saved.add_view(meta, shop, "Daily", "overview", "", actor_id=None)
    with pytest.raises(saved.NameTaken):
        saved.rename_view(meta, shop, other.id, "Weekly", actor_id=None)
    saved.add_cohort(meta, shop, "Germans", DEFINITION, actor_id=None)
    with pytest.raises(saved.NameTaken):
        saved.add_cohort(meta, shop, "Germans", DEFINITION, actor_id=None)
    assert saved.add_cohort(meta, blog, "Germans", DEFINITION, actor_id=None).project_id == blog
    assert len(saved.views(meta, shop)) == 2 and len(saved.cohorts(meta, shop)) == 1
    assert audit_actions(meta, shop).count("saved_view_created") == 2, "a refused name writes no audit entry"


@pytest.mark.parametrize(
    ("name", "page", "query", "message"),
    [
        ("", "overview", "", "1 to 200 characters"),
        ("x" * 201, "overview", "", "1 to 200 characters"),
        ("tab\there", "overview", "", "control characters"),
        ("ok", "../admin", "", "analytics page"),
        ("ok", "Overview", "", "analytics page"),
        ("ok", "overview", "a=" + "x" * 4000, "at most 4000"),
        ("ok", "overview", "a=%00", "control characters"),
        ("ok", "overview", "&".join(f"k{i}=v" for i in range(201)), "too many"),
    ],
)
def test_bad_views_are_refused_with_a_reason(meta: MetaStore, name: str, page: str, query: str,
                                             message: str) -> None:
    pid = meta.create_project("shop").id
    with pytest.raises(ValueError, match=message):
        saved.add_view(meta, pid, name, page, query, actor_id=None)
    assert saved.views(meta, pid) == []


def test_another_projects_view_or_cohort_is_not_found(meta: MetaStore) -> None:
    shop, blog = meta.create_project("shop").id, meta.create_project("blog").id
    view = saved.add_view(meta, shop, "v", "overview", "", actor_id=None)
    cohort = saved.add_cohort(meta, shop, "c", DEFINITION, actor_id=None)
    assert saved.view(meta, blog, view.id) is None and saved.cohort(meta, blog, cohort.id) is None
    assert saved.rename_view(meta, blog, view.id, "mine now", actor_id=None) is None
    assert saved.update_cohort(meta, blog, cohort.id, name="mine now", actor_id=None) is None
    assert not saved.delete_view(meta, blog, view.id, actor_id=None)
    assert not saved.delete_cohort(meta, blog, cohort.id, actor_id=None)
    found_view, found_cohort = saved.view(meta, shop, view.id), saved.cohort(meta, shop, cohort.id)
    assert found_view is not None and found_view.name == "v"
    assert found_cohort is not None and found_cohort.name == "c"


def test_a_cohort_keeps_its_definition_and_changes_are_audited(meta: MetaStore) -> None:
    pid = meta.create_project("shop").id
    cohort = saved.add_cohort(meta, pid, "Germans", DEFINITION, actor_id=None)
    assert json.loads(cohort.definition) == json.loads(DEFINITION) and cohort.created_at == cohort.updated_at
    newer = json.dumps({"conditions": [{"type": "property", "property": "country", "value": "FR"}]})
    changed = saved.update_cohort(meta, pid, cohort.id, name="French", definition=newer, actor_id=None)
    assert changed is not None and (changed.name, changed.definition) == ("French", newer)
    assert saved.utc(changed.updated_at) >= saved.utc(changed.created_at)
    unchanged = saved.update_cohort(meta, pid, cohort.id, name="French", actor_id=None)
    assert unchanged is not None
    for bad in ("[1, 2]", "{", "x" * 8001):
        with pytest.raises(ValueError, match="definition"):
            saved.add_cohort(meta, pid, "bad", bad, actor_id=None)
    assert saved.delete_cohort(meta, pid, cohort.id, actor_id=None)
    assert audit_actions(meta, pid) == ["cohort_created", "cohort_changed", "cohort_deleted"]


def test_a_deleted_project_takes_its_views_and_cohorts_with_it(meta: MetaStore) -> None:
    shop, blog = meta.create_project("shop").id, meta.create_project("blog").id
    for pid in (shop, blog):
        saved.add_view(meta, pid, "v", "overview", "country=DE", actor_id=None)
        saved.add_cohort(meta, pid, "c", DEFINITION, actor_id=None)
    projects.delete_project(meta, shop, actor_id=None)
    assert saved.views(meta, shop) == [] and saved.cohorts(meta, shop) == []
    assert len(saved.views(meta, blog)) == 1 and len(saved.cohorts(meta, blog)) == 1


def test_0009_upgrades_an_existing_database_without_losing_a_row_and_downgrades(tmp_path: Path) -> None:
    """An existing metadata database (the previous release's, at 0001) gets the two tables, keeps every row,
    and can save views at once; downgrading to 0008 drops only the two tables, and the next start makes them."""
    from alembic import command
    from alembic.config import Config

    previous_release_meta(tmp_path)
    path = tmp_path / "meta.sqlite3"
    before = {table: sqlite_rows(path, table) for table in ("projects", "users")}
    meta = MetaStore("", tmp_path)
    assert {"saved_views", "cohorts"} <= set(inspect(meta.engine).get_table_names())
    assert {table: len(sqlite_rows(path, table)) for table in before} == {t: len(r) for t, r in before.items()}
    old = meta.projects()[0]
    view = saved.add_view(meta, old.id, "kept", "overview", "country=DE", actor_id=None)
    with meta.engine.connect() as connection:
        config = Config()
        config.set_main_option("script_location", str(migrations.HERE))
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
        connection.commit()
    tables = set(inspect(meta.engine).get_table_names())
    assert not {"saved_views", "cohorts"} & tables and {"projects", "alerts"} <= tables
    meta.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM projects").fetchone()[0] == len(before["projects"])
    again = MetaStore("", tmp_path)
    assert saved.views(again, old.id) == [], "the downgrade dropped the rows with the table"
    assert saved.add_view(again, old.id, "kept", "overview", "", actor_id=None).id == view.id
    again.close()
