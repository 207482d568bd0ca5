"""Password spraying: a few common passwords tried once against many accounts, slowly (OWASP OAT-007;
MITRE ATT&CK T1110.003).

Per address, and per /24 or /64 holding two or more addresses, over the long ``detect_password_spraying_window_s``:
fires when sign-ins failed for ``detect_password_spraying_usernames`` distinct usernames with about one try
each (at most ``detect_password_spraying_attempts_per_username`` failures per username on average), while the
source's sign-ins mostly fail (``detect_credential_stuffing_failure_ratio``) and it stays slow: fewer than
``detect_credential_stuffing_usernames`` distinct usernames in any ``detect_credential_stuffing_window_s`` of the
long window (faster is credential_stuffing's, and so is the rest of the hour after such a burst). Ignores
people behind one address who mostly succeed, and accounts tried many times (brute_force).
"""

from __future__ import annotations

from typing import Any

from hitmetrix.detect.detectors._common import Evidence, finding, max_entries, window_text
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, LastSeen, SlidingCounter, Throttle

RULE = "password_spraying"


class PasswordSprayingDetector:
    rule = RULE
    kinds = frozenset({"auth"})  # the engine gives it sign-in events only

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_password_spraying_window_s)
        self.threshold = int(settings.detect_password_spraying_usernames)
        self.max_per_username = float(settings.detect_password_spraying_attempts_per_username)
        self.min_failure_ratio = float(settings.detect_credential_stuffing_failure_ratio)
        self.fast_window_s = float(settings.detect_credential_stuffing_window_s)
        self.fast_usernames = int(settings.detect_credential_stuffing_usernames)
        self.attempts = SlidingCounter(self.window_s, n)
        self.failures = SlidingCounter(self.window_s, n)
        self.usernames = DistinctCounter(self.window_s, n, max_distinct_per_entity=5000)
        self.recent = DistinctCounter(self.fast_window_s, n, max_distinct_per_entity=1000)
        self.sources = DistinctCounter(self.window_s, n, max_distinct_per_entity=1000)
        self.last_fast: LastSeen[int] = LastSeen(n, value_bytes=32)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if obs.kind != "auth" or obs.name != "signin" or not obs.user_key or not obs.ip_key:
            return []
        found = self._scope(obs, ("ip", obs.project_id, obs.ip_key))
        if obs.ip_net:
            found += self._scope(obs, ("net", obs.project_id, obs.ip_net))
        return found

    def _scope(self, obs: Observation, key: tuple[str, int, str]) -> list[Finding]:
        attempts = self.attempts.add(key, obs.ts_ms)
        if obs.ok:
            return []
        failures = self.failures.add(key, obs.ts_ms)
        usernames = self.usernames.add(key, obs.user_key, obs.ts_ms)
        recent = self.recent.add(key, obs.user_key, obs.ts_ms)
        sources = self.sources.add(key, obs.ip_key, obs.ts_ms)
        self.evidence.add(key, obs.session_id, obs.ts_ms)
        if recent >= self.fast_usernames:
            self.last_fast.put(key, obs.ts_ms)  # a stuffing burst: the long window is stuffing's, not spraying's
            return []
        fast_ts = self.last_fast.get(key)
        if usernames < self.threshold or (fast_ts is not None and obs.ts_ms - fast_ts < self.window_s * 1000):
            return []
        per_username = failures / usernames
        if per_username > self.max_per_username or failures / attempts < self.min_failure_ratio:
            return []
        if key[0] == "net" and sources < 2:
            return []
        if not self.throttle.ready(key, obs.ts_ms):
            return []
        where = "one address" if key[0] == "ip" else f"{sources} addresses in {obs.ip_net}"
        reasons = [
            f"Sign-ins failed for {usernames} distinct usernames from {where} in {window_text(self.window_s)} "
            f"(threshold {self.threshold}), {per_username:.1f} tries per username "
            f"(at most {self.max_per_username:g}).",
            f"It stays slow: {recent} usernames in the last {window_text(self.fast_window_s)} "
            f"(credential stuffing starts at {self.fast_usernames}); {failures} of {attempts} sign-ins failed.",
        ]
        numbers = {"usernames": usernames, "failures": failures, "attempts": attempts, "recent_usernames": recent}
        entity = ("ip", obs.ip_key, obs.ip_display or obs.ip_key) if key[0] == "ip" else ("net", obs.ip_net, obs.ip_net)
        return [finding(RULE, obs, "high", entity, reasons, numbers, self.evidence.sessions(key))]
