"""Scraping and bulk personal-data access (OWASP OAT-011 scraping; CrowdSec http-crawl-non_statics).

Profile-like pages are reads (GET, pages or API calls, answered below 400) whose route template has a placeholder
(``/members/{id}``) or whose path has a numeric or UUID segment. Per client (entity: the signed-in user when
there is one, else the address), fires on:
- ``detect_scraping_profiles`` distinct profile-like pages read by one session in ``detect_scraping_window_s``,
  or ``detect_scraping_ip_profiles`` by one address (higher: people share addresses behind NAT);
- ``detect_scraping_sequential_ids`` numeric ids each next to an id the same client read in
  ``detect_scraping_long_window_s`` (enumeration: 17, 18, 19 …);
- export endpoints (a path segment or route with "export"): ``detect_scraping_exports`` exports, or exports of
  ``detect_scraping_export_accounts`` distinct accounts (ids in the path, or signed-in users) from one
  address (entity: the address);
- ``detect_scraping_nojs_profiles`` profile-like pages read by a client whose session and address never sent a
  tracker event (a no-JavaScript reader of personal pages).
Ignores verified crawlers, people reading a handful of profiles a minute, many people behind one address each
reading a few, and a person exporting their own data once or twice.
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

from hitmetrix.detect.detectors._common import (
    Evidence,
    Records,
    ScriptSeen,
    add_distinct,
    dict_bytes,
    finding,
    is_browser_event,
    is_static,
    max_entries,
    numeric_id,
    object_id,
    path_of,
    window_text,
)
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import DistinctCounter, SlidingCounter, Throttle

RULE = "scraping"
EXPORT_WORDS = ("export", "download-data", "takeout")
# Most values one record keeps (the oldest go first); every threshold is far below.
IP_PROFILES_KEPT = 5000
IDS_KEPT = 2000
NOJS_PROFILES_KEPT = 1000


def is_export(obs: Observation) -> bool:
    return obs.kind == "request" and _is_export(obs.url, obs.name)


@functools.lru_cache(maxsize=16384)
def _is_export(url: str, name: str) -> bool:
    path = path_of(url).lower()
    return any(word in path or word in name.lower() for word in EXPORT_WORDS)


class Reader:
    """What one address or signed-in user read: profile paths (short window), ids and their sequential hits, and
    profile paths read without JavaScript (long window)."""

    __slots__ = ("ids", "nojs", "profiles", "sequential")

    def __init__(self) -> None:
        self.profiles: dict[str, int] = {}
        self.ids: dict[int, int] = {}
        self.sequential: list[int] = []
        self.nojs: dict[str, int] = {}


def _reader_bytes(reader: Reader) -> int:
    lists = 56 + 40 * len(reader.sequential)
    return 64 + dict_bytes(reader.profiles) + dict_bytes(reader.ids, 32) + dict_bytes(reader.nojs) + lists


class ScrapingDetector:
    rule = RULE

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_scraping_window_s)
        self.long_window_s = float(settings.detect_scraping_long_window_s)
        self.session_threshold = int(settings.detect_scraping_profiles)
        self.ip_threshold = int(settings.detect_scraping_ip_profiles)
        self.sequential_threshold = int(settings.detect_scraping_sequential_ids)
        self.exports_threshold = int(settings.detect_scraping_exports)
        self.export_accounts_threshold = int(settings.detect_scraping_export_accounts)
        self.nojs_threshold = int(settings.detect_scraping_nojs_profiles)
        self.session_profiles = DistinctCounter(self.window_s, n, max_distinct_per_entity=2000)
        self.window_ms = int(self.window_s * 1000)
        self.long_window_ms = int(self.long_window_s * 1000)
        # Per address and per signed-in user, everything the profile checks count, in one LRU entry.
        self.readers: Records[Reader] = Records(n, _reader_bytes)
        self.exports = SlidingCounter(self.long_window_s, n)
        self.export_accounts = DistinctCounter(self.long_window_s, n, max_distinct_per_entity=1000)
        self.js_seen = ScriptSeen(n)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)
        self.long_throttle = Throttle(self.long_window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if is_browser_event(obs):
            self.js_seen.saw(obs)
            return []
        if obs.kind != "request" or obs.crawler.endswith(":verified") or not obs.ip_key:
            return []
        client = (obs.project_id, "u", obs.user_id) if obs.user_id else (obs.project_id, "i", obs.ip_key)
        if is_export(obs):
            return self._export(obs)
        # Pages and API reads alike: a profile scraper often reads the JSON behind the page.
        if obs.method not in ("GET", "HEAD", "") or obs.status >= 400 or is_static(path_of(obs.url)):
            return []
        ident = object_id(obs)
        if not ident:
            return []
        path = path_of(obs.url)
        found: list[Finding] = []
        by_session = self.session_profiles.add((obs.project_id, obs.session_id), path, obs.ts_ms)
        at_ip = self._reader((obs.project_id, "i", obs.ip_key))
        reader = at_ip if not obs.user_id else self._reader(client)
        by_ip = add_distinct(at_ip.profiles, path, obs.ts_ms, obs.ts_ms - self.window_ms, IP_PROFILES_KEPT)
        self._note(client, obs, by_session / self.session_threshold, by_ip / self.ip_threshold)
        reason = ""
        if by_session >= self.session_threshold and self.throttle.ready(("session",) + client, obs.ts_ms):
            reason = f"{by_session} distinct profile pages read by one session in {window_text(self.window_s)} "
            reason += f"(threshold {self.session_threshold})."
        elif by_ip >= self.ip_threshold and self.throttle.ready(("ip",) + client, obs.ts_ms):
            reason = f"{by_ip} distinct profile pages read from one address in {window_text(self.window_s)} "
            reason += f"(threshold {self.ip_threshold})."
        if reason:
            found.append(self._finding(obs, client, "high", [reason], {"profiles": max(by_session, by_ip)}))
        number = numeric_id(ident)
        if number is not None:
            found += self._sequential(obs, client, reader, number)
        if not self._ran_js(obs):
            found += self._nojs(obs, client, reader, path)
        return found

    def _reader(self, key: tuple[int, str, str]) -> Reader:
        reader = self.readers.get(key)
        if reader is None:
            reader = Reader()
        self.readers.put(key, reader)
        return reader

    def _sequential(self, obs: Observation, client: tuple[int, str, str], reader: Reader, number: int) -> list[Finding]:
        cutoff = obs.ts_ms - self.long_window_ms
        ids = reader.ids
        known = ids.get(number, cutoff) > cutoff
        neighbour = ids.get(number - 1, cutoff) > cutoff or ids.get(number + 1, cutoff) > cutoff
        add_distinct(ids, number, obs.ts_ms, cutoff, IDS_KEPT)
        if known or not neighbour:
            return []
        times = reader.sequential
        bisect.insort(times, obs.ts_ms)
        if len(times) > 4 * self.sequential_threshold:
            del times[0]
        run = len(times) - bisect.bisect_right(times, cutoff)
        self._note(client, obs, run / self.sequential_threshold)
        if run < self.sequential_threshold or not self.long_throttle.ready(("seq",) + client, obs.ts_ms):
            return []
        reason = (
            f"{run} profile ids read right next to one already read (latest {number}) in "
            f"{window_text(self.long_window_s)}: enumeration of ids (threshold {self.sequential_threshold})."
        )
        return [self._finding(obs, client, "high", [reason], {"sequential_ids": run, "latest_id": number})]

    def _nojs(self, obs: Observation, client: tuple[int, str, str], reader: Reader, path: str) -> list[Finding]:
        cutoff = obs.ts_ms - self.long_window_ms
        pages = add_distinct(reader.nojs, path, obs.ts_ms, cutoff, NOJS_PROFILES_KEPT)
        self._note(client, obs, pages / self.nojs_threshold)
        if pages < self.nojs_threshold or not self.long_throttle.ready(("nojs",) + client, obs.ts_ms):
            return []
        reason = (
            f"{pages} distinct profile pages read in {window_text(self.long_window_s)} by a client that never ran "
            f"the tracker's JavaScript (threshold {self.nojs_threshold})."
        )
        return [self._finding(obs, client, "medium", [reason], {"profiles": pages})]

    def _export(self, obs: Observation) -> list[Finding]:
        # Keyed by address: one signed-in account exporting is its owner; exports of many accounts from one
        # address are not.
        client = (obs.project_id, "i", obs.ip_key)
        self.evidence.add(client, obs.session_id, obs.ts_ms)
        exports = self.exports.add(client, obs.ts_ms)
        account = object_id(obs) or obs.user_id
        accounts = self.export_accounts.add(client, account, obs.ts_ms) if account else 0
        reasons: list[str] = []
        if exports >= self.exports_threshold:
            reasons.append(
                f"{exports} exports in {window_text(self.long_window_s)} (threshold {self.exports_threshold})."
            )
        if accounts >= self.export_accounts_threshold:
            reasons.append(
                f"Exports of {accounts} distinct accounts in {window_text(self.long_window_s)} "
                f"(threshold {self.export_accounts_threshold})."
            )
        if not reasons or not self.long_throttle.ready(("export",) + client, obs.ts_ms):
            return []
        entity = ("ip", obs.ip_key, obs.ip_display or obs.ip_key)
        numbers = {"exports": exports, "accounts": accounts}
        return [finding(RULE, obs, "high", entity, reasons, numbers, self.evidence.sessions(client))]

    def _note(self, client: tuple[int, str, str], obs: Observation, *progress: float) -> None:
        """Keep the session as evidence once the client is half-way to a threshold (not for every reader)."""
        if max(progress) >= 0.5:
            self.evidence.add(client, obs.session_id, obs.ts_ms)

    def _ran_js(self, obs: Observation) -> bool:
        return self.js_seen.ran_js(obs, obs.ts_ms - self.long_window_s * 1000)

    def _finding(
        self,
        obs: Observation,
        client: tuple[int, str, str],
        severity: str,
        reasons: list[str],
        numbers: dict[str, float],
    ) -> Finding:
        entity = ("user", obs.user_id, obs.user_id) if obs.user_id else ("ip", obs.ip_key, obs.ip_display or obs.ip_key)
        return finding(RULE, obs, severity, entity, reasons, numbers, self.evidence.sessions(client))
