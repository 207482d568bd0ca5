"""Tenancy in one place: the store refuses SQL that reads a project table without the project condition."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.loader.rows import event_table
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import PROJECT_TABLES
from hitmetrix.store.tenancy import SYSTEM_QUERY, TenancyError, check_project_scope
from tests.loader.helpers import make_batch

PACKAGE = Path(__file__).resolve().parents[2] / "hitmetrix"
SCOPED = "{project_id:UInt32}"

ACCEPTED = [
    f"SELECT count() FROM hitmetrix.events WHERE project_id = {SCOPED}",
    f"SELECT * FROM hitmetrix.sessions FINAL WHERE project_id = {SCOPED} AND (errors > 0) ORDER BY started_at",
    "SELECT 1 FROM hitmetrix.events WHERE project_id = {p:UInt32} GROUP BY name",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} AND (a OR b) LIMIT 5",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED}\nSETTINGS max_threads = 1",
    # A subquery scoped the same way, inside a scoped query.
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} AND (session_id IN "
    f"(SELECT session_id FROM hitmetrix.sessions WHERE project_id = {SCOPED} AND (errors > 0)))",
    f"ALTER TABLE hitmetrix.events DELETE WHERE project_id = {SCOPED} SETTINGS mutations_sync = 2",
    f"DELETE FROM hitmetrix.recordings WHERE project_id = {SCOPED}",
    # Tables without project rows, and names that only look like ours.
    "SELECT segment_id FROM hitmetrix.loaded_segments",
    "SELECT name FROM system.events",
    "SELECT count() FROM system.tables WHERE database = 'hitmetrix' AND name = 'events'",
    "SELECT sum(events) AS events FROM numbers(3)",
    "SELECT 'FROM hitmetrix.events' AS quoted -- FROM hitmetrix.events",
]
REFUSED = [
    "SELECT count() FROM hitmetrix.events",
    "SELECT count() FROM hitmetrix.events WHERE segment_id = 1",
    "SELECT count() FROM events",
    'SELECT count() FROM "hitmetrix"."sessions"',
    "SELECT count() FROM `hitmetrix`.`recordings` FINAL",
    f"SELECT x FROM hitmetrix.events WHERE segment_id = 1 AND project_id = {SCOPED}",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} OR 1",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} AND a OR b",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} = 0",
    f"SELECT x FROM hitmetrix.events WHERE project_id = {SCOPED} AND 1 ? 1 : 1",
    "SELECT x FROM hitmetrix.events WHERE project_id = 7",
    "SELECT x FROM hitmetrix.events WHERE project_id = {project_id:UInt64}",
    f"SELECT x FROM hitmetrix.events AS e WHERE project_id = {SCOPED}",
    f"SELECT x FROM hitmetrix.events PREWHERE project_id = {SCOPED}",
    f"SELECT x FROM hitmetrix.sessions WHERE project_id = {SCOPED} AND (session_id IN "
    "(SELECT session_id FROM hitmetrix.events WHERE errors > 0))",
    f"SELECT x FROM hitmetrix.sessions WHERE project_id = {SCOPED} UNION ALL SELECT x FROM hitmetrix.sessions",
    f"SELECT x FROM hitmetrix.sessions s JOIN hitmetrix.events e ON 1 WHERE project_id = {SCOPED}",
    "INSERT INTO hitmetrix.sessions SELECT * FROM hitmetrix.sessions",
    "DELETE FROM hitmetrix.events WHERE segment_id = 3",
    "ALTER TABLE hitmetrix.events DELETE WHERE 1",
    "DROP TABLE hitmetrix.seen_batches",
    "SELECT x FROM hitmetrix.session_starts",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_one_project_at_a_time_is_accepted(sql: str) -> None:
    check_project_scope(sql)


@pytest.mark.parametrize("sql", REFUSED)
def test_anything_else_touching_a_project_table_is_refused(sql: str) -> None:
    with pytest.raises(TenancyError, match="without the project condition"):
        check_project_scope(sql)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    chdb_store = ChdbStore(tmp_path_factory.mktemp("tenancy") / "store")
    for project_id, session_id in ((1, "mine-0001"), (2, "theirs-0002")):
        batch = make_batch(n_events=1, project_id=project_id, session_id=session_id)
        chdb_store.insert_arrow("hitmetrix.events", event_table([batch], project_id))
    yield chdb_store
    chdb_store.close()


def test_the_store_refuses_a_query_without_the_project_condition(store: ChdbStore) -> None:
    with pytest.raises(TenancyError):
        store.query("SELECT session_id FROM hitmetrix.events")
    with pytest.raises(TenancyError):
        store.execute("DELETE FROM hitmetrix.events WHERE segment_id = 1")
    # The store still holds both projects' rows: nothing ran.
    everything = store.query(SYSTEM_QUERY("SELECT session_id FROM hitmetrix.events ORDER BY session_id"))
    assert [row["session_id"] for row in everything] == ["mine-0001", "theirs-0002"]


def test_the_builders_conditions_cannot_widen_the_project_condition(store: ChdbStore) -> None:
    q = ScopedSelect(1).select("session_id").from_("events").where("1 = 0 OR 1 = 1")
    assert [row["session_id"] for row in store.query(q.sql(), q.params)] == ["mine-0001"]
    q = ScopedSelect(1).select("session_id").from_("events")
    q.where("session_id IN (SELECT session_id FROM hitmetrix.events)")  # a hand-written subquery
    with pytest.raises(TenancyError):
        store.query(q.sql(), q.params)
    q = ScopedSelect(1).select("session_id").from_("events")
    q.where(q.in_subquery("session_id", "events", "session_id", "type = 'click'"))
    assert [row["session_id"] for row in store.query(q.sql(), q.params)] == ["mine-0001"]


def test_the_guarded_tables_are_every_table_with_project_rows(store: ChdbStore) -> None:
    rows = store.query(
        "SELECT DISTINCT table FROM system.columns WHERE database = 'hitmetrix' AND name = 'project_id'"
    )
    assert {row["table"] for row in rows} == PROJECT_TABLES


def test_system_queries_are_written_only_in_the_store() -> None:
    marker = re.compile(r"\bSYSTEM_QUERY\(")
    outside = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.relative_to(PACKAGE).parts[:1] and marker.search(path.read_text())
    ]
    assert outside == [], "move these statements into hitmetrix/store/system_queries.py"
