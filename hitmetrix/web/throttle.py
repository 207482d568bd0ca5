"""Slowing down password guessing: failed sign-ins counted per email and per client address.

After ``max_failures`` failures within ``window_s`` a key is locked for
``base_lockout_s``, doubling with every further failure up to
``max_lockout_s``; while locked, sign-in answers 429 without checking the
password. A success clears the email's count (not the address's: one good
password must not reset a spraying client). The state is in memory and per
process: several server processes each count on their own, and a restart
forgets; that bounds the damage, it is not an account lockout.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

EMAIL_MAX_FAILURES = 5
IP_MAX_FAILURES = 20  # offices and carrier NAT put many people behind one address
WINDOW_S = 15 * 60.0
BASE_LOCKOUT_S = 30.0
MAX_LOCKOUT_S = 15 * 60.0
MAX_KEYS = 100_000


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        email_max_failures: int = EMAIL_MAX_FAILURES,
        ip_max_failures: int = IP_MAX_FAILURES,
        window_s: float = WINDOW_S,
        base_lockout_s: float = BASE_LOCKOUT_S,
        max_lockout_s: float = MAX_LOCKOUT_S,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._limits = {"email": email_max_failures, "ip": ip_max_failures}
        self._window_s = window_s
        self._base_lockout_s = base_lockout_s
        self._max_lockout_s = max_lockout_s
        self._max_keys = max_keys
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(email: str, ip: str) -> list[tuple[str, str]]:
        return [("email", email.strip().lower()), ("ip", ip)]

    def retry_after_s(self, email: str, ip: str) -> int:
        """Seconds until this email may try from this address again; 0 means now."""
        now = self._clock()
        with self._lock:
            wait = max(
                (rec.locked_until - now for key in self._keys(email, ip) if (rec := self._records.get(key))),
                default=0.0,
            )
        return math.ceil(wait) if wait > 0 else 0

    def failure(self, email: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._records) >= self._max_keys:
                self._forget_idle(now)
            for key in self._keys(email, ip):
                rec = self._records.setdefault(key, _Record())
                while rec.failures and rec.failures[0] <= now - self._window_s:
                    rec.failures.popleft()
                rec.failures.append(now)
                over = len(rec.failures) - self._limits[key[0]]
                if over >= 0:
                    lockout_s = min(self._base_lockout_s * 2 ** min(over, 32), self._max_lockout_s)
                    rec.locked_until = now + lockout_s

    def success(self, email: str) -> None:
        with self._lock:
            self._records.pop(("email", email.strip().lower()), None)

    def _forget_idle(self, now: float) -> None:
        idle = [
            key
            for key, rec in self._records.items()
            if rec.locked_until <= now and (not rec.failures or rec.failures[-1] <= now - self._window_s)
        ]
        for key in idle:
            del self._records[key]
        if len(self._records) >= self._max_keys:  # a flood of distinct keys: memory wins over memory of them
            self._records.clear()
