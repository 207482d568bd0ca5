"""Cohorts: sets of people by what they are (properties) or what they did (behaviour), their size, their
members with their sessions, and the ``cohort`` filter every view applies through ``overview.scoped_sessions``.

What a cohort means — decided here, once:

- A **person** is a browser: the tracker's ``anonymous_id``, the unit the overview counts as a visitor, so a
  cohort's size and the visitors of a view filtered by it are counted alike. A person who identified (a visit
  with a user id) is shown with the latest user id they identified as; the same user on two browsers is two
  people here, as they are two visitors everywhere else.
- A **property** condition holds when at least one of the person's visits (sessions with a pageview, at any
  time) had the value: ``country``, ``device``, ``browser``, ``os``, ``referrer`` (the entry's domain; "" is
  direct), ``utm_source`` / ``utm_medium`` / ``utm_campaign``, or ``event_property`` (a custom event of the visit
  had property ``key``, equal to ``value`` when one is given). ``identified``: ``yes`` when some visit carried a
  user id, ``no`` when none did.
- A **behaviour** condition, "did X at least N times in the last D days", counts the person's events that match
  X — a funnel step (``hitmetrix.analytics.funnels``: a pageview of a URL pattern, a click, a submit or a custom
  event with properties) — from the start of the day D − 1 days before today (the project's zone) on.
  Membership is computed when asked, so it moves with the days.
- Conditions are AND-ed. As a filter, a cohort picks every session of its people in the view's range (the
  filter is on people, not on the sessions that made them members).

Reads ``sessions`` (properties, members, their sessions) and, for behaviour, the ``events`` of the last D days
that match the step (the events table is ordered by day, so a window reads only its days).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import funnels
from hitmetrix.analytics.days import day_range_ms
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

MAX_CONDITIONS = 10
MAX_DEFINITION_CHARS = 8_000
MAX_TEXT_CHARS = funnels.MAX_TEXT_CHARS
MAX_AT_LEAST = 100_000
MAX_DAYS = 3650
DEFAULT_DAYS = 30
MAX_PAGE = 200
DEFAULT_PAGE = 50
SESSIONS_PER_MEMBER = 5
# Property name -> sessions column, compared exactly.
PROPERTY_COLUMNS = {
    "country": "country",
    "device": "device_type",
    "browser": "browser",
    "os": "os",
    "referrer": "referrer_domain",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}
PROPERTIES = (*PROPERTY_COLUMNS, "identified", "event_property")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"


@dataclass(frozen=True)
class PropertyCondition:
    property: str  # one of PROPERTIES
    value: str = ""
    key: str = ""  # event_property: the property's name


@dataclass(frozen=True)
class BehaviourCondition:
    step: funnels.Step
    at_least: int = 1
    days: int = DEFAULT_DAYS


Condition = PropertyCondition | BehaviourCondition


@dataclass(frozen=True)
class CohortDefinition:
    conditions: tuple[Condition, ...]

    @classmethod
    def from_json(cls, raw: str, field: str = "definition") -> CohortDefinition:
        """Parse a definition (a JSON object); BadParameter naming the field when wrong."""
        if not raw:
            raise BadParameter(field, f"{field} is required: a JSON object with conditions")
        if len(raw) > MAX_DEFINITION_CHARS:
            raise BadParameter(field, f"{field} is too long (at most {MAX_DEFINITION_CHARS} characters)")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadParameter(field, f"{field} must be a JSON object") from None
        return cls.from_data(data, field)

    @classmethod
    def from_data(cls, data: Any, field: str = "definition") -> CohortDefinition:
        if not isinstance(data, dict):
            raise BadParameter(field, f"{field} must be a JSON object")
        unknown = set(data) - {"conditions"}
        if unknown:
            raise BadParameter(f"{field}.{sorted(unknown)[0]}", "unknown field")
        conditions = data.get("conditions")
        if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
            raise BadParameter(f"{field}.conditions", f"conditions must be a list of 1 to {MAX_CONDITIONS}")
        return cls(tuple(_condition(c, f"{field}.conditions[{i}]") for i, c in enumerate(conditions)))

    def to_data(self) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for c in self.conditions:
            if isinstance(c, PropertyCondition):
                item: dict[str, Any] = {"type": "property", "property": c.property, "value": c.value}
                if c.property == "event_property":
                    item["key"] = c.key
                out.append(item)
            else:
                out.append({"type": "behaviour", "event": step_data(c.step), "at_least": c.at_least, "days": c.days})
        return {"conditions": out}

    def to_json(self) -> str:
        return json.dumps(self.to_data(), ensure_ascii=False, separators=(",", ":"))


def step_data(step: funnels.Step) -> dict[str, Any]:
    """A funnel step as the JSON funnels read it back (only its kind's fields)."""
    if step.kind == "pageview":
        return {"kind": "pageview", "match": step.match, "path": step.path}
    if step.kind == "click":
        return {"kind": "click", **({"selector": step.selector} if step.selector else {}),
                **({"text": step.text} if step.text else {})}
    if step.kind == "submit":
        return {"kind": "submit", **({"selector": step.selector} if step.selector else {})}
    return {"kind": "custom", "name": step.name, "props": dict(step.props)}


def _whole(data: dict[str, Any], key: str, default: int, maximum: int, field: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BadParameter(f"{field}.{key}", f"{key} must be a whole number from 1 to {maximum}")
    return value


def _condition(data: Any, field: str) -> Condition:
    if not isinstance(data, dict):
        raise BadParameter(field, "a condition must be an object")
    kind = data.get("type")
    if kind == "behaviour":
        unknown = set(data) - {"type", "event", "at_least", "days"}
        if unknown:
            raise BadParameter(f"{field}.{sorted(unknown)[0]}", "a behaviour condition has no such field")
        # The funnel's own step parser: a step means the same in a cohort as in a funnel.
        step = funnels._step(data.get("event"), f"{field}.event")
        return BehaviourCondition(step, _whole(data, "at_least", 1, MAX_AT_LEAST, field),
                                  _whole(data, "days", DEFAULT_DAYS, MAX_DAYS, field))
    if kind != "property":
        raise BadParameter(f"{field}.type", "type must be property or behaviour")
    unknown = set(data) - {"type", "property", "value", "key"}
    if unknown:
        raise BadParameter(f"{field}.{sorted(unknown)[0]}", "a property condition has no such field")
    name = data.get("property")
    if name not in PROPERTIES:
        raise BadParameter(f"{field}.property", f"property must be one of {', '.join(PROPERTIES)}")
    # The funnel's own text check, as for the steps.
    value = funnels.text_field(data, "value", field).strip()
    key = funnels.text_field(data, "key", field).strip()
    if name == "event_property":
        if not key:
            raise BadParameter(f"{field}.key", "key is required: the custom event property's name")
        return PropertyCondition(name, value, key)
    if key:
        raise BadParameter(f"{field}.key", "only event_property has a key")
    if name == "country":
        value = value.upper()
        if not _COUNTRY.match(value):
            raise BadParameter(f"{field}.value", "country must be a two-letter code like DE")
    elif name == "device" and value not in ("desktop", "mobile", "tablet", "bot", "other"):
        raise BadParameter(f"{field}.value", "device must be one of desktop, mobile, tablet, bot, other")
    elif name == "identified" and value not in ("yes", "no"):
        raise BadParameter(f"{field}.value", "identified must be yes or no")
    elif not value and name != "referrer":  # a direct visit has the empty referrer; nothing else is empty
        raise BadParameter(f"{field}.value", "value is required")
    return PropertyCondition(name, value)


# --- SQL ----------------------------------------------------------------------------------------------------


def _property_sql(q: ScopedSelect, c: PropertyCondition) -> str:
    """Over one sessions row: the visit had the property."""
    if c.property == "identified":
        return "user_id != ''"
    if c.property == "event_property":
        key = q.bind(c.key, "String")
        if c.value:
            return f"arrayExists(p -> p.2 = {key} AND p.3 = {q.bind(c.value, 'String')}, event_props)"
        return f"arrayExists(p -> p.2 = {key}, event_props)"
    return f"{PROPERTY_COLUMNS[c.property]} = {q.bind(c.value, 'String')}"


def _did(parent: ScopedSelect, c: BehaviourCondition, today: dt.date, zone: str) -> ScopedSelect:
    """People (anonymous ids) with at least ``c.at_least`` events matching the step in the last ``c.days``."""
    q = parent.nested().from_("events")
    start_ms, end_ms = day_range_ms(today - dt.timedelta(days=c.days - 1), today, zone)
    assert start_ms is not None and end_ms is not None
    q.select("anonymous_id")
    q.where(f"ts >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"ts < fromUnixTimestamp64Milli({q.bind(end_ms, 'Int64')}, 'UTC')")
    q.where("anonymous_id != ''")
    q.where(funnels._condition(q, c.step))
    q.group_by.append("anonymous_id")
    q.having(f"count() >= {q.bind(c.at_least, 'UInt32')}")
    return q


def members_select(project_id: int, definition: CohortDefinition, today: dt.date, zone: str,
                   parent: ScopedSelect | None = None) -> ScopedSelect:
    """``SELECT anonymous_id`` of the cohort's people (a subquery of ``parent`` when given)."""
    q = (parent.nested() if parent is not None else ScopedSelect(project_id)).from_("sessions", final=True)
    q.select("anonymous_id")
    q.where("is_deleted = 0")
    q.where("pageviews > 0")
    q.where("anonymous_id != ''")
    for c in definition.conditions:
        if isinstance(c, BehaviourCondition):
            q.where(f"anonymous_id IN ({_did(q, c, today, zone).sql()})")
    q.group_by.append("anonymous_id")
    for c in definition.conditions:
        if isinstance(c, PropertyCondition):
            sql = f"max({_property_sql(q, c)})"
            q.having(f"{sql} = 0" if c.property == "identified" and c.value == "no" else sql)
    return q


@dataclass(frozen=True)
class CohortFilter:
    """A saved cohort as a view's ``cohort`` filter, resolved by the web layer (which read its definition)."""

    cohort_id: int
    definition: CohortDefinition
    today: dt.date  # the behaviour windows end today, in the project's zone

    def condition(self, q: ScopedSelect, zone: str) -> str:
        """Over sessions rows: the session is one of the cohort's people's."""
        return f"anonymous_id IN ({members_select(q.project_id, self.definition, self.today, zone, parent=q).sql()})"


def check_regexes(store: EventStore, project_id: int, definition: CohortDefinition) -> None:
    """A pattern re2 refuses is the caller's mistake (400), found before the cohort is saved or run."""
    for i, c in enumerate(definition.conditions):
        if isinstance(c, BehaviourCondition) and c.step.kind == "pageview" and c.step.match == "regex":
            q = ScopedSelect(project_id).from_("sessions")
            q.select(f"match('', {q.bind(c.step.path, 'String')}) AS ok").where("0")
            try:
                store.query(q.sql(), q.params)
            except Exception:  # noqa: BLE001 - chDB raises its own error types for a bad pattern
                raise BadParameter(f"definition.conditions[{i}].event.path",
                                   "path is not a regular expression re2 accepts") from None


def size(store: EventStore, project_id: int, definition: CohortDefinition, today: dt.date, zone: str) -> int:
    """How many people are in the cohort now."""
    q = members_select(project_id, definition, today, zone)
    rows = store.query(f"SELECT count() AS n FROM ({q.sql()})\n{_SETTINGS}", q.params)
    return int(rows[0]["n"]) if rows else 0


def members(store: EventStore, project_id: int, definition: CohortDefinition, today: dt.date, zone: str,
            offset: int = 0, limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """The cohort's size and a page of its people (most recently seen first), each with their latest sessions."""
    q = ScopedSelect(project_id).from_("sessions", final=True)
    q.where("is_deleted = 0")
    q.where("pageviews > 0")
    q.where(f"anonymous_id IN ({members_select(project_id, definition, today, zone, parent=q).sql()})")
    q.select(
        "anonymous_id",
        "argMaxIf(user_id, started_at, user_id != '') AS person_user_id",
        "toUnixTimestamp64Milli(min(started_at)) AS first_seen_ms",
        "toUnixTimestamp64Milli(max(started_at)) AS last_seen_ms",
        "count() AS session_count",
        "argMax(country, started_at) AS last_country",
        "argMax(device_type, started_at) AS last_device",
        "argMax(browser, started_at) AS last_browser",
        "argMax(os, started_at) AS last_os",
    )
    q.group_by.append("anonymous_id")
    q.order_by += ["last_seen_ms DESC", "anonymous_id"]
    q.limit = limit
    rows = store.query(f"{q.sql()} OFFSET {int(offset)}\n{_SETTINGS}", q.params)
    people = [
        {"anonymous_id": r["anonymous_id"], "user_id": r["person_user_id"], "first_seen_ms": int(r["first_seen_ms"]),
         "last_seen_ms": int(r["last_seen_ms"]), "sessions": int(r["session_count"]), "country": r["last_country"],
         "device": r["last_device"], "browser": r["last_browser"], "os": r["last_os"], "recent_sessions": []}
        for r in rows
    ]
    by_id = {p["anonymous_id"]: p for p in people}
    for s in _recent_sessions(store, project_id, list(by_id)):
        by_id[s.pop("anonymous_id")]["recent_sessions"].append(s)
    total = size(store, project_id, definition, today, zone)
    return {"size": total, "people": people, "next_offset": offset + limit if offset + limit < total else None}


def _recent_sessions(store: EventStore, project_id: int, anonymous_ids: list[str]) -> list[dict[str, Any]]:
    """The latest SESSIONS_PER_MEMBER visits of each of these people, newest first, with their replay URLs."""
    if not anonymous_ids:
        return []
    q = ScopedSelect(project_id).from_("sessions", final=True)
    q.where("is_deleted = 0")
    q.where("pageviews > 0")
    q.where(f"anonymous_id IN ({', '.join(q.bind(a, 'String') for a in anonymous_ids)})")
    q.select("session_id", "anonymous_id", "toUnixTimestamp64Milli(started_at) AS started_ms", "duration_ms",
             "pageviews", "entry_path", "user_id")
    q.order_by += ["anonymous_id", "started_ms DESC", "session_id"]
    rows = store.query(f"{q.sql()}\nLIMIT {SESSIONS_PER_MEMBER} BY anonymous_id\n{_SETTINGS}", q.params)
    return [
        {"session_id": r["session_id"], "anonymous_id": r["anonymous_id"], "started_at_ms": int(r["started_ms"]),
         "duration_ms": int(r["duration_ms"]), "pageviews": int(r["pageviews"]), "entry_path": r["entry_path"],
         "user_id": r["user_id"], "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}"}
        for r in rows
    ]
