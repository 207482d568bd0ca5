"""The session list, filters, keyset pagination and tenancy, on real chDB fed by the real loader."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.analytics.sessions import (
    SessionFilters,
    filter_options,
    list_sessions,
    session_events,
    session_summary,
    sessions_query,
)
from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.spool import Spool
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import SUMMARISE_SEGMENT

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
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    root = tmp_path_factory.mktemp("analytics")
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
    segments = store.query("SELECT DISTINCT segment_id FROM hitmetrix.events")
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
    cases = {
        "sessions_no_filters.sql": sessions_query(7, SessionFilters(), None, 50),
        "sessions_all_filters.sql": sessions_query(
            7, SessionFilters.from_query(query), "MTc2NDI1NTYwMDAwMDpzZXNzLWFscGhhLTAx", 50
        ),
    }
    for name, q in cases.items():
        text = q.sql() + "\n-- params: " + repr(sorted(q.params.items())) + "\n"
        path = SNAPSHOTS / name
        if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
            path.write_text(text)
        assert path.read_text() == text, f"generated SQL changed: review and run UPDATE_SNAPSHOTS=1 ({name})"
        assert "project_id = {project_id:UInt32}" in text
