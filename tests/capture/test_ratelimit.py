"""hitmetrix/capture/ratelimit.py with an injected clock."""

from __future__ import annotations

import pytest

from hitmetrix.capture.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.check("a").allowed for _ in range(3)] == [True, True, True]
    refused = limiter.check("a")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"


def test_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    clock.now += 0.5
    assert limiter.check("a").allowed
    assert not limiter.check("a").allowed
    clock.now += 100
    assert [limiter.check("a").allowed for _ in range(4)] == [True, True, True, False]


def test_keys_are_independent() -> None:
    limiter = RateLimiter(1.0, 1, clock=Clock())
    assert limiter.check((1, "ip1")).allowed
    assert not limiter.check((1, "ip1")).allowed
    assert limiter.check((1, "ip2")).allowed
    assert limiter.check((2, "ip1")).allowed


def test_retry_after_header_rounds_up() -> None:
    limiter = RateLimiter(0.2, 1, clock=Clock())
    limiter.check("a")
    refused = limiter.check("a")
    assert refused.retry_after_s == pytest.approx(5.0)
    assert refused.retry_after_header == "5"


def test_idle_buckets_are_evicted() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 10, clock=clock)  # refills in 1 s
    for index in range(3):
        limiter.check(index)
    assert len(limiter) == 3
    clock.now += 2
    limiter.check("fresh")
    assert len(limiter) == 1


def test_memory_is_capped() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, clock=clock, max_keys=100)
    for index in range(1000):
        limiter.check(index)
    assert len(limiter) == 100


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
