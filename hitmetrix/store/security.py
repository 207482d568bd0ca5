"""Security metadata: alerts, decisions, allow-lists and webhooks, in the metadata store.

Alerts merge: a finding for the same project, rule and entity as an alert last
seen within the cooldown (by event time) adds to that alert — count, last seen,
highest severity, the newest reasons and numbers, more evidence sessions (at
most 20) — instead of making a new one. Resolved alerts take no more findings
(a new attack after a resolution is a new alert); a false positive keeps its
label and absorbs the repeats, so a labelled mistake does not alert again
within the cooldown.

Decisions are verdicts the protected site enforces: ``scope`` (ip, net, user,
session, device) and ``value`` (an ip decision's value is the address's keyed
hash, ``ip_key``; a net decision's value is CIDR text), with ``match`` holding
the plain address or CIDR when one is known (manual decisions) so a bouncer can
enforce them without asking. A rule re-deciding the same thing extends the
active decision instead of adding another. ``expires_ms`` None means until
revoked. ``updated_ms`` moves on every change, for the decisions stream.

Allow-list entries (ip, cidr, user_agent, user) are checked by the detection
engine; this module only validates and stores them. Every row belongs to a
project and goes with it when the project is deleted.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, func, or_, select, tuple_
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from hitmetrix.detect.risk import RISK_WINDOW_MS, risk_from_alerts
from hitmetrix.store.meta import Base, MetaStore

if TYPE_CHECKING:
    from hitmetrix.detect.detectors.base import Finding

SEVERITIES = ("low", "medium", "high", "critical")
ALERT_STATES = ("open", "acknowledged", "resolved", "false_positive")
DECISION_SCOPES = ("ip", "net", "user", "session", "device")
DECISION_ACTIONS = ("allow", "challenge", "block")
DECISION_ORIGINS = ("rule", "manual")
ALLOW_KINDS = ("ip", "cidr", "user_agent", "user")
MAX_EVIDENCE_SESSIONS = 20
MAX_PAGE_SIZE = 500
MAX_VALUE_CHARS = 500
MAX_REASON_CHARS = 1000
# A v4 CIDR narrower than the /24 detection knows is matched address by address (its keyed hashes).
MAX_EXPANDED_ADDRESSES = 256


def _project_fk() -> ForeignKey:
    return ForeignKey("projects.id", ondelete="CASCADE")


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_project_id_id", "project_id", "id"),
        Index("ix_alerts_entity", "project_id", "entity_kind", "entity_value", "rule"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(_project_fk())
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_value: Mapped[str] = mapped_column(String(MAX_VALUE_CHARS))
    entity_label: Mapped[str] = mapped_column(String(MAX_VALUE_CHARS), default="")
    reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of sentences
    numbers: Mapped[str] = mapped_column(Text, default="{}")  # JSON object name -> number
    sessions: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[session_id, ts_ms], ...]
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(default=1)
    state: Mapped[str] = mapped_column(String(16), default="open")
    state_by: Mapped[int | None] = mapped_column(nullable=True)  # the user who last set the state
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    @property
    def reason_list(self) -> list[str]:
        return list(json.loads(self.reasons or "[]"))

    @property
    def number_map(self) -> dict[str, float]:
        return dict(json.loads(self.numbers or "{}"))

    @property
    def session_list(self) -> list[tuple[str, int]]:
        return [(str(s), int(t)) for s, t in json.loads(self.sessions or "[]")]


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_lookup", "project_id", "scope", "value"),
        Index("ix_decisions_project_id_updated_ms", "project_id", "updated_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(_project_fk())
    scope: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(MAX_VALUE_CHARS))
    match: Mapped[str] = mapped_column(String(64), default="")  # plain address or CIDR when known
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(MAX_REASON_CHARS), default="")
    origin: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[int | None] = mapped_column(nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    def active(self, now_ms: int) -> bool:
        return not self.revoked and (self.expires_ms is None or self.expires_ms > now_ms)


class AllowEntry(Base):
    __tablename__ = "allow_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(_project_fk(), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(MAX_VALUE_CHARS))
    note: Mapped[str] = mapped_column(String(MAX_REASON_CHARS), default="")
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(_project_fk(), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_try_ms"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(MAX_REASON_CHARS), default="")
    next_try_ms: Mapped[int] = mapped_column(BigInteger, default=0)


def now_ms() -> int:
    return int(time.time() * 1000)


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value[:40]!r}")


def _sessions_json(sessions: Sequence[tuple[str, int]]) -> str:
    return json.dumps([[sid, int(ts)] for sid, ts in sessions[:MAX_EVIDENCE_SESSIONS]])


def _numbers_json(numbers: Mapping[str, float]) -> str:
    return json.dumps({str(k): float(v) for k, v in numbers.items()})


# --- alerts -----------------------------------------------------------------------------------------


def upsert_alert(
    meta: MetaStore, finding: Finding, now_ms: int, cooldown_ms: int, *, times: int = 1
) -> tuple[Alert, bool]:
    """Merge the finding into the entity's alert for the rule seen within the cooldown, or make a new one.

    ``(alert, is_new)``; times compare by the finding's event time, so a replay merges the same way.
    ``times``: how many findings this one stands for (the engine folds repeats within a segment)."""
    return upsert_alerts(meta, [(finding, times)], now_ms, cooldown_ms)[0]


def upsert_alerts(
    meta: MetaStore, findings: Sequence[tuple[Finding, int]], now_ms: int, cooldown_ms: int
) -> list[tuple[Alert, bool]]:
    """``upsert_alert`` for many (finding, times), in one transaction (one disk sync for a flood of them)."""
    for finding, _ in findings:
        _check("severity", finding.severity, SEVERITIES)
    if not findings:
        return []
    with meta.sessions.begin() as db:
        # The open alerts of every (project, rule, entity) at once, newest first: one query per few hundred
        # findings instead of one each (a flood of findings is written in a fraction of the time).
        open_alerts = _open_alerts(db, [f for f, _ in findings], cooldown_ms)
        written = [_upsert(db, open_alerts, finding, now_ms, cooldown_ms, times) for finding, times in findings]
        db.flush()  # the new alerts' ids, for the caller
        return written


_KEYS_PER_QUERY = 200  # 4 parameters each: well under SQLite's limit
_AlertKey = tuple[int, str, str, str]  # project id, rule, entity kind, entity value


def _alert_key(finding: Finding) -> _AlertKey:
    return finding.project_id, finding.rule, finding.entity_kind, finding.entity_value


def _open_alerts(db: Session, findings: Sequence[Finding], cooldown_ms: int) -> dict[_AlertKey, list[Alert]]:
    """Per (project, rule, entity kind, entity value): its alerts not resolved and seen within the cooldown of the
    oldest finding, newest first (each finding then takes the newest within its own cooldown)."""
    keys = sorted({_alert_key(f) for f in findings})
    oldest_ms = min(f.ts_ms for f in findings) - cooldown_ms
    found: dict[_AlertKey, list[Alert]] = {}
    columns = tuple_(Alert.project_id, Alert.rule, Alert.entity_kind, Alert.entity_value)
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        rows = db.scalars(
            select(Alert)
            .where(
                columns.in_(keys[start : start + _KEYS_PER_QUERY]),
                Alert.state != "resolved",
                Alert.last_seen_ms >= oldest_ms,
            )
            .order_by(Alert.id.desc())
        )
        for alert in rows:
            found.setdefault((alert.project_id, alert.rule, alert.entity_kind, alert.entity_value), []).append(alert)
    return found


def _upsert(
    db: Session,
    open_alerts: dict[_AlertKey, list[Alert]],
    finding: Finding,
    now_ms: int,
    cooldown_ms: int,
    times: int,
) -> tuple[Alert, bool]:
    candidates = open_alerts.setdefault(_alert_key(finding), [])
    cutoff_ms = finding.ts_ms - cooldown_ms
    alert = next((a for a in candidates if a.last_seen_ms >= cutoff_ms), None)
    if alert is None:
        alert = Alert(
            project_id=finding.project_id,
            rule=finding.rule,
            severity=finding.severity,
            entity_kind=finding.entity_kind,
            entity_value=finding.entity_value[:MAX_VALUE_CHARS],
            entity_label=finding.entity_label[:MAX_VALUE_CHARS],
            reasons=json.dumps(list(finding.reasons)),
            numbers=_numbers_json(finding.numbers),
            sessions=_sessions_json(list(finding.sessions)),
            first_seen_ms=finding.ts_ms,
            last_seen_ms=finding.ts_ms,
            count=times,
            state="open",
            created_ms=now_ms,
            updated_ms=now_ms,
        )
        db.add(alert)
        candidates.insert(0, alert)  # the newest: a later finding of this call merges into it
        return alert, True
    alert.count += times
    alert.first_seen_ms = min(alert.first_seen_ms, finding.ts_ms)
    alert.last_seen_ms = max(alert.last_seen_ms, finding.ts_ms)
    if SEVERITIES.index(finding.severity) > SEVERITIES.index(alert.severity):
        alert.severity = finding.severity
    if finding.reasons:
        alert.reasons = json.dumps(list(finding.reasons))
    if finding.numbers:
        alert.numbers = _numbers_json(finding.numbers)
    if finding.entity_label:
        alert.entity_label = finding.entity_label[:MAX_VALUE_CHARS]
    sessions = alert.session_list
    known = {sid for sid, _ in sessions}
    sessions += [(sid, ts) for sid, ts in finding.sessions if sid not in known]
    alert.sessions = _sessions_json(sessions)
    alert.updated_ms = now_ms
    return alert, False


def alerts(
    meta: MetaStore,
    project_id: int,
    *,
    state: str | None = None,
    rule: str | None = None,
    entity_kind: str | None = None,
    entity_value: str | None = None,
    since_ms: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Alert]:
    """The project's alerts, newest first (``before_id`` pages on); ``since_ms`` by last seen."""
    query = select(Alert).where(Alert.project_id == project_id)
    if state is not None:
        query = query.where(Alert.state == state)
    if rule is not None:
        query = query.where(Alert.rule == rule)
    if entity_kind is not None:
        query = query.where(Alert.entity_kind == entity_kind)
    if entity_value is not None:
        query = query.where(Alert.entity_value == entity_value)
    if since_ms is not None:
        query = query.where(Alert.last_seen_ms >= since_ms)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    with meta.sessions() as db:
        return list(db.scalars(query.order_by(Alert.id.desc()).limit(limit)))


def alert(meta: MetaStore, project_id: int, alert_id: int) -> Alert | None:
    with meta.sessions() as db:
        found = db.get(Alert, alert_id)
    return found if found is not None and found.project_id == project_id else None


def set_alert_state(meta: MetaStore, project_id: int, alert_id: int, state: str, by: int | None) -> Alert:
    """Label the alert (KeyError when the project has no such alert, ValueError for an unknown state)."""
    _check("state", state, ALERT_STATES)
    with meta.sessions.begin() as db:
        found = db.get(Alert, alert_id)
        if found is None or found.project_id != project_id:
            raise KeyError(alert_id)
        found.state = state
        found.state_by = by
        found.updated_ms = now_ms()
    return found


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as the JSON API and the sinks show it."""
    return {
        "id": alert.id,
        "project_id": alert.project_id,
        "rule": alert.rule,
        "severity": alert.severity,
        "entity_kind": alert.entity_kind,
        "entity_value": alert.entity_value,
        "entity_label": alert.entity_label,
        "reasons": alert.reason_list,
        "numbers": alert.number_map,
        "sessions": [[sid, ts] for sid, ts in alert.session_list],
        "first_seen_ms": alert.first_seen_ms,
        "last_seen_ms": alert.last_seen_ms,
        "count": alert.count,
        "state": alert.state,
        "created_ms": alert.created_ms,
        "updated_ms": alert.updated_ms,
    }


# --- decisions --------------------------------------------------------------------------------------


def add_decision(
    meta: MetaStore,
    project_id: int,
    scope: str,
    value: str,
    action: str,
    reason: str,
    ttl_s: float | None,
    origin: str,
    alert_id: int | None = None,
    by: int | None = None,
    *,
    match: str = "",
    at_ms: int | None = None,
) -> Decision:
    """A verdict for the entity; ``ttl_s`` None or 0 means until revoked. ValueError for bad fields.

    A rule deciding what it already decided (same scope, value and action, still active) extends it."""
    at = now_ms() if at_ms is None else at_ms
    with meta.sessions.begin() as db:
        return _decide(db, project_id, scope, value, action, reason, ttl_s, origin, alert_id, by, match, at)


def add_rule_decisions(
    meta: MetaStore, decisions: Sequence[tuple[int, str, str, str, str, int | None, str]], ttl_s: float, at_ms: int
) -> list[Decision]:
    """Rule decisions (project_id, scope, value, action, reason, alert_id, match), in one transaction."""
    with meta.sessions.begin() as db:
        return [
            _decide(db, pid, scope, value, action, reason, ttl_s, "rule", alert_id, None, match, at_ms)
            for pid, scope, value, action, reason, alert_id, match in decisions
        ]


def _decide(
    db: Session,
    project_id: int,
    scope: str,
    value: str,
    action: str,
    reason: str,
    ttl_s: float | None,
    origin: str,
    alert_id: int | None,
    by: int | None,
    match: str,
    at: int,
) -> Decision:
    _check("scope", scope, DECISION_SCOPES)
    _check("action", action, DECISION_ACTIONS)
    _check("origin", origin, DECISION_ORIGINS)
    if not value or len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"a decision needs a value of 1 to {MAX_VALUE_CHARS} characters")
    if ttl_s is not None and ttl_s < 0:
        raise ValueError("ttl_s must not be negative")
    expires = at + int(ttl_s * 1000) if ttl_s else None
    if origin == "rule":
        same = db.scalars(_active(project_id, at).where(
            Decision.scope == scope, Decision.value == value, Decision.action == action, Decision.origin == "rule"
        )).first()
        if same is not None:
            if same.expires_ms is not None and (expires is None or expires > same.expires_ms):
                same.expires_ms = expires
                same.updated_ms = at
            return same
    decision = Decision(
        project_id=project_id,
        scope=scope,
        value=value,
        match=match[:64],
        action=action,
        reason=reason[:MAX_REASON_CHARS],
        origin=origin,
        alert_id=alert_id,
        created_ms=at,
        updated_ms=at,
        expires_ms=expires,
        created_by=by,
        revoked=False,
    )
    db.add(decision)
    db.flush()
    return decision


def _active(project_id: int, at_ms: int):  # type: ignore[no-untyped-def]
    return select(Decision).where(
        Decision.project_id == project_id,
        Decision.revoked.is_(False),
        or_(Decision.expires_ms.is_(None), Decision.expires_ms > at_ms),
    )


def active_decisions(
    meta: MetaStore, project_id: int, now_ms: int, *, scope: str | None = None, value: str | None = None
) -> list[Decision]:
    query = _active(project_id, now_ms)
    if scope is not None:
        query = query.where(Decision.scope == scope)
    if value is not None:
        query = query.where(Decision.value == value)
    with meta.sessions() as db:
        return list(db.scalars(query.order_by(Decision.id.desc()).limit(10 * MAX_PAGE_SIZE)))


def decisions(
    meta: MetaStore, project_id: int, *, limit: int = 100, before_id: int | None = None, alert_id: int | None = None
) -> list[Decision]:
    """Every decision of the project (active, expired and revoked), newest first."""
    query = select(Decision).where(Decision.project_id == project_id)
    if before_id is not None:
        query = query.where(Decision.id < before_id)
    if alert_id is not None:
        query = query.where(Decision.alert_id == alert_id)
    with meta.sessions() as db:
        return list(db.scalars(query.order_by(Decision.id.desc()).limit(max(1, min(limit, MAX_PAGE_SIZE)))))


def decisions_changed_since(meta: MetaStore, project_id: int, since_ms: int, limit: int = 1000) -> list[Decision]:
    """Decisions made, extended or revoked after ``since_ms`` (oldest change first), for the stream."""
    query = select(Decision).where(Decision.project_id == project_id, Decision.updated_ms > since_ms)
    with meta.sessions() as db:
        return list(db.scalars(query.order_by(Decision.updated_ms, Decision.id).limit(max(1, limit))))


def revoke_decision(meta: MetaStore, project_id: int, decision_id: int, by: int | None = None) -> Decision:
    """KeyError when the project has no such decision."""
    with meta.sessions.begin() as db:
        found = db.get(Decision, decision_id)
        if found is None or found.project_id != project_id:
            raise KeyError(decision_id)
        if not found.revoked:
            found.revoked = True
            found.updated_ms = now_ms()
    return found


# --- allow-list -------------------------------------------------------------------------------------


def normal_allow_value(kind: str, value: str) -> str:
    """The value as stored (an address or network in canonical form), or ValueError saying why not."""
    _check("kind", kind, ALLOW_KINDS)
    value = value.strip()
    if not value or len(value) > MAX_VALUE_CHARS or "\x00" in value:
        raise ValueError(f"an allow-list value has 1 to {MAX_VALUE_CHARS} characters")
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"not an IP address: {value[:80]!r}") from None
    if kind == "cidr":
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"not a network (e.g. 203.0.113.0/24): {value[:80]!r}") from None
        if network.version == 6 and network.prefixlen > 64:
            raise ValueError("an IPv6 network is matched by its /64 at most: use /64 or shorter, or single addresses")
        return str(network)
    return value


def allow_entries(meta: MetaStore, project_id: int) -> list[AllowEntry]:
    with meta.sessions() as db:
        return list(db.scalars(select(AllowEntry).where(AllowEntry.project_id == project_id).order_by(AllowEntry.id)))


def add_allow_entry(meta: MetaStore, project_id: int, kind: str, value: str, note: str = "") -> AllowEntry:
    entry = AllowEntry(
        project_id=project_id,
        kind=kind,
        value=normal_allow_value(kind, value),
        note=note.strip()[:MAX_REASON_CHARS],
        created_ms=now_ms(),
    )
    with meta.sessions.begin() as db:
        db.add(entry)
        db.flush()
    return entry


def remove_allow_entry(meta: MetaStore, project_id: int, entry_id: int) -> bool:
    with meta.sessions.begin() as db:
        found = db.get(AllowEntry, entry_id)
        if found is None or found.project_id != project_id:
            return False
        db.delete(found)
    return True


def all_allow_entries(meta: MetaStore) -> list[AllowEntry]:
    """Every project's entries (the detection engine compiles them)."""
    with meta.sessions() as db:
        return list(db.scalars(select(AllowEntry).order_by(AllowEntry.project_id, AllowEntry.id)))


def allow_entries_version(meta: MetaStore) -> tuple[int, int]:
    """(count, newest id) over all projects: the engine reloads its allow-lists when this changes."""
    with meta.sessions() as db:
        row = db.execute(select(func.count(AllowEntry.id), func.coalesce(func.max(AllowEntry.id), 0))).one()
    return int(row[0]), int(row[1])


# --- risk -------------------------------------------------------------------------------------------


def risk(meta: MetaStore, project_id: int, entity_kind: str, entity_value: str, now_ms: int) -> tuple[int, list[str]]:
    """The entity's risk, 0–100, and its reasons (hitmetrix.detect.risk explains the formula)."""
    recent = alerts(
        meta,
        project_id,
        entity_kind=entity_kind,
        entity_value=entity_value,
        since_ms=now_ms - RISK_WINDOW_MS,
        limit=MAX_PAGE_SIZE,
    )
    result = risk_from_alerts(recent, now_ms)
    return result.score, list(result.reasons)


# --- verdicts for the protected site ----------------------------------------------------------------

# Which decision wins when several match: a person's "allow" over everything (they looked), then the
# strongest action; among equals, the newest.
_ACTION_RANK = {"allow": 0, "challenge": 1, "block": 2}


def verdict(
    meta: MetaStore,
    project_id: int,
    now_ms: int,
    *,
    ip: str = "",
    ip_key: str = "",
    user: str = "",
    session: str = "",
) -> Decision | None:
    """The active decision that applies to a client (None: allow), matching the address by its keyed hash,
    as written, and by every active network decision that contains it."""
    wanted: list[tuple[str, str]] = [("ip", v) for v in (ip_key, ip) if v]
    wanted += [(scope, v) for scope, v in (("user", user), ("session", session)) if v]
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
    conditions: list[ColumnElement[bool]] = [
        (Decision.scope == scope) & (Decision.value == value) for scope, value in wanted
    ]
    if address is not None:
        conditions.append(Decision.scope == "net")
    if not conditions:
        return None
    with meta.sessions() as db:
        found = list(db.scalars(_active(project_id, now_ms).where(or_(*conditions)).limit(10 * MAX_PAGE_SIZE)))
    matching = [d for d in found if d.scope != "net" or _contains(d.value, address)]
    if not matching:
        return None
    return max(
        matching,
        key=lambda d: (d.action == "allow" and d.origin == "manual", _ACTION_RANK.get(d.action, 0), d.id),
    )


def _contains(cidr: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if address is None:
        return False
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version == network.version and address in network
