"""Retention against ground truth: the generator's repeat visitors through the real spool and loader into chDB, and
every cohort cell compared with a grid computed here in plain Python from the generated sessions."""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.retention import (
    MAX_PAGE_SIZE,
    RetentionQuery,
    cohort_sessions,
    cohort_sessions_sql,
    parse_cell,
    retention,
    retention_sql,
)
from hitmetrix.store.tenancy import check_project_scope
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

D = dt.date
HOSTILE = [gt.ODD, "'", '"', "\\", "a\\", "\\N", "\\'", "{}", "{p1:String}", "a\x00b", "a\tb", "%", "_", "*\\*"]


@pytest.fixture(scope="module")
def traffic() -> gt.Traffic:
    return gt.generate()


@pytest.fixture(scope="module")
def world(traffic: gt.Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("retention")))
    gt.load(traffic, world.root / "groundtruth-spool", world.store, world.blobs)
    yield world
    world.close()


# --- the answer, in plain Python --------------------------------------------------------------------------


def _period(day: dt.date, period: str) -> dt.date:
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1) if period == "month" else day


def _offset(cohort: dt.date, later: dt.date, period: str) -> int:
    if period == "month":
        return (later.year - cohort.year) * 12 + later.month - cohort.month
    days = (later - cohort).days
    return days // 7 if period == "week" else days


def _whole(page: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in page.split("*")) + "$", re.DOTALL)


def _does(s: gt.TruthSession, page: str, event: str) -> bool:
    if page:
        wanted = _whole(page)
        return any(wanted.match(p) for p in s.paths)
    if event:
        return any(e.type == "custom" and e.name == event and e.props for e in s.events)
    return True


def truth(traffic: gt.Traffic, first: dt.date, last: dt.date, zone: str, period: str = "week", periods: int = 8,
          identity: str = "anonymous", start: tuple[str, str] = ("", ""), returned: tuple[str, str] = ("", ""),
          filters: dict[str, str] | None = None) -> dict[str, Any]:
    tz = zoneinfo.ZoneInfo(zone)
    low = dt.datetime(first.year, first.month, first.day, tzinfo=tz).timestamp() * 1000
    after = last + dt.timedelta(days=1)
    high = dt.datetime(after.year, after.month, after.day, tzinfo=tz).timestamp() * 1000
    by_visitor: dict[str, list[gt.TruthSession]] = defaultdict(list)
    for s in traffic.of_project(1):
        visitor = s.user_id if identity == "user" else s.anonymous_id
        if visitor and gt._matches(s, filters or {}):
            by_visitor[visitor].append(s)

    def period_of(s: gt.TruthSession) -> dt.date:
        return _period(dt.datetime.fromtimestamp(s.started_ms / 1000, dt.UTC).astimezone(tz).date(), period)

    grid: dict[dt.date, list[set[str]]] = defaultdict(lambda: [set() for _ in range(periods + 1)])
    for visitor, sessions in by_visitor.items():
        starts = [s for s in sessions if _does(s, *start)]
        if not starts:
            continue
        first_session = min(starts, key=lambda s: s.started_ms)
        if not low <= first_session.started_ms < high:
            continue
        cohort = period_of(first_session)
        grid[cohort][0].add(visitor)
        for s in sessions:
            k = _offset(cohort, period_of(s), period)
            if 1 <= k <= periods and _does(s, *returned):
                grid[cohort][k].add(visitor)
    cohorts, day = [], _period(first, period)
    while day <= _period(last, period):
        cells = grid.get(day) or [set() for _ in range(periods + 1)]
        size = len(cells[0])
        cohorts.append({"cohort": day.isoformat(), "visitors": size, "cells": [
            {"period": k, "visitors": len(c), "percent": round(100 * len(c) / size, 1) if size else 0.0}
            for k, c in enumerate(cells)]})
        if period == "month":
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        else:
            day += dt.timedelta(days=7 if period == "week" else 1)
    return {
        "range": {"from": first.isoformat(), "to": last.isoformat(), "time_zone": zone},
        "period": period, "periods": periods, "identity": identity,
        "start": {"page": start[0], "event": start[1]}, "return": {"page": returned[0], "event": returned[1]},
        "cohorts": cohorts,
    }


def grid(world: World, first: dt.date, last: dt.date, zone: str, period: str = "week", periods: int = 8,
         identity: str = "anonymous", start: tuple[str, str] = ("", ""), returned: tuple[str, str] = ("", ""),
         filters: dict[str, str] | None = None, project_id: int = 1) -> dict[str, Any]:
    params = {"from": first.isoformat(), "to": last.isoformat(), "period": period, "periods": str(periods),
              "identity": identity, "start_page": start[0], "start_event": start[1], "return_page": returned[0],
              "return_event": returned[1], **(filters or {})}
    return retention(world.store, project_id, RetentionQuery.from_query(params, last), zone)


def _returns(answer: dict[str, Any]) -> int:
    return sum(cell["visitors"] for c in answer["cohorts"] for cell in c["cells"][1:])


# --- the tests --------------------------------------------------------------------------------------------

CASES = [
    # weekly over the whole traffic; cohorts cross September → October → November
    (D(2026, 9, 7), D(2026, 10, 25), "UTC", "week", 8),
    (D(2026, 9, 7), D(2026, 10, 25), "Asia/Kolkata", "week", 6),
    (D(2026, 8, 20), D(2026, 11, 3), "America/New_York", "month", 3),  # months in a zone behind UTC, DST ends
    (D(2026, 9, 25), D(2026, 10, 8), "Pacific/Kiritimati", "day", 20),  # UTC+14: days start the day before
    (D(2026, 9, 28), D(2026, 10, 4), "UTC", "day", 1),
]


@pytest.mark.parametrize(("first", "last", "zone", "period", "periods"), CASES)
def test_every_cell_equals_the_python_answer(
    world: World, traffic: gt.Traffic, first: dt.date, last: dt.date, zone: str, period: str, periods: int
) -> None:
    got = grid(world, first, last, zone, period, periods)
    want = truth(traffic, first, last, zone, period, periods)
    assert got == want
    assert sum(c["visitors"] for c in want["cohorts"]) > 10 and _returns(want) > 0, "the case has returns"


def test_first_seen_means_ever_not_in_the_range(world: World, traffic: gt.Traffic) -> None:
    # Visitors first seen before 5 October are not in its cohorts, though they come back in it.
    got = grid(world, D(2026, 10, 5), D(2026, 10, 18), "UTC")
    assert got == truth(traffic, D(2026, 10, 5), D(2026, 10, 18), "UTC")
    in_range = {s.anonymous_id for s in traffic.of_project(1)
                if D(2026, 10, 5) <= dt.datetime.fromtimestamp(s.started_ms / 1000, dt.UTC).date() <= D(2026, 10, 18)}
    assert sum(c["visitors"] for c in got["cohorts"]) < len(in_range)


@pytest.mark.parametrize(
    ("start", "returned"),
    [
        (("", "signup"), ("", "purchase")),
        (("", "add_to_cart"), ("", "")),
        (("/pricing", ""), ("/blog/*", "")),
        (("/p/item-*", ""), ("", "add_to_cart")),
        (("", ""), ("/cart", "")),
    ],
)
def test_first_did_x_and_returned_did_y(
    world: World, traffic: gt.Traffic, start: tuple[str, str], returned: tuple[str, str]
) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    got = grid(world, first, last, "Europe/Berlin", start=start, returned=returned)
    want = truth(traffic, first, last, "Europe/Berlin", start=start, returned=returned)
    assert got == want and sum(c["visitors"] for c in want["cohorts"]) > 0


def test_identity_user_counts_identified_people(world: World, traffic: gt.Traffic) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    got = grid(world, first, last, "UTC", identity="user")
    want = truth(traffic, first, last, "UTC", identity="user")
    assert got == want and sum(c["visitors"] for c in want["cohorts"]) > 0
    anonymous = truth(traffic, first, last, "UTC")
    assert sum(c["visitors"] for c in want["cohorts"]) < sum(c["visitors"] for c in anonymous["cohorts"])


@pytest.mark.parametrize("filters", [{"device": "mobile"}, {"country": "DE"}, {"url": "/blog"},
                                     {"identified": "no"}, {"prop_key": "plan", "prop_value": "pro"}])
def test_filters_pick_the_sessions_the_overview_picks(
    world: World, traffic: gt.Traffic, filters: dict[str, str]
) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    got = grid(world, first, last, "UTC", filters=filters)
    assert got == truth(traffic, first, last, "UTC", filters=filters)
    assert 0 < sum(c["visitors"] for c in got["cohorts"]) < sum(
        c["visitors"] for c in truth(traffic, first, last, "UTC")["cohorts"])


def test_hostile_text_is_data_in_every_parameter(world: World, traffic: gt.Traffic) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    for text in HOSTILE:
        for start, returned in (((text, ""), ("", "")), (("", text), ("", "")), (("", ""), (text, "")),
                                (("", ""), ("", text))):
            got = grid(world, first, last, "UTC", start=start, returned=returned, filters={"browser": text})
            assert got == truth(traffic, first, last, "UTC", start=start, returned=returned,
                                filters={"browser": text}), text
    # The odd session's page and event, found as written (a backslash and braces are literal, not escapes).
    odd = grid(world, D(2026, 9, 21), D(2026, 9, 27), "UTC", start=("/it's/a\\b{x}", ""), returned=("", "odd"))
    assert odd["cohorts"][0]["visitors"] == 1
    assert grid(world, D(2026, 9, 21), D(2026, 9, 27), "UTC", start=("", "odd"))["cohorts"][0]["visitors"] == 1
    # LIKE's own wildcards are literal: % and _ match nothing here.
    assert grid(world, first, last, "UTC", start=("/%", ""))["cohorts"] == truth(
        traffic, first, last, "UTC", start=("/%", ""))["cohorts"]


def test_other_projects_are_not_counted(world: World, traffic: gt.Traffic) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    assert sum(c["visitors"] for c in grid(world, first, last, "UTC", project_id=3)["cohorts"]) == 0
    sql, _ = retention_sql(1, RetentionQuery(OverviewQuery(first, last)), "UTC")
    check_project_scope(sql)


def test_bad_parameters_are_named() -> None:
    today = D(2026, 10, 1)
    q = RetentionQuery.from_query({"period": "Month", "periods": "3", "identity": "user"}, today)
    assert (q.period, q.periods, q.identity) == ("month", 3, "user")
    for params, field in (
        ({"period": "year"}, "period"),
        ({"periods": "0"}, "periods"),
        ({"periods": "91"}, "periods"),
        ({"periods": "x"}, "periods"),
        ({"identity": "email"}, "identity"),
        ({"start_page": "/a", "start_event": "b"}, "start_event"),
        ({"return_page": "/a", "return_event": "b"}, "return_event"),
        ({"start_page": "x" * 501}, "start_page"),
        ({"from": "2024-01-01", "to": "2026-01-01", "period": "day"}, "from"),
        ({"to": "2199-12-01", "period": "month"}, "to"),
        ({"from": "soon"}, "from"),
        ({"device": "fridge"}, "device"),
    ):
        with pytest.raises(BadParameter) as caught:
            RetentionQuery.from_query(params, today)
        assert caught.value.parameter == field, params


def test_generated_sql_matches_snapshot() -> None:
    """Review changes to the retention SQL as diffs: UPDATE_SNAPSHOTS=1 rewrites the file."""
    params = {"from": "2026-09-01", "to": "2026-10-31", "period": "month", "periods": "3", "identity": "user",
              "start_page": "/blog/*", "return_event": "purchase", "country": "DE", "url": "/cart"}
    sql, bound = retention_sql(7, RetentionQuery.from_query(params, D(2026, 10, 31)), "Europe/Berlin")
    text = sql + "\n-- params: " + repr(sorted(bound.items())) + "\n"
    path = Path(__file__).parent / "snapshots" / "retention.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text)
    assert path.read_text() == text, "generated SQL changed: review and run UPDATE_SNAPSHOTS=1 (retention.sql)"
    check_project_scope(sql)


# --- the sessions behind a cell ---------------------------------------------------------------------------


def truth_sessions(traffic: gt.Traffic, first: dt.date, last: dt.date, zone: str, period: str, periods: int,
                   start: tuple[str, str] = ("", ""), returned: tuple[str, str] = ("", ""),
                   filters: dict[str, str] | None = None) -> dict[tuple[str, int], list[gt.TruthSession]]:
    """Per cell (cohort, offset): the sessions behind it, oldest first — the cohort's sessions that start a cohort
    in its own period (offset 0), or its returning sessions k periods later."""
    tz = zoneinfo.ZoneInfo(zone)
    low = dt.datetime(first.year, first.month, first.day, tzinfo=tz).timestamp() * 1000
    after = last + dt.timedelta(days=1)
    high = dt.datetime(after.year, after.month, after.day, tzinfo=tz).timestamp() * 1000
    by_visitor: dict[str, list[gt.TruthSession]] = defaultdict(list)
    for s in traffic.of_project(1):
        if s.anonymous_id and gt._matches(s, filters or {}):
            by_visitor[s.anonymous_id].append(s)

    def period_of(s: gt.TruthSession) -> dt.date:
        return _period(dt.datetime.fromtimestamp(s.started_ms / 1000, dt.UTC).astimezone(tz).date(), period)

    cells: dict[tuple[str, int], list[gt.TruthSession]] = defaultdict(list)
    for sessions in by_visitor.values():
        starts = [s for s in sessions if _does(s, *start)]
        if not starts or not low <= min(s.started_ms for s in starts) < high:
            continue
        cohort = period_of(min(starts, key=lambda s: s.started_ms))
        for s in sessions:
            k = _offset(cohort, period_of(s), period)
            if (k == 0 and _does(s, *start)) or (1 <= k <= periods and _does(s, *returned)):
                cells[(cohort.isoformat(), k)].append(s)
    return {cell: sorted(found, key=lambda s: (s.started_ms, s.session_id)) for cell, found in cells.items()}


def _query(first: dt.date, last: dt.date, period: str, periods: int, start: tuple[str, str] = ("", ""),
           returned: tuple[str, str] = ("", ""), filters: dict[str, str] | None = None) -> RetentionQuery:
    return RetentionQuery.from_query({"from": first.isoformat(), "to": last.isoformat(), "period": period,
                                      "periods": str(periods), "start_page": start[0], "start_event": start[1],
                                      "return_page": returned[0], "return_event": returned[1], **(filters or {})},
                                     last)


def _every_session(world: World, query: RetentionQuery, cohort: dt.date, offset: int, zone: str,
                   project_id: int = 1) -> dict[str, Any]:
    answer = cohort_sessions(world.store, project_id, query, cohort, offset, 1, MAX_PAGE_SIZE, zone)
    assert not answer["has_more"], "a page holds every session of these cells"
    return answer


SESSION_CASES = [
    (D(2026, 9, 7), D(2026, 10, 25), "UTC", "week", 8, ("", ""), ("", ""), None),
    (D(2026, 9, 25), D(2026, 10, 8), "Pacific/Kiritimati", "day", 20, ("", ""), ("", ""), None),
    (D(2026, 8, 20), D(2026, 11, 3), "America/New_York", "month", 3, ("/pricing", ""), ("/blog/*", ""), None),
    (D(2026, 9, 7), D(2026, 10, 25), "Europe/Berlin", "week", 6, ("", "signup"), ("", "purchase"),
     {"device": "desktop"}),
]


@pytest.mark.parametrize(("first", "last", "zone", "period", "periods", "start", "returned", "filters"), SESSION_CASES)
def test_every_cell_lists_the_sessions_behind_it(
    world: World, traffic: gt.Traffic, first: dt.date, last: dt.date, zone: str, period: str, periods: int,
    start: tuple[str, str], returned: tuple[str, str], filters: dict[str, str] | None,
) -> None:
    query = _query(first, last, period, periods, start, returned, filters)
    want = truth_sessions(traffic, first, last, zone, period, periods, start, returned, filters)
    grid_answer = retention(world.store, 1, query, zone)
    listed_cells = 0
    for cohort in grid_answer["cohorts"]:
        for cell in cohort["cells"]:
            key = (cohort["cohort"], cell["period"])
            got = _every_session(world, query, D.fromisoformat(key[0]), key[1], zone)
            expected = want.get(key, [])
            assert [s["session_id"] for s in got["sessions"]] == [s.session_id for s in expected], key
            assert got["total"] == len(expected)
            # The list is the cell: its visitors are the ones the grid counts.
            assert got["visitors"] == len({s["visitor"] for s in got["sessions"]}) == cell["visitors"], key
            listed_cells += bool(expected)
    assert listed_cells > periods // 2, "the case has cells with sessions"
    assert any(k > 0 for k, found in ((k, f) for (_, k), f in want.items()) if found), "and returns"


def test_a_replay_opens_at_the_returning_page(world: World, traffic: gt.Traffic) -> None:
    first, last, zone = D(2026, 9, 7), D(2026, 10, 25), "UTC"
    for returned in (("/blog/*", ""), ("", "add_to_cart")):
        query = _query(first, last, "week", 8, returned=returned)
        want = truth_sessions(traffic, first, last, zone, "week", 8, returned=returned)
        moved = 0
        for (cohort, offset), expected in want.items():
            if offset == 0:
                continue
            got = _every_session(world, query, D.fromisoformat(cohort), offset, zone)
            for s, truth_session in zip(got["sessions"], expected, strict=True):
                at_ms = min(e.ts for e in truth_session.events if (
                    e.type == "pageview" and _whole(returned[0]).match(gt._path(e.url)) is not None
                    if returned[0] else e.type == "custom" and e.name == returned[1]))
                at_s = max(0, (at_ms - 2_000 - truth_session.started_ms) // 1000)
                assert (s["replay_at_s"], s["replay_url"]) == (
                    at_s, f"/projects/1/sessions/{truth_session.session_id}?t={at_s}")
                moved += at_s > 0
        assert moved > 0, returned
    # The cohort's own sessions under "first seen" open at their start.
    own = _every_session(world, _query(first, last, "week", 8), D(2026, 9, 14), 0, zone)
    assert own["sessions"] and all(s["replay_url"].endswith("?t=0") for s in own["sessions"])


def test_sessions_are_paged(world: World) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    query = _query(first, last, "week", 8)
    everything = _every_session(world, query, D(2026, 9, 7), 0, "UTC")
    assert everything["total"] > 7
    paged: list[str] = []
    page = 1
    while True:
        got = cohort_sessions(world.store, 1, query, D(2026, 9, 7), 0, page, 3, "UTC")
        assert got["total"] == everything["total"] and got["visitors"] == everything["visitors"]
        paged += [s["session_id"] for s in got["sessions"]]
        if not got["has_more"]:
            break
        page += 1
    assert paged == [s["session_id"] for s in everything["sessions"]]
    past = cohort_sessions(world.store, 1, query, D(2026, 9, 7), 0, page + 5, 3, "UTC")
    assert past["sessions"] == [] and past["total"] == everything["total"] and not past["has_more"]
    assert (past["period"], everything["period"]) == ({"from": "2026-09-07", "to": "2026-09-13"},) * 2


def test_cell_sessions_of_other_projects_are_not_listed(world: World) -> None:
    first, last = D(2026, 9, 7), D(2026, 10, 25)
    query = _query(first, last, "week", 8)
    assert _every_session(world, query, D(2026, 9, 7), 0, "UTC")["total"] > 0
    assert _every_session(world, query, D(2026, 9, 7), 0, "UTC", project_id=3)["total"] == 0
    sql, _ = cohort_sessions_sql(1, query, D(2026, 9, 7), 2, 1, 50, "UTC")
    check_project_scope(sql)


def test_bad_cells_are_named() -> None:
    query = _query(D(2026, 9, 7), D(2026, 10, 25), "week", 8)
    assert parse_cell({"cohort_start": "2026-09-14", "offset": "8"}, query) == (D(2026, 9, 14), 8)
    for params, field in (
        ({"offset": "1"}, "cohort_start"),
        ({"cohort_start": "2026-09-15", "offset": "1"}, "cohort_start"),  # a Tuesday: no week starts there
        ({"cohort_start": "2026-08-31", "offset": "1"}, "cohort_start"),  # a week before the range's
        ({"cohort_start": "2026-10-26", "offset": "1"}, "cohort_start"),
        ({"cohort_start": "soon", "offset": "1"}, "cohort_start"),
        ({"cohort_start": "2026-09-14"}, "offset"),
        ({"cohort_start": "2026-09-14", "offset": "9"}, "offset"),
        ({"cohort_start": "2026-09-14", "offset": "-1"}, "offset"),
        ({"cohort_start": "2026-09-14", "offset": "x"}, "offset"),
    ):
        with pytest.raises(BadParameter) as caught:
            parse_cell(params, query)
        assert caught.value.parameter == field, params
