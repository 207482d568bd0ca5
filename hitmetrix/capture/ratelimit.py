"""Token-bucket rate limiting of capture requests per (project, client address), in memory.

Each key earns ``rate_per_s`` tokens a second up to ``burst``; a request spends one.
Memory is bounded: buckets are kept in least-recently-used order, buckets idle long
enough to have refilled are dropped (a full bucket is the same as no bucket), and
past ``max_keys`` the least recently used is dropped even if not yet full. The
limiter is per process (with several capture nodes the effective limit is
multiplied by their number) and not thread-safe: it is used from the event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

DEFAULT_MAX_KEYS = 100_000
# How many idle buckets one request may sweep; keeps the cost per request constant.
_SWEEP_PER_CALL = 4


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for a Retry-After header, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED = Decision(True)


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate limit needs rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._refill_s = self.burst / rate_per_s
        # key -> [tokens, time of last update]
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: Hashable) -> Decision:
        """Spend a token for ``key`` if it has one."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket[1])
            bucket[0] = min(self.burst, bucket[0] + elapsed * self.rate_per_s)
            bucket[1] = now
        self._sweep(now)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return ALLOWED
        return Decision(False, (1.0 - bucket[0]) / self.rate_per_s)

    def _sweep(self, now: float) -> None:
        buckets = self._buckets
        while len(buckets) > self.max_keys:
            buckets.popitem(last=False)
        for _ in range(_SWEEP_PER_CALL):
            oldest = next(iter(buckets.values()), None)
            if oldest is None or now - oldest[1] < self._refill_s:
                return
            buckets.popitem(last=False)
