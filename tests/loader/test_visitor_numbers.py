"""Visitor numbers written by the loader (schema step 10): each project's visitors are numbered 1, 2, 3, … in the
order they first came, a returning visitor keeps its number, projects number their visitors apart, and loading
again (a retry, a restarted process) never gives a visitor a second number or a number twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from hitmetrix.analytics.overview import OverviewQuery, overview
from hitmetrix.loader import LoadError
from hitmetrix.loader.session_rows import SessionRows
from hitmetrix.model import StoredBatch
from hitmetrix.store.tenancy import SYSTEM_QUERY
from tests.loader.helpers import NOW_MS, World, make_batch
from tests.loader.test_session_rows import FailingRefresh

TODAY = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).date()
# Wide enough for every visit below (the earliest an hour and a half before now) in any time zone.
AROUND_NOW = OverviewQuery(TODAY - dt.timedelta(days=2), TODAY + dt.timedelta(days=1))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def visit(project_id: int, anonymous_id: str, session_id: str, minutes_ago: int) -> StoredBatch:
    """One batch of a session of this visitor: pageviews (the overview counts sessions with one), ``minutes_ago``
    before now."""
    batch = make_batch(n_events=2, session_id=session_id, project_id=project_id, anonymous_id=anonymous_id)
    shift_ms = minutes_ago * 60_000
    events = [
        msgspec.structs.replace(e, type="pageview", ts=e.ts - shift_ms, client_ts=e.client_ts - shift_ms)
        for e in batch.events
    ]
    return msgspec.structs.replace(batch, events=events)


def numbers(world: World, project_id: int) -> dict[str, int]:
    """Each live session's visitor number, by session id, as the store reads it."""
    rows = world.store.query(
        "SELECT session_id, visitor_num FROM hitmetrix.sessions FINAL"
        " WHERE project_id = {project:UInt32} AND is_deleted = 0",
        {"project": project_id},
    )
    return {row["session_id"]: int(row["visitor_num"]) for row in rows}


def given(world: World, project_id: int) -> list[int]:
    """Every number the project's visitors hold, as stored (not deduplicated: a number given twice shows)."""
    rows = world.store.query(
        "SELECT num FROM hitmetrix.visitors FINAL WHERE project_id = {project:UInt32} ORDER BY num",
        {"project": project_id},
    )
    return [int(row["num"]) for row in rows]


def unnumbered(world: World) -> int:
    return int(world.one("SELECT count() FROM hitmetrix.sessions FINAL WHERE is_deleted = 0 AND visitor_num = 0"))


def test_visitors_are_numbered_in_the_order_they_came_and_keep_their_number(world: World) -> None:
    loader = world.loader()
    # Written to the spool in another order than they came: the numbers follow the time of their first event.
    world.segment(
        visit(5, "anon-ann", "sess-ann-01", minutes_ago=50),
        visit(5, "anon-bob", "sess-bob-01", minutes_ago=40),
        visit(5, "anon-cat", "sess-cat-01", minutes_ago=90),
        visit(5, "anon-ann", "sess-ann-02", minutes_ago=30),
    )
    assert loader.load_once() == 1
    assert numbers(world, 5) == {"sess-cat-01": 1, "sess-ann-01": 2, "sess-ann-02": 2, "sess-bob-01": 3}

    # Later: Bob comes back, Dan is new, and a batch of Cat's first session comes late.
    world.segment(
        visit(5, "anon-dan", "sess-dan-01", minutes_ago=10),
        visit(5, "anon-bob", "sess-bob-02", minutes_ago=5),
        visit(5, "anon-cat", "sess-cat-01", minutes_ago=80),
    )
    assert loader.load_once() == 1
    assert numbers(world, 5) == {
        "sess-cat-01": 1, "sess-ann-01": 2, "sess-ann-02": 2, "sess-bob-01": 3, "sess-bob-02": 3, "sess-dan-01": 4,
    }
    assert given(world, 5) == [1, 2, 3, 4]
    assert unnumbered(world) == 0
    assert overview(world.store, 5, AROUND_NOW)["totals"]["visitors"] == 4


def test_projects_number_their_visitors_apart_even_with_the_same_anonymous_ids(world: World) -> None:
    loader = world.loader()
    world.segment(
        visit(3, "anon-shared-1", "sess-p3-a", minutes_ago=30),
        visit(3, "anon-shared-2", "sess-p3-b", minutes_ago=20),
        visit(4, "anon-shared-2", "sess-p4-a", minutes_ago=60),
        visit(4, "anon-only-4", "sess-p4-b", minutes_ago=50),
        visit(4, "anon-shared-1", "sess-p4-c", minutes_ago=40),
    )
    assert loader.load_once() == 1
    world.segment(
        visit(4, "anon-shared-1", "sess-p4-d", minutes_ago=5),
        visit(3, "anon-new-3", "sess-p3-c", minutes_ago=5),
    )
    assert loader.load_once() == 1
    assert numbers(world, 3) == {"sess-p3-a": 1, "sess-p3-b": 2, "sess-p3-c": 3}
    assert numbers(world, 4) == {"sess-p4-a": 1, "sess-p4-b": 2, "sess-p4-c": 3, "sess-p4-d": 3}
    assert given(world, 3) == [1, 2, 3] and given(world, 4) == [1, 2, 3]
    assert unnumbered(world) == 0
    totals = {project: overview(world.store, project, AROUND_NOW)["totals"] for project in (3, 4)}
    assert {p: (t["visitors"], t["sessions"]) for p, t in totals.items()} == {3: (3, 3), 4: (3, 4)}


def test_writing_the_same_sessions_again_gives_no_new_numbers(world: World) -> None:
    world.segment(
        visit(6, "anon-eve", "sess-eve-01", minutes_ago=20),
        visit(6, "anon-fay", "sess-fay-01", minutes_ago=10),
    )
    assert world.loader().load_once() == 1
    first = numbers(world, 6)
    assert first == {"sess-eve-01": 1, "sess-fay-01": 2}

    keys = [(6, "sess-eve-01"), (6, "sess-fay-01")]
    SessionRows(world.store).refresh(keys)  # as a restarted process would
    SessionRows(world.store).refresh(keys)
    assert numbers(world, 6) == first
    assert given(world, 6) == [1, 2]

    # A restarted loader goes on after the highest number given: a new visitor gets the next one.
    world.segment(visit(6, "anon-gus", "sess-gus-01", minutes_ago=5), visit(6, "anon-eve", "sess-eve-02", 1))
    assert world.loader().load_once() == 1
    assert numbers(world, 6) == {**first, "sess-gus-01": 3, "sess-eve-02": 1}
    assert given(world, 6) == [1, 2, 3]


def test_a_crash_while_writing_the_rows_keeps_the_numbers_the_retry_finds(world: World) -> None:
    sid = world.segment(
        visit(8, "anon-hal", "sess-hal-01", minutes_ago=20),
        visit(8, "anon-ivy", "sess-ivy-01", minutes_ago=10),
    )
    loader = world.loader()
    failing = FailingRefresh(world, failures=1)
    loader.store = loader.session_rows.store = failing  # type: ignore[assignment]
    with pytest.raises(LoadError):
        loader.load_once()
    assert failing.failures == 0, "the crash came while writing the rows"
    assert world.spool.sealed_segments() == [sid] and numbers(world, 8) == {}

    assert world.loader().load_once() == 1  # loaded again, as by a restarted process
    assert numbers(world, 8) == {"sess-hal-01": 1, "sess-ivy-01": 2}
    assert given(world, 8) == [1, 2]
    assert unnumbered(world) == 0


def test_a_session_whose_earliest_batch_came_late_carries_the_number_of_the_visitor_it_shows(world: World) -> None:
    loader = world.loader()
    world.segment(visit(9, "anon-new-id", "sess-jo-01", minutes_ago=10))
    assert loader.load_once() == 1
    # The session's first batch, sent before the tracker changed its id, arrives late: the row now shows that id.
    world.segment(visit(9, "anon-old-id", "sess-jo-01", minutes_ago=30), visit(9, "anon-old-id", "sess-jo-02", 5))
    assert loader.load_once() == 1
    shown = world.store.query(
        "SELECT session_id, anonymous_id FROM hitmetrix.sessions FINAL"
        " WHERE project_id = {project:UInt32} AND is_deleted = 0",
        {"project": 9},
    )
    assert {row["session_id"]: row["anonymous_id"] for row in shown} == {
        "sess-jo-01": "anon-old-id", "sess-jo-02": "anon-old-id",
    }
    jo = numbers(world, 9)
    assert jo["sess-jo-01"] == jo["sess-jo-02"] != 0
    assert overview(world.store, 9, AROUND_NOW)["totals"]["visitors"] == 1


def test_a_project_that_used_every_number_leaves_new_visitors_unnumbered_and_never_reuses_one(world: World) -> None:
    # A project whose ids (hostile or not) have taken every number up to 2^32 - 1 (the highest faked here): its
    # new visitors stay unnumbered (0) rather than wrapping round to numbers real visitors hold, and loading goes on
    # for it and for another project in the same segment.
    loader = world.loader()
    world.segment(visit(5, "anon-first", "sess-first-01", minutes_ago=60))
    assert loader.load_once() == 1
    assert numbers(world, 5) == {"sess-first-01": 1}
    world.store.execute(SYSTEM_QUERY("INSERT INTO hitmetrix.visitors VALUES (5, 1, 4294967295)"))
    world.segment(
        visit(5, "anon-late-1", "sess-late-01", minutes_ago=20),
        visit(5, "anon-late-2", "sess-late-02", minutes_ago=15),
        visit(6, "anon-ok", "sess-ok-01", 10),
    )
    assert loader.load_once() == 1
    assert numbers(world, 5) == {"sess-first-01": 1, "sess-late-01": 0, "sess-late-02": 0}
    assert given(world, 5) == [1, 4294967295], "no number stored twice or past the last"
    assert numbers(world, 6) == {"sess-ok-01": 1}
    assert overview(world.store, 6, AROUND_NOW)["totals"]["sessions"] == 1  # type: ignore[arg-type]
