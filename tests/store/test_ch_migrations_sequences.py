"""ClickHouse steps 7 and 8 (funnel step sequences, and their keys): the loader writes each session's pageviews and
custom events in time order, whatever segments they came in; a data directory from before either step upgrades
without losing a row, its sessions get the same sequences from their events (and their keys from those), and
funnels answer as before."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hitmetrix.analytics.funnels import FunnelDefinition, funnel, funnel_sessions, reads_sessions_only
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.store.ch_migrations import STEPS
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import SEGMENT_STEP_COLUMNS, SESSION_STEP_COLUMNS, SESSION_STEP_KEY_MATERIALIZED
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World
from tests.store.schema_steps import undo_step

TABLES = ("events", "recordings", "session_segments", "sessions", "loaded_segments", "session_starts")
ANY_PAGE = {"kind": "pageview", "match": "prefix", "path": "/"}
FUNNEL = FunnelDefinition.from_json(json.dumps({
    "steps": [ANY_PAGE, ANY_PAGE, {"kind": "custom", "name": "signup"}],
    "window_s": 7200,
    "exclusions": [{"kind": "custom", "name": "purchase", "from_step": 1, "to_step": 2}],
}))
# The same funnel by exact pages and names (read by their keys, step 8) and by anchored patterns (by their text).
EXACT = {"steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview", "path": "/pricing"},
                   {"kind": "custom", "name": "signup"}], "window_s": 7200,
         "exclusions": [{"kind": "custom", "name": "purchase", "from_step": 2, "to_step": 3}]}
PATTERNS = {**EXACT, "steps": [{"kind": "pageview", "match": "regex", "path": "^/$"},
                               {"kind": "pageview", "match": "regex", "path": "^/pricing$"},
                               {"kind": "custom", "name": "signup"}]}
RANGE = OverviewQuery(dt.date(2026, 9, 7), dt.date(2026, 11, 8))


def counts(store: ChdbStore) -> dict[str, int]:
    """Rows per table; sessions and their starts as read (FINAL): the step writes every session's row again."""
    final = ("sessions", "session_starts")
    return {
        t: int(store.query(SYSTEM_QUERY(
            f"SELECT count() AS n FROM hitmetrix.{t}{' FINAL' if t in final else ''}"))[0]["n"])
        for t in TABLES
    }


def sequences(store: ChdbStore) -> dict[tuple[int, str], list[tuple[int, str, str]]]:
    rows = store.query(SYSTEM_QUERY(
        "SELECT project_id, session_id, arrayMap(x -> (toUnixTimestamp64Milli(x.1), toString(x.2), x.3), step_seq)"
        " AS seq FROM hitmetrix.sessions FINAL WHERE is_deleted = 0"))
    return {(int(r["project_id"]), r["session_id"]): [(int(t), k, n) for t, k, n in r["seq"]] for r in rows}


def expected(traffic: gt.Traffic) -> dict[tuple[int, str], list[tuple[int, str, str]]]:
    """Each session's pageviews (path) and custom events (name), in time order, read off the generator."""
    out = {}
    for s in traffic.sessions:
        items = [(e.ts, e.type, (urlsplit(e.url).path or "/") if e.type == "pageview" else e.name)
                 for e in s.events if e.type in ("pageview", "custom")]
        out[(s.project_id, s.session_id)] = sorted(items)
    return out


def answers(store: ChdbStore) -> list[Any]:
    return [funnel(store, 1, RANGE, FUNNEL), funnel_sessions(store, 1, RANGE, FUNNEL, 2, "dropped", 0, 500)]


def as_before_step_8(clickhouse_dir: Path) -> None:
    """Take away what step 8 added, and its ledger row (and those of any later step): a data directory of step 7."""
    undo_step(clickhouse_dir, 8, SESSION_STEP_KEY_MATERIALIZED)


def as_before_step_7(clickhouse_dir: Path) -> None:
    """Take away what steps 7 and 8 added, and their ledger rows: a data directory of step 6."""
    as_before_step_8(clickhouse_dir)
    undo_step(clickhouse_dir, 7, SESSION_STEP_COLUMNS, SEGMENT_STEP_COLUMNS)


def test_the_loader_writes_each_sessions_pageviews_and_custom_events_in_order(tmp_path: Path) -> None:
    traffic = gt.generate(seed=7, visitors=60)
    world = World(tmp_path)
    try:
        gt.load(traffic, tmp_path / "sequences-spool", world.store, world.blobs)
        got = sequences(world.store)  # type: ignore[arg-type]
        want = {key: seq for key, seq in expected(traffic).items() if key in got}
        assert got == want
        assert any(kind == "custom" for seq in got.values() for _, kind, _ in seq)
        assert len(got) == len({(s.project_id, s.session_id) for s in traffic.sessions if s.pageviews})
    finally:
        world.close()


def test_step_7_gives_the_sessions_stored_before_it_their_sequences_and_loses_nothing(tmp_path: Path) -> None:
    assert reads_sessions_only(FUNNEL)
    world = World(tmp_path)
    gt.load(gt.generate(seed=8, visitors=60), tmp_path / "sequences-spool", world.store, world.blobs)
    before, sequences_before = counts(world.store), sequences(world.store)  # type: ignore[arg-type]
    answers_before = answers(world.store)  # type: ignore[arg-type]
    world.close()
    as_before_step_7(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 7]
        assert counts(store) == before, "no row lost, none counted twice"
        assert sequences(store) == sequences_before
        assert answers(store) == answers_before
        assert answers_before[0]["steps"][2]["sessions"] > 0 and answers_before[1]["total"] > 0
    finally:
        store.close()
    again = ChdbStore(tmp_path / "store")
    try:
        assert again.migrated == []
    finally:
        again.close()


def stored_bytes(store: ChdbStore, columns: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """Bytes the sessions table's parts hold of each MATERIALIZED column: 0 while it is only computed when read."""
    rows = store.query(SYSTEM_QUERY(
        "SELECT column, sum(data_compressed_bytes) AS n FROM system.parts_columns WHERE database = 'hitmetrix'"
        " AND table = 'sessions' AND active GROUP BY column"))
    stored = {r["column"]: int(r["n"]) for r in rows}
    return {name: stored.get(name, 0) for name, _ in columns}


def test_step_8_keys_the_sessions_stored_before_it_and_funnels_by_key_equal_funnels_by_text(tmp_path: Path) -> None:
    exact, patterns = FunnelDefinition.from_json(json.dumps(EXACT)), FunnelDefinition.from_json(json.dumps(PATTERNS))
    world = World(tmp_path)
    gt.load(gt.generate(seed=9, visitors=80), tmp_path / "keys-spool", world.store, world.blobs)
    before = counts(world.store)  # type: ignore[arg-type]
    by_key = funnel(world.store, 1, RANGE, exact)  # type: ignore[arg-type]
    by_text = funnel(world.store, 1, RANGE, patterns)  # type: ignore[arg-type]
    assert by_key["steps"][1]["sessions"] > 0
    assert by_key == by_text
    world.close()
    as_before_step_8(tmp_path / "store")

    store = ChdbStore(tmp_path / "store")
    try:
        assert store.migrated == [step.version for step in STEPS if step.version >= 8]
        assert counts(store) == before, "no row lost, none counted twice"
        assert all(stored_bytes(store, SESSION_STEP_KEY_MATERIALIZED).values()), "stored, not computed when read"
        assert funnel(store, 1, RANGE, exact) == by_key
        assert funnel_sessions(store, 1, RANGE, exact, 2, "dropped", 0, 500) == funnel_sessions(
            store, 1, RANGE, patterns, 2, "dropped", 0, 500)
    finally:
        store.close()
