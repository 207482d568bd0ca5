"""Windowed per-entity state: counts within the window, bounded entries (LRU), memory that grows and shrinks."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

import pytest

from hitmetrix.detect.state import DistinctCounter, LastSeen, SlidingCounter, Throttle, WindowState, state_of

MIN = 60_000


def test_a_sliding_counter_counts_events_within_the_window_only() -> None:
    counter = SlidingCounter(window_s=300, max_entries=10)
    counts = [counter.add("ip-a", t * 30_000) for t in range(14)]  # one every 30 s for 6.5 min
    assert counts[:10] == list(range(1, 11))
    assert counts[10:] == [10, 10, 10, 10], "older than 5 min no longer counts"
    assert counter.count("ip-a", 13 * 30_000) == 10
    assert counter.count("ip-a", 13 * 30_000 + 10 * MIN) == 0, "all of it has left the window"
    assert counter.count("ip-b", 0) == 0
    assert counter.add("ip-b", 0, n=5) == 5


def test_a_sliding_counter_never_counts_beyond_the_window() -> None:
    """The bucketed window is at most window_s long: 10 events spread over 5 min + 1 s never reach 10."""
    counter = SlidingCounter(window_s=300, max_entries=10, buckets=10)
    step_ms = 301_000 // 9
    assert max(counter.add("x", i * step_ms) for i in range(10)) <= 9


def test_an_event_arriving_late_counts_where_it_falls() -> None:
    counter = SlidingCounter(window_s=60, max_entries=10, buckets=6)
    counter.add("k", 50_000)
    assert counter.add("k", 20_000) == 2, "a late event inside the window counts"
    assert counter.add("k", -100_000) == 2, "a late event older than the window does not"


def test_entries_beyond_the_bound_are_evicted_least_recent_first() -> None:
    counter = SlidingCounter(window_s=60, max_entries=3)
    for key in ("a", "b", "c"):
        counter.add(key, 0)
    counter.add("a", 1000)  # a is now the most recent
    counter.add("d", 2000)
    assert len(counter) == 3 and counter.evictions == 1
    assert "b" not in counter and {"a", "c", "d"} <= set(counter.keys())


def test_a_distinct_counter_counts_distinct_values_in_the_window_and_caps_them() -> None:
    counter = DistinctCounter(window_s=60, max_entries=10, max_distinct_per_entity=3)
    assert [counter.add("ip", user, t) for user, t in [("u1", 0), ("u2", 1000), ("u1", 2000)]] == [1, 2, 2]
    assert counter.add("ip", "u3", 3000) == 3
    assert counter.add("ip", "u4", 4000) == 3, "saturates at the cap"
    assert counter.values("ip", 4000) == ["u1", "u3", "u4"], "the oldest (u2) went first; u1 was refreshed"
    assert counter.has("ip", "u4", 4000) and not counter.has("ip", "u2", 4000)
    assert counter.add("ip", "u5", 63_500) == 2, "u1 (2 s) and u3 (3 s) left the window; u4 and u5 remain"
    assert counter.count("ip", 200_000) == 0


def test_last_seen_returns_what_it_replaces() -> None:
    seen: LastSeen[tuple[str, int]] = LastSeen(max_entries=2)
    assert seen.put("user-1", ("dev-a", 1)) is None
    assert seen.put("user-1", ("dev-b", 2)) == ("dev-a", 1)
    seen.put("user-2", ("dev-c", 3))
    seen.put("user-3", ("dev-d", 4))
    assert seen.get("user-1") is None and seen.get("user-3") == ("dev-d", 4) and seen.evictions == 1


def test_a_throttle_is_ready_once_per_window() -> None:
    throttle = Throttle(window_s=60, max_entries=10)
    assert [throttle.ready("k", t) for t in (0, 10_000, 59_999, 60_000, 61_000)] == [True, False, False, True, False]


@pytest.mark.parametrize(
    "make",
    [
        lambda n: (SlidingCounter(60, n), lambda c, i: c.add(f"203.0.113.{i}-{i * 7919}", 1000)),
        lambda n: (DistinctCounter(60, n, 100), lambda c, i: c.add(f"ip-{i:08d}", f"user-{i % 50}", 1000)),
    ],
)
def test_memory_is_bounded_and_the_estimate_follows_it(make) -> None:  # type: ignore[no-untyped-def]
    container, add = make(5_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            add(container, i)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(container) == 5_000 and container.evictions == 45_000
    estimate = container.bytes_estimate()
    assert estimate > 0
    # Ten times the entries seen as kept: what is held follows the bound, not the traffic, and the
    # estimate is within a factor of two of what Python really holds.
    assert held / 2 <= estimate <= held * 2, (held, estimate)
    container.clear()
    assert len(container) == 0 and container.bytes_estimate() == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        SlidingCounter(60, 0)
    with pytest.raises(ValueError):
        SlidingCounter(0, 10)
    with pytest.raises(ValueError):
        DistinctCounter(60, 10, 0)


@dataclass
class _Detector:
    rule: str = "t"
    failures: SlidingCounter = field(default_factory=lambda: SlidingCounter(60, 10))
    more: list[WindowState] = field(default_factory=lambda: [Throttle(60, 10), LastSeen(10)])
    settings: dict[str, int] = field(default_factory=dict)


def test_state_of_finds_a_detectors_containers() -> None:
    found = state_of(_Detector())
    assert [type(c).__name__ for c in found] == ["SlidingCounter", "Throttle", "LastSeen"]
