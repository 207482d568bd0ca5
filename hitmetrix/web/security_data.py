"""What the security pages and their JSON API show: overview, alert pages, evidence, entity timelines.

Shared by ``security_api`` (JSON) and ``security_pages`` (HTML), so both show
the same numbers. Metadata (alerts, decisions) comes from
``hitmetrix.store.security``; what the sessions did comes from the event store,
always through the project-scoped ``ScopedSelect``. Every function here is
blocking: call it with ``offload.run``.

Time semantics: an alert belongs to the hour (or day) it was last seen in;
the overview covers alerts last seen in its window. An evidence session's
replay opens at ``?t=`` seconds after the session's start (the replay page's
offset), the moment the detector saw the attack.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hitmetrix.analytics.params import BadParameter, choice, text, whole_number
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.detect.detectors.base import ENTITY_KINDS
from hitmetrix.store import security
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.security import ALERT_STATES, SEVERITIES, Alert, Decision

MAX_SINCE_MS = 10**15
MAX_RULE_CHARS = 64
DEFAULT_PAGE = 50
MAX_PAGE = 200
OVERVIEW_ALERTS = 5000  # the newest alerts the overview counts
TOP = 10
TIMELINE_EVENTS = 200  # request / auth events shown per evidence session
ENTITY_EVENTS = 300
ENTITY_SESSIONS = 50
_RULE = re.compile(r"^[a-z][a-z0-9_]*$")
_MS = "toUnixTimestamp64Milli"
_EVENT_COLUMNS = (
    "session_id",
    f"{_MS}(ts) AS ts",
    "type",
    "name",
    "url",
    "props",
    "ip",
    "country",
    "asn",
    "as_org",
    "user_agent",
    "user_id",
)
WINDOWS = {"24h": (24 * 3600_000, 3600_000), "7d": (7 * 86400_000, 86400_000), "30d": (30 * 86400_000, 86400_000)}


@dataclass(frozen=True)
class AlertFilters:
    state: str = ""
    rule: str = ""
    severity: str = ""
    entity_kind: str = ""
    since_ms: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AlertFilters:
        rule = text(query, "rule", MAX_RULE_CHARS)
        if rule and not _RULE.match(rule):
            raise BadParameter("rule", "rule must be a detector's name, like brute_force")
        raw_since = text(query, "since", 32)
        since: int | None = None
        if raw_since:
            since = whole_number(query, "since", 0, 0, MAX_SINCE_MS)
        return cls(
            state=choice(query, "state", ALERT_STATES),
            rule=rule,
            severity=choice(query, "severity", SEVERITIES),
            entity_kind=choice(query, "entity_kind", ENTITY_KINDS),
            since_ms=since,
        )

    def to_query(self) -> dict[str, str]:
        found = {"state": self.state, "rule": self.rule, "severity": self.severity, "entity_kind": self.entity_kind}
        if self.since_ms is not None:
            found["since"] = str(self.since_ms)
        return {k: v for k, v in found.items() if v}


def page_cursor(query: Mapping[str, str]) -> int | None:
    """``cursor``: the next_cursor of the previous page (an alert id), or None."""
    raw = text(query, "cursor", 20)
    return whole_number(query, "cursor", 0, 1, 10**18) if raw else None


def alert_page(
    meta: MetaStore, project_id: int, filters: AlertFilters, limit: int, before_id: int | None
) -> tuple[list[Alert], str | None]:
    """The project's alerts that pass the filters, newest first, and the cursor of the next page."""
    query = select(Alert).where(Alert.project_id == project_id)
    if filters.state:
        query = query.where(Alert.state == filters.state)
    if filters.rule:
        query = query.where(Alert.rule == filters.rule)
    if filters.severity:
        query = query.where(Alert.severity == filters.severity)
    if filters.entity_kind:
        query = query.where(Alert.entity_kind == filters.entity_kind)
    if filters.since_ms is not None:
        query = query.where(Alert.last_seen_ms >= filters.since_ms)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    with meta.sessions() as db:
        rows = list(db.scalars(query.order_by(Alert.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


def alert_summary(alert: Alert, project_id: int) -> dict[str, Any]:
    answer = security.alert_json(alert)
    answer["url"] = f"/projects/{project_id}/security/alerts/{alert.id}"
    answer["entity_url"] = entity_url(project_id, alert.entity_kind, alert.entity_value)
    return answer


def entity_url(project_id: int, kind: str, value: str) -> str:
    from urllib.parse import quote

    return f"/projects/{project_id}/security/entities/{kind}/{quote(value, safe='')}"


def decision_json(found: Decision, now_ms: int) -> dict[str, Any]:
    return {
        "id": found.id,
        "scope": found.scope,
        "value": found.value,
        "match": found.match,
        "action": found.action,
        "reason": found.reason,
        "origin": found.origin,
        "alert_id": found.alert_id,
        "created_ms": found.created_ms,
        "expires_ms": found.expires_ms,
        "created_by": found.created_by,
        "revoked": found.revoked,
        "active": found.active(now_ms),
    }


# --- overview ------------------------------------------------------------------------------------------


def overview(meta: MetaStore, store: EventStore, project_id: int, now_ms: int, window: str) -> dict[str, Any]:
    """Alerts over time by rule, open alerts by severity, top attacking entities, networks and countries."""
    span_ms, bucket_ms = WINDOWS[window]
    since = now_ms - span_ms
    with meta.sessions() as db:
        recent = list(
            db.scalars(
                select(Alert)
                .where(Alert.project_id == project_id, Alert.last_seen_ms >= since)
                .order_by(Alert.id.desc())
                .limit(OVERVIEW_ALERTS)
            )
        )
    first_bucket = since // bucket_ms * bucket_ms
    buckets = list(range(first_bucket, now_ms + 1, bucket_ms))
    rules = sorted({a.rule for a in recent})
    series = {rule: [0] * len(buckets) for rule in rules}
    for a in recent:
        index = min(len(buckets) - 1, max(0, (a.last_seen_ms - first_bucket) // bucket_ms))
        series[a.rule][index] += 1
    open_by_severity = dict.fromkeys(SEVERITIES, 0)
    for a in recent:
        if a.state == "open":
            open_by_severity[a.severity] += 1
    entities: Counter[tuple[str, str, str]] = Counter()
    for a in recent:
        entities[(a.entity_kind, a.entity_value, a.entity_label)] += a.count
    evidence = list(dict.fromkeys(sid for a in recent for sid, _ in a.session_list))[:500]
    networks, countries = _sources_of(store, project_id, evidence)
    return {
        "window": window,
        "since_ms": since,
        "bucket_ms": bucket_ms,
        "buckets": buckets,
        "by_rule": series,
        "alerts": len(recent),
        "open_by_severity": open_by_severity,
        "top_entities": [
            {"kind": k, "value": v, "label": label, "count": n, "url": entity_url(project_id, k, v)}
            for (k, v, label), n in entities.most_common(TOP)
        ],
        "top_networks": networks,
        "top_countries": countries,
    }


def _in_sessions(q: ScopedSelect, session_ids: list[str]) -> str:
    return "session_id IN (" + ", ".join(q.bind(sid, "String") for sid in session_ids) + ")"


def _sources_of(
    store: EventStore, project_id: int, session_ids: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ASNs and countries of the attacking sessions, by how many sessions came from each."""
    if not session_ids:
        return [], []
    q = ScopedSelect(project_id).from_("events")
    q.select("asn", "any(as_org) AS as_org", "country", "uniqExact(session_id) AS sessions")
    q.where(_in_sessions(q, session_ids))
    q.group_by += ["asn", "country"]
    rows = store.query(q.sql(), q.params)
    networks: Counter[tuple[int, str]] = Counter()
    countries: Counter[str] = Counter()
    for row in rows:
        if int(row["asn"] or 0):
            networks[(int(row["asn"]), str(row["as_org"] or ""))] += int(row["sessions"])
        if row["country"]:
            countries[str(row["country"])] += int(row["sessions"])
    return (
        [
            {"asn": asn, "as_org": org, "sessions": n, "url": entity_url(project_id, "asn", f"AS{asn}")}
            for (asn, org), n in networks.most_common(TOP)
        ],
        [{"country": c, "sessions": n} for c, n in countries.most_common(TOP)],
    )


# --- an alert and its evidence ---------------------------------------------------------------------------


def _events(store: EventStore, project_id: int, where: list[tuple[str, Any, str]], limit: int) -> list[dict[str, Any]]:
    """Request and auth events matching ``where`` [(column, value, type)], oldest first (at most ``limit``)."""
    q = ScopedSelect(project_id).from_("events").select(*_EVENT_COLUMNS)
    q.where("type IN ('request', 'auth')")
    for column, value, kind in where:
        q.where(f"{column} = {q.bind(value, kind)}")
    q.order_by += ["ts DESC"]
    q.limit = limit
    rows = store.query(q.sql(), q.params)
    return [timeline_item(row) for row in reversed(rows)]


def timeline_item(row: dict[str, Any]) -> dict[str, Any]:
    try:
        props = json.loads(row.get("props") or "{}")
    except ValueError:
        props = {}
    if not isinstance(props, dict):
        props = {}
    return {
        "session_id": row["session_id"],
        "ts_ms": int(row["ts"]),
        "type": row["type"],
        "name": row["name"],
        "url": row["url"],
        "method": str(props.get("method", "")),
        "status": props.get("status"),
        "ok": props.get("ok"),
        "user": str(props.get("user_display", "")),
        "reason": str(props.get("reason", "")),
        "ip": row["ip"],
        "country": row["country"],
        "user_agent": row["user_agent"],
        "user_id": row["user_id"],
    }


def evidence(store: EventStore, project_id: int, sessions: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Each evidence session: whether it was recorded, the replay URL at the moment, its request timeline."""
    if not sessions:
        return []
    ids = [sid for sid, _ in sessions]
    q = ScopedSelect(project_id).from_("session_segments", final=True)
    q.select("session_id", f"{_MS}(min(first_ts)) AS started_at")
    q.where(_in_sessions(q, ids))
    q.group_by.append("session_id")
    started = {row["session_id"]: int(row["started_at"]) for row in store.query(q.sql(), q.params)}
    r = ScopedSelect(project_id).from_("recordings", final=True).select("session_id", "count() AS chunks")
    r.where(_in_sessions(r, ids))
    r.group_by.append("session_id")
    recorded = {row["session_id"] for row in store.query(r.sql(), r.params) if int(row["chunks"])}
    found = []
    for sid, ts_ms in sessions:
        start = started.get(sid)
        offset_s = max(0, (ts_ms - start) // 1000) if start is not None else 0
        found.append(
            {
                "session_id": sid,
                "ts_ms": ts_ms,
                "started_at": start,
                "offset_s": offset_s,
                "recorded": sid in recorded,
                "replay_url": f"/projects/{project_id}/sessions/{sid}?t={offset_s}" if start is not None else None,
                "timeline": _events(store, project_id, [("session_id", sid, "String")], TIMELINE_EVENTS),
            }
        )
    return found


def alert_detail(
    meta: MetaStore, store: EventStore, project_id: int, alert: Alert, now_ms: int
) -> dict[str, Any]:
    score, reasons = security.risk(meta, project_id, alert.entity_kind, alert.entity_value, now_ms)
    return {
        **alert_summary(alert, project_id),
        "risk": {"score": score, "reasons": reasons},
        "evidence": evidence(store, project_id, alert.session_list),
        "decisions": [
            decision_json(d, now_ms) for d in security.decisions(meta, project_id, alert_id=alert.id, limit=50)
        ],
    }


# --- an entity ---------------------------------------------------------------------------------------------


def check_entity(kind: str, value: str) -> None:
    """BadParameter for an entity the pages cannot show."""
    if kind not in ENTITY_KINDS:
        raise BadParameter("kind", f"kind must be one of {', '.join(ENTITY_KINDS)}")
    if not value or len(value) > security.MAX_VALUE_CHARS or "\x00" in value:
        raise BadParameter("value", f"value must have 1 to {security.MAX_VALUE_CHARS} characters")


def _entity_events(
    store: EventStore, project_id: int, kind: str, value: str, labels: list[str]
) -> list[dict[str, Any]]:
    if kind == "session":
        return _events(store, project_id, [("session_id", value, "String")], ENTITY_EVENTS)
    if kind == "user":
        return _events(store, project_id, [("user_id", value, "String")], ENTITY_EVENTS)
    if kind == "asn" and value.upper().startswith("AS") and value[2:].isdigit() and int(value[2:]) < 2**32:
        return _events(store, project_id, [("asn", int(value[2:]), "UInt32")], ENTITY_EVENTS)
    if kind == "net":
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return []
        q = ScopedSelect(project_id).from_("events").select(*_EVENT_COLUMNS)
        q.where("type IN ('request', 'auth')")
        q.where(f"isIPAddressInRange(ip, {q.bind(str(network), 'String')})")
        q.order_by.append("ts DESC")
        q.limit = ENTITY_EVENTS
        return [timeline_item(row) for row in reversed(store.query(q.sql(), q.params))]
    if kind == "ip":  # the value is a keyed hash: the alerts' labels hold the address as stored
        for label in labels:
            try:
                address = str(ipaddress.ip_address(label))
            except ValueError:
                continue
            return _events(store, project_id, [("ip", address, "String")], ENTITY_EVENTS)
    return []


def entity(meta: MetaStore, store: EventStore, project_id: int, kind: str, value: str, now_ms: int) -> dict[str, Any]:
    """An entity's risk and timeline: its alerts, decisions, sessions and request / auth events."""
    found = security.alerts(meta, project_id, entity_kind=kind, entity_value=value, limit=200)
    labels = list(dict.fromkeys(a.entity_label for a in found if a.entity_label))
    score, reasons = security.risk(meta, project_id, kind, value, now_ms)
    scope = "net" if kind == "net" else kind
    decided = [
        d for d in security.decisions(meta, project_id, limit=500) if d.scope == scope and d.value == value
    ]
    events = _entity_events(store, project_id, kind, value, labels)
    sessions: dict[str, dict[str, Any]] = {}
    for a in found:
        for sid, ts in a.session_list:
            sessions.setdefault(sid, {"session_id": sid, "first_ms": ts, "last_ms": ts, "events": 0})
    for e in events:
        row = sessions.setdefault(
            e["session_id"], {"session_id": e["session_id"], "first_ms": e["ts_ms"], "last_ms": e["ts_ms"], "events": 0}
        )
        row["first_ms"] = min(row["first_ms"], e["ts_ms"])
        row["last_ms"] = max(row["last_ms"], e["ts_ms"])
        row["events"] += 1
    session_rows = sorted(sessions.values(), key=lambda s: -s["last_ms"])[:ENTITY_SESSIONS]
    for row in session_rows:
        row["url"] = f"/projects/{project_id}/sessions/{row['session_id']}"
    return {
        "kind": kind,
        "value": value,
        "label": labels[0] if labels else value,
        "risk": {"score": score, "reasons": reasons},
        "alerts": [alert_summary(a, project_id) for a in found],
        "decisions": [decision_json(d, now_ms) for d in decided],
        "sessions": session_rows,
        "events": events,
    }
