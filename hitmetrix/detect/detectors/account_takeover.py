"""Account takeover: a sign-in that is probably not the account's owner (OWASP OAT-007/OAT-008 aftermath).

Three checks on successful sign-ins, keyed on the username's keyed hash (entity: the username):
- success after ``detect_account_takeover_failures`` failures within ``detect_account_takeover_window_s``
  (a guessed or stuffed password that worked; fail2ban's maxretry is 5) — high;
- a new device (user agent) AND a new country or network operator for an account that already has
  ``detect_account_takeover_min_history`` successful sign-ins — high for a new country, medium for a new AS;
- impossible travel: two successful sign-ins (or, for a signed-in ``user_id``, two events of its sessions —
  entity: the user) from countries whose centroids are too far apart for the time between them: the distance
  less ``detect_account_takeover_travel_slack_km`` (a country is one centroid point, see geo_centroids) over
  the time must exceed ``detect_account_takeover_max_speed_kmh``.
The per-account history (at most 8 devices, countries and ASes each) lives in a bounded LRU. Ignores a person
who mistypes a few times, a traveller on their usual device, a new phone at home, and plausible journeys.
"""

from __future__ import annotations

import zlib
from typing import Any

from hitmetrix.detect.detectors._common import Evidence, asn_label, finding, max_entries, window_text
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.geo_centroids import distance_km
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, LastSeen, SlidingCounter, Throttle

RULE = "account_takeover"
HISTORY_ITEMS = 8
MS_PER_HOUR = 3_600_000


class History:
    """An account's usual devices, countries and networks, and where and when it last signed in (immutable)."""

    __slots__ = ("asns", "countries", "devices", "last_country", "last_ts", "logins")

    def __init__(
        self,
        devices: tuple[int, ...] = (),
        countries: tuple[str, ...] = (),
        asns: tuple[int, ...] = (),
        logins: int = 0,
        last_country: str = "",
        last_ts: int = 0,
    ) -> None:
        self.devices, self.countries, self.asns = devices, countries, asns
        self.logins, self.last_country, self.last_ts = logins, last_country, last_ts

    def after(self, device: int, country: str, asn: int, ts_ms: int) -> History:
        return History(
            _remember(self.devices, device),
            _remember(self.countries, country) if country else self.countries,
            _remember(self.asns, asn) if asn else self.asns,
            self.logins + 1,
            country or self.last_country,
            ts_ms if country else self.last_ts,
        )


def _remember(items: tuple[Any, ...], item: Any) -> tuple[Any, ...]:
    if item in items:
        return items
    return (items + (item,))[-HISTORY_ITEMS:]


class AccountTakeoverDetector:
    rule = RULE

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_account_takeover_window_s)
        self.failures_threshold = int(settings.detect_account_takeover_failures)
        self.min_history = int(settings.detect_account_takeover_min_history)
        self.max_speed_kmh = float(settings.detect_account_takeover_max_speed_kmh)
        self.slack_km = float(settings.detect_account_takeover_travel_slack_km)
        self.failures = SlidingCounter(self.window_s, n)
        self.failure_sources = DistinctCounter(self.window_s, n, max_distinct_per_entity=1000)
        self.evidence = Evidence(n)
        self.history: LastSeen[History] = LastSeen(n, value_bytes=400)
        self.user_places: LastSeen[tuple[str, int, str]] = LastSeen(n, value_bytes=160)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if obs.kind == "auth":
            if obs.name != "signin" or not obs.user_key:
                return []
            return self._signin(obs)
        if obs.user_id and obs.country:
            return self._user_event(obs)
        return []

    def _signin(self, obs: Observation) -> list[Finding]:
        key = (obs.project_id, obs.user_key)
        if not obs.ok:
            self.failures.add(key, obs.ts_ms)
            self.failure_sources.add(key, obs.ip_key or obs.session_id, obs.ts_ms)
            self.evidence.add(key, obs.session_id, obs.ts_ms)
            return []
        label = obs.user_display or obs.user_key
        entity = ("username", obs.user_key, label)
        found: list[Finding] = []
        failures = self.failures.count(key, obs.ts_ms)
        if failures >= self.failures_threshold and self.throttle.ready(("failures",) + key, obs.ts_ms):
            sources = self.failure_sources.count(key, obs.ts_ms)
            reasons = [
                f"{label} signed in after {failures} failed sign-ins in {window_text(self.window_s)} "
                f"(threshold {self.failures_threshold}), from {sources} "
                f"{'address' if sources == 1 else 'addresses'}."
            ]
            sessions = self.evidence.sessions(key) + ((obs.session_id, obs.ts_ms),)
            numbers = {"failures": failures, "sources": sources}
            found.append(finding(RULE, obs, "high", entity, reasons, numbers, sessions))
        device = zlib.crc32(obs.user_agent.encode()) if obs.user_agent else 0
        history = self.history.get(key) or History()
        if history.logins >= self.min_history:
            found += self._new_device(obs, history, device, entity)
            found += self._travel(obs, entity, history.last_country, history.last_ts, "sign-in")
        self.history.put(key, history.after(device, obs.country, obs.asn, obs.ts_ms))
        return found

    def _new_device(
        self, obs: Observation, history: History, device: int, entity: tuple[str, str, str]
    ) -> list[Finding]:
        if not device or device in history.devices:
            return []
        new_country = bool(obs.country) and bool(history.countries) and obs.country not in history.countries
        new_asn = bool(obs.asn) and bool(history.asns) and obs.asn not in history.asns
        if not (new_country or new_asn) or not self.throttle.ready(("new", obs.project_id) + entity, obs.ts_ms):
            return []
        reasons = [
            f"{entity[2]} signed in from a device not seen in its {history.logins} earlier sign-ins "
            f"({len(history.devices)} known {'device' if len(history.devices) == 1 else 'devices'})."
        ]
        if new_country:
            reasons.append(f"And from a new country, {obs.country} (known: {', '.join(history.countries)}).")
        if new_asn:
            known = ", ".join(f"AS{a}" for a in history.asns)
            reasons.append(f"And from a new network, {asn_label(obs)} (known: {known}).")
        numbers = {
            "prior_logins": history.logins,
            "known_devices": len(history.devices),
            "new_country": int(new_country),
        }
        return [finding(RULE, obs, "high" if new_country else "medium", entity, reasons, numbers)]

    def _user_event(self, obs: Observation) -> list[Finding]:
        key = (obs.project_id, obs.user_id)
        last = self.user_places.put(key, (obs.country, obs.ts_ms, obs.session_id))
        if last is None or last[0] == obs.country:
            return []
        entity = ("user", obs.user_id, obs.user_id)
        return self._travel(obs, entity, last[0], last[1], "session event", last[2])

    def _travel(
        self,
        obs: Observation,
        entity: tuple[str, str, str],
        last_country: str,
        last_ts: int,
        what: str,
        last_session: str = "",
    ) -> list[Finding]:
        if not last_country or not obs.country or last_country == obs.country:
            return []
        km = distance_km(last_country, obs.country)
        if km is None:
            return []
        hours = max(obs.ts_ms - last_ts, 60_000) / MS_PER_HOUR  # clocks and batching blur the first minute
        speed_kmh = max(0.0, km - self.slack_km) / hours
        if speed_kmh <= self.max_speed_kmh or not self.throttle.ready(("travel", obs.project_id) + entity, obs.ts_ms):
            return []
        minutes = (obs.ts_ms - last_ts) / 60_000
        reasons = [
            f"{entity[2]}: a {what} from {obs.country} {minutes:.0f} min after one from {last_country}, "
            f"{km:.0f} km apart: {speed_kmh:.0f} km/h needed (after {self.slack_km:g} km of slack; "
            f"threshold {self.max_speed_kmh:g} km/h).",
        ]
        sessions: tuple[tuple[str, int], ...] = ((last_session, last_ts),) if last_session else ()
        sessions += ((obs.session_id, obs.ts_ms),)
        numbers = {"distance_km": round(km), "minutes": round(minutes, 1), "speed_kmh": round(speed_kmh)}
        return [finding(RULE, obs, "high", entity, reasons, numbers, sessions)]
