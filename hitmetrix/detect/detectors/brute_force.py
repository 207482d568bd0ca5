"""Brute force: many failed sign-ins for one username, from any source (OWASP OAT-007 credential cracking).

Keys on the username's keyed hash (``user_key`` of the auth event), so an attacker rotating addresses is still
one entity; failures whose source names no username (sign-in outcomes inferred from access logs) are counted
per address instead (CrowdSec http-bf style). Fires when ``detect_brute_force_failures`` failures land within
``detect_brute_force_window_s`` (CrowdSec ssh-slow-bf: 10 failures at a 60 s leak), again at most once per
window; severity rises to critical at five times the threshold. Ignores a person who mistypes a few times,
and successes (account_takeover judges a success after failures).
"""

from __future__ import annotations

from typing import Any

from hitmetrix.detect.detectors._common import Evidence, finding, max_entries, window_text
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, SlidingCounter, Throttle

RULE = "brute_force"


def is_failed_signin(obs: Observation) -> bool:
    return obs.kind == "auth" and obs.name == "signin" and not obs.ok


class BruteForceDetector:
    rule = RULE
    kinds = frozenset({"auth"})  # the engine gives it sign-in events only

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.threshold = int(settings.detect_brute_force_failures)
        self.window_s = float(settings.detect_brute_force_window_s)
        self.failures = SlidingCounter(self.window_s, n)
        self.sources = DistinctCounter(self.window_s, n, max_distinct_per_entity=1000)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if not is_failed_signin(obs):
            return []
        if not obs.user_key:
            return self._by_address(obs) if obs.ip_key else []
        key = (obs.project_id, obs.user_key)
        failures = self.failures.add(key, obs.ts_ms)
        sources = self.sources.add(key, obs.ip_key or obs.session_id, obs.ts_ms)
        self.evidence.add(key, obs.session_id, obs.ts_ms)
        if failures < self.threshold or not self.throttle.ready(key, obs.ts_ms):
            return []
        label = obs.user_display or obs.user_key
        severity = "critical" if failures >= 5 * self.threshold else "high"
        reasons = [
            f"{failures} failed sign-ins for {label} in {window_text(self.window_s)} (threshold {self.threshold}).",
            f"They came from {sources} distinct {'address' if sources == 1 else 'addresses'}.",
        ]
        entity = ("username", obs.user_key, label)
        numbers = {"failures": failures, "sources": sources, "threshold": self.threshold}
        return [finding(RULE, obs, severity, entity, reasons, numbers, self.evidence.sessions(key))]

    def _by_address(self, obs: Observation) -> list[Finding]:
        """Failures whose source names no username (inferred from an access log): counted per address instead."""
        key = (obs.project_id, "ip", obs.ip_key)
        failures = self.failures.add(key, obs.ts_ms)
        self.evidence.add(key, obs.session_id, obs.ts_ms)
        if failures < self.threshold or not self.throttle.ready(key, obs.ts_ms):
            return []
        label = obs.ip_display or obs.ip_key
        reasons = [
            f"{failures} failed sign-ins from {label} in {window_text(self.window_s)} (threshold {self.threshold}); "
            "the source does not name the usernames."
        ]
        severity = "critical" if failures >= 5 * self.threshold else "high"
        numbers = {"failures": failures, "threshold": self.threshold}
        return [finding(RULE, obs, severity, ("ip", obs.ip_key, label), reasons, numbers, self.evidence.sessions(key))]
