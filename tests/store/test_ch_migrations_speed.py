"""ClickHouse step 6 (analytics read speed): a data directory from before it upgrades without losing a row, its
existing events get the funnel projection, funnels answer the same, and the loader's repair can still delete a
half-stored segment's events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hitmetrix.analytics.funnels import FunnelDefinition, funnel
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.store.ch_migrations import EVENTS_STEP_PROJECTION, STEPS
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.system_queries import DELETE_SEGMENT_EVENTS
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

TABLES = ("events", "recordings", "session_segments", "sessions", "loaded_segments", "session_starts")
FUNNEL = FunnelDefinition.from_json(json.dumps({
    "steps": [{"kind": "pageview", "match": "prefix", "path": "/"}, {"kind": "pageview", "path": "/pricing"},
              {"kind": "custom", "name": "signup"}],
    "window_s": 7200,
}))
RANGE = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8))


def counts(store: ChdbStore) -> dict[str, int]:
    """Rows per table; sessions and their starts as read (FINAL): a later step (7) writes every row again."""
    final = ("sessions", "session_starts")
    return {
        t: int(store.query(SYSTEM_QUERY(
            f"SELECT count() AS n FROM hitmetrix.{t}{' FINAL' if t in final else ''}"))[0]["n"])
        for t in TABLES
    }


def parts_with_projection(store: ChdbStore) -> tuple[int, int]:
    """(active parts of events, how many of them hold the projection)."""
    parts = store.query(SYSTEM_QUERY(
        "SELECT count() AS n FROM system.parts WHERE active AND database = 'hitmetrix' AND table = 'events'"))
    projected = store.query(SYSTEM_QUERY(
        "SELECT count() AS n FROM system.projection_parts WHERE active AND database = 'hitmetrix'"
        f" AND table = 'events' AND name = '{EVENTS_STEP_PROJECTION}'"))
    return int(parts[0]["n"]), int(projected[0]["n"])


def as_before_step_6(clickhouse_dir: Path) -> None:
    """Take away what step 6 added, and its ledger row: a data directory of step 5."""
    from chdb import session

    ch = session.Session(str(clickhouse_dir))
    try:
        ch.query(f"ALTER TABLE hitmetrix.events DROP PROJECTION {EVENTS_STEP_PROJECTION}")
        ch.query("ALTER TABLE hitmetrix.events RESET SETTING lightweight_mutation_projection_mode")
        ch.query("DELETE FROM hitmetrix.schema_migrations WHERE version >= 6")
        left = ch.query("SELECT count() FROM system.projection_parts WHERE active AND database = 'hitmetrix'"
                        f" AND name = '{EVENTS_STEP_PROJECTION}'", "CSV").bytes()
        assert left.strip() == b"0", "the directory is one of step 5"
    finally:
        ch.close()


def test_step_6_projects_the_events_stored_before_it_and_loses_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    gt.load(gt.generate(seed=5, visitors=60), tmp_path / "speed-spool", world.store, world.blobs)
    funnel_before = funnel(world.store, 1, RANGE, FUNNEL)
    before = counts(world.store)
    world.close()
    as_before_step_6(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 6]
        assert counts(store) == before, "no row lost, none counted twice"
        parts, projected = parts_with_projection(store)
        assert parts > 0 and projected == parts, "every existing part got the projection"
        assert funnel(store, 1, RANGE, FUNNEL) == funnel_before
        assert funnel_before["steps"][1]["sessions"] > 0
        # The loader's repair: a half-stored segment's events are deleted before it loads again.
        segment = store.query(SYSTEM_QUERY("SELECT segment_id, count() AS n FROM hitmetrix.events"
                                           " GROUP BY segment_id ORDER BY n DESC LIMIT 1"))[0]
        store.execute(DELETE_SEGMENT_EVENTS, {"id": int(segment["segment_id"])})
        assert counts(store)["events"] == before["events"] - int(segment["n"])
    finally:
        store.close()


def test_new_events_are_projected_as_they_are_stored(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        gt.load(gt.generate(seed=6, visitors=60), tmp_path / "speed-spool", world.store, world.blobs)
        parts, projected = parts_with_projection(world.store)  # type: ignore[arg-type]
        assert parts > 0 and projected == parts
    finally:
        world.close()
