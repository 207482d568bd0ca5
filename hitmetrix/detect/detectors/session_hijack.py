"""Session hijacking: one session id used by two clients (OWASP session hijacking; stolen ``hm_sid`` cookies).

Per session id (entity: the session), within its life (state is forgotten after
``detect_session_hijack_life_s`` idle, the tracker cookie's sliding lifetime), fires when:
- a second user agent uses it, or the tracker's device fingerprint (``signals``) changes on another /24 or /64
  (on the same network a changed fingerprint is a zoomed page: the hash includes devicePixelRatio) — high;
- a second network uses it — a different /24 or /64 with a different AS (or no AS known), as seen by one
  source (tracker or server: a CDN in front of the site is no second client) — and either the session switches
  between networks ``MIN_SWITCHES`` times, each within ``INTERLEAVE_S`` of the other network's last request
  (two clients taking turns), or the second network is in another country — high.
Ignores a phone moving from Wi-Fi to mobile data (a switch or two, same country), a new address in the same
network, and the per-day sessions Hitmetrix derives for cookie-less clients ("s-…", keyed by address and user
agent, so they cannot change either).
"""

from __future__ import annotations

from typing import Any

from hitmetrix.detect.detectors._common import finding, max_entries
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import LastSeen, Throttle

RULE = "session_hijack"
INTERLEAVE_S = 120  # a switch back within 2 min of the other network's last request
# A phone leaving Wi-Fi switches once; two clients taking turns switch every few requests.
MIN_SWITCHES = 3
MAX_NETWORKS = 4


class Networks:
    """The networks one source (the tracker, or the server) saw a session on, and how often it switched."""

    __slots__ = ("last_net", "networks", "switches")

    def __init__(self) -> None:
        self.last_net = ""
        self.switches = 0
        # net -> [asn, country, last ts], oldest first
        self.networks: dict[str, list[Any]] = {}


class SessionState:
    __slots__ = ("by_source", "device", "device_net", "last_ts", "user_agent")

    def __init__(self, user_agent: str, device: str, ts_ms: int) -> None:
        self.user_agent = user_agent
        self.device = device
        self.device_net = ""
        self.last_ts = ts_ms
        # Networks are compared within one source: the tracker sees the browser's own address, a server behind a
        # CDN whose proxy rule is not set sees the CDN's, and that difference is no second client.
        self.by_source: dict[str, Networks] = {}


class SessionHijackDetector:
    rule = RULE

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.life_ms = int(float(settings.detect_session_hijack_life_s) * 1000)
        self.sessions: LastSeen[SessionState] = LastSeen(n, value_bytes=600)
        self.throttle = Throttle(float(settings.detect_session_hijack_life_s), n)

    def observe(self, obs: Observation) -> list[Finding]:
        if not obs.session_id or obs.session_id.startswith("s-"):
            return []
        key = (obs.project_id, obs.session_id)
        device = obs.device if obs.kind == "signals" else ""  # a custom event may carry a "device" prop of its own
        state = self.sessions.get(key)
        if (
            state is not None
            and not device
            and obs.ip_net
            and obs.user_agent == state.user_agent
            and obs.ts_ms - state.last_ts <= self.life_ms
        ):
            # The common case, the next event of a batch: same client, same network as its last event. Nothing
            # can be new, so only the times move (what the full path below would do, without its lookups).
            networks = state.by_source.get("server" if obs.source else "browser")
            if networks is not None and networks.last_net == obs.ip_net:
                networks.networks[obs.ip_net][2] = obs.ts_ms
                state.last_ts = max(state.last_ts, obs.ts_ms)
                return []
        if state is None or obs.ts_ms - state.last_ts > self.life_ms:
            state = SessionState(obs.user_agent, device, obs.ts_ms)
            state.device_net = obs.ip_net if device else ""
            self.sessions.put(key, state)
        reasons: list[str] = []
        numbers: dict[str, float] = {}
        if obs.user_agent and state.user_agent and obs.user_agent != state.user_agent:
            reasons.append(
                f"The session is used by a second user agent: {obs.user_agent[:80]!r} after {state.user_agent[:80]!r}."
            )
            numbers["user_agents"] = 2
        state.user_agent = state.user_agent or obs.user_agent
        if device and state.device and device != state.device and obs.ip_net != state.device_net:
            reasons.append(
                f"The session's device fingerprint changed from {state.device} ({state.device_net}) to "
                f"{device} ({obs.ip_net})."
            )
            numbers["devices"] = 2
        if device and not state.device:
            state.device, state.device_net = device, obs.ip_net
        if obs.ip_net:
            side = "server" if obs.source else "browser"
            networks = state.by_source.get(side)
            if networks is None:
                networks = state.by_source[side] = Networks()
            reasons += self._network(obs, networks, numbers)
        state.last_ts = max(state.last_ts, obs.ts_ms)
        if not reasons or not self.throttle.ready(key, obs.ts_ms):
            return []
        sessions = ((obs.session_id, obs.ts_ms),)
        return [finding(RULE, obs, "high", ("session", obs.session_id, obs.session_id), reasons, numbers, sessions)]

    def _network(self, obs: Observation, state: Networks, numbers: dict[str, float]) -> list[str]:
        nets = state.networks
        here = nets.get(obs.ip_net)
        reasons: list[str] = []
        if here is None:
            if len(nets) >= MAX_NETWORKS:
                del nets[next(iter(nets))]
            nets[obs.ip_net] = here = [obs.asn, obs.country, obs.ts_ms]
            first_net, first = next(iter(nets.items()))
            moved = first is not here and _other_network(first[0], obs.asn)
            if moved and first[1] and obs.country and obs.country != first[1]:
                reasons.append(
                    f"The session moved from {first_net} ({first[1]}) to {obs.ip_net} ({obs.country}), "
                    f"another network in another country, {(obs.ts_ms - first[2]) / 60_000:.0f} min after "
                    "its last use there."
                )
                numbers["networks"] = len(nets)
        previous = nets.get(state.last_net) if state.last_net != obs.ip_net else None
        if previous is not None and _other_network(previous[0], here[0]):
            gap_s = (obs.ts_ms - previous[2]) / 1000
            if gap_s <= INTERLEAVE_S:
                state.switches += 1
                if state.switches >= MIN_SWITCHES:
                    reasons.append(
                        f"The session switched {state.switches} times between {len(nets)} networks, each time "
                        f"within {INTERLEAVE_S} s of the other's last request (threshold {MIN_SWITCHES}): two "
                        "clients taking turns."
                    )
                    numbers["switches"] = state.switches
                    numbers["networks"] = len(nets)
        here[2] = obs.ts_ms
        state.last_net = obs.ip_net
        return reasons


def _other_network(asn_a: int, asn_b: int) -> bool:
    """Another operator's network (an address change inside one AS is a renumbering, not a second client)."""
    return asn_a != asn_b or asn_a == 0
