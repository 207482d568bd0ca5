"""Frustration signals through the real loader into chDB, against the generator's own answer: every session's marks
and counts, the session list's signal filters, and the pages with most (tests/analytics/groundtruth_frustration.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics.frustration import SIGNALS, session_frustration
from hitmetrix.analytics.frustration_query import pages_query, pages_with_most_frustration, session_marks
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.sessions import SessionFilters, list_sessions
from hitmetrix.model import StoredEvent
from hitmetrix.store.tenancy import SYSTEM_QUERY, check_project_scope
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_frustration as gf
from tests.loader.helpers import World

FIRST, LAST = dt.date(2026, 10, 5), dt.date(2026, 10, 18)


@pytest.fixture(scope="module")
def generated() -> tuple[list[gf.Session], gt.Traffic]:
    return gf.generate()


@pytest.fixture(scope="module")
def sessions(generated: tuple[list[gf.Session], gt.Traffic]) -> list[gf.Session]:
    return generated[0]


@pytest.fixture(scope="module")
def world(generated: tuple[list[gf.Session], gt.Traffic], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made, traffic = generated
    world = World(Path(tmp_path_factory.mktemp("frustration")))
    loader = gt.load(traffic, world.root / "frustration-spool", world.store, world.blobs)
    assert loader.counters.snapshot()["batches_duplicate"] == len(traffic.segments[2]) > 0, "the retry was dropped"
    yield world
    world.close()


def test_the_generator_writes_every_signal_and_its_edges(sessions: list[gf.Session]) -> None:
    totals = Counter(kind for s in sessions for _, kind, _ in s.marks())
    assert all(totals[kind] >= 5 for kind in gf.KINDS), totals
    assert any(s.lost for s in sessions), "a reference to a click that never arrived"
    assert not any(sessions[-1].counts().values()), "the calm session"


def test_every_sessions_marks_equal_the_generators(world: World, sessions: list[gf.Session]) -> None:
    for s in sessions:
        got = session_marks(world.store, s.project_id, s.session_id)
        assert got is not None, s.session_id
        assert [(m["ts"], m["kind"], m["path"]) for m in got["marks"]] == s.marks(), s.session_id
        assert got["counts"] == s.counts(), s.session_id
        # The pure reading of the same events (what the tracker tests use) agrees.
        stored = [StoredEvent(event_id=e.event_id, type=e.type, ts=e.ts, client_ts=e.ts, url=e.url, name=e.name,
                              props=json.dumps(e.props) if e.props else "") for e in s.stored]
        assert dict(session_frustration(stored).counts) == {k: v for k, v in zip(SIGNALS, s.counts().values(),
                                                                                    strict=True)}
    assert session_marks(world.store, 2, sessions[0].session_id) is None, "another project's session"


def test_the_sessions_rows_hold_the_counts_once_though_a_segment_came_twice(
    world: World, sessions: list[gf.Session]
) -> None:
    rows = world.store.query(SYSTEM_QUERY(
        "SELECT session_id, rage_clicks, dead_clicks, error_clicks, quick_backs, excessive_scrolls, thrashed_cursors,"
        " frustration_pages FROM hitmetrix.sessions FINAL WHERE is_deleted = 0"
    ))
    by_id = {row["session_id"]: row for row in rows}
    assert len(by_id) == len(rows) == len(sessions)
    for s in sessions:
        row = by_id[s.session_id]
        want = s.counts()
        assert [row[c] for c in ("rage_clicks", "dead_clicks", "error_clicks", "quick_backs", "excessive_scrolls",
                                 "thrashed_cursors")] == [want[k] for k in gf.KINDS], s.session_id
        per_page = Counter((path, kind) for _, kind, path in s.marks())
        assert sorted(map(tuple, row["frustration_pages"])) == sorted((p, k, n) for (p, k), n in per_page.items())


def _listed(world: World, project_id: int, **params: str) -> set[str]:
    rows, cursor = list_sessions(world.store, project_id, SessionFilters.from_query(params), limit=1000)
    assert cursor is None
    return {row["session_id"] for row in rows}


@pytest.mark.parametrize("wanted", [("rage",), ("dead",), ("error",), ("quick_back",), ("excessive_scroll",),
                                    ("thrashed_cursor",), ("dead", "error"), tuple(gf.KINDS)])
def test_the_list_finds_the_sessions_with_any_of_the_signals(
    world: World, sessions: list[gf.Session], wanted: tuple[str, ...]
) -> None:
    for project_id in (1, 2):
        want = {s.session_id for s in sessions if s.project_id == project_id and any(s.counts()[k] for k in wanted)}
        assert want or project_id == 2
        assert _listed(world, project_id, frustration=",".join(wanted)) == want
    assert _listed(world, 1, frustration="any") == {s.session_id for s in sessions
                                                    if s.project_id == 1 and any(s.counts().values())}


def test_the_list_finds_the_sessions_frustrated_on_a_page(world: World, sessions: list[gf.Session]) -> None:
    for page in ("/", "/app", "/cart", "/nowhere"):
        want = {s.session_id for s in sessions if s.project_id == 1 and any(p == page for _, _, p in s.marks())}
        assert _listed(world, 1, frustration_page=page) == want
        rage = {s.session_id for s in sessions if s.project_id == 1 and (0, "rage", page) in
                {(0, k, p) for _, k, p in s.marks()}}
        assert _listed(world, 1, frustration_page=page, frustration="rage") == rage


def test_the_list_takes_the_overviews_filters_with_the_signals(world: World, sessions: list[gf.Session]) -> None:
    want = {s.session_id for s in sessions if s.project_id == 1 and s.utm_source() == "news" and s.counts()["rage"]}
    assert want
    assert _listed(world, 1, utm_source="news", frustration="rage") == want
    signed = {s.session_id for s in sessions if s.project_id == 1
              and any(e.name == "signup" and e.props.get("plan") == "pro" for e in s.stored)}
    assert signed and _listed(world, 1, prop_key="plan", prop_value="pro") == signed
    assert _listed(world, 1, identified="yes") == set(), "nobody identified"
    assert _listed(world, 1, referrer="nowhere.example") == set()


@pytest.mark.parametrize("country", ["", "DE"])
def test_the_pages_with_most_equal_the_generators(world: World, sessions: list[gf.Session], country: str) -> None:
    query = OverviewQuery(FIRST, LAST, (("country", country),) if country else (), limit=5)
    got = pages_with_most_frustration(world.store, 1, query, "UTC")
    picked = [s for s in sessions if s.project_id == 1 and (not country or s.country == country)]
    first_ms = int(dt.datetime.combine(FIRST, dt.time(), dt.UTC).timestamp() * 1000)
    picked = [s for s in picked if first_ms <= s.started_ms < first_ms + 14 * gf.DAY_MS]
    assert got["totals"]["sessions"] == len(picked) > 0
    assert got["totals"]["frustrated_sessions"] == sum(1 for s in picked if any(s.counts().values()))
    assert got["totals"]["signals"] == {k: sum(s.counts()[k] for s in picked) for k in gf.KINDS}
    assert got["previous"]["totals"]["sessions"] == 0
    pages: dict[str, dict[str, Any]] = {}
    for s in picked:
        for _, kind, path in s.marks():
            page = pages.setdefault(path, {"path": path, "total": 0, "sessions": set(),
                                           "signals": dict.fromkeys(gf.KINDS, 0)})
            page["total"] += 1
            page["signals"][kind] += 1
            page["sessions"].add(s.session_id)
    want = sorted(({**p, "sessions": len(p["sessions"])} for p in pages.values()),
                  key=lambda p: (-p["total"], -p["sessions"], p["path"]))[:5]
    assert got["pages"] == want


def test_the_pages_query_reads_sessions_rows_of_one_project_only() -> None:
    q = pages_query(7, OverviewQuery(FIRST, LAST, (("utm_source", "o'brien{p1:String}\\"),)), "UTC")
    check_project_scope(q.sql())
    assert "FROM hitmetrix.sessions FINAL" in q.sql() and "events" not in q.sql()
    assert "o'brien" not in q.sql()
