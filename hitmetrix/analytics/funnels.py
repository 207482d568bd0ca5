"""Funnels: how many sessions went through 2–10 steps in turn, where the rest dropped off, and which sessions.

What a funnel means — decided here, once:

- The **unit** is a session (PostHog counts persons). The funnel looks at sessions that started in the date
  range (days of the project's zone) and pass the overview's filters (``OverviewQuery``).
- A **step** is a pageview whose path is ``exact``-ly, starts with (``prefix``) or matches (``regex``, ClickHouse
  re2: linear time, searched anywhere in the path) a pattern; a click (its selector and/or its text, exactly);
  a form submit (optionally its selector); or a custom event by name whose properties equal the given values
  (string properties unquoted, numbers and booleans as their JSON text, as the property filter reads them).
- An **attempt** starts at an event that matches step 1 and falls in the range. Later steps are events after
  it (in time order; one event fills at most one step, so a repeated step needs two events) no later than
  ``window_s`` after step 1: at exactly the limit counts, 1 ms over does not.
  ``ordered``: each step after the previous one, other events between allowed. ``strict``: each step is the very
  next pageview, click, submit or custom event of the session. ``any``: the steps in any order within the window
  (the attempt starts at the first of them); a session reaches step k when k of the steps are done.
- An **exclusion** (an event like a step, between steps ``from_step`` and ``to_step``) voids an attempt when it
  happens after the attempt's ``from_step`` event and before its ``to_step`` event (or before the window's end
  when it never got there). A session whose attempts are all void is left out of the funnel.
- A session counts at the step its best attempt reached (the furthest; of equals, the first). Time to convert
  is from the previous step's event; the median is over the sessions that reached the step.
- The trend buckets sessions by the day (project zone) of their best attempt's step 1.

Reads: the ``sessions`` rows (filters, breakdown property) and, from ``events``, only the time, session and the
columns the steps look at, of the days in the range plus the window, and only events that match a step (all
four kinds for ``strict``). ``window_funnel_baseline`` is ClickHouse's ``windowFunnel`` over raw events, for the
bench to compare with.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import overview
from hitmetrix.analytics.days import day_range_ms, time_zone
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from hitmetrix.store.clickhouse import EventStore

MIN_STEPS, MAX_STEPS = 2, 10
MAX_EXCLUSIONS = 5
MAX_PROPS = 10
MAX_TEXT_CHARS = 500
MAX_DEFINITION_CHARS = 8_000
DEFAULT_WINDOW_S = 24 * 3600
MAX_WINDOW_S = 90 * 24 * 3600
ORDERS = ("ordered", "strict", "any")
MATCHES = ("exact", "prefix", "regex")
KINDS = ("pageview", "click", "submit", "custom")
BREAKDOWNS = {
    "country": "country",
    "device": "device_type",
    "browser": "browser",
    "os": "os",
    "referrer": "referrer_domain",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "entry_path": "entry_path",
}
MAX_PAGE = 200
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"


@dataclass(frozen=True)
class Step:
    kind: str
    match: str = "exact"
    path: str = ""
    selector: str = ""
    text: str = ""
    name: str = ""
    props: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Exclusion:
    step: Step
    from_step: int  # 1-based
    to_step: int


@dataclass(frozen=True)
class FunnelDefinition:
    steps: tuple[Step, ...]
    window_s: int = DEFAULT_WINDOW_S
    order: str = "ordered"
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: str = ""

    @classmethod
    def from_json(cls, raw: str) -> FunnelDefinition:
        """Parse the ``definition`` parameter (a JSON object); BadParameter naming the field when wrong."""
        if not raw:
            raise BadParameter("definition", "definition is required: a JSON object with steps")
        if len(raw) > MAX_DEFINITION_CHARS:
            raise BadParameter("definition", f"definition is too long (at most {MAX_DEFINITION_CHARS} characters)")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadParameter("definition", "definition must be a JSON object") from None
        if not isinstance(data, dict):
            raise BadParameter("definition", "definition must be a JSON object")
        unknown = set(data) - {"steps", "window_s", "order", "exclusions", "breakdown"}
        if unknown:
            raise BadParameter(f"definition.{sorted(unknown)[0]}", "unknown field")
        steps = data.get("steps")
        if not isinstance(steps, list) or not MIN_STEPS <= len(steps) <= MAX_STEPS:
            raise BadParameter("definition.steps", f"steps must be a list of {MIN_STEPS} to {MAX_STEPS} steps")
        parsed = tuple(_step(s, f"definition.steps[{i}]") for i, s in enumerate(steps))
        window_s = data.get("window_s", DEFAULT_WINDOW_S)
        if isinstance(window_s, bool) or not isinstance(window_s, int) or not 1 <= window_s <= MAX_WINDOW_S:
            raise BadParameter("definition.window_s", f"window_s must be a whole number from 1 to {MAX_WINDOW_S}")
        order = data.get("order", "ordered")
        if order not in ORDERS:
            raise BadParameter("definition.order", f"order must be one of {', '.join(ORDERS)}")
        exclusions = data.get("exclusions", [])
        if not isinstance(exclusions, list) or len(exclusions) > MAX_EXCLUSIONS:
            raise BadParameter("definition.exclusions", f"exclusions must be a list of at most {MAX_EXCLUSIONS}")
        parsed_exclusions = []
        for i, e in enumerate(exclusions):
            field = f"definition.exclusions[{i}]"
            if not isinstance(e, dict):
                raise BadParameter(field, "an exclusion must be an object")
            lo, hi = e.get("from_step", 1), e.get("to_step", len(parsed))
            for name, value in (("from_step", lo), ("to_step", hi)):
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(parsed):
                    raise BadParameter(f"{field}.{name}", f"{name} must be a step number from 1 to {len(parsed)}")
            if lo >= hi:
                raise BadParameter(f"{field}.to_step", "to_step must come after from_step")
            rest = {k: v for k, v in e.items() if k not in ("from_step", "to_step")}
            parsed_exclusions.append(Exclusion(_step(rest, field), lo, hi))
        breakdown = data.get("breakdown", "")
        if breakdown and breakdown not in BREAKDOWNS:
            raise BadParameter("definition.breakdown", f"breakdown must be one of {', '.join(BREAKDOWNS)}")
        return cls(parsed, window_s, order, tuple(parsed_exclusions), breakdown or "")


def _text(data: Mapping[str, Any], key: str, field: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise BadParameter(f"{field}.{key}", f"{key} must be text of at most {MAX_TEXT_CHARS} characters")
    return value


def _step(data: Any, field: str) -> Step:
    if not isinstance(data, dict):
        raise BadParameter(field, "a step must be an object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise BadParameter(f"{field}.kind", f"kind must be one of {', '.join(KINDS)}")
    allowed = {"pageview": {"match", "path"}, "click": {"selector", "text"}, "submit": {"selector"},
               "custom": {"name", "props"}}[kind] | {"kind"}
    unknown = set(data) - allowed
    if unknown:
        raise BadParameter(f"{field}.{sorted(unknown)[0]}", f"a {kind} step has no such field")
    if kind == "pageview":
        match = data.get("match", "exact")
        if match not in MATCHES:
            raise BadParameter(f"{field}.match", f"match must be one of {', '.join(MATCHES)}")
        path = _text(data, "path", field)
        if not path and match != "prefix":
            raise BadParameter(f"{field}.path", "path is required")
        return Step(kind, match=match, path=path)
    if kind == "click":
        selector, text = _text(data, "selector", field), _text(data, "text", field)
        if not selector and not text:
            raise BadParameter(f"{field}.selector", "a click step needs a selector or a text")
        return Step(kind, selector=selector, text=text)
    if kind == "submit":
        return Step(kind, selector=_text(data, "selector", field))
    name = _text(data, "name", field)
    if not name:
        raise BadParameter(f"{field}.name", "name is required")
    props = data.get("props", {})
    if not isinstance(props, dict) or len(props) > MAX_PROPS:
        raise BadParameter(f"{field}.props", f"props must be an object of at most {MAX_PROPS} text values")
    pairs = []
    for key, value in props.items():
        if not isinstance(value, str) or len(key) > MAX_TEXT_CHARS or len(value) > MAX_TEXT_CHARS:
            raise BadParameter(f"{field}.props", f"props must be an object of at most {MAX_PROPS} text values")
        pairs.append((key, value))
    return Step(kind, name=name, props=tuple(pairs))


def _condition(q: ScopedSelect, step: Step) -> str:
    """The SQL condition (over events columns, values bound) an event meets to fill this step."""
    parts = [f"type = '{step.kind}'"]
    if step.kind == "pageview":
        path = q.bind(step.path, "String")
        parts.append({"exact": f"path = {path}", "prefix": f"startsWith(path, {path})",
                      "regex": f"match(path, {path})"}[step.match])
    if step.selector:
        parts.append(f"selector = {q.bind(step.selector, 'String')}")
    if step.text:
        parts.append(f"text = {q.bind(step.text, 'String')}")
    if step.kind == "custom":
        parts.append(f"name = {q.bind(step.name, 'String')}")
        for key, value in step.props:
            k, v = q.bind(key, "String"), q.bind(value, "String")
            parts.append(f"JSONHas(props, {k}) AND if(JSONType(props, {k}) = 'String', JSONExtractString(props, {k}),"
                         f" JSONExtractRaw(props, {k})) = {v}")
    return " AND ".join(f"({p})" for p in parts)


def _check_regexes(store: EventStore, project_id: int, definition: FunnelDefinition) -> None:
    """A pattern re2 refuses is the caller's mistake (400), not a failed query."""
    steps = [(f"definition.steps[{i}].path", s) for i, s in enumerate(definition.steps)]
    steps += [(f"definition.exclusions[{i}].path", e.step) for i, e in enumerate(definition.exclusions)]
    for field, step in steps:
        if step.kind == "pageview" and step.match == "regex":
            q = ScopedSelect(project_id).from_("sessions")
            q.select(f"match('', {q.bind(step.path, 'String')}) AS ok").where("0")
            try:
                store.query(q.sql(), q.params)
            except Exception:  # noqa: BLE001 - chDB raises its own error types for a bad pattern
                raise BadParameter(field, "path is not a regular expression re2 accepts") from None


def sessions_query(project_id: int, query: overview.OverviewQuery, zone: str, breakdown: str) -> ScopedSelect:
    q = overview.scoped_sessions(project_id, query, query.date_from, zone)
    column = BREAKDOWNS.get(breakdown, "''")
    q.select("session_id", "anonymous_id", f"toString({column}) AS breakdown_value")
    return q


def events_query(project_id: int, query: overview.OverviewQuery, zone: str, definition: FunnelDefinition
                 ) -> ScopedSelect:
    """Per session, its matching events as (ms, bitmask of steps, bitmask of exclusions), in time order."""
    q = ScopedSelect(project_id).from_("events")
    start_ms, end_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert start_ms is not None and end_ms is not None
    step_mask = " + ".join(f"if({_condition(q, s)}, {1 << i}, 0)" for i, s in enumerate(definition.steps))
    excl_mask = " + ".join(f"if({_condition(q, e.step)}, {1 << i}, 0)" for i, e in enumerate(definition.exclusions))
    q.select(
        "session_id",
        f"arraySort(groupArray((toUnixTimestamp64Milli(ts), toUInt32({step_mask}), toUInt32({excl_mask or '0'}))))"
        " AS seq",
    )
    q.where(f"ts >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"ts <= fromUnixTimestamp64Milli({q.bind(end_ms + definition.window_s * 1000, 'Int64')}, 'UTC')")
    if definition.order == "strict":
        q.where("type IN ('pageview', 'click', 'submit', 'custom')")
    else:
        q.where(f"({step_mask}) + ({excl_mask or '0'}) > 0")
    q.group_by.append("session_id")
    return q


@dataclass
class Attempt:
    times: list[int]  # ms of each step reached, in step order


def _ordered(seq: list[tuple[int, int, int]], definition: FunnelDefinition, start: int) -> Attempt:
    strict = definition.order == "strict"
    first_ms = seq[start][0]
    times, at = [first_ms], start
    for k in range(1, len(definition.steps)):
        bit = 1 << k
        nxt = None
        for j in range(at + 1, len(seq)):
            if seq[j][0] - first_ms > definition.window_s * 1000:
                break
            if seq[j][1] & bit:
                nxt = j
                break
            if strict:
                break
        if nxt is None:
            break
        times.append(seq[nxt][0])
        at = nxt
    return Attempt(times)


def _any_order(seq: list[tuple[int, int, int]], definition: FunnelDefinition, start: int) -> Attempt:
    """Most steps filled by distinct events within the window from seq[start] (which fills one of them)."""
    first_ms = seq[start][0]
    events = [j for j in range(start, len(seq)) if seq[j][0] - first_ms <= definition.window_s * 1000 and seq[j][1]]
    owner: dict[int, int] = {}  # step -> event index (a bipartite matching, augmented one event at a time)

    def augment(j: int, seen: set[int]) -> bool:
        for k in range(len(definition.steps)):
            if seq[j][1] & (1 << k) and k not in seen:
                seen.add(k)
                if k not in owner or augment(owner[k], seen):
                    owner[k] = j
                    return True
        return False

    augment(start, set())
    for j in events[1:]:
        augment(j, set())
    return Attempt(sorted(seq[j][0] for j in owner.values()))


def _void(seq: list[tuple[int, int, int]], definition: FunnelDefinition, attempt: Attempt) -> bool:
    for i, e in enumerate(definition.exclusions):
        if len(attempt.times) < e.from_step:
            continue
        low = attempt.times[e.from_step - 1]
        high = (attempt.times[e.to_step - 1] if len(attempt.times) >= e.to_step
                else attempt.times[0] + definition.window_s * 1000 + 1)
        if any(low < ms < high and excl & (1 << i) for ms, _, excl in seq):
            return True
    return False


def best_attempt(seq: list[tuple[int, int, int]], definition: FunnelDefinition, first_ms: int, last_ms: int
                 ) -> Attempt | None:
    """The session's furthest attempt (of equals the first) starting in [first_ms, last_ms); None if none."""
    best: Attempt | None = None
    for start, (ms, steps, _) in enumerate(seq):
        if not first_ms <= ms < last_ms:
            continue
        if definition.order == "any":
            if not steps:
                continue
            attempt = _any_order(seq, definition, start)
        else:
            if not steps & 1:
                continue
            attempt = _ordered(seq, definition, start)
        if _void(seq, definition, attempt):
            continue
        if best is None or len(attempt.times) > len(best.times):
            best = attempt
    return best


def _attempts(store: EventStore, project_id: int, query: overview.OverviewQuery, zone: str,
              definition: FunnelDefinition) -> list[tuple[str, str, str, Attempt]]:
    """(session id, anonymous id, breakdown value, best attempt) of every session in the funnel."""
    _check_regexes(store, project_id, definition)
    sq = sessions_query(project_id, query, zone, definition.breakdown)
    picked = {r["session_id"]: r for r in store.query(sq.sql() + "\n" + _SETTINGS, sq.params)}
    eq = events_query(project_id, query, zone, definition)
    first_ms, last_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert first_ms is not None and last_ms is not None
    out = []
    for row in store.query(eq.sql() + "\n" + _SETTINGS, eq.params):
        session = picked.get(row["session_id"])
        if session is None:
            continue
        seq = [(int(ms), int(steps), int(excl)) for ms, steps, excl in row["seq"]]
        attempt = best_attempt(seq, definition, first_ms, last_ms)
        if attempt is not None:
            out.append((row["session_id"], session["anonymous_id"], session["breakdown_value"], attempt))
    out.sort(key=lambda a: (a[3].times[0], a[0]))
    return out


def _steps(attempts: list[Attempt], n_steps: int) -> list[dict[str, Any]]:
    rows = []
    entered = len(attempts)
    for k in range(n_steps):
        reached = [a for a in attempts if len(a.times) > k]
        previous = len([a for a in attempts if len(a.times) > k - 1]) if k else entered
        gaps = [a.times[k] - a.times[k - 1] for a in reached] if k else []
        totals = [a.times[k] - a.times[0] for a in reached] if k else []
        rows.append({
            "step": k + 1,
            "sessions": len(reached),
            "conversion": round(100 * len(reached) / entered, 2) if entered else 0.0,
            "from_previous": round(100 * len(reached) / previous, 2) if previous else 0.0,
            "dropped": previous - len(reached),
            "median_ms_from_previous": round(statistics.median(gaps)) if gaps else None,
            "median_ms_from_start": round(statistics.median(totals)) if totals else None,
        })
    return rows


def funnel(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: FunnelDefinition,
           zone: str = "UTC") -> dict[str, Any]:
    """Per-step counts, conversion, drop-off and median times, a breakdown and a daily trend."""
    found = _attempts(store, project_id, query, zone, definition)
    n = len(definition.steps)
    attempts = [a for *_, a in found]
    tz = time_zone(zone)
    days: dict[str, list[Attempt]] = {}
    day = query.date_from
    while day <= query.date_to:
        days[day.isoformat()] = []
        day += dt.timedelta(days=1)
    for a in attempts:
        local = dt.datetime.fromtimestamp(a.times[0] / 1000, dt.UTC).astimezone(tz).date().isoformat()
        days.setdefault(local, []).append(a)
    answer: dict[str, Any] = {
        "range": {"from": query.date_from.isoformat(), "to": query.date_to.isoformat(), "time_zone": zone},
        "unit": "session",
        "order": definition.order,
        "window_s": definition.window_s,
        "steps": _steps(attempts, n),
        "trend": [
            {"day": label, "entered": len(group), "converted": sum(1 for a in group if len(a.times) == n),
             "conversion": round(100 * sum(1 for a in group if len(a.times) == n) / len(group), 2) if group else 0.0}
            for label, group in days.items()
        ],
    }
    if definition.breakdown:
        groups: dict[str, list[Attempt]] = {}
        for _, _, value, a in found:
            groups.setdefault(value, []).append(a)
        answer["breakdown"] = {
            "property": definition.breakdown,
            "values": [{"value": v, "steps": _steps(g, n)} for v, g in sorted(groups.items(), key=lambda kv: (
                -len(kv[1]), kv[0]))],
        }
    return answer


def funnel_sessions(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: FunnelDefinition,
                    step: int, outcome: str, offset: int, limit: int, zone: str = "UTC") -> dict[str, Any]:
    """The sessions that reached ``step`` (converted) or reached the one before and not it (dropped), paged."""
    if not 1 <= step <= len(definition.steps):
        raise BadParameter("step", f"step must be from 1 to {len(definition.steps)}")
    if outcome == "dropped" and step == 1:
        raise BadParameter("step", "nobody drops off before step 1: dropped needs step 2 or later")
    found = _attempts(store, project_id, query, zone, definition)
    if outcome == "converted":
        chosen = [f for f in found if len(f[3].times) >= step]
    else:
        chosen = [f for f in found if len(f[3].times) == step - 1]
    page = chosen[offset : offset + limit]
    return {
        "step": step,
        "outcome": outcome,
        "total": len(chosen),
        "sessions": [
            {"session_id": sid, "anonymous_id": anon, "entered_at_ms": a.times[0], "steps_reached": len(a.times),
             "replay_url": f"/projects/{project_id}/sessions/{sid}"}
            for sid, anon, _, a in page
        ],
        "next_offset": offset + limit if offset + limit < len(chosen) else None,
    }


def window_funnel_baseline(store: EventStore, project_id: int, query: overview.OverviewQuery,
                           definition: FunnelDefinition, zone: str = "UTC") -> list[int]:
    """Sessions reaching each step by ClickHouse's ``windowFunnel`` over raw events (PostHog's way): the bench's
    yardstick. Filters, exclusions and any-order are not applied; ``strict`` is its ``strict_order``."""
    q = ScopedSelect(project_id).from_("events")
    start_ms, end_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert start_ms is not None and end_ms is not None
    conditions = ", ".join(_condition(q, s) for s in definition.steps)
    mode = ", 'strict_order'" if definition.order == "strict" else ""
    q.select(f"windowFunnel({definition.window_s}{mode})(toDateTime(ts), {conditions}) AS level")
    q.where(f"ts >= fromUnixTimestamp64Milli({q.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"ts <= fromUnixTimestamp64Milli({q.bind(end_ms + definition.window_s * 1000, 'Int64')}, 'UTC')")
    q.group_by.append("session_id")
    sql = f"SELECT level, count() AS n FROM ({q.sql()}) GROUP BY level"
    levels = {int(r["level"]): int(r["n"]) for r in store.query(sql, q.params)}
    return [sum(n for level, n in levels.items() if level >= k) for k in range(1, len(definition.steps) + 1)]
