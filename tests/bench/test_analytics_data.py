"""The analytics benchmark's synthetic traffic has the shapes it promises, and its load-time aggregates are the
loader's: one sessions row per session, with the counts its events give."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import analytics_data
from hitmetrix.analytics import funnels
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.tenancy import SYSTEM_QUERY

START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
EVENTS = 60_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(Path(tmp_path_factory.mktemp("analytics-bench")) / "clickhouse")
    store.built = analytics_data.build(store, EVENTS, START, log=lambda line: None)  # type: ignore[attr-defined]
    yield store
    store.close()


def one(store: ChdbStore, sql: str) -> dict:
    return store.query(SYSTEM_QUERY(sql))[0]


def test_sizes_and_session_shapes(store: ChdbStore) -> None:
    built = store.built  # type: ignore[attr-defined]
    assert 0.9 * EVENTS < built["events"] < 1.1 * EVENTS
    shapes = one(store, """SELECT count() AS sessions, min(n) AS shortest, max(n) AS longest,
        countIf(pageviews = 1) / count() AS bounce_share
        FROM (SELECT session_id, count() AS n, countIf(type = 'pageview') AS pageviews
              FROM hitmetrix.events GROUP BY session_id)""")
    assert shapes["sessions"] == built["sessions"]
    assert shapes["shortest"] == 1 and shapes["longest"] == 50
    assert 0.17 < shapes["bounce_share"] < 0.23


def test_sessions_rows_are_the_loaders_aggregates(store: ChdbStore) -> None:
    per_session = one(store, """SELECT count() AS differing FROM (
        SELECT session_id, count() AS n, countIf(type = 'pageview') AS pv, min(ts) AS first
        FROM hitmetrix.events GROUP BY session_id) AS e
        INNER JOIN (SELECT session_id, events, pageviews, started_at, length(pageview_paths) AS paths
                    FROM hitmetrix.sessions FINAL WHERE is_deleted = 0) AS s USING session_id
        WHERE e.n != s.events OR e.pv != s.pageviews OR e.first != s.started_at OR e.pv != s.paths""")
    assert per_session["differing"] == 0
    rows = one(store, "SELECT count() AS n FROM hitmetrix.sessions FINAL WHERE is_deleted = 0")
    assert rows["n"] == store.built["sessions"]  # type: ignore[attr-defined]


def test_visitors_return_over_weeks_and_urls_have_a_long_tail(store: ChdbStore) -> None:
    visitors = one(store, """SELECT count() AS visitors, countIf(weeks > 1) AS returning FROM (
        SELECT anonymous_id, uniqExact(toMonday(started_at)) AS weeks FROM hitmetrix.sessions FINAL
        GROUP BY anonymous_id)""")
    assert visitors["returning"] > 0.2 * visitors["visitors"]
    pages = one(store, """SELECT uniqExact(path) AS paths, max(share) AS top_share FROM (
        SELECT path, count() / sum(count()) OVER () AS share FROM hitmetrix.events WHERE type = 'pageview'
        GROUP BY path)""")
    assert pages["paths"] > 500 and pages["top_share"] < 0.3
    kinds = {r["type"] for r in store.query(SYSTEM_QUERY("SELECT DISTINCT type FROM hitmetrix.events"))}
    assert kinds == {"pageview", "click", "submit", "custom", "error"}


def test_the_bench_funnel_finds_converting_sessions(store: ChdbStore) -> None:
    from bench.analytics import FUNNEL

    last = START.date() + dt.timedelta(days=analytics_data.SPAN_DAYS - 1)
    got = funnels.funnel(store, 1, OverviewQuery(START.date(), last), funnels.FunnelDefinition.from_json(
        json.dumps(FUNNEL)))
    reached = [step["sessions"] for step in got["steps"]]
    assert reached[0] > reached[1] > reached[2] > 0
