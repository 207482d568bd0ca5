"""The session list, filters, keyset pagination and tenancy, on real chDB fed by the real loader."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hitmetrix.analytics.sessions import (
    SessionFilters,
    filter_options,
    list_sessions,
    session_events,
    session_rows_query,
    session_summary,
    sessions_query,
)
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.system_queries import SUMMARISE_SEGMENT
from hitmetrix.store.tenancy import SYSTEM_QUERY, check_project_scope

SNAPSHOTS = Path(__file__).parent / "snapshots"
ALL_FILTERS = {
    "from": "2026-11-01",
    "to": "2026-11-27",
    "url": "/cart",
    "country": "DE",
    "device": "mobile",
    "browser": "Chrome",
    "os": "Linux",
    "min_duration": "2.5",
    "max_duration": "60",
    "has_errors": "1",
    "user": "u1",
    "frustration": "rage,dead",
    "frustration_page": "/cart",
    "referrer": "google.com",
    "utm_campaign": "o'brien{p1:String}",
    "identified": "yes",
    "prop_key": "plan",
    "prop_value": "pro",
}
DAY_MS = 86_400_000
T0 = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS  # midnight UTC three days ago


def batch(
    project: int,
    sid: str,
    start_ms: int,
    *,
    pages: list[str],
    country: str = "DE",
    device: str = "desktop",
    browser: str = "Chrome",
    errors: int = 0,
    user: str = "",
    clicks: int = 1,
) -> StoredBatch:
    events = [
        StoredEvent(
            event_id=f"00000000-0000-7000-8000-{i:012d}",
            type="pageview",
            ts=start_ms + i * 1000,
            client_ts=start_ms + i * 1000,
            url=url,
        )
        for i, url in enumerate(pages)
    ]
    end = start_ms + len(pages) * 1000
    events += [
        StoredEvent(
            event_id=f"00000000-0000-7000-9000-{i:012d}", type="click", ts=end + i, client_ts=end + i, url=pages[-1]
        )
        for i in range(clicks)
    ]
    events += [
        StoredEvent(
            event_id=f"00000000-0000-7000-a000-{i:012d}",
            type="error",
            ts=end + 50 + i,
            client_ts=end + 50 + i,
            url=pages[-1],
        )
        for i in range(errors)
    ]
    return StoredBatch(
        batch_id=f"b-{sid}-{start_ms}",  # one id per batch: the loader stores a batch id once
        project_id=project,
        received_at=end,
        session_id=sid,
        anonymous_id="anon" + sid,
        user_id=user,
        country=country,
        device_type=device,
        browser=browser,
        os="Linux",
        events=events,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's data: one store (chDB opens one data directory per process) and one spool."""
    return tmp_path_factory.mktemp("analytics")


@pytest.fixture(scope="module")
def store(root: Path) -> Iterator[ChdbStore]:
    store = ChdbStore(root / "store")
    spool = Spool(root / "spool", fsync="never")
    spool.start()
    batches = [
        batch(1, "sess-alpha-01", T0 + 1000, pages=["https://shop.example/", "https://shop.example/cart"]),
        batch(
            1,
            "sess-bravo-02",
            T0 + DAY_MS,
            pages=["https://shop.example/about"],
            country="FR",
            device="mobile",
            browser="Safari",
            errors=2,
        ),
        batch(1, "sess-charl-03", T0 + 2 * DAY_MS, pages=["https://shop.example/"] * 5, user="alice@example.com"),
        batch(2, "sess-other-04", T0 + 2 * DAY_MS, pages=["https://secret.example/admin"], country="DE"),
    ]
    batches += [
        batch(1, f"sess-bulk-{i:04d}", T0 + 3 * DAY_MS + i * 60_000, pages=["https://shop.example/p"])
        for i in range(23)
    ]
    # The same session continued in a later batch: summaries must combine, not duplicate.
    batches.append(batch(1, "sess-alpha-01", T0 + 5000, pages=["https://shop.example/checkout"], clicks=0))
    for b in batches:
        spool.append_blocking(encode_batch(b), 10.0)
    spool.close()
    Loader(spool, store, BlobStore(root / "recordings")).load_once()
    yield store
    store.close()


def ids(rows: list[dict]) -> list[str]:
    return [r["session_id"] for r in rows]


def test_newest_first_with_summaries(store: ChdbStore) -> None:
    rows, cursor = list_sessions(store, 1, SessionFilters(), limit=100)
    assert cursor is None
    assert ids(rows)[:3] == ["sess-bulk-0022", "sess-bulk-0021", "sess-bulk-0020"]
    assert ids(rows)[-3:] == ["sess-charl-03", "sess-bravo-02", "sess-alpha-01"]
    alpha = rows[-1]
    assert (alpha["pageviews"], alpha["clicks"], alpha["errors"]) == (3, 1, 0)
    assert alpha["entry_url"] == "https://shop.example/"
    assert alpha["started_at"] == T0 + 1000
    assert alpha["duration_ms"] == 4000  # first pageview to the last event of its second batch
    assert rows[-2]["errors"] == 2 and rows[-2]["device_type"] == "mobile" and rows[-2]["country"] == "FR"
    assert rows[-3]["user_id"] == "alice@example.com"


def test_keyset_pages_cover_every_session_once(store: ChdbStore) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        rows, cursor = list_sessions(store, 1, SessionFilters(), cursor, limit=7)
        seen += ids(rows)
        if cursor is None:
            break
    everything, _ = list_sessions(store, 1, SessionFilters(), limit=1000)
    assert seen == ids(everything)
    assert len(seen) == 26


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"has_errors": "1"}, ["sess-bravo-02"]),
        ({"country": "fr"}, ["sess-bravo-02"]),
        ({"device": "mobile"}, ["sess-bravo-02"]),
        ({"browser": "Safari"}, ["sess-bravo-02"]),
        ({"url": "CHECKOUT"}, ["sess-alpha-01"]),
        ({"url": "/about"}, ["sess-bravo-02"]),
        ({"user": "alice@example.com"}, ["sess-charl-03"]),
        ({"min_duration": "3.5", "max_duration": "5.5"}, ["sess-charl-03", "sess-alpha-01"]),
        ({"min_duration": "4.5"}, ["sess-charl-03"]),
    ],
)
def test_filters(store: ChdbStore, query: dict[str, str], expected: list[str]) -> None:
    rows, _ = list_sessions(store, 1, SessionFilters.from_query(query), limit=100)
    assert ids(rows) == expected


def test_date_range_is_by_session_start_in_utc_days(store: ChdbStore) -> None:
    day = time.strftime("%Y-%m-%d", time.gmtime((T0 + DAY_MS) / 1000))
    rows, _ = list_sessions(store, 1, SessionFilters.from_query({"from": day, "to": day}), limit=100)
    assert ids(rows) == ["sess-bravo-02"]


def test_other_projects_are_invisible(store: ChdbStore) -> None:
    rows, _ = list_sessions(store, 1, SessionFilters.from_query({"url": "secret"}), limit=100)
    assert rows == []
    assert session_summary(store, 1, "sess-other-04") is None
    assert session_events(store, 1, "sess-other-04") == []
    assert ids(list_sessions(store, 2, SessionFilters())[0]) == ["sess-other-04"]
    assert "FR" not in filter_options(store, 2)["countries"]
    assert filter_options(store, 1)["countries"] == ["DE", "FR"]


def test_summarising_a_segment_again_changes_nothing(store: ChdbStore) -> None:
    before, _ = list_sessions(store, 1, SessionFilters(), limit=100)
    segments = store.query(SYSTEM_QUERY("SELECT DISTINCT segment_id FROM hitmetrix.events"))
    for row in segments:
        store.execute(SUMMARISE_SEGMENT, {"segment_id": row["segment_id"]})
    after, _ = list_sessions(store, 1, SessionFilters(), limit=100)
    assert after == before


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-11-01", "to": "2026-11-03"},
        {"from": "tomorrow"},
        {"country": "Germany"},
        {"device": "fridge"},
        {"min_duration": "-1"},
        {"url": "x" * 501},
        {"from": "2026-11-05", "to": "2026-11-01"},
    ],
)
def test_filter_parsing_accepts_good_and_explains_bad_values(query: dict[str, str]) -> None:
    if query == {"from": "2026-11-01", "to": "2026-11-03"}:
        assert SessionFilters.from_query(query).to_query() == query
        return
    with pytest.raises(ValueError) as info:
        SessionFilters.from_query(query)
    assert str(info.value)


def test_filters_round_trip_through_the_url() -> None:
    query = ALL_FILTERS
    assert SessionFilters.from_query(query).to_query() == query


def test_generated_sql_matches_snapshot() -> None:
    """Review changes to generated SQL as diffs: UPDATE_SNAPSHOTS=1 rewrites the files."""
    query = ALL_FILTERS
    filters = SessionFilters.from_query(query)
    cases = {
        "sessions_no_filters.sql": sessions_query(7, SessionFilters(), None, 50),
        "sessions_all_filters.sql": sessions_query(
            7, filters, "MTc2NDI1NTYwMDAwMDpzZXNzLWFscGhhLTAx", 50, "Europe/Berlin"
        ),
        "sessions_page_rows.sql": session_rows_query(
            7, filters, [(1764255600000, "sess-alpha-01"), (1764252000000, "sess-bravo-02")], "Europe/Berlin"
        ),
    }
    for name, q in cases.items():
        text = q.sql() + "\n-- params: " + repr(sorted(q.params.items())) + "\n"
        path = SNAPSHOTS / name
        if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
            path.write_text(text)
        assert path.read_text() == text, f"generated SQL changed: review and run UPDATE_SNAPSHOTS=1 ({name})"
        assert "WHERE project_id = {project_id:UInt32}\n" in text
        check_project_scope(q.sql())


# --- sessions over several segments, midnight and time zones ----------------------------------------


def at(iso: str) -> int:
    """Milliseconds since the epoch of an ISO time in UTC ("2026-11-20T23:50")."""
    return int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp() * 1000)


def visit(project: int, sid: str, iso: str, pages: list[str], **fields: Any) -> StoredBatch:
    """A batch of pageviews (then its errors) one minute apart from ``iso`` on, with a batch id of its own."""
    b = batch(project, sid, at(iso), pages=pages, clicks=0, **fields)
    events = [
        StoredEvent(**{**msgspec.structs.asdict(e), "ts": at(iso) + i * 60_000, "client_ts": at(iso) + i * 60_000})
        for i, e in enumerate(b.events)
    ]
    return msgspec.structs.replace(b, events=events, batch_id=f"b-{sid}-{iso}")


def load_in_segments(root: Path, store: ChdbStore, *segments: list[StoredBatch]) -> None:
    """Each list of batches as a spool segment of its own, loaded on its own (as time passes).
    The spool under ``root`` numbers segments on from the last one (the loader's ledger knows them)."""
    for batches in segments:
        spool = Spool(root / "spool", fsync="never")
        spool.start()
        for b in batches:
            spool.append_blocking(encode_batch(b), 10.0)
        spool.close()
        assert Loader(spool, store, BlobStore(root / "recordings")).load_once() == 1


@pytest.fixture(scope="module")
def history(store: ChdbStore, root: Path) -> ChdbStore:
    """The module's store with these projects' sessions too."""
    load_in_segments(
        root,
        store,
        [
            # Starts on 20 November before midnight (UTC) ...
            visit(6, "sess-night-05", "2026-11-20T23:50", ["https://shop.example/", "https://shop.example/list"]),
            # ... this one's first segment holds its later events: its earliest arrive with the next segment.
            visit(6, "sess-late-006", "2026-11-21T12:10", ["https://shop.example/late-second"]),
        ],
        [
            # ... and goes on after midnight, in the next spool segment, with an error this time.
            visit(6, "sess-night-05", "2026-11-21T00:10", ["https://shop.example/cart"] * 3, errors=1),
            visit(6, "sess-late-006", "2026-11-21T12:00", ["https://shop.example/late-first"]),
        ],
        [
            visit(3, "kiri-0000-a", "2026-12-01T10:30", ["https://k.example/"]),  # 2 Dec 00:30 in UTC+14
            visit(3, "kiri-0000-b", "2026-12-01T09:30", ["https://k.example/"]),  # 1 Dec 23:30 in UTC+14
            visit(4, "berlin-mar-early", "2026-03-28T23:30", ["https://b.example/"]),  # 29 Mar 00:30 CET
            visit(4, "berlin-mar-late", "2026-03-29T21:30", ["https://b.example/"]),  # 29 Mar 23:30 CEST
            visit(4, "berlin-mar-next", "2026-03-29T22:30", ["https://b.example/"]),  # 30 Mar 00:30 CEST
            visit(4, "berlin-oct-prev", "2026-10-24T21:30", ["https://b.example/"]),  # 24 Oct 23:30 CEST
            visit(4, "berlin-oct-early", "2026-10-24T22:30", ["https://b.example/"]),  # 25 Oct 00:30 CEST
            visit(4, "berlin-oct-late", "2026-10-25T22:30", ["https://b.example/"]),  # 25 Oct 23:30 CET
            visit(5, "kolkata-0000-a", "2026-12-01T19:00", ["https://i.example/"]),  # 2 Dec 00:30 in UTC+5:30
        ],
    )
    return store


def test_a_session_over_two_segments_and_midnight_is_listed_whole_on_the_day_it_started(history: ChdbStore) -> None:
    day_it_started = SessionFilters.from_query({"from": "2026-11-20", "to": "2026-11-20"})
    (night,) = list_sessions(history, 6, day_it_started)[0]
    assert night["session_id"] == "sess-night-05"
    assert (night["started_at"], night["entry_url"]) == (at("2026-11-20T23:50"), "https://shop.example/")
    assert night["duration_ms"] == 23 * 60_000  # 23:50 to its error at 00:13, one minute after its last page
    assert (night["pageviews"], night["errors"]) == (5, 1)
    # The day it ended does not list it: a session belongs to the day it started on.
    next_day, _ = list_sessions(history, 6, SessionFilters.from_query({"from": "2026-11-21", "to": "2026-11-21"}))
    assert [row["session_id"] for row in next_day] == ["sess-late-006"]
    # Filters see the whole session, not the part of it inside the date range.
    for query in ({"min_duration": "1200"}, {"has_errors": "1"}, {"url": "/cart"}, {"url": "/list"}):
        rows, _ = list_sessions(history, 6, SessionFilters.from_query({**query, "to": "2026-11-20"}))
        assert [row["session_id"] for row in rows] == ["sess-night-05"], query
    assert list_sessions(history, 6, SessionFilters.from_query({"max_duration": "900", "to": "2026-11-20"}))[0] == []
    assert session_summary(history, 6, "sess-night-05") == night


def test_a_late_segment_that_moves_a_sessions_start_leaves_one_row(history: ChdbStore) -> None:
    rows, _ = list_sessions(history, 6, SessionFilters(), limit=10)
    assert [(row["session_id"], row["started_at"]) for row in rows] == [
        ("sess-late-006", at("2026-11-21T12:00")),
        ("sess-night-05", at("2026-11-20T23:50")),
    ]
    assert rows[0]["entry_url"] == "https://shop.example/late-first" and rows[0]["pageviews"] == 2
    # Its first row, under the start it had before the late segment, is gone for good (a tombstone).
    old_start = list_sessions(history, 6, SessionFilters.from_query({"url": "late-second"}))[0]
    assert [(row["session_id"], row["started_at"]) for row in old_start] == [("sess-late-006", at("2026-11-21T12:00"))]
    tombstones = history.query(
        SYSTEM_QUERY(
            "SELECT toUnixTimestamp64Milli(started_at) AS s FROM hitmetrix.sessions FINAL"
            " WHERE session_id = 'sess-late-006'"
        )
    )
    assert tombstones == [{"s": at("2026-11-21T12:00")}]


@pytest.mark.parametrize(
    ("project", "zone", "day", "expected"),
    [
        # 00:30 on 2 December in UTC+14 is found by filtering 2 December there ...
        (3, "Pacific/Kiritimati", "2026-12-02", ["kiri-0000-a"]),
        (3, "Pacific/Kiritimati", "2026-12-01", ["kiri-0000-b"]),
        # ... while in UTC both started on 1 December.
        (3, "UTC", "2026-12-01", ["kiri-0000-a", "kiri-0000-b"]),
        (3, "UTC", "2026-12-02", []),
        # The day clocks go forward (23 hours) and back (25 hours) in Berlin.
        (4, "Europe/Berlin", "2026-03-29", ["berlin-mar-late", "berlin-mar-early"]),
        (4, "Europe/Berlin", "2026-03-30", ["berlin-mar-next"]),
        (4, "Europe/Berlin", "2026-10-25", ["berlin-oct-late", "berlin-oct-early"]),
        (4, "Europe/Berlin", "2026-10-24", ["berlin-oct-prev"]),
        (4, "UTC", "2026-03-29", ["berlin-mar-next", "berlin-mar-late"]),
        # Half an hour off UTC.
        (5, "Asia/Kolkata", "2026-12-02", ["kolkata-0000-a"]),
        (5, "Asia/Kolkata", "2026-12-01", []),
    ],
)
def test_date_filters_are_days_of_the_projects_time_zone(
    history: ChdbStore, project: int, zone: str, day: str, expected: list[str]
) -> None:
    filters = SessionFilters.from_query({"from": day, "to": day})
    rows, _ = list_sessions(history, project, filters, time_zone=zone)
    assert [row["session_id"] for row in rows] == expected


def test_stale_versions_never_show_and_pages_still_cover_every_session_once(store: ChdbStore, root: Path) -> None:
    """Rows ClickHouse has not merged yet: older versions (some matching a filter the newest does not)
    and starts a session no longer has. The list shows only the newest, and pages past them."""
    sids = [f"sess-page-{i:03d}" for i in range(12)]
    visits = [visit(8, sid, f"2026-11-10T10:{i:02d}", ["https://p.example/"]) for i, sid in enumerate(sids)]
    load_in_segments(root, store, visits)
    newest = sids[-1]
    for version in range(1, 40):  # older versions of the newest session, from another country
        store.execute(
            SYSTEM_QUERY(
                "INSERT INTO hitmetrix.sessions (project_id, started_at, session_id, country, version)"
                " SELECT project_id, started_at, session_id, 'ZZ', {v:UInt64} FROM hitmetrix.sessions"
                " WHERE session_id = {s:String} AND is_deleted = 0 ORDER BY version DESC LIMIT 1"
            ),
            {"v": version, "s": newest},
        )
    # A row under a start the session no longer has, and its tombstone.
    for deleted in (0, 1):
        store.execute(
            SYSTEM_QUERY(
                "INSERT INTO hitmetrix.sessions (project_id, started_at, session_id, country, version, is_deleted)"
                " VALUES (8, '2026-11-10 09:00:00', {s:String}, 'ZZ', {v:UInt64}, {d:UInt8})"
            ),
            {"s": sids[0], "v": 10 + deleted, "d": deleted},
        )
    assert list_sessions(store, 8, SessionFilters.from_query({"country": "ZZ"}))[0] == []
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        rows, cursor = list_sessions(store, 8, SessionFilters(), cursor, limit=2)
        seen += ids(rows)
        if cursor is None:
            break
    assert seen == sids[::-1]
