"""Runs the labelled scenarios against a real server and scores every detector on them.

The scenarios run concurrently (each in its own thread, its own addresses and accounts) while a watcher polls
the demo project's alerts through the security JSON API every ``POLL_S`` and notes when each alert became
visible. After the traffic, it waits until detection has observed everything the server spooled (its event
count unchanged and no sealed segment left behind for ``QUIET_S``), then attributes each alert to the scenario
whose entity it names (address key, /24, operator, username key, member id, session) or, failing that, whose
sessions its evidence lists. Time to alert is measured from the answer of the scenario's request that carried
the finding's event (the first one answered at or after the alert's first_seen_ms) to the alert being visible.
"""

from __future__ import annotations

import concurrent.futures
import random
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios.catalogue import GEO_EXPECTED, GOOGLEBOT_ADDRESS, MEMBERS, Context, Scenario
from bench.scenarios.server import DemoServer
from bench.scenarios.visitor import now_ms
from hitmetrix.capture.geo import lookup_geo
from hitmetrix.capture.network import parse_ip
from hitmetrix.capture.server import timeline_session_id
from hitmetrix.detect.detectors import DETECTORS
from hitmetrix.detect.keys import install_secret, ip_key, ip_net, user_key

RULES: tuple[str, ...] = tuple(str(getattr(make, "rule")) for make in DETECTORS)  # noqa: B009 - a class attribute
# Where a real attack takes hours, the window is shortened so the run takes a minute; every other detector
# setting keeps its default. Printed with the results.
SETTINGS = {
    "detect_credential_stuffing_window_s": (
        "10",
        "600 s by default. Password spraying is told from stuffing by staying under 10 usernames per stuffing "
        "window; a real spray takes an hour or more, so the window is cut 60-fold and the spray paced to match.",
    ),
}
POLL_S = 0.1
QUIET_S = 3.0  # the SDK flushes every 0.5 s and the spool seals every 1 s: nothing new for 3 s is all in
SETTLE_MAX_S = 40.0


@dataclass
class Watched:
    """An alert as last read, and when (wall-clock ms) the watcher first saw it."""

    alert: dict[str, Any]
    visible_ms: int


class AlertWatcher:
    """Polls the alerts API in a thread of its own until stopped."""

    def __init__(self, server: DemoServer) -> None:
        self.server = server
        self.seen: dict[int, Watched] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.poll()  # the final state

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self) -> None:
        try:
            alerts = self.server.alerts()
        except Exception:  # noqa: BLE001 - a failed poll is counted and retried; the run goes on
            self.errors += 1
            return
        at = now_ms()
        for alert in alerts:
            known = self.seen.get(alert["id"])
            if known is None:
                self.seen[alert["id"]] = Watched(alert, at)
            else:
                known.alert = alert


@dataclass
class Outcome:
    scenario: Scenario
    started_ms: int = 0
    finished_ms: int = 0
    error: str = ""
    entities: set[tuple[str, str]] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    alerts: list[Watched] = field(default_factory=list)


def run_one(scenario: Scenario, server: DemoServer, quick: bool, seed: int) -> Outcome:
    outcome = Outcome(scenario, started_ms=now_ms())
    ctx = Context(server.url, server.public_key, scenario.log, random.Random(f"{seed}:{scenario.name}"), quick)
    try:
        scenario.run(ctx)
    except Exception:  # noqa: BLE001 - a broken scenario is reported, the others go on
        outcome.error = traceback.format_exc(limit=4)
    outcome.finished_ms = now_ms()
    return outcome


def identify(outcome: Outcome, secret: bytes) -> None:
    """The entities (kind, value) and session ids the scenario's alerts can name."""
    log = outcome.scenario.log
    members_by_email = {m.email: m.id for m in MEMBERS.values()}
    days = {action.start_ms for action in log.actions[:1] + log.actions[-1:]}
    for address in log.addresses:
        outcome.entities.add(("ip", ip_key(secret, address)))
        outcome.entities.add(("net", ip_net(address)))
        org = lookup_geo(parse_ip(address)).as_org
        if org:
            outcome.entities.add(("asn", org))
    for address, agent in log.user_agents:
        for ts in days:
            outcome.sessions.add(timeline_session_id(secret, address, agent, ts))
    for username in log.usernames:
        outcome.entities.add(("username", user_key(secret, username)))
        if username in members_by_email:
            outcome.entities.add(("user", str(members_by_email[username])))
    outcome.sessions |= log.sessions
    outcome.entities |= {("session", sid) for sid in outcome.sessions}


def attribute(outcomes: list[Outcome], watched: list[Watched]) -> list[Watched]:
    """Give each alert to its scenario; the alerts no scenario explains."""
    unexplained = []
    for item in watched:
        alert = item.alert
        entity = (alert["entity_kind"], alert["entity_value"])
        evidence = {sid for sid, _ in alert.get("sessions", [])}
        owners = [o for o in outcomes if entity in o.entities]
        if len(owners) != 1:
            by_evidence = [o for o in (owners or outcomes) if evidence & o.sessions]
            owners = by_evidence or owners
        if not owners:
            unexplained.append(item)
        for owner in owners:
            owner.alerts.append(item)
    return unexplained


def time_to_alert_ms(outcome: Outcome, item: Watched) -> float:
    """From the answer of the request that carried the finding's event to the alert being visible."""
    first_seen = int(item.alert["first_seen_ms"])
    answers = sorted(a.answered_ms for a in outcome.scenario.log.actions)
    trigger = next((t for t in answers if t >= first_seen), answers[-1] if answers else first_seen)
    return float(max(0, item.visible_ms - trigger))


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def settle(server: DemoServer, deadline_s: float) -> None:
    """Until detection has observed all the traffic: its event count still for QUIET_S, nothing sealed behind."""
    end = time.monotonic() + deadline_s
    last: tuple[int, int] | None = None
    still_since = time.monotonic()
    while time.monotonic() < end:
        detection = server.health().get("detection", {})
        state = (int(detection.get("detect_counters", {}).get("events", 0)),
                 int(detection.get("detect_segments_behind", 0)))
        if state != last or state[1]:
            last, still_since = state, time.monotonic()
        elif time.monotonic() - still_since >= QUIET_S:
            return
        time.sleep(POLL_S)


def check_geo(addresses: set[str]) -> list[str]:
    """The bundled database must place the scenarios' addresses where the scenarios need them."""
    problems = []
    for address in sorted(addresses):
        found = lookup_geo(parse_ip(address))
        for prefix, (country, org) in GEO_EXPECTED.items():
            if address.startswith(prefix) and (found.country, found.as_org) != (country, org):
                problems.append(f"{address} is {found.country}/{found.as_org!r}, expected {country}/{org!r}")
    return problems


def run_scenarios(scenarios: list[Scenario], *, work_dir: Path | None = None, quick: bool = False,
                  workers: int = 8, seed: int = 8) -> dict[str, Any]:
    """Start a server, run ``scenarios``, score them; the results as a JSON-able dict."""
    with tempfile.TemporaryDirectory(prefix="hm-scenarios-") as tmp:
        base = work_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        dns = [f"{GOOGLEBOT_ADDRESS} crawl-{GOOGLEBOT_ADDRESS.replace('.', '-')}.googlebot.com"]
        server = DemoServer(base / "data", {k: v for k, (v, _) in SETTINGS.items()}, dns)
        try:
            server.start()
            watcher = AlertWatcher(server)
            watcher.start()
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run_one, s, server, quick, seed) for s in scenarios]
                outcomes = [f.result() for f in futures]
            traffic_s = time.monotonic() - started
            settle(server, SETTLE_MAX_S)
            watcher.stop()
            health = server.health().get("detection", {})
            secret = install_secret(server.data_dir)
        finally:
            server.stop()
        log_text = server.log_tail(n=10**9)
    for outcome in outcomes:
        identify(outcome, secret)
    geo_problems = check_geo({a for o in outcomes for a in o.scenario.log.addresses})
    unexplained = attribute(outcomes, list(watcher.seen.values()))
    results = score(outcomes, unexplained, traffic_s, health, watcher.errors, log_text)
    results["geo_problems"] = geo_problems
    return results


def score(outcomes: list[Outcome], unexplained: list[Watched], traffic_s: float, health: dict[str, Any],
          poll_errors: int, log_text: str) -> dict[str, Any]:
    detectors: dict[str, dict[str, Any]] = {
        rule: {"attacks": 0, "detected": [], "missed": [], "false_alerts": [], "time_to_alert_ms": []}
        for rule in RULES
    }
    scenarios: list[dict[str, Any]] = []
    for outcome in outcomes:
        s = outcome.scenario
        raised: dict[str, Watched] = {}
        for item in sorted(outcome.alerts, key=lambda w: w.visible_ms):
            raised.setdefault(item.alert["rule"], item)
        for rule in s.expect:
            row = detectors[rule]
            row["attacks"] += 1
            if rule in raised:
                row["detected"].append(s.name)
                row["time_to_alert_ms"].append(time_to_alert_ms(outcome, raised[rule]))
            else:
                row["missed"].append(s.name)
        false = [w for w in outcome.alerts if w.alert["rule"] not in s.expect + s.allow]
        for item in false:
            detectors.setdefault(item.alert["rule"], {"false_alerts": []})["false_alerts"].append(s.name)
        scenarios.append({
            "name": s.name,
            "kind": s.kind,
            "summary": s.summary,
            "expect": list(s.expect),
            "allow": list(s.allow),
            "raised": sorted(raised),
            "ok": not outcome.error and all(r in raised for r in s.expect) and not false,
            "error": outcome.error,
            "requests": len(s.log.actions),
            "duration_s": round((outcome.finished_ms - outcome.started_ms) / 1000, 1),
            "alerts": [{
                "id": w.alert["id"], "rule": w.alert["rule"], "severity": w.alert["severity"],
                "entity": f"{w.alert['entity_kind']}:{w.alert['entity_label']}", "reasons": w.alert["reasons"],
                "time_to_alert_ms": time_to_alert_ms(outcome, w),
            } for w in outcome.alerts],
        })
    for item in unexplained:
        detectors.setdefault(item.alert["rule"], {"false_alerts": []})["false_alerts"].append("(no scenario)")
    for row in detectors.values():
        times = row.pop("time_to_alert_ms", [])
        row["time_to_alert_ms"] = {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "n": len(times)}
    all_times = [a["time_to_alert_ms"] for s in scenarios for a in s["alerts"] if a["rule"] in s["expect"]]
    return {
        "settings": {k: {"value": v, "why": why} for k, (v, why) in SETTINGS.items()},
        "traffic_s": round(traffic_s, 1),
        "detectors": detectors,
        "scenarios": scenarios,
        "unexplained_alerts": [w.alert for w in unexplained],
        "time_to_alert_ms": {"p50": percentile(all_times, 0.5), "p95": percentile(all_times, 0.95)},
        "all_attacks_alerted": all(not s["error"] and set(s["expect"]) <= set(s["raised"])
                                   for s in scenarios if s["kind"] == "attack"),
        "no_benign_alerted": all(not s["alerts"] and not s["error"] for s in scenarios if s["kind"] == "benign"),
        "detection_health": {k: health.get(k) for k in ("detect_alert_latency_ms_p50", "detect_alert_latency_ms_p95",
                                                          "detect_lag_ms_p95", "detect_counters")},
        "alert_poll_errors": poll_errors,
        "server_tracebacks": log_text.count("Traceback (most recent call last)"),
    }
