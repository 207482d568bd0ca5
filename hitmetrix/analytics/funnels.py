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

Reads: when every step and exclusion is a pageview or a custom event without property filters, and the order
is ``ordered`` or ``any``, only the ``sessions`` rows of the range: each row carries its session's pageviews and
custom events in time order (``step_seq``, schema step 7, written by the loader; a session keeps its first
``MAX_SESSION_STEP_EVENTS`` of them). When every such step is an exact page or an event name, not even their
text: the same items as numbers (``step_ms`` and ``step_key``, a hash of kind and page or name, schema step 8),
compared with the steps' hashes. Otherwise (clicks, submits, property filters, ``strict``, which needs every
click and submit in between) the ``sessions`` rows (filters, breakdown property) and, from ``events``, only the
time, session and the columns the steps look at, of the days in the range plus the window, and only events that
match a step (all four kinds for ``strict``): the events projection ordered by kind and page (schema step 6)
makes that a read of the steps' ranges. Both give the same per-session array, so the matching is one piece of
SQL. All of it runs in ClickHouse, one query per answer: per session its matching events as one sorted array,
every attempt from it with element-wise array functions (a fold only for ``any`` and exclusions), the best one,
then counts and medians per step, per day and per breakdown value (GROUPING SETS). Nothing per session comes
back to Python.
``window_funnel_baseline`` is ClickHouse's ``windowFunnel`` over raw events, for the bench to compare with.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import overview
from hitmetrix.analytics.days import day_range_ms
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect, bound_value
from hitmetrix.store.clickhouse import EventStore

MIN_STEPS, MAX_STEPS = 2, 10
MAX_EXCLUSIONS = 5
# Bits below an item's time in a packed step item: a bit per step, then a bit per exclusion.
_PACKED_BITS = MAX_STEPS + MAX_EXCLUSIONS
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


def text_field(data: Mapping[str, Any], key: str, field: str) -> str:
    """``data[key]`` as text of at most MAX_TEXT_CHARS ("" when missing); BadParameter naming ``field.key``."""
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
        path = text_field(data, "path", field)
        if not path and match != "prefix":
            raise BadParameter(f"{field}.path", "path is required")
        return Step(kind, match=match, path=path)
    if kind == "click":
        selector, text = text_field(data, "selector", field), text_field(data, "text", field)
        if not selector and not text:
            raise BadParameter(f"{field}.selector", "a click step needs a selector or a text")
        return Step(kind, selector=selector, text=text)
    if kind == "submit":
        return Step(kind, selector=text_field(data, "selector", field))
    name = text_field(data, "name", field)
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


# Step kinds whose events the sessions rows carry in order (``step_seq``: time, kind, path or event name).
SEQUENCE_KINDS = ("pageview", "custom")


def reads_sessions_only(definition: FunnelDefinition) -> bool:
    """Whether every event the funnel looks at is in the sessions rows' ``step_seq`` (see the module docstring)."""
    steps = [*definition.steps, *(e.step for e in definition.exclusions)]
    return definition.order != "strict" and all(s.kind in SEQUENCE_KINDS and not s.props for s in steps)


def _item_condition(q: ScopedSelect, step: Step) -> str:
    """``_condition`` for an element ``x`` of ``step_seq`` (a pageview or custom step without properties)."""
    parts = [f"x.2 = '{step.kind}'"]
    if step.kind == "pageview":
        path = q.bind(step.path, "String")
        parts.append({"exact": f"x.3 = {path}", "prefix": f"startsWith(x.3, {path})",
                      "regex": f"match(x.3, {path})"}[step.match])
    else:
        parts.append(f"x.3 = {q.bind(step.name, 'String')}")
    return " AND ".join(f"({p})" for p in parts)


def _masks(definition: FunnelDefinition, condition: Any) -> tuple[str, str]:
    """(bitmask of the steps, bitmask of the exclusions) an event fills, as SQL over what ``condition`` reads."""
    step_mask = " + ".join(f"if({condition(s)}, {1 << i}, 0)" for i, s in enumerate(definition.steps))
    excl_mask = " + ".join(f"if({condition(e.step)}, {1 << i}, 0)" for i, e in enumerate(definition.exclusions))
    return f"toUInt32({step_mask})", f"toUInt32({excl_mask or '0'})"


def _key(q: ScopedSelect, step: Step) -> str:
    """The ``step_key`` (schema step 8: a hash of kind and path or name) of the items an exact pageview or custom
    event step matches (``reads_keys``)."""
    return f"cityHash64('{step.kind}', {q.bind(step.path if step.kind == 'pageview' else step.name, 'String')})"


def reads_keys(definition: FunnelDefinition) -> bool:
    """Whether a funnel that reads the sessions rows compares numbers only: every step and exclusion an exact page
    or an event name (not a prefix or a pattern, which need the text)."""
    steps = [*definition.steps, *(e.step for e in definition.exclusions)]
    return all(s.kind == "custom" or (s.kind == "pageview" and s.match == "exact") for s in steps)


def sequence_query(project_id: int, query: overview.OverviewQuery, zone: str, definition: FunnelDefinition
                   ) -> ScopedSelect:
    """The sessions query with ``seq`` as ``events_query`` makes it, read off the rows' ``step_seq`` instead of
    events: the same events (those filling a step or an exclusion, in the same time bounds), sorted the same."""
    q = sessions_query(project_id, query, zone, definition.breakdown)
    start_ms, end_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert start_ms is not None and end_ms is not None
    if reads_keys(definition):
        # Only sessions where an attempt can start: one with step 1 (``any``: with any step) at all.
        opening = definition.steps if definition.order == "any" else definition.steps[:1]
        q.where(f"hasAny(step_key, [{', '.join(_key(q, s) for s in opening)}])")
        step_mask, excl_mask = _masks(definition, lambda step: f"k = {_key(q, step)}")
        # Each item packed with what it fills into one Int64 (time, then a bit per step, then a bit per
        # exclusion), in one pass over the items; those that fill nothing (most) and those out of the time bounds
        # are dropped, and the rest sorted, all as plain numbers. ``seq`` unpacks them, for the rules that read it.
        first, last = q.bind(start_ms << _PACKED_BITS, "Int64"), q.bind(
            ((end_ms + definition.window_s * 1000 + 1) << _PACKED_BITS) - 1, "Int64")
        q.select(
            f"arraySort(arrayFilter(x -> bitAnd(x, {(1 << _PACKED_BITS) - 1}) != 0 AND x >= {first} AND x <= {last},"
            f" arrayMap((t, k) -> bitOr(bitShiftLeft(t, {_PACKED_BITS}), bitOr(bitShiftLeft({step_mask},"
            f" {MAX_EXCLUSIONS}), {excl_mask})), step_ms, step_key))) AS packed",
            f"arrayMap(x -> (bitShiftRight(x, {_PACKED_BITS}), toUInt32(bitAnd(bitShiftRight(x, {MAX_EXCLUSIONS}),"
            f" {(1 << MAX_STEPS) - 1})), toUInt32(bitAnd(x, {(1 << MAX_EXCLUSIONS) - 1}))), packed) AS seq",
        )
        return q
    step_mask, excl_mask = _masks(definition, lambda step: _item_condition(q, step))
    low, high = q.bind(start_ms, "Int64"), q.bind(end_ms + definition.window_s * 1000, "Int64")
    q.select(
        f"arraySort(arrayFilter(x -> (x.2 != 0 OR x.3 != 0) AND x.1 >= {low} AND x.1 <= {high},"
        f" arrayMap(x -> (toUnixTimestamp64Milli(x.1), {step_mask}, {excl_mask}), step_seq))) AS seq"
    )
    return q


def events_query(project_id: int, query: overview.OverviewQuery, zone: str, definition: FunnelDefinition,
                 binder: ScopedSelect) -> ScopedSelect:
    """Per session, its matching events as ``seq``: (ms, bitmask of steps, bitmask of exclusions), in time order.
    Values are bound through ``binder`` (the sessions query), so the two share one set of parameters."""
    q = ScopedSelect(project_id).from_("events")
    start_ms, end_ms = day_range_ms(query.date_from, query.date_to, zone)
    assert start_ms is not None and end_ms is not None
    step_mask, excl_mask = _masks(definition, lambda step: _condition(binder, step))
    q.select("session_id", f"arraySort(groupArray((toUnixTimestamp64Milli(ts), {step_mask}, {excl_mask}))) AS seq")
    q.where(f"ts >= fromUnixTimestamp64Milli({binder.bind(start_ms, 'Int64')}, 'UTC')")
    q.where(f"ts <= fromUnixTimestamp64Milli({binder.bind(end_ms + definition.window_s * 1000, 'Int64')}, 'UTC')")
    if definition.order == "strict":
        q.where("type IN ('pageview', 'click', 'submit', 'custom')")
    else:
        # An OR of the conditions (not the masks' sum): the events projection ordered by type and path
        # (schema step 6) then reads only the matching ranges.
        looked_at = (*definition.steps, *(e.step for e in definition.exclusions))
        q.where(" OR ".join(f"({_condition(binder, s)})" for s in looked_at))
    q.group_by.append("session_id")
    return q


# The attempt rules of the module docstring, as ClickHouse array expressions over one session's ``seq``
# (Array(Tuple(ms Int64, steps UInt32, exclusions UInt32)), sorted). An attempt is its steps' times, Array(Int64).


def _ordered_attempts_sql(definition: FunnelDefinition, first_ms: str, last_ms: str, packed: bool
                          ) -> tuple[list[str], str]:
    """(select-list items, expression) for ``ordered`` and ``strict`` over one session's ``seq``: per position of
    seq, ``d2_K`` (the time of step K of the attempt starting there; its own time is step 1's) and ``lens`` (how
    many steps that attempt reaches; 0 if none starts there); then the times of the first of the longest.

    Greedy, as the rules say: ``ordered`` takes the first later event that fills the next step, ``strict`` only
    the very next event; both within the window from the attempt's first event. Built from the last step back:
    at each position j, ``dK_M`` is the time of step M of the chain that the first step-K event after j starts
    (``ordered``: ``arrayReverseFill``; ``strict``: the very next event's), 0 for none; a step-K event's own
    chain is its time and then ``d(K+1)_M`` at its own position. Only element-wise functions over arrays of
    numbers: no lambda reads another array by index (ClickHouse would copy that array for every element) and
    no array of arrays. With ``packed``, over the sessions rows' ``packed`` items instead (``sequence_query``):
    the same numbers without making a tuple of each."""
    n, window_ms = len(definition.steps), definition.window_s * 1000
    items: list[str] = []
    source = "packed" if packed else "seq"

    def ms(x: str) -> str:
        return f"bitShiftRight({x}, {_PACKED_BITS})" if packed else f"{x}.1"

    def fills(x: str, step: int) -> str:
        """Whether item ``x`` fills step ``step`` (1-based)."""
        return f"bitTest({x}, {MAX_EXCLUSIONS + step - 1})" if packed else f"bitTest({x}.2, {step - 1})"

    def after(k: int, own: str) -> str:
        """``own`` (values at step-k events, 0 elsewhere) as seen from each position: the first step-k event's
        strictly after it (``strict``: the next event's)."""
        if definition.order != "strict":
            own = f"arrayReverseFill((v, x) -> {fills('x', k)}, {own}, {source})"
            if packed and definition.steps[k - 2] != definition.steps[k - 1]:
                # Steps k-1 and k are different pages or names, so no event fills both: at a step k-1 event (the
                # only places this is read), the first step-k event from there on is the first one after it.
                return own
        return f"arrayResize(arrayPopFront({own}), length({source}), 0)"  # [] stays []

    for k in range(n, 1, -1):
        own = f"arrayMap(x -> if({fills('x', k)}, {ms('x')}, 0), {source})"
        items.append(f"{after(k, own)} AS d{k}_{k}")
        for m in range(k + 1, n + 1):
            own = f"arrayMap((x, v) -> if({fills('x', k)}, v, 0), {source}, d{k + 1}_{m})"
            items.append(f"{after(k, own)} AS d{k}_{m}")
    later = [f"d2_{m}" for m in range(2, n + 1)]
    params = ", ".join(f"t{m}" for m in range(2, n + 1))
    start = ms("x")
    # Chain times rise along the chain, so those within the window are a prefix of it.
    reached = " + ".join(f"(t{m} != 0 AND t{m} - {start} <= {window_ms})" for m in range(2, n + 1))
    items.append(
        f"arrayMap((x, {params}) -> if({fills('x', 1)} AND {start} >= {first_ms} AND {start} < {last_ms},"
        f" 1 + {reached}, 0), {source}, {', '.join(later)}) AS lens"
    )
    times = f"[{start}, {params}]"
    if definition.exclusions:
        items.append(f"arrayMap((x, len, {params}) -> arraySlice({times}, 1, len), {source}, lens,"
                     f" {', '.join(later)}) AS attempts")
        pick = (f"arrayFold((best, a) -> if(length(a) > length(best) AND NOT ({_void_sql(definition)}), a, best),"
                " attempts, emptyArrayInt64())")
        return items, pick
    # Without exclusions no attempt is void: the first of the longest.
    best = "indexOf(lens, arrayMax(lens))"
    pick = f"arraySlice([{ms(f'{source}[{best}]')}, {', '.join(f'{d}[{best}]' for d in later)}], 1, arrayMax(lens))"
    return items, pick


def _any_order_sql(definition: FunnelDefinition) -> str:
    """The attempt starting at seq[i] for ``any``: the most steps distinct events within the window fill. Every
    set of steps the events so far can fill (with one set of times for it) is kept, so the largest is exact."""
    n, window_ms = len(definition.steps), definition.window_s * 1000
    extend = (
        f"arrayFlatten(arrayMap(st -> arrayMap(k -> (bitOr(st.1, bitShiftLeft(toUInt32(1), k)), arrayPushBack(st.2,"
        f" e.1)), arrayFilter(k -> bitTest(e.2, k) AND NOT bitTest(st.1, k), range({n}))), acc))"
    )
    # The new sets of steps, each once, that the sets so far do not hold already.
    add = (
        f"arrayConcat(acc, arrayFilter((x, j) -> NOT has(arrayMap(a -> a.1, acc), x.1)"
        f" AND indexOf(arrayMap(b -> b.1, {extend}), x.1) = j, {extend}, arrayEnumerate({extend})))"
    )
    step = f"(acc, e) -> if(e.1 - seq[i].1 > {window_ms} OR e.2 = 0, acc, {add})"
    first = (f"arrayMap(k -> (bitShiftLeft(toUInt32(1), k), [seq[i].1]),"
             f" arrayFilter(k -> bitTest(seq[i].2, k), range({n})))")
    states = f"arrayFold({step}, arraySlice(seq, i + 1), {first})"
    return f"arraySort(arrayFold((best, st) -> if(length(st.2) > length(best), st.2, best), {states}, [seq[i].1]))"


def _void_sql(definition: FunnelDefinition) -> str:
    """Whether the attempt ``a`` (times of its steps) is void: an exclusion event between its from_step and
    to_step (or the window's end when it never got there)."""
    window_ms = definition.window_s * 1000
    arms = []
    for i, e in enumerate(definition.exclusions):
        high = f"if(length(a) >= {e.to_step}, a[{e.to_step}], a[1] + {window_ms + 1})"
        arms.append(f"(length(a) >= {e.from_step} AND arrayExists(x -> x.1 > a[{e.from_step}] AND x.1 < {high}"
                    f" AND bitTest(x.3, {i}), seq))")
    return " OR ".join(arms) or "0"


def best_attempt_sql(definition: FunnelDefinition, first_ms: str, last_ms: str, packed: bool = False
                     ) -> tuple[list[str], str]:
    """(select-list items, expression): the session's furthest attempt (of equals the first) starting in
    [first_ms, last_ms), as the times of its steps; [] if none. ``packed``: the rows have ``packed`` items too."""
    pick = (f"arrayFold((best, a) -> if(length(a) > length(best) AND NOT ({_void_sql(definition)}), a, best),"
            " attempts, emptyArrayInt64())")
    if definition.order == "any":
        attempts = (f"arrayMap(i -> if(seq[i].2 != 0 AND seq[i].1 >= {first_ms} AND seq[i].1 < {last_ms},"
                    f" {_any_order_sql(definition)}, emptyArrayInt64()), arrayEnumerate(seq)) AS attempts")
        return [attempts], pick
    return _ordered_attempts_sql(definition, first_ms, last_ms, packed)


def attempts_sql(project_id: int, query: overview.OverviewQuery, zone: str, definition: FunnelDefinition
                 ) -> tuple[str, dict[str, Any]]:
    """(SQL, parameters): a row per session in the funnel with its best attempt: session_id, anonymous_id,
    breakdown_value, times (ms of each step reached, in step order). The matching runs in ClickHouse."""
    if reads_sessions_only(definition):
        sq = sequence_query(project_id, query, zone, definition)
        first_ms, last_ms = day_range_ms(query.date_from, query.date_to, zone)
        first, last = sq.bind(first_ms, "Int64"), sq.bind(last_ms, "Int64")
        keys = reads_keys(definition)
        items, best = best_attempt_sql(definition, first, last, packed=keys)
        carried = ", ".join(["seq"] * (not keys or definition.order == "any" or bool(definition.exclusions))
                            + ["packed"] * keys)
        # Sessions where no attempt can start (no event in the range that fills step 1, or for ``any`` any step)
        # skip the array work: the keys' query has left them out already.
        opens = "x.2 != 0" if definition.order == "any" else "bitTest(x.2, 0)"
        where = "" if keys else (
            f" WHERE arrayExists(x -> {opens} AND x.1 >= {first} AND x.1 < {last}, seq)")
        sql = (
            "SELECT session_id, anonymous_id, breakdown_value, times\n"
            f"FROM (SELECT session_id, anonymous_id, breakdown_value, {best} AS times\n"
            f"FROM (SELECT session_id, anonymous_id, breakdown_value, {carried}, {', '.join(items)}\n"
            f"FROM ({sq.sql()}){where}))\n"
            "WHERE length(times) > 0"
        )
        return sql, sq.params
    sq = sessions_query(project_id, query, zone, definition.breakdown)
    eq = events_query(project_id, query, zone, definition, sq)
    first_ms, last_ms = day_range_ms(query.date_from, query.date_to, zone)
    items, best = best_attempt_sql(definition, sq.bind(first_ms, "Int64"), sq.bind(last_ms, "Int64"))
    sql = (
        "SELECT s.session_id AS session_id, s.anonymous_id AS anonymous_id, s.breakdown_value AS breakdown_value,"
        " e.times AS times\n"
        f"FROM (SELECT session_id, {best} AS times FROM (SELECT session_id, seq, {', '.join(items)}"
        f" FROM ({eq.sql()}))) AS e\n"
        f"INNER JOIN ({sq.sql()}) AS s ON s.session_id = e.session_id\n"
        "WHERE length(e.times) > 0"
    )
    return sql, {**eq.params, **sq.params}


@dataclass(frozen=True)
class StepCounts:
    """What a group of attempts says per step: sessions reaching it and the median times to it."""

    reached: list[int]
    median_from_previous: list[float | None]
    median_from_start: list[float | None]


def _counts_columns(n: int) -> str:
    reached = ", ".join(f"countIf(length(times) >= {k})" for k in range(1, n + 1))
    prev = ", ".join(f"quantileExactInclusiveIf(0.5)(times[{k}] - times[{k - 1}], length(times) >= {k})"
                     for k in range(2, n + 1))
    start = ", ".join(f"quantileExactInclusiveIf(0.5)(times[{k}] - times[1], length(times) >= {k})"
                      for k in range(2, n + 1))
    return f"[{reached}] AS reached, [{prev}] AS from_previous, [{start}] AS from_start"


def _step_counts(row: Mapping[str, Any]) -> StepCounts:
    reached = [int(v) for v in row["reached"]]
    return StepCounts(
        reached,
        [None, *(float(v) if reached[k + 1] else None for k, v in enumerate(row["from_previous"]))],
        [None, *(float(v) if reached[k + 1] else None for k, v in enumerate(row["from_start"]))],
    )


def _steps(counts: StepCounts) -> list[dict[str, Any]]:
    rows = []
    entered = counts.reached[0] if counts.reached else 0
    for k, reached in enumerate(counts.reached):
        previous = counts.reached[k - 1] if k else entered
        from_previous, from_start = counts.median_from_previous[k], counts.median_from_start[k]
        rows.append({
            "step": k + 1,
            "sessions": reached,
            "conversion": round(100 * reached / entered, 2) if entered else 0.0,
            "from_previous": round(100 * reached / previous, 2) if previous else 0.0,
            "dropped": previous - reached,
            "median_ms_from_previous": round(from_previous) if from_previous is not None else None,
            "median_ms_from_start": round(from_start) if from_start is not None else None,
        })
    return rows


def funnel(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: FunnelDefinition,
           zone: str = "UTC") -> dict[str, Any]:
    """Per-step counts, conversion, drop-off and median times, a breakdown and a daily trend."""
    _check_regexes(store, project_id, definition)
    n = len(definition.steps)
    sql, params = attempts_sql(project_id, query, zone, definition)
    params["zone"] = bound_value(zone, "String")
    # The trend needs only each day's entries and conversions: a map per group (sumMap), not a grouping set of
    # its own with every median. Days of the zone, keyed by Date.
    day_sql = "toDate(fromUnixTimestamp64Milli(times[1], 'UTC'), {zone:String})"
    by_day = f"sumMap([{day_sql}], [toUInt64(1)], [toUInt64(length(times) >= {n})]) AS by_day"
    if definition.breakdown:
        keys = "grouping(breakdown_value) AS rolled_up, breakdown_value"
        group_by = "\nGROUP BY GROUPING SETS ((), (breakdown_value))"
    else:
        keys, group_by = "1 AS rolled_up, '' AS breakdown_value", ""
    grouped = f"SELECT {keys}, {_counts_columns(n)}, {by_day}\nFROM ({sql}){group_by}"
    totals = StepCounts([0] * n, [None] * n, [None] * n)
    days: dict[str, tuple[int, int]] = {}
    values: dict[str, StepCounts] = {}
    for row in store.query(grouped + "\n" + _SETTINGS, params):
        # grouping(c) is 0 when c is a key of the row's grouping set, 1 when the row sums over it (standard SQL).
        if row["rolled_up"]:
            totals = _step_counts(row)
            day_keys, entered, converted = row["by_day"]
            days = {d: (int(e), int(c)) for d, e, c in zip(day_keys, entered, converted, strict=True)}
        else:
            values[row["breakdown_value"]] = _step_counts(row)
    trend = []
    day = query.date_from
    while day <= query.date_to:
        entered, converted = days.get(day.isoformat(), (0, 0))
        trend.append({"day": day.isoformat(), "entered": entered, "converted": converted,
                      "conversion": round(100 * converted / entered, 2) if entered else 0.0})
        day += dt.timedelta(days=1)
    answer: dict[str, Any] = {
        "range": {"from": query.date_from.isoformat(), "to": query.date_to.isoformat(), "time_zone": zone},
        "unit": "session",
        "order": definition.order,
        "window_s": definition.window_s,
        "steps": _steps(totals),
        "trend": trend,
    }
    if definition.breakdown:
        answer["breakdown"] = {
            "property": definition.breakdown,
            "values": [{"value": v, "steps": _steps(c)} for v, c in sorted(values.items(), key=lambda kv: (
                -kv[1].reached[0], kv[0]))],
        }
    return answer


def funnel_sessions(store: EventStore, project_id: int, query: overview.OverviewQuery, definition: FunnelDefinition,
                    step: int, outcome: str, offset: int, limit: int, zone: str = "UTC") -> dict[str, Any]:
    """The sessions that reached ``step`` (converted) or reached the one before and not it (dropped), paged
    in the order their attempts began."""
    if not 1 <= step <= len(definition.steps):
        raise BadParameter("step", f"step must be from 1 to {len(definition.steps)}")
    if outcome == "dropped" and step == 1:
        raise BadParameter("step", "nobody drops off before step 1: dropped needs step 2 or later")
    _check_regexes(store, project_id, definition)
    sql, params = attempts_sql(project_id, query, zone, definition)
    chosen = f"length(times) >= {int(step)}" if outcome == "converted" else f"length(times) = {int(step) - 1}"
    page_sql = (
        "SELECT session_id, anonymous_id, times[1] AS entered_ms, length(times) AS reached, count() OVER () AS total\n"
        f"FROM ({sql})\nWHERE {chosen}\nORDER BY entered_ms, session_id\n"
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    rows = store.query(page_sql + "\n" + _SETTINGS, params)
    total = int(rows[0]["total"]) if rows else 0
    if not rows and offset:
        count_sql = f"SELECT count() AS total FROM ({sql}) WHERE {chosen}"
        total = int(store.query(count_sql + "\n" + _SETTINGS, params)[0]["total"])
    return {
        "step": step,
        "outcome": outcome,
        "total": total,
        "sessions": [
            {"session_id": r["session_id"], "anonymous_id": r["anonymous_id"], "entered_at_ms": int(r["entered_ms"]),
             "steps_reached": int(r["reached"]), "replay_url": f"/projects/{project_id}/sessions/{r['session_id']}"}
            for r in rows
        ],
        "next_offset": offset + limit if offset + limit < total else None,
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
