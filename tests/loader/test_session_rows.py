"""One row per session, kept by the loader: every load rewrites the rows of the sessions it touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hitmetrix.analytics.sessions import SessionFilters, list_sessions
from hitmetrix.loader import LoadError
from hitmetrix.loader.session_rows import SessionRows
from hitmetrix.store.schema import MAX_SESSION_FRUSTRATION_ITEMS
from hitmetrix.store.system_queries import WRITE_SESSIONS
from hitmetrix.store.tenancy import SYSTEM_QUERY, SystemQuery
from tests.loader.helpers import NOW_MS, World, make_batch


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def listed(world: World, project_id: int) -> list[tuple[str, int]]:
    rows, _ = list_sessions(world.store, project_id, SessionFilters(), limit=100)
    return [(row["session_id"], row["events"]) for row in rows]


def test_a_session_loaded_over_several_loads_is_one_row_with_all_its_events(world: World) -> None:
    loader = world.loader()
    world.segment(make_batch(n_events=2, session_id="sess-span-001", project_id=4))
    assert loader.load_once() == 1
    assert listed(world, 4) == [("sess-span-001", 2)]
    world.segment(
        make_batch(n_events=3, session_id="sess-span-001", project_id=4),
        make_batch(n_events=3, session_id="sess-other-02", project_id=4),
    )
    assert loader.load_once() == 1
    assert sorted(listed(world, 4)) == [("sess-other-02", 3), ("sess-span-001", 5)]


class FailingRefresh:
    """The real store, except that writing session rows fails ``failures`` times (a crash in that step)."""

    def __init__(self, world: World, failures: int) -> None:
        self.world, self.failures = world, failures

    def query(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.world.store.query(sql, params)

    def execute(self, sql: str | SystemQuery, params: dict[str, Any] | None = None) -> None:
        if sql == WRITE_SESSIONS and self.failures:
            self.failures -= 1
            raise RuntimeError("store went away while writing session rows")
        self.world.store.execute(sql, params)

    def insert_arrow(self, table: str, rows: Any, dedup_token: str | None = None) -> None:
        self.world.store.insert_arrow(table, rows, dedup_token)

    def close(self) -> None:
        pass


def test_a_failed_refresh_keeps_the_segment_and_the_retry_writes_the_rows(world: World) -> None:
    sid = world.segment(make_batch(n_events=4, session_id="sess-retry-01", project_id=5))
    loader = world.loader()
    loader.store = loader.session_rows.store = FailingRefresh(world, failures=1)  # type: ignore[assignment]
    with pytest.raises(LoadError):
        loader.load_once()
    assert world.spool.sealed_segments() == [sid]  # not in the ledger: it is loaded again
    assert listed(world, 5) == []
    assert world.loader().load_once() == 1
    assert listed(world, 5) == [("sess-retry-01", 4)]
    assert world.events(sid) == 4  # the events were not stored twice


def test_row_versions_rise_even_when_the_clock_goes_back(world: World) -> None:
    clock = iter([NOW_MS * 1_000_000, NOW_MS * 1_000_000 - 10**12])
    first = SessionRows(world.store, clock_ns=lambda: next(clock))
    world.segment(make_batch(n_events=1, session_id="sess-clock-01", project_id=6))
    world.loader().load_once()  # a version from the real clock
    first.refresh([(6, "sess-clock-01")])
    first.refresh([(6, "sess-clock-01")])
    rows = world.store.query(
        SYSTEM_QUERY("SELECT version FROM hitmetrix.sessions WHERE session_id = 'sess-clock-01' ORDER BY version")
    )
    versions = [int(row["version"]) for row in rows]
    assert len(versions) == 3 and versions == sorted(set(versions))


def test_a_session_kept_alive_past_the_item_bound_reads_its_signals_from_its_first_items(world: World) -> None:
    # A bot's session loaded over three segments with ~6,000 clicks: its signals come from its first
    # MAX_SESSION_FRUSTRATION_ITEMS items, so a refresh of its row costs the same however long it lives.
    per_segment = 1990
    assert 2 * per_segment < MAX_SESSION_FRUSTRATION_ITEMS < 3 * per_segment

    def clicks(first: int, rage_at: int | None) -> Any:
        batch = make_batch(n_events=per_segment, session_id="sess-bot-0001", project_id=4)
        events = [
            msgspec.structs.replace(e, ts=NOW_MS - 600_000 + (first + i) * 50, x=(first + i) % 1000,
                                    props='{"rage":1}' if i == rage_at else "")
            for i, e in enumerate(batch.events)
        ]
        return msgspec.structs.replace(batch, events=events)

    loader = world.loader()
    for part, rage_at in ((0, 5), (1, None), (2, per_segment - 1)):  # a rage click early, and one at the very end
        world.segment(clicks(part * per_segment, rage_at))
        assert loader.load_once() == 1
    row = world.one("SELECT (clicks, rage_clicks) FROM hitmetrix.sessions FINAL WHERE session_id = 'sess-bot-0001'")
    assert tuple(row) == (3 * per_segment, 1), "every click counted; only the rage click among the first items"
