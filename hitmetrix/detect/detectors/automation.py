"""Bots and automation: clients that are scripts, whatever they do (OWASP OAT-011, OAT-019; CrowdSec bad-user-agent).

Catches, each reported once per entity per window:
- browser ``signals`` (one per page): ``navigator.webdriver``, headless hints (a "HeadlessChrome" user agent,
  or two weak hints such as no plugins and no languages: phones have no plugins), a user agent its client hints
  contradict, clicks with no pointer movement at all (and not keyboard activations: fewer keys than clicks),
  typing faster (median interval) or more evenly (median absolute deviation) than a person over at least
  ``detect_automation_key_min_count`` keys — entity: the session;
- clients that never run JavaScript: ``detect_automation_nojs_pages`` page requests from one session with no
  tracker event from that session id (the ``hm_sid`` cookie) or from its address in the window — entity: the address;
- HTTP tools' user agents (curl, python-requests, Go-http-client, Scrapy, HeadlessChrome …) — entity: the address;
- request cadence: ``detect_automation_fast_pages`` pages within ``detect_automation_fast_window_s``, or
  ``detect_automation_regular_intervals`` page intervals whose spread is machine-regular — entity: the address;
- crawlers whose claim failed the reverse-DNS check (``crawler`` ends in ":unverified") — entity: the address.

Ignores: verified crawlers (":verified"), uptime monitors (their own user agents, or any client that keeps to
fewer than ``detect_automation_min_paths`` distinct paths: one URL every N seconds), people behind an address
where some browser ran the tracker, and fast people (a page every second or two with human jitter).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from typing import Any

from hitmetrix.detect.detectors._common import (
    Evidence,
    Records,
    ScriptSeen,
    add_distinct,
    dict_bytes,
    finding,
    ip_entity,
    is_browser_event,
    is_page_request,
    max_entries,
    max_severity,
    path_of,
    user_agent_match,
    window_text,
)
from hitmetrix.detect.detectors.base import Finding
from hitmetrix.detect.observation import Observation
from hitmetrix.detect.state import Throttle

RULE = "automation"
# HTTP libraries and headless browsers: their user agent says a program, not a person, is asking.
TOOL_USER_AGENTS = re.compile(
    r"\b(?:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|okhttp|java/|"
    r"apache-httpclient|libwww-perl|lwp::simple|httpie|node-fetch|axios|undici|got \(|scrapy|"
    r"headlesschrome|phantomjs|selenium|puppeteer|playwright|mechanize|guzzlehttp|ruby|httpclient)",
    re.IGNORECASE,
)
# Monitors announce themselves; they poll one URL and are not the site's adversaries.
MONITOR_USER_AGENTS = re.compile(
    r"uptimerobot|pingdom|statuscake|betteruptime|uptime-kuma|site24x7|kube-probe|elb-healthchecker|googlehc|"
    r"nagios|zabbix|datadog|newrelicpinger|checkly|hetrixtools|freshping",
    re.IGNORECASE,
)
# A headless browser naming itself is proof; the other hints are weak alone (phones list no plugins).
MAX_PATHS_KEPT = 64  # distinct paths per session counted; the thresholds that use them are far lower
STRONG_HEADLESS_HINTS = ("headless", "phantom")
WEAK_HEADLESS_HINTS_NEEDED = 2


class Client:
    """One session's recent requests: its page times (sorted, bounded) and distinct paths with their last time."""

    __slots__ = ("page_times", "paths")

    def __init__(self) -> None:
        self.page_times: list[int] = []
        self.paths: dict[str, int] = {}

    def add_path(self, path: str, ts_ms: int, cutoff_ms: int) -> int:
        """Record a request for ``path``; the distinct paths requested after ``cutoff_ms``."""
        return add_distinct(self.paths, path, ts_ms, cutoff_ms, MAX_PATHS_KEPT)


def _client_bytes(client: Client) -> int:
    return 48 + 56 + 40 * len(client.page_times) + dict_bytes(client.paths)


class AutomationDetector:
    rule = RULE

    def __init__(self, settings: Any) -> None:
        n = max_entries(settings)
        self.window_s = float(settings.detect_automation_window_s)
        self.window_ms = int(self.window_s * 1000)
        self.nojs_pages = int(settings.detect_automation_nojs_pages)
        self.min_paths = int(settings.detect_automation_min_paths)
        self.fast_pages = int(settings.detect_automation_fast_pages)
        self.fast_window_s = float(settings.detect_automation_fast_window_s)
        self.fast_window_ms = int(self.fast_window_s * 1000)
        self.regular_intervals = int(settings.detect_automation_regular_intervals)
        self.regular_max_cv = float(settings.detect_automation_regular_max_cv)
        self.key_min = int(settings.detect_automation_key_min_count)
        self.key_median_ms = float(settings.detect_automation_key_median_ms)
        self.key_mad_ms = float(settings.detect_automation_key_mad_ms)
        self.clicks_without_move = int(settings.detect_automation_clicks_without_move)
        self.js_seen = ScriptSeen(n)  # (project, "s"|"i", key) -> last browser event
        # Enough page times for every page check (counts beyond it are not needed: each threshold is below it).
        self.times_kept = max(self.nojs_pages, self.fast_pages, self.regular_intervals + 1)
        # One entry per session holding all its request state: one LRU touch per request, not four.
        self.clients: Records[Client] = Records(n, _client_bytes)
        self.evidence = Evidence(n)
        self.throttle = Throttle(self.window_s, n)

    def observe(self, obs: Observation) -> list[Finding]:
        if is_browser_event(obs):
            self.js_seen.saw(obs)
            return self._signals(obs) if obs.kind == "signals" else []
        if obs.kind != "request" or obs.crawler.endswith(":verified") or not obs.ip_key:
            return []
        if user_agent_match(MONITOR_USER_AGENTS, obs.user_agent):
            return []
        session = (obs.project_id, obs.session_id)
        client = self.clients.get(session)
        if client is None:
            client = Client()
        self.clients.put(session, client)
        distinct_paths = client.add_path(path_of(obs.url), obs.ts_ms, obs.ts_ms - self.window_ms)
        found: list[Finding] = []
        if obs.crawler.endswith(":unverified"):
            found += self._fake_crawler(obs)
        tool = user_agent_match(TOOL_USER_AGENTS, obs.user_agent) if distinct_paths >= self.min_paths else ""
        if tool:
            found += self._tool(obs, tool, distinct_paths)
        if is_page_request(obs):
            found += self._pages(obs, client, distinct_paths)
        return found

    def _once(self, obs: Observation, check: str, entity_value: str) -> bool:
        return self.throttle.ready((obs.project_id, check, entity_value), obs.ts_ms)

    def _signals(self, obs: Observation) -> list[Finding]:
        props = obs.props
        reasons: list[str] = []
        severity = "low"
        numbers: dict[str, float] = {}
        if props.get("webdriver") is True:
            reasons.append("The browser reports navigator.webdriver = true (it is driven by automation).")
            severity = max_severity(severity, "high")
            numbers["webdriver"] = 1
        headless = props.get("headless")
        hints = [str(h) for h in headless[:8]] if isinstance(headless, list) else []
        strong = [h for h in hints if h.lower().startswith(STRONG_HEADLESS_HINTS)]
        if strong or len(hints) >= WEAK_HEADLESS_HINTS_NEEDED:
            reasons.append(f"{len(hints)} headless-browser hints: {', '.join(hints)}.")
            severity = max_severity(severity, "high" if strong else "medium")
            numbers["headless_hints"] = len(hints)
        if props.get("ua_ch_mismatch") is True:
            reasons.append("The user agent contradicts the browser's client hints (a spoofed user agent).")
            severity = max_severity(severity, "medium")
            numbers["ua_ch_mismatch"] = 1
        clicks, moves, blind = _int(props, "clicks"), _int(props, "pointer_moves"), _int(props, "clicks_without_move")
        keys = _int(props, "keys")
        # Enter or Space on a focused button is a click without the pointer: keyboard users press at least as
        # many keys as they "click", so only clicks that outnumber the keys pressed are suspect.
        if blind >= self.clicks_without_move and moves == 0 and props.get("touch") is not True and keys < blind:
            reasons.append(
                f"{blind} of {clicks} clicks came with no pointer movement at all on the page "
                f"(threshold {self.clicks_without_move})."
            )
            severity = max_severity(severity, "medium")
            numbers["clicks_without_move"] = blind
        cadence = props.get("key_interval_ms")
        if keys >= self.key_min and isinstance(cadence, dict):
            median, mad = _num(cadence, "median"), _num(cadence, "mad")
            if median is not None and median < self.key_median_ms:
                reasons.append(
                    f"{keys} keys typed {median:g} ms apart (median), faster than a person "
                    f"(threshold {self.key_median_ms:g} ms)."
                )
                numbers["key_median_ms"] = median
                severity = max_severity(severity, "high")
            elif mad is not None and mad < self.key_mad_ms:
                reasons.append(
                    f"{keys} keys typed with a spread of {mad:g} ms (median absolute deviation), more even than "
                    f"a person (threshold {self.key_mad_ms:g} ms)."
                )
                numbers["key_mad_ms"] = mad
                severity = max_severity(severity, "high")
            if reasons and "keys" not in numbers:
                numbers["keys"] = keys
        if not reasons or not self._once(obs, "signals", obs.session_id):
            return []
        entity = ("session", obs.session_id, obs.session_id)
        return [finding(RULE, obs, severity, entity, reasons, numbers)]

    def _fake_crawler(self, obs: Observation) -> list[Finding]:
        if not self._once(obs, "crawler", obs.ip_key):
            return []
        claimed = obs.crawler.split(":", 1)[0]
        reason = f"Claims to be the crawler {claimed!r}, but the address failed its reverse-DNS check."
        return [finding(RULE, obs, "medium", ip_entity(obs), [reason], {"fake_crawler": 1})]

    def _tool(self, obs: Observation, tool: str, distinct_paths: int) -> list[Finding]:
        if not self._once(obs, "tool", obs.ip_key):
            return []
        reason = (
            f"The user agent names the HTTP tool {tool!r}; it fetched {distinct_paths} distinct paths in "
            f"{window_text(self.window_s)} (threshold {self.min_paths})."
        )
        return [finding(RULE, obs, "medium", ip_entity(obs), [reason], {"distinct_paths": distinct_paths})]

    def _pages(self, obs: Observation, client: Client, distinct_paths: int) -> list[Finding]:
        found: list[Finding] = []
        times = client.page_times
        bisect.insort(times, obs.ts_ms)  # batches may arrive out of order
        if len(times) > self.times_kept:
            del times[0]
        pages = len(times) - bisect.bisect_right(times, obs.ts_ms - self.window_ms)
        fast = len(times) - bisect.bisect_right(times, obs.ts_ms - self.fast_window_ms)
        if pages * 2 >= self.nojs_pages or fast * 2 >= self.fast_pages:  # evidence only for clients half-way there
            self.evidence.add((obs.project_id, obs.ip_key), obs.session_id, obs.ts_ms)
        nojs = pages >= self.nojs_pages and distinct_paths >= self.min_paths and not self._ran_js(obs)
        if nojs and self._once(obs, "nojs", obs.ip_key):
            reason = (
                f"{pages} page requests in {window_text(self.window_s)} ({distinct_paths} distinct paths) and no "
                f"tracker event from its session or address: it never ran JavaScript (threshold {self.nojs_pages})."
            )
            numbers = {"pages": pages, "distinct_paths": distinct_paths}
            found.append(self._ip_finding(obs, "medium", reason, numbers))
        if fast >= self.fast_pages and self._once(obs, "fast", obs.ip_key):
            reason = (
                f"{fast} page requests within {window_text(self.fast_window_s)}, faster than a person reads "
                f"(threshold {self.fast_pages})."
            )
            found.append(self._ip_finding(obs, "medium", reason, {"pages": fast}))
        # Judged on every 4th page only: the intervals overlap, so a timer is still caught within 3 pages.
        recent = times[-self.regular_intervals - 1 :]
        if len(recent) == self.regular_intervals + 1 and distinct_paths >= self.min_paths and len(times) % 4 == 0:
            found += self._regular(obs, recent)
        return found

    def _regular(self, obs: Observation, times: list[int]) -> list[Finding]:
        intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
        mean = sum(intervals) / len(intervals)
        if mean <= 0:
            return []
        cv = math.sqrt(sum((x - mean) ** 2 for x in intervals) / len(intervals)) / mean
        if cv >= self.regular_max_cv or not self._once(obs, "regular", obs.ip_key):
            return []
        reason = (
            f"{len(intervals)} page intervals of {mean / 1000:.1f} s on average vary by only {cv * 100:.1f} % "
            f"(threshold {self.regular_max_cv * 100:g} %): a timer, not a person."
        )
        return [self._ip_finding(obs, "medium", reason, {"intervals": len(intervals), "cv": round(cv, 4)})]

    def _ran_js(self, obs: Observation) -> bool:
        return self.js_seen.ran_js(obs, obs.ts_ms - self.window_s * 1000)

    def _ip_finding(self, obs: Observation, severity: str, reason: str, numbers: Mapping[str, float]) -> Finding:
        sessions = self.evidence.sessions((obs.project_id, obs.ip_key))
        return finding(RULE, obs, severity, ip_entity(obs), [reason], numbers, sessions)


def _int(props: Any, name: str) -> int:
    value = props.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(props: Any, name: str) -> float | None:
    value = props.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
