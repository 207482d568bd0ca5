"""ClickHouse step 9 (overview keys): a data directory from before it upgrades without losing a row, its sessions
get their visitor hashes and per-page view counts (stored, not computed on every read), and the overview answers
exactly as before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hitmetrix.analytics.overview import OverviewQuery, overview
from hitmetrix.store.ch_migrations import STEPS
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import SESSION_OVERVIEW_MATERIALIZED
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World
from tests.store.schema_steps import undo_step
from tests.store.test_ch_migrations_sequences import counts, stored_bytes

RANGE = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8), limit=100)


def as_before_step_9(clickhouse_dir: Path) -> None:
    """Take away what step 9 added, and its ledger row: a data directory of step 8."""
    undo_step(clickhouse_dir, 9, SESSION_OVERVIEW_MATERIALIZED)


def test_step_9_keys_the_sessions_stored_before_it_and_the_overview_answers_as_before(tmp_path: Path) -> None:
    world = World(tmp_path)
    gt.load(gt.generate(seed=10, visitors=80), tmp_path / "overview-spool", world.store, world.blobs)
    before = counts(world.store)  # type: ignore[arg-type]
    answer = overview(world.store, 1, RANGE)  # type: ignore[arg-type]
    assert answer["totals"]["visitors"] > 0 and answer["top_pages"] and answer["countries"]
    world.close()
    as_before_step_9(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 9]
        assert counts(store) == before, "no row lost, none counted twice"
        assert all(stored_bytes(store, SESSION_OVERVIEW_MATERIALIZED).values()), "stored, not computed when read"
        assert overview(store, 1, RANGE) == answer
    finally:
        store.close()
