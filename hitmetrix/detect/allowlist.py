"""The projects' allow-lists, compiled for the engine: is this observation or this finding's entity allowed?

Detection never sees a full address, only its keyed hash and its /24 or /64, so
entries are compiled into the same terms: an ``ip`` entry becomes its
``ip_key``; a ``cidr`` entry as wide as the /24 (/64) or wider matches every
observation whose network lies inside it, and a narrower IPv4 one is expanded
into the keyed hashes of its addresses (at most 256). A ``user_agent`` entry
matches user agents containing it (case-insensitive, e.g. "UptimeRobot"); a
``user`` entry matches a signed-in user id, and finding entities for that
user id or for the username with that text.

An allowed observation is not given to any detector (an uptime monitor adds to
no count); a finding whose entity is allowed is dropped. The engine reloads the
lists when an entry is added or removed (checked every few seconds).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.keys import ip_key, user_key
from hitmetrix.detect.observation import Observation
from hitmetrix.store.security import MAX_EXPANDED_ADDRESSES, AllowEntry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_CACHED_NETS = 10_000


@dataclass
class ProjectAllowList:
    ip_keys: set[str] = field(default_factory=set)
    networks: list[Network] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)  # lower-cased
    user_ids: set[str] = field(default_factory=set)
    user_keys: set[str] = field(default_factory=set)
    _net_cache: dict[str, bool] = field(default_factory=dict)

    def add(self, entry: AllowEntry, secret: bytes) -> None:
        if entry.kind == "ip":
            self.ip_keys.add(ip_key(secret, entry.value))
        elif entry.kind == "cidr":
            network = ipaddress.ip_network(entry.value, strict=False)
            wide = 24 if network.version == 4 else 64
            if network.prefixlen <= wide:
                self.networks.append(network)
            elif network.num_addresses <= MAX_EXPANDED_ADDRESSES:
                self.ip_keys.update(ip_key(secret, address) for address in network)
        elif entry.kind == "user_agent":
            self.user_agents.append(entry.value.lower())
        elif entry.kind == "user":
            self.user_ids.add(entry.value)
            self.user_keys.add(user_key(secret, entry.value))

    def net_allowed(self, cidr: str) -> bool:
        if not self.networks or not cidr:
            return False
        known = self._net_cache.get(cidr)
        if known is not None:
            return known
        try:
            net = ipaddress.ip_network(cidr, strict=False)
            allowed = any(net.version == n.version and net.subnet_of(n) for n in self.networks)  # type: ignore[arg-type]
        except ValueError:
            allowed = False
        if len(self._net_cache) >= _MAX_CACHED_NETS:
            self._net_cache.clear()
        self._net_cache[cidr] = allowed
        return allowed

    def observation_allowed(self, obs: Observation) -> bool:
        if obs.ip_key and obs.ip_key in self.ip_keys:
            return True
        if obs.user_id and obs.user_id in self.user_ids:
            return True
        if self.user_agents and obs.user_agent:
            agent = obs.user_agent.lower()
            if any(part in agent for part in self.user_agents):
                return True
        return self.net_allowed(obs.ip_net)

    def entity_allowed(self, finding: Finding) -> bool:
        kind, value = finding.entity_kind, finding.entity_value
        if kind == "ip":
            return value in self.ip_keys
        if kind == "net":
            return self.net_allowed(value)
        if kind == "user":
            return value in self.user_ids
        if kind == "username":
            return value in self.user_keys
        return False


class AllowLists:
    """Every project's compiled allow-list; projects without entries cost nothing."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._by_project: dict[int, ProjectAllowList] = {}

    def load(self, entries: list[AllowEntry]) -> None:
        by_project: dict[int, ProjectAllowList] = {}
        for entry in entries:
            by_project.setdefault(entry.project_id, ProjectAllowList()).add(entry, self._secret)
        self._by_project = by_project

    def __len__(self) -> int:
        return len(self._by_project)

    def observation_allowed(self, obs: Observation) -> bool:
        project = self._by_project.get(obs.project_id)
        return project is not None and project.observation_allowed(obs)

    def entity_allowed(self, finding: Finding) -> bool:
        project = self._by_project.get(finding.project_id)
        return project is not None and project.entity_allowed(finding)
