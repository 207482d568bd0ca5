"""The live feed: rings per project, readers that resume and learn what they missed, never in capture's way."""

from __future__ import annotations

import asyncio

import pytest

from hitmetrix.model import StoredBatch, StoredEvent
from hitmetrix.observe.feed import MAX_EVENTS_SHOWN, WATCH_S, LiveFeed


def batch(project_id: int = 1, session_id: str = "s3ss10n0001", events: int = 2, **extra: object) -> StoredBatch:
    evs = [
        StoredEvent(event_id=f"e{i}", type="pageview", ts=1_000 + i, client_ts=1_000 + i, url=f"https://a.test/{i}")
        for i in range(events)
    ]
    return StoredBatch(
        batch_id="b", project_id=project_id, received_at=5_000, session_id=session_id, anonymous_id="a",
        events=evs, ip="203.0.113.9", **extra,  # type: ignore[arg-type]
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watched(*project_ids: int, **kwargs: object) -> LiveFeed:
    feed = LiveFeed(**kwargs)  # type: ignore[arg-type]
    for project_id in project_ids:
        feed.watch(project_id)
    return feed


def test_a_summary_is_short_and_leaves_the_address_out() -> None:
    feed = watched(1)
    feed.publish(batch(events=MAX_EVENTS_SHOWN + 3, user_id="u-1", country="DE", browser="Firefox"))
    [summary] = feed.recent(1, 10)
    assert summary["events"] == MAX_EVENTS_SHOWN + 3 and len(summary["shown"]) == MAX_EVENTS_SHOWN
    assert summary["shown"][0] == {"type": "pageview", "name": "", "url": "https://a.test/0", "ts": 1000}
    assert (summary["user_id"], summary["country"], summary["browser"]) == ("u-1", "DE", "Firefox")
    assert "203.0.113.9" not in repr(summary)


def test_readers_get_what_is_newer_per_project() -> None:
    feed = watched(1, 2)
    feed.publish(batch(1, "one00000001"))
    feed.publish(batch(2, "two00000001"))
    feed.publish(batch(1, "one00000002"))
    first, missed = feed.since(1, 0)
    assert [s["session_id"] for s in first] == ["one00000001", "one00000002"] and not missed
    assert feed.since(1, first[-1]["id"]) == ([], False)
    assert [s["session_id"] for s in feed.since(2, 0)[0]] == ["two00000001"]
    assert feed.since(3, 0) == ([], False)
    assert feed.first_seen_ms(1) == 5_000 and feed.first_seen_ms(3) is None


def test_a_reader_that_fell_a_ring_behind_is_told() -> None:
    feed = watched(1, ring_size=3)
    for i in range(5):
        feed.publish(batch(session_id=f"s000000000{i}"))
    newest, missed = feed.since(1, 0)
    assert missed and [s["session_id"] for s in newest] == ["s0000000002", "s0000000003", "s0000000004"]
    assert feed.since(1, newest[0]["id"] - 1) == (newest, False)  # right behind the ring: nothing missed


def test_publish_never_raises_into_capture() -> None:
    feed = watched(1)
    feed.publish(object())  # type: ignore[arg-type]
    feed.publish(object())  # type: ignore[arg-type]
    assert feed.swallowed_errors == 2
    feed.publish(batch())
    assert len(feed.recent(1, 10)) == 1


def test_only_watched_projects_are_summarised_and_a_lapse_is_a_gap() -> None:
    clock = FakeClock()
    feed = LiveFeed(clock=clock)
    feed.publish(batch(1, "before00001"))
    assert feed.recent(1, 10) == [] and feed.first_seen_ms(1) == 5_000  # unwatched: only "data arrived"
    feed.watch(1)
    feed.publish(batch(1, "watched0001"))
    [summary] = feed.recent(1, 10)
    assert summary["session_id"] == "watched0001"
    clock.now += WATCH_S + 1  # nobody asked for ten minutes: summaries stop
    feed.publish(batch(1, "lapsed00001"))
    assert [s["session_id"] for s in feed.recent(1, 10)] == ["watched0001"]
    feed.watch(1)
    feed.publish(batch(1, "again000001"))
    newer, missed = feed.since(1, summary["id"])
    assert [s["session_id"] for s in newer] == ["again000001"] and missed  # the lapsed batch is a gap
    assert feed.since(1, newer[0]["id"]) == ([], False)


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_waiting_readers_wake_on_publish_on_timeout_and_on_close() -> None:
    feed = watched(1, 2)

    async def publish_soon() -> None:
        await asyncio.sleep(0)
        feed.publish(batch(1))

    waiter = asyncio.ensure_future(feed.wait(1, 0, timeout_s=30))
    await publish_soon()
    assert await asyncio.wait_for(waiter, 5) is True
    assert await feed.wait(1, 0, timeout_s=30) is True  # already newer: no waiting at all
    assert await feed.wait(1, feed.last_id, timeout_s=0.01) is False  # nothing new in time
    other = asyncio.ensure_future(feed.wait(2, 0, timeout_s=30))
    await asyncio.sleep(0)
    feed.close()
    assert await asyncio.wait_for(other, 5) is False
    assert await feed.wait(1, feed.last_id, timeout_s=30) is False  # closed: returns at once
