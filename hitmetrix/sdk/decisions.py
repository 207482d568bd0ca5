"""Decisions the protected site enforces, as the request path reads them: an immutable ``DecisionIndex`` that the
poller (hitmetrix/sdk/poller.py) rebuilds from ``/api/v1/decisions/stream`` and swaps in whole.

A decision's ``scope`` is ``ip`` (an address, matched exactly), ``net`` (a CIDR such as the /24 or /64 the detectors
key on; any prefix length works), ``user`` (the id ``user_of`` returns) or ``session`` (the tracker's ``hm_sid``).
When several match, ``allow`` wins over ``block``, which wins over ``challenge``. Expired, revoked and inactive
entries are removed. Hitmetrix keys an ``ip`` decision by the address's keyed hash and sends the plain address
(or CIDR) in ``match`` when it knows it (decisions made by hand). A decision made by a rule names the address only by
its hash, which a host cannot compute: it is kept as a ``hashed_ip`` decision, and while any exists the poller asks
the verdict endpoint about the addresses the site sees (``DecisionIndex.match``'s ``verdict`` argument).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitmetrix.sdk.network import IPAddress, parse_ip

ACTIONS = {"challenge": 1, "block": 2, "allow": 3}  # strength when several decisions match one request
SCOPES = ("ip", "net", "user", "session")
DEFAULT_RETRY_AFTER_S = 60


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    scope: str
    value: str
    action: str
    reason: str
    expires_ms: int | None

    def retry_after_s(self, now_ms: int) -> int:
        if self.expires_ms is None:
            return DEFAULT_RETRY_AFTER_S
        return max(1, min(3600, (self.expires_ms - now_ms + 999) // 1000))


def _ms(value: Any) -> int | None:
    """An expiry given as epoch ms or as ISO text; None for "never"."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expiry is not a time")
    if isinstance(value, int | float):
        return int(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(parsed.timestamp() * 1000)


def parse_decision(entry: Mapping[str, Any]) -> tuple[str, Decision | None]:
    """(id, the decision) from one stream entry, or (id, None) when it says the decision no longer applies."""
    decision_id = str(entry.get("decision_id", entry.get("id", "")))
    scope = str(entry.get("scope", ""))
    action = str(entry.get("action", ""))
    value = str(entry.get("value", "")).strip()
    expires_ms = _ms(entry.get("expires_ms", entry.get("expires_at")))
    gone = bool(entry.get("revoked")) or entry.get("active") is False or entry.get("deleted") is True
    if gone or scope not in SCOPES or action not in ACTIONS or not value:
        return decision_id, None
    if scope in ("ip", "net"):
        # Hitmetrix keys an ip decision by the address's keyed hash and gives the plain address (or CIDR) in
        # ``match`` when it knows it; only that can be compared with a request's address here.
        plain = str(entry.get("match") or value).strip()
        if scope == "ip" or "/" not in plain:
            address = parse_ip(plain)
            if address is None:
                scope = "hashed_ip"  # value stays the keyed hash: only the verdict endpoint can match it
            else:
                scope, value = "ip", str(address)
        else:
            try:
                value = str(ipaddress.ip_network(plain, strict=False))
            except ValueError:
                return decision_id, None
    reason = str(entry.get("reason", ""))[:200]
    return decision_id, Decision(decision_id, scope, value, action, reason, expires_ms)


def _stronger(old: Decision | None, new: Decision) -> Decision:
    return new if old is None or ACTIONS[new.action] > ACTIONS[old.action] else old


class DecisionIndex:
    """What the request path reads: lookups by address, network, user and session. Immutable once built."""

    def __init__(self, decisions: Iterable[Decision]) -> None:
        self.ips: dict[str, Decision] = {}
        self.users: dict[str, Decision] = {}
        self.sessions: dict[str, Decision] = {}
        # (ip version, prefix length) → network address as int → decision
        self.nets: dict[tuple[int, int], dict[int, Decision]] = {}
        self.hashed: dict[str, Decision] = {}  # keyed hash → decision (only its existence matters here)
        count = 0
        for decision in decisions:
            count += 1
            if decision.scope == "hashed_ip":
                self.hashed[decision.value] = decision
            elif decision.scope == "net":
                network = ipaddress.ip_network(decision.value)
                table = self.nets.setdefault((network.version, network.prefixlen), {})
                key = int(network.network_address)
                table[key] = _stronger(table.get(key), decision)
            else:
                by_value = {"ip": self.ips, "user": self.users, "session": self.sessions}[decision.scope]
                by_value[decision.value] = _stronger(by_value.get(decision.value), decision)
        self.size = count
        self.by_address = bool(self.ips or self.nets or self.hashed)

    def match(
        self,
        address: IPAddress | None,
        session_id: str,
        user_of: Callable[[], str],
        now_ms: int,
        verdict: Decision | None = None,
    ) -> Decision | None:
        """The strongest unexpired decision for this request, or None. ``user_of`` is called only when needed;
        ``verdict`` is what the verdict endpoint said about the address, when it was asked."""
        found: Decision | None = None
        candidates: list[Decision | None] = [verdict]
        if address is not None and self.by_address:
            candidates.append(self.ips.get(str(address)))
            bits = 32 if address.version == 4 else 128
            as_int = int(address)
            for (version, prefixlen), table in self.nets.items():
                if version == address.version:
                    shift = bits - prefixlen
                    candidates.append(table.get((as_int >> shift) << shift))
        if session_id and self.sessions:
            candidates.append(self.sessions.get(session_id))
        if self.users:
            user_id = user_of()
            if user_id:
                candidates.append(self.users.get(user_id))
        for candidate in candidates:
            if candidate is not None and (candidate.expires_ms is None or candidate.expires_ms > now_ms):
                found = _stronger(found, candidate)
        return None if found is None or found.action == "allow" else found
