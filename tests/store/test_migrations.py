"""Migrations: a data directory of the previous release upgrades without losing a row; fresh ones match the models.

The previous release's schema and rows come from plain SQL fixtures
(tests/fixtures/previous_release), so the test needs no git history.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hitmetrix.analytics.sessions import SessionFilters, list_sessions, session_summary
from hitmetrix.store import ch_migrations, migrations
from hitmetrix.store.ch_migrations import STEPS, Engines
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.support import ServerProcess

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "previous_release"
META_TABLES = ("projects", "users", "setup_tokens", "memberships", "api_tokens", "web_sessions")
CH_TABLES = ("events", "recordings", "session_segments", "loaded_segments")
NOV_20_23_50_MS = 1_795_218_600_000  # 2026-11-20 23:50:00 UTC


def sql_statements(path: Path) -> list[str]:
    """The fixture's statements: separated by a semicolon at the end of a line; comment lines dropped."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
    return [statement.strip() for statement in text.split(";\n") if statement.strip().rstrip(";")]


def previous_release_meta(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir / "meta.sqlite3") as db:
        db.executescript((FIXTURES / "meta.sql").read_text())


def previous_release_clickhouse(data_dir: Path) -> None:
    from chdb import session

    ch = session.Session(str(data_dir / "clickhouse"))
    try:
        for statement in sql_statements(FIXTURES / "clickhouse.sql"):
            ch.query(statement.rstrip(";"))
    finally:
        ch.close()


# Values a revision changes on purpose: (table, column) -> {old value: new value}.
CHANGED_BY_REVISIONS: dict[tuple[str, str], dict[Any, Any]] = {
    ("memberships", "role"): {"member": "analyst"},  # 0005: the previous release's one role reads everything
}


def changed_by_revisions(table: str, column: str, value: Any) -> Any:
    return CHANGED_BY_REVISIONS.get((table, column), {}).get(value, value)


def sqlite_rows(path: Path, table: str, columns: list[str] | None = None) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        names = ", ".join(columns) if columns else "*"
        return db.execute(f"SELECT {names} FROM {table} ORDER BY rowid").fetchall()


def sqlite_columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def ch_counts(store: ChdbStore) -> dict[str, int]:
    return {
        table: int(store.query(SYSTEM_QUERY(f"SELECT count() AS n FROM hitmetrix.{table}"))[0]["n"])
        for table in CH_TABLES
    }


# --- metadata (Alembic) -----------------------------------------------------------------------------


def test_the_previous_releases_metadata_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    previous_release_meta(tmp_path)
    path = tmp_path / "meta.sqlite3"
    before = {table: (sqlite_columns(path, table), sqlite_rows(path, table)) for table in META_TABLES}
    assert all(rows for _, rows in before.values()), "the fixture has rows in every table"

    meta = MetaStore("", tmp_path)
    for table, (columns, rows) in before.items():
        expected = [tuple(changed_by_revisions(table, c, v) for c, v in zip(columns, row, strict=True)) for row in rows]
        assert sqlite_rows(path, table, columns) == expected, table
    with meta.engine.connect() as connection:
        assert migrations.current_revisions(connection) == set(migrations.script_directory().get_heads())
    shop = meta.project(2)
    assert shop is not None and shop.origins() == ["https://shop.example"]
    assert (shop.time_zone, shop.allowed_query_keys, shop.query_allowlist) == ("UTC", "", ())
    assert meta.create_project("new").id == 3
    meta.close()


def test_every_existing_project_gets_its_own_server_key(tmp_path: Path) -> None:
    """0006: server sources need a secret per project; the previous release's projects get one too."""
    previous_release_meta(tmp_path)
    meta = MetaStore("", tmp_path)
    keys = [p.server_key for p in meta.projects()]
    assert len(keys) == 2 and len(set(keys)) == 2 and all(k.startswith("hm_sk_") and len(k) > 30 for k in keys)
    assert [p.auth_rules for p in meta.projects()] == ["", ""]
    found = meta.project_by_server_key(keys[1])
    assert found is not None and found.id == 2
    new = meta.create_project("after")
    assert new.server_key.startswith("hm_sk_") and new.server_key not in keys
    meta.close()


def test_a_database_the_stopgap_already_gave_query_keys_is_upgraded_too(tmp_path: Path) -> None:
    """Between the previous release and migrations, a stopgap added allowed_query_keys at start-up."""
    previous_release_meta(tmp_path)
    with sqlite3.connect(tmp_path / "meta.sqlite3") as db:
        db.execute("ALTER TABLE projects ADD COLUMN allowed_query_keys TEXT NOT NULL DEFAULT ''")
        db.execute("UPDATE projects SET allowed_query_keys = 'page' WHERE id = 1")
    meta = MetaStore("", tmp_path)
    demo = meta.project(1)
    assert demo is not None and demo.query_allowlist == ("page",) and demo.time_zone == "UTC"
    meta.close()


def test_upgraded_projects_have_every_recording_feature_off_until_an_owner_turns_one_on(tmp_path: Path) -> None:
    """0008: the optional tracker features (console, network, vitals) of existing projects start off."""
    from hitmetrix.store import projects

    previous_release_meta(tmp_path)
    meta = MetaStore("", tmp_path)
    existing = meta.projects()
    assert existing, "the fixture has projects"
    for project in existing:
        assert [getattr(project, name) for name in projects.RECORDING_FEATURES] == [False, False, False], project.id
    projects.update_settings(meta, existing[0].id, {"record_network": True}, actor_id=None)
    meta.close()
    reopened = MetaStore("", tmp_path)
    again = reopened.project(existing[0].id)
    assert again is not None and (again.record_console, again.record_network, again.record_vitals) == (
        False,
        True,
        False,
    )
    reopened.close()


def test_0007_gives_existing_projects_detection_tables_that_go_with_them_and_downgrades(tmp_path: Path) -> None:
    """0007: alerts, decisions, allow-lists and webhooks start empty; an old project's rows work and are deleted
    with it; downgrading to 0006 drops the tables, and the next start makes them again."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from hitmetrix.detect.detectors.base import Finding
    from hitmetrix.store import projects, security

    detection_tables = {"alerts", "decisions", "allow_entries", "webhooks", "webhook_deliveries"}
    previous_release_meta(tmp_path)
    meta = MetaStore("", tmp_path)
    assert detection_tables <= set(inspect(meta.engine).get_table_names())
    old = meta.projects()[0]
    finding = Finding("probing", "high", "ip", "k1", "203.0.113.0", ("40 404s in 1 min",), NOV_20_23_50_MS, old.id)
    alert, new = security.upsert_alert(meta, finding, NOV_20_23_50_MS, 60_000)
    assert new and security.alerts(meta, old.id)[0].id == alert.id
    security.add_decision(meta, old.id, "ip", "k1", "block", "probing", 60, "rule", alert_id=alert.id)
    security.add_allow_entry(meta, old.id, "cidr", "192.0.2.0/24")
    projects.delete_project(meta, old.id, actor_id=None)
    assert security.alerts(meta, old.id) == [] and security.decisions(meta, old.id) == []
    assert security.all_allow_entries(meta) == []
    with meta.engine.connect() as connection:
        config = Config()
        config.set_main_option("script_location", str(migrations.HERE))
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
        connection.commit()
    assert not detection_tables & set(inspect(meta.engine).get_table_names())
    meta.close()
    again = MetaStore("", tmp_path)
    assert detection_tables <= set(inspect(again.engine).get_table_names())
    again.close()


def test_a_fresh_database_has_exactly_the_models_schema(tmp_path: Path) -> None:
    """A model changed without a revision (or the reverse) fails here: write the revision."""
    meta = MetaStore("", tmp_path)
    with meta.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, migrations.all_models())
    meta.close()
    assert differences == [], "models and migrations disagree; add an Alembic revision"


def test_the_revisions_form_one_chain_from_the_baseline() -> None:
    script = migrations.script_directory()
    assert len(script.get_heads()) == 1, f"several heads {script.get_heads()}: chain yours after the newest"
    assert script.get_base() == migrations.BASELINE


def test_opening_an_upgraded_database_again_changes_nothing(tmp_path: Path) -> None:
    MetaStore("", tmp_path).close()
    path = tmp_path / "meta.sqlite3"
    schema = sqlite_rows(path, "sqlite_master", ["sql"])
    MetaStore("", tmp_path).close()
    assert sqlite_rows(path, "sqlite_master", ["sql"]) == schema


# --- ClickHouse (the schema ledger) -----------------------------------------------------------------


def test_the_previous_releases_clickhouse_data_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    previous_release_clickhouse(tmp_path)
    from chdb import session

    old = session.Session(str(tmp_path / "clickhouse"))
    before = {
        table: old.query(f"SELECT * FROM hitmetrix.{table} ORDER BY tuple(*)", "JSONEachRow").bytes()
        for table in CH_TABLES
    }
    old.close()
    assert all(before.values()), "the fixture has rows in every table"

    store = ChdbStore(tmp_path / "clickhouse")
    try:
        assert store.migrated == [step.version for step in STEPS]
        for table, rows in before.items():
            after = store.query(SYSTEM_QUERY(f"SELECT * FROM hitmetrix.{table} ORDER BY tuple(*) FORMAT JSONEachRow"))
            assert len(after) == rows.count(b"\n"), table
        tables = {row["name"] for row in store.query(SYSTEM_QUERY("SHOW TABLES FROM hitmetrix"))}
        assert {"seen_batches", "sessions", "session_starts", "schema_migrations"} <= tables
        # The sessions table was filled from the old summaries: the session over midnight is one row, whole.
        rows, _ = list_sessions(store, 1, SessionFilters())
        assert [(r["session_id"], r["started_at"], r["duration_ms"]) for r in rows] == [
            ("legacy-sess-0001", NOV_20_23_50_MS, 30 * 60_000)
        ]
        assert (rows[0]["pageviews"], rows[0]["clicks"], rows[0]["errors"], rows[0]["events"]) == (2, 1, 1, 4)
        assert rows[0]["entry_url"] == "https://shop.example/"
        assert session_summary(store, 1, "legacy-sess-0001") == rows[0]
        other, _ = list_sessions(store, 2, SessionFilters())
        assert [(r["session_id"], r["user_id"], r["country"]) for r in other] == [("legacy-sess-0002", "carol", "FR")]
    finally:
        store.close()
    again = ChdbStore(tmp_path / "clickhouse")
    try:
        assert again.migrated == []
        assert len(list_sessions(again, 1, SessionFilters())[0]) == 1
    finally:
        again.close()


@pytest.mark.integration
def test_the_current_server_starts_on_a_previous_release_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    previous_release_meta(data_dir)
    previous_release_clickhouse(data_dir)
    server = ServerProcess(data_dir, demo=False).start()
    try:
        answer = server.api("/api/v1/projects/1/sessions?from=2026-11-20&to=2026-11-20")
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["sessions"]
        assert (row["session_id"], row["started_at"], row["duration_ms"]) == (
            "legacy-sess-0001",
            NOV_20_23_50_MS,
            30 * 60_000,
        )
        # It started on the 20th: the 21st, when it ended, does not list it.
        assert server.api("/api/v1/projects/1/sessions?from=2026-11-21").json()["sessions"] == []
    finally:
        server.stop()
    meta_path = data_dir / "meta.sqlite3"
    assert len(sqlite_rows(meta_path, "projects")) == 2 and len(sqlite_rows(meta_path, "memberships")) == 2
    store = ChdbStore(data_dir / "clickhouse")
    try:
        assert ch_counts(store) == {"events": 5, "recordings": 2, "session_segments": 3, "loaded_segments": 2}
    finally:
        store.close()


def test_step_4_gives_existing_sessions_their_analytics_from_their_events(tmp_path: Path) -> None:
    """Step 4: the segments stored before it are summarised again from their events, and every session's
    row gets its pageview path, entry and exit page and visitor id, above the versions the loader wrote."""
    import datetime as dt

    from hitmetrix.analytics.overview import OverviewQuery, overview

    previous_release_clickhouse(tmp_path)
    store = ChdbStore(tmp_path / "clickhouse")
    try:
        assert 4 in store.migrated
        rows = store.query(SYSTEM_QUERY(
            "SELECT session_id, anonymous_id, pageview_paths, entry_path, exit_path, pageviews"
            " FROM hitmetrix.sessions FINAL ORDER BY session_id"
        ))
        assert rows == [
            {"session_id": "legacy-sess-0001", "anonymous_id": "anon-legacy-sess-0001",
             "pageview_paths": ["/", "/cart"], "entry_path": "/", "exit_path": "/cart", "pageviews": 2},
            {"session_id": "legacy-sess-0002", "anonymous_id": "anon-legacy-sess-0002",
             "pageview_paths": ["/welcome"], "entry_path": "/welcome", "exit_path": "/welcome", "pageviews": 1},
        ]
        assert ch_counts(store)["session_segments"] == 3  # replaced, not added
        answer = overview(store, 1, OverviewQuery(dt.date(2026, 11, 20), dt.date(2026, 11, 20)))
        assert answer["totals"] == {"visitors": 1, "sessions": 1, "pageviews": 2, "views_per_session": 2.0,
                                    "bounce_rate": 0.0, "avg_duration_ms": 30 * 60_000}
        assert answer["exit_pages"] == [{"value": "/cart", "visitors": 1, "sessions": 1}]
    finally:
        store.close()


def test_a_step_cut_short_runs_again_without_counting_twice(tmp_path: Path) -> None:
    previous_release_clickhouse(tmp_path)
    ChdbStore(tmp_path / "clickhouse").close()
    from chdb import session

    ch = session.Session(str(tmp_path / "clickhouse"))
    ch.query("DELETE FROM hitmetrix.schema_migrations WHERE version = 3")  # as if killed before the ledger row
    ch.close()
    store = ChdbStore(tmp_path / "clickhouse")
    try:
        assert store.migrated == [3]
        rows, _ = list_sessions(store, 1, SessionFilters())
        assert [(r["session_id"], r["events"]) for r in rows] == [("legacy-sess-0001", 4)]
    finally:
        store.close()


def test_a_data_directory_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    ChdbStore(tmp_path / "clickhouse").close()
    from chdb import session

    ch = session.Session(str(tmp_path / "clickhouse"))
    ch.query("INSERT INTO hitmetrix.schema_migrations VALUES (999, 'from the future', now64(3))")
    ch.close()
    with pytest.raises(RuntimeError, match=r"schema steps \[999\].*newer release"):
        ChdbStore(tmp_path / "clickhouse")


def test_a_fresh_events_table_has_the_loaders_columns(tmp_path: Path) -> None:
    """A column added to EVENT_COLUMNS needs a schema step too: the loader inserts by these names."""
    from hitmetrix.store.schema import EVENT_COLUMNS, RECORDING_COLUMNS

    store = ChdbStore(tmp_path / "clickhouse")
    try:
        for table, columns in (("events", EVENT_COLUMNS), ("recordings", RECORDING_COLUMNS)):
            described = store.query(SYSTEM_QUERY(f"DESCRIBE TABLE hitmetrix.{table}"))
            types = {row["name"]: row["type"] for row in described}
            for name, ch_type, _ in columns:
                assert types.get(name) == ch_type.split(" CODEC")[0], (table, name)
    finally:
        store.close()


def test_engines_are_parameters_of_the_ddl() -> None:
    single = "\n".join(statement for step in STEPS for statement in step.ddl(Engines()))
    cluster = "\n".join(
        statement for step in STEPS for statement in step.ddl(Engines(replicated=True, on_cluster="ON CLUSTER main"))
    )
    assert "Replicated" not in single and "ON CLUSTER" not in single
    assert single.count("ENGINE = ") == cluster.count("ENGINE = Replicated")
    assert "ENGINE = ReplicatedReplacingMergeTree(version, is_deleted)" in cluster
    assert "ENGINE = ReplicatedMergeTree\n" in cluster and "replicated_deduplication_window" in cluster
    creates = ch_migrations.create_statements(Engines(on_cluster="ON CLUSTER main"))
    assert creates and all(" ON CLUSTER main" in s.split("(")[0] for s in creates)
