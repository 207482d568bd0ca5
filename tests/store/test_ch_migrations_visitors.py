"""ClickHouse step 10 (visitor numbers): a data directory from before it upgrades without losing a row, each
project's visitors get the numbers 1, 2, 3, … in the order they first came (every session of a visitor carries
its number), the overview's page columns become LowCardinality, and the overview answers exactly as before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hitmetrix.analytics.overview import OverviewQuery, overview
from hitmetrix.store.ch_migrations import STEPS
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import (
    SESSION_ANALYTICS_COLUMNS,
    SESSION_LOW_CARDINALITY_V10,
    SESSION_OVERVIEW_MATERIALIZED,
    SESSION_VISITOR_NUMBER,
)
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World
from tests.store.schema_steps import undo_step
from tests.store.test_ch_migrations_sequences import counts

RANGE = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8), limit=100)
RETYPED = [name for name, _ in SESSION_LOW_CARDINALITY_V10]
# The types step 9 left these columns with (its own list, and the loader's for the paths).
STEP_9_TYPES = {name: ch_type for name, ch_type in SESSION_OVERVIEW_MATERIALIZED}
STEP_9_TYPES |= {name: ch_type for name, ch_type, _, _ in SESSION_ANALYTICS_COLUMNS}


def as_before_step_10(clickhouse_dir: Path) -> None:
    """Take away what step 10 added and changed, and its ledger row: a data directory of step 9."""
    undo_step(clickhouse_dir, 10, SESSION_VISITOR_NUMBER,
              session_types=[(name, STEP_9_TYPES[name]) for name in RETYPED], tables=["visitors"])


def column_types(store: ChdbStore) -> dict[str, str]:
    rows = store.query(SYSTEM_QUERY(
        "SELECT name, type FROM system.columns WHERE database = 'hitmetrix' AND table = 'sessions'"))
    return {row["name"]: row["type"] for row in rows if row["name"] in RETYPED}


def live_sessions(store: ChdbStore) -> list[tuple[int, int, int, str]]:
    """(project, visitor hash, visitor number, started_at) of every live session row, as read."""
    rows = store.query(SYSTEM_QUERY(
        "SELECT project_id, toString(visitor) AS visitor, visitor_num, toString(started_at) AS started"
        " FROM hitmetrix.sessions FINAL WHERE is_deleted = 0"))
    return [(int(r["project_id"]), int(r["visitor"]), int(r["visitor_num"]), r["started"]) for r in rows]


def test_step_10_numbers_the_visitors_stored_before_it_and_the_overview_answers_as_before(tmp_path: Path) -> None:
    world = World(tmp_path)
    gt.load(gt.generate(seed=11, visitors=80), tmp_path / "overview-spool", world.store, world.blobs)
    before = counts(world.store)  # type: ignore[arg-type]
    answers = {project: overview(world.store, project, RANGE) for project in (1, 2)}  # type: ignore[arg-type]
    assert all(a["totals"]["visitors"] > 0 and a["top_pages"] and a["entry_pages"] for a in answers.values())
    world.close()
    as_before_step_10(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 10]
        assert counts(store) == before, "no row lost, none counted twice"
        assert column_types(store) == {name: ch_type.split(" MATERIALIZED")[0]
                                       for name, ch_type in SESSION_LOW_CARDINALITY_V10}

        sessions = live_sessions(store)
        assert sessions and all(num > 0 for _, _, num, _ in sessions), "every live session has its visitor's number"
        number_of: dict[tuple[int, int], int] = {}
        first_of: dict[tuple[int, int], str] = {}
        for project, visitor, num, started in sessions:
            assert number_of.setdefault((project, visitor), num) == num, "a visitor's sessions share one number"
            first_of[(project, visitor)] = min(first_of.get((project, visitor), started), started)
        projects = {project for project, _ in number_of}
        assert len(projects) >= 2, "the traffic covers several projects"
        for project in projects:
            visitors = sorted((first_of[k], k[1]) for k in number_of if k[0] == project)
            # 1..N, one per visitor, in the order of each visitor's first session.
            assert [number_of[(project, visitor)] for _, visitor in visitors] == list(range(1, len(visitors) + 1))
        kept = store.query(SYSTEM_QUERY("SELECT project_id, toString(visitor) AS visitor, num"
                                        " FROM hitmetrix.visitors FINAL"))
        assert {(int(r["project_id"]), int(r["visitor"])): int(r["num"]) for r in kept} == number_of

        assert {project: overview(store, project, RANGE) for project in (1, 2)} == answers
    finally:
        store.close()
