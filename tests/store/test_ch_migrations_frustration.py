"""ClickHouse step 5 (frustration signals): a data directory from before it upgrades without losing a row, and its
existing sessions get their signals from their events, as the loader would have computed them."""

from __future__ import annotations

from pathlib import Path

from hitmetrix.analytics.frustration_query import session_marks
from hitmetrix.analytics.sessions import SessionFilters, list_sessions
from hitmetrix.store.ch_migrations import STEPS
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import (
    SEGMENT_FRUSTRATION_COLUMNS,
    SESSION_FRUSTRATION_COLUMNS,
    SESSION_FRUSTRATION_MATERIALIZED,
)
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_frustration as gf
from tests.loader.helpers import World
from tests.store.schema_steps import undo_step

TABLES = ("events", "recordings", "session_segments", "loaded_segments", "session_starts")


def counts(store: ChdbStore) -> dict[str, int]:
    """Rows per table; session_starts as read (FINAL): a session's start is logged again whenever its row is."""
    return {
        t: int(store.query(SYSTEM_QUERY(
            f"SELECT count() AS n FROM hitmetrix.{t}{' FINAL' if t == 'session_starts' else ''}"
        ))[0]["n"])
        for t in TABLES
    }


def as_before_step_5(clickhouse_dir: Path) -> None:
    """Take away what step 5 added, and its ledger row (and those of any later step): a directory of step 4."""
    undo_step(clickhouse_dir, 5, (*SESSION_FRUSTRATION_MATERIALIZED, *SESSION_FRUSTRATION_COLUMNS),
              SEGMENT_FRUSTRATION_COLUMNS)


def test_step_5_gives_the_sessions_stored_before_it_their_signals(tmp_path: Path) -> None:
    made, traffic = gf.generate(seed=11, sessions=24)
    world = World(tmp_path)
    gt.load(traffic, tmp_path / "frustration-spool", world.store, world.blobs)
    before = counts(world.store)
    listed_before, _ = list_sessions(world.store, 1, SessionFilters(), limit=1000)
    world.close()
    as_before_step_5(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 5]
        assert counts(store) == before, "no row lost, none counted twice"
        listed, _ = list_sessions(store, 1, SessionFilters(), limit=1000)
        assert [row["session_id"] for row in listed] == [row["session_id"] for row in listed_before]
        assert listed == listed_before, "the rows as the loader wrote them, signals included"
        assert any(row["rage_clicks"] for row in listed)
        for s in made:
            got = session_marks(store, s.project_id, s.session_id)
            assert got is not None and [(m["ts"], m["kind"], m["path"]) for m in got["marks"]] == s.marks()
        frustrated = {s.session_id for s in made if s.project_id == 1 and s.counts()["dead"]}
        rows, _ = list_sessions(store, 1, SessionFilters.from_query({"frustration": "dead"}), limit=1000)
        assert {row["session_id"] for row in rows} == frustrated
    finally:
        store.close()
    again = ChdbStore(tmp_path / "store")
    try:
        assert again.migrated == []
    finally:
        again.close()
