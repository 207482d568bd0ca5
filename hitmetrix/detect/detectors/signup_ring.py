"""Sign-up floods and fake-account rings (OWASP OAT-019 account creation).

On each ``auth`` event of kind ``signup`` (successful or not: refused attempts are part of a flood), within
``detect_signup_ring_window_s``, fires when distinct sign-ups (by username key, else session) share:
- one device fingerprint (the tracker's ``signals`` device of the session, with the user agent):
  ``detect_signup_ring_device_signups`` — high, entity: the device (value "<device>:<agent hash>"). The
  fingerprint is coarse: identical phones share it, so a site with many sign-ups an hour raises the threshold;
- one address: ``detect_signup_ring_ip_signups`` — medium, entity: the address;
- one /24 or /64: ``detect_signup_ring_net_signups`` — medium, entity: the net;
- one behaviour sequence: ``detect_signup_ring_sequence_signups`` sessions whose last tracker events before
  signing up (at least ``detect_signup_ring_sequence_min_events``, up to ``SEQUENCE_EVENTS``) have the same
  ordered kinds and names and the same coarse gaps (powers of two of ms): one script run many times — high.
  A sequence is not an address or a device, so its entity is reported as kind "device", value "seq:<hash>".

The sign-up (a server event) and the tracker's batches reach the spool in either order, so a sign-up stays
pending for ``PENDING_S`` of event time: tracker events from before it that arrive late join its sequence
(recomputed; a session counts once per distinct sequence) and a late ``signals`` adds its device.
Ignores a household or office signing up a few accounts, and people (whose paths and pauses differ).
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

from hitmetrix.detect.detectors._common import Evidence, finding, is_browser_event, max_entries, window_text
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, LastSeen, Throttle

RULE = "signup_ring"
SEQUENCE_EVENTS = 12
PENDING_S = 30
# The tracker's own reports say nothing about how the visitor behaved.
SEQUENCE_SKIPPED_KINDS = frozenset({"signals", "vitals", "identify"})
SHARED = {
    "device": "one device fingerprint",
    "ip": "one address",
    "net": "one network",
    "sequence": "one behaviour sequence",
}


class Pending:
    """A sign-up whose late tracker events may still arrive."""

    __slots__ = ("device_counted", "identity", "obs", "ts_ms")

    def __init__(self, obs: Observation, identity: str, device_counted: bool) -> None:
        self.obs, self.identity, self.ts_ms, self.device_counted = obs, identity, obs.ts_ms, device_counted


class SignupRingDetector:
    rule = RULE

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_signup_ring_window_s)
        self.thresholds = {
            "device": int(settings.detect_signup_ring_device_signups),
            "ip": int(settings.detect_signup_ring_ip_signups),
            "net": int(settings.detect_signup_ring_net_signups),
            "sequence": int(settings.detect_signup_ring_sequence_signups),
        }
        self.min_events = int(settings.detect_signup_ring_sequence_min_events)
        # Per session: its last tracker events as (ts, "kind:name"), in time order.
        self.steps: LastSeen[list[tuple[int, str]]] = LastSeen(n, value_bytes=80 + 100 * SEQUENCE_EVENTS)
        self.devices: LastSeen[str] = LastSeen(n, value_bytes=80)
        self.pending: LastSeen[Pending] = LastSeen(n, value_bytes=200)
        self.signups = DistinctCounter(self.window_s, n, max_distinct_per_entity=2000)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if not obs.session_id:
            return []
        session = (obs.project_id, obs.session_id)
        if obs.kind == "auth":
            return self._signup(obs, session) if obs.name == "signup" else []
        if not is_browser_event(obs):
            return []
        pending = self.pending.get(session)
        if pending is not None and obs.ts_ms > pending.ts_ms + PENDING_S * 1000:
            self.pending.remove(session)
            pending = None
        if obs.kind == "signals":
            if not obs.device:
                return []
            self.devices.put(session, obs.device)
            if pending is None or pending.device_counted:
                return []
            pending.device_counted = True
            return self._count(pending.obs, self._device_group(obs.device, pending.obs), pending.identity)
        if obs.kind in SEQUENCE_SKIPPED_KINDS:
            return []
        steps = self.steps.get(session)
        if steps is None:
            steps = []
            self.steps.put(session, steps)
        bisect.insort(steps, (obs.ts_ms, f"{obs.kind}:{obs.name}"))
        if len(steps) > SEQUENCE_EVENTS:
            del steps[0]
        if pending is None or obs.ts_ms > pending.ts_ms:
            return []
        group = self._sequence_group(steps, pending.ts_ms)
        return self._count(pending.obs, group, pending.identity) if group else []

    def _signup(self, obs: Observation, session: tuple[int, str]) -> list[Finding]:
        identity = obs.user_key or obs.session_id
        groups: list[tuple[str, str, str]] = []  # (check, entity value, label)
        device = self.devices.get(session)
        if device:
            groups.append(self._device_group(device, obs))
        if obs.ip_key:
            groups.append(("ip", obs.ip_key, obs.ip_display or obs.ip_key))
        if obs.ip_net:
            groups.append(("net", obs.ip_net, obs.ip_net))
        steps = self.steps.get(session)
        sequence = self._sequence_group(steps, obs.ts_ms) if steps else None
        if sequence:
            groups.append(sequence)
        self.pending.put(session, Pending(obs, identity, device_counted=bool(device)))
        found: list[Finding] = []
        for group in groups:
            found += self._count(obs, group, identity)
        return found

    def _device_group(self, device: str, obs: Observation) -> tuple[str, str, str]:
        # The fingerprint hashes coarse traits (screen, cores, language, time zone) that many identical
        # phones share; with the user agent it separates them a little better.
        agent = hashlib.blake2b(obs.user_agent.encode(), digest_size=4).hexdigest()
        return ("device", f"{device}:{agent}", device)

    def _sequence_group(self, steps: list[tuple[int, str]], signup_ts: int) -> tuple[str, str, str] | None:
        before = [s for s in steps if s[0] <= signup_ts]
        if len(before) < self.min_events:
            return None
        parts = [before[0][1]]
        for (previous, _), (ts, name) in zip(before, before[1:] + [(signup_ts, "signup")], strict=True):
            parts.append(f"{name}@{max(ts - previous, 1).bit_length()}")
        digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()
        return ("sequence", "seq:" + digest, f"behaviour sequence {digest} ({len(before)} steps)")

    def _count(self, obs: Observation, group: tuple[str, str, str], identity: str) -> list[Finding]:
        check, value, label = group
        key = (obs.project_id, check, value)
        # A sequence groups sessions (one script, many runs); the others group accounts.
        count = self.signups.add(key, obs.session_id if check == "sequence" else identity, obs.ts_ms)
        self.evidence.add(key, obs.session_id, obs.ts_ms)
        threshold = self.thresholds[check]
        if count < threshold or not self.throttle.ready(key, obs.ts_ms):
            return []
        shared = SHARED[check]
        if check == "net":
            shared += f" ({obs.ip_net})"
        elif check == "sequence":
            shared += f" ({label.rsplit('(', 1)[-1].rstrip(')')}, same order and pauses)"
        what = "sessions" if check == "sequence" else "sign-ups"
        reason = f"{count} {what} sharing {shared} in {window_text(self.window_s)} (threshold {threshold})."
        severity = "high" if check in ("device", "sequence") else "medium"
        entity = ("ip" if check == "ip" else "net" if check == "net" else "device", value, label)
        numbers = {"signups": count, "threshold": threshold}
        return [finding(RULE, obs, severity, entity, [reason], numbers, self.evidence.sessions(key))]
