"""Credential stuffing: leaked username/password pairs tried against many accounts (OWASP OAT-008).

Three shapes, each in ``detect_credential_stuffing_window_s`` and only while at least
``detect_credential_stuffing_failure_ratio`` of the source's sign-ins fail (stuffing lists hit a few per cent;
people behind one NAT address mostly succeed, so a shared office or carrier NAT stays quiet):
- one address failing on ``detect_credential_stuffing_usernames`` distinct usernames — entity: the address;
- one /24 or /64 (two or more addresses in it) failing on ``detect_credential_stuffing_net_usernames`` — the net;
- distributed: ``detect_credential_stuffing_asn_sources`` addresses of one network operator failing on
  ``detect_credential_stuffing_asn_usernames`` usernames, each trying only a few
  (``detect_credential_stuffing_asn_per_source`` on average) — entity: the AS (its organisation when the
  database has no number).
Slow attacks below these rates are password_spraying's; one account hammered is brute_force's.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from hitmetrix.detect.detectors._common import Evidence, asn_key, asn_label, finding, max_entries, window_text
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, SlidingCounter, Throttle, WindowState

RULE = "credential_stuffing"


class Scope:
    """The counts of one kind of source (address, net or AS): attempts, failures, usernames, addresses."""

    def __init__(self, window_s: float, n: int) -> None:
        self.attempts = SlidingCounter(window_s, n)
        self.failures = SlidingCounter(window_s, n)
        self.usernames = DistinctCounter(window_s, n, max_distinct_per_entity=2000)
        self.sources = DistinctCounter(window_s, n, max_distinct_per_entity=2000)
        self.evidence = Evidence(n)

    def containers(self) -> list[WindowState]:
        return [self.attempts, self.failures, self.usernames, self.sources, self.evidence]

    def add(self, key: Hashable, obs: Observation) -> tuple[int, int, int, int]:
        """Count a sign-in; (attempts, failures, distinct failed usernames, distinct failing addresses)."""
        attempts = self.attempts.add(key, obs.ts_ms)
        if obs.ok:
            return attempts, self.failures.count(key, obs.ts_ms), 0, 0
        self.evidence.add(key, obs.session_id, obs.ts_ms)
        return (
            attempts,
            self.failures.add(key, obs.ts_ms),
            self.usernames.add(key, obs.user_key, obs.ts_ms),
            self.sources.add(key, obs.ip_key, obs.ts_ms),
        )


class CredentialStuffingDetector:
    rule = RULE
    kinds = frozenset({"auth"})  # the engine gives it sign-in events only

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_credential_stuffing_window_s)
        self.ip_usernames = int(settings.detect_credential_stuffing_usernames)
        self.net_usernames = int(settings.detect_credential_stuffing_net_usernames)
        self.min_failure_ratio = float(settings.detect_credential_stuffing_failure_ratio)
        self.asn_sources = int(settings.detect_credential_stuffing_asn_sources)
        self.asn_usernames = int(settings.detect_credential_stuffing_asn_usernames)
        self.asn_per_source = float(settings.detect_credential_stuffing_asn_per_source)
        self.ip = Scope(self.window_s, n)
        self.net = Scope(self.window_s, n)
        self.asn = Scope(self.window_s, n)
        # Listed so the engine's memory report (state.state_of) finds the scopes' containers.
        self.containers = [c for scope in (self.ip, self.net, self.asn) for c in scope.containers()]
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if obs.kind != "auth" or obs.name != "signin" or not obs.user_key or not obs.ip_key:
            return []
        found: list[Finding] = []
        key = (obs.project_id, obs.ip_key)
        attempts, failures, usernames, _ = self.ip.add(key, obs)
        crossed = usernames >= self.ip_usernames and self._ratio_ok(failures, attempts)
        if crossed and self.throttle.ready(("ip",) + key, obs.ts_ms):
            reasons = [
                f"Sign-ins failed for {usernames} distinct usernames from one address in "
                f"{window_text(self.window_s)} (threshold {self.ip_usernames}).",
                self._ratio_text(failures, attempts),
            ]
            numbers = {"usernames": usernames, "failures": failures, "attempts": attempts}
            entity = ("ip", obs.ip_key, obs.ip_display or obs.ip_key)
            found.append(finding(RULE, obs, "high", entity, reasons, numbers, self.ip.evidence.sessions(key)))
        if obs.ip_net:
            found += self._net(obs)
        if obs.asn or obs.as_org:
            found += self._asn(obs)
        return found

    def _net(self, obs: Observation) -> list[Finding]:
        key = (obs.project_id, obs.ip_net)
        attempts, failures, usernames, sources = self.net.add(key, obs)
        if usernames < self.net_usernames or sources < 2 or not self._ratio_ok(failures, attempts):
            return []
        if not self.throttle.ready(("net",) + key, obs.ts_ms):
            return []
        reasons = [
            f"Sign-ins failed for {usernames} distinct usernames from {sources} addresses in {obs.ip_net} in "
            f"{window_text(self.window_s)} (threshold {self.net_usernames}).",
            self._ratio_text(failures, attempts),
        ]
        numbers = {"usernames": usernames, "sources": sources, "failures": failures, "attempts": attempts}
        entity = ("net", obs.ip_net, obs.ip_net)
        return [finding(RULE, obs, "high", entity, reasons, numbers, self.net.evidence.sessions(key))]

    def _asn(self, obs: Observation) -> list[Finding]:
        asn = asn_key(obs)
        key = (obs.project_id, asn)
        attempts, failures, usernames, sources = self.asn.add(key, obs)
        if sources < self.asn_sources or usernames < self.asn_usernames:
            return []
        per_source = failures / sources
        if per_source > self.asn_per_source or not self._ratio_ok(failures, attempts):
            return []
        if not self.throttle.ready(("asn",) + key, obs.ts_ms):
            return []
        label = asn_label(obs)
        reasons = [
            f"{sources} addresses of {label} failed sign-ins for {usernames} distinct usernames in "
            f"{window_text(self.window_s)} (thresholds {self.asn_sources} addresses, {self.asn_usernames} usernames).",
            f"Each address tried only {per_source:.1f} on average (at most {self.asn_per_source:g}): a distributed "
            "attack spread thin to stay under per-address limits.",
            self._ratio_text(failures, attempts),
        ]
        numbers = {"sources": sources, "usernames": usernames, "failures": failures, "per_source": per_source}
        return [finding(RULE, obs, "high", ("asn", asn, label), reasons, numbers, self.asn.evidence.sessions(key))]

    def _ratio_ok(self, failures: int, attempts: int) -> bool:
        return attempts > 0 and failures / attempts >= self.min_failure_ratio

    def _ratio_text(self, failures: int, attempts: int) -> str:
        return (
            f"{failures} of its {attempts} sign-ins failed ({failures / attempts * 100:.0f} %, "
            f"threshold {self.min_failure_ratio * 100:g} %)."
        )
