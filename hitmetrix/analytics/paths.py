"""Paths: the pages visitors walked after a start page (or before an end page), as Sankey nodes and weighted edges,
and the sessions that walked one edge.

What a path means — decided here, once:

- Sessions are those the overview's filters pick, started in the range (``hitmetrix.analytics.overview``); a
  session's walk is its ordered pageview paths (``sessions.pageview_paths``, kept in order at load time).
- **Cleaning**, in this order: with ``strip_ids`` (on by default) every path segment that is a number, a UUID or
  a hex string of 8+ characters holding a digit becomes ``:id``; then each path is replaced by the target of the
  first ``group`` rule (``REGEX=>TARGET``) whose regular expression matches somewhere in it; then a page repeated
  in a row (a reload, or two ids that cleaned alike) is one step.
- ``start``: the walk from the session's first visit of that (cleaned) page, ``steps`` pages on; ``end``: the
  walk back from its first visit of that page, ``steps`` pages back. Node ``"k:/page"`` is the page k-1 steps
  from the start (or end) page, which is node ``"1:…"``; an edge joins step k to step k+1 and points the way the
  visitor walked (in ``end`` mode, from ``"k+1:…"`` to ``"k:…"``).
- At each step the ``limit`` heaviest edges (by sessions; ties by name) are kept; the sessions of the other edges
  of that step go on to a node ``"k+1:other"`` and their walk ends there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitmetrix.analytics import params as param
from hitmetrix.analytics.days import DEFAULT_TIME_ZONE
from hitmetrix.analytics.overview import MAX_TEXT_CHARS, OverviewQuery, scoped_sessions
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect, bound_value
from hitmetrix.store.clickhouse import EventStore

DEFAULT_STEPS = 4
MAX_STEPS = 8
DEFAULT_EDGES_PER_STEP = 10
MAX_EDGES_PER_STEP = 50
MAX_GROUP_RULES = 10
MAX_GROUP_RULE_CHARS = 200
OTHER = "other"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE = 10_000
_SETTINGS = "SETTINGS prefer_column_name_to_alias = 1"
# Segments that are ids: a number, a UUID, or a hex string of 8+ characters (with a digit, so words stay).
ID_SEGMENT = r"^[0-9]+$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
HEX_SEGMENT = r"^[0-9a-fA-F]{8,}$"


@dataclass(frozen=True)
class PathsQuery:
    base: OverviewQuery
    start: str = ""
    end: str = ""
    steps: int = DEFAULT_STEPS
    edges_per_step: int = DEFAULT_EDGES_PER_STEP
    strip_ids: bool = True
    groups: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: dt.date) -> PathsQuery:
        """Parse URL parameters (a Starlette QueryParams or a mapping; ``group`` may repeat); BadParameter if wrong."""
        base = OverviewQuery.from_query(params, today)
        start = param.text(params, "start", MAX_TEXT_CHARS)
        end = param.text(params, "end", MAX_TEXT_CHARS)
        if bool(start) == bool(end):
            raise BadParameter("start", "give a start page (start) or an end page (end), one of them")
        steps = param.whole_number(params, "steps", DEFAULT_STEPS, 1, MAX_STEPS)
        edges = param.whole_number(params, "limit", DEFAULT_EDGES_PER_STEP, 1, MAX_EDGES_PER_STEP)
        strip_ids = param.flag(params, "strip_ids") if (params.get("strip_ids") or "").strip() else True
        getlist = getattr(params, "getlist", None)
        raw_rules: list[str] = getlist("group") if getlist else [params.get("group") or ""]
        return cls(base, start, end, steps, edges, strip_ids, parse_groups([r for r in raw_rules if r.strip()]))


def parse_groups(rules: list[str]) -> tuple[tuple[str, str], ...]:
    """``REGEX=>TARGET`` rules (split at the last ``=>``), bounded in number and length, each a valid RE2 regex."""
    if len(rules) > MAX_GROUP_RULES:
        raise BadParameter("group", f"at most {MAX_GROUP_RULES} group rules")
    parsed = []
    for rule in rules:
        if len(rule) > MAX_GROUP_RULE_CHARS:
            raise BadParameter("group", f"a group rule has at most {MAX_GROUP_RULE_CHARS} characters")
        regex, arrow, target = rule.rpartition("=>")
        if not arrow or not regex or not target.strip():
            raise BadParameter("group", "a group rule reads REGEX=>TARGET, e.g. ^/blog/.*=>/blog/*")
        try:
            re.compile(regex)
        except re.error as exc:
            raise BadParameter("group", f"group regex {regex[:40]!r} is not valid: {exc}") from None
        if "\x00" in regex:
            raise BadParameter("group", "a group regex cannot hold NUL")
        parsed.append((regex, target.strip()))
    return tuple(parsed)


def check_groups(store: EventStore, query: PathsQuery) -> None:
    """BadParameter for a group regex ClickHouse's engine (RE2) refuses, such as lookaround or a possessive
    quantifier that Python's own ``re`` accepts: asked of the engine itself, so both always agree."""
    for regex, _ in query.groups:
        try:
            store.query("SELECT match('', {regex:String}) AS ok", {"regex": bound_value(regex, "String")})
        except RuntimeError as exc:  # chDB's error: the engine's own message says what is wrong
            reason = str(exc).split("error:", 1)[-1].strip().split(".")[0][:80]
            raise BadParameter("group", f"group regex {regex[:40]!r} is not valid: {reason}") from None


def cleaned_sql(q: ScopedSelect, query: PathsQuery) -> str:
    """The session's pageview paths, cleaned (see the module's docstring): ids first, then group rules."""
    cleaned = "pageview_paths"
    if query.strip_ids:
        is_id = f"match(seg, '{ID_SEGMENT}') OR (match(seg, '{HEX_SEGMENT}') AND match(seg, '[0-9]'))"
        cleaned = (
            # Every id holds a digit or is a UUID (with dashes): most paths have neither and skip the split.
            f"arrayMap(p -> if(match(p, '[0-9-]'), arrayStringConcat(arrayMap(seg -> if({is_id}, ':id', seg),"
            " splitByChar('/', p)), '/'), p),"
            f" {cleaned})"
        )
    if query.groups:
        arms = ", ".join(f"match(x, {q.bind(regex, 'String')}), {q.bind(target, 'String')}"
                         for regex, target in query.groups)
        cleaned = f"arrayMap(x -> multiIf({arms}, x), {cleaned})"
    return cleaned


def _without_repeats(array: str) -> str:
    """``array`` with each element equal to the one before it left out: compared with the array shifted by one,
    not by indexing the array inside the lambda (which would copy the whole array for every element)."""
    return (f"arrayFilter((x, before, i) -> i = 1 OR x != before, {array},"
            f" arrayPushFront(arrayPopBack({array}), ''), arrayEnumerate({array}))")


def walks_query(project_id: int, query: PathsQuery, zone: str) -> ScopedSelect:
    """Sessions of the range (filtered) with their cleaned walk from the start (or back from the end) page."""
    q = scoped_sessions(project_id, query.base, query.base.date_from, zone)
    cleaned = cleaned_sql(q, query)
    anchor = q.bind(query.start or query.end, "String")
    # The first visit of the anchor starts a run of it, so only the pages after it (before it) need their repeats
    # dropped: the walk is the same as cutting it from the whole session's walk.
    q.select("session_id", f"{cleaned} AS cleaned", f"indexOf(cleaned, {anchor}) AS anchor_index")
    if query.start:
        q.select(f"arraySlice({_without_repeats('arraySlice(cleaned, anchor_index)')}, 1, {int(query.steps) + 1})"
                 " AS walk")
    else:
        q.select(
            f"{_without_repeats('arraySlice(cleaned, 1, anchor_index)')} AS walked",
            f"arrayReverse(arraySlice(walked, greatest(1, length(walked) - {int(query.steps)}))) AS walk",
        )
    q.where("anchor_index > 0")
    return q


Kept = list[set[tuple[str, str]]]


def _edges(walks: Counter[tuple[str, ...]], query: PathsQuery) -> tuple[list[dict[str, Any]], dict[str, int], Kept]:
    """Fold each step's light edges into "other" and count nodes and edges (in walk order); also each step's
    kept (page, next page) pairs."""
    alive = dict(walks)
    edges: list[dict[str, Any]] = []
    kept_by_step: Kept = []
    nodes: Counter[str] = Counter()
    for walk, n in alive.items():
        nodes[f"1:{walk[0]}"] += n
    for step in range(1, query.steps + 1):
        weights: Counter[tuple[str, str]] = Counter()
        for walk, n in alive.items():
            if len(walk) > step:
                weights[(walk[step - 1], walk[step])] += n
        kept = {pair for pair, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[: query.edges_per_step]}
        kept_by_step.append(kept)
        folded: Counter[str] = Counter()
        survivors: dict[tuple[str, ...], int] = {}
        for walk, n in alive.items():
            if len(walk) <= step:
                continue
            if (walk[step - 1], walk[step]) in kept:
                survivors[walk] = n
            else:
                folded[walk[step - 1]] += n
        for (source, target), n in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
            if (source, target) in kept:
                edges.append(_edge(query, step, source, target, n))
                nodes[f"{step + 1}:{target}"] += n
        for source, n in sorted(folded.items(), key=lambda kv: (-kv[1], kv[0])):
            edges.append(_edge(query, step, source, OTHER, n))
            nodes[f"{step + 1}:{OTHER}"] += n
        alive = survivors
    return edges, dict(nodes), kept_by_step


def _edge(query: PathsQuery, step: int, source: str, target: str, sessions: int) -> dict[str, Any]:
    near, far = f"{step}:{source}", f"{step + 1}:{target}"
    # The edge points the way the visitor walked: forward from a start page, towards an end page.
    walked_from, walked_to = (near, far) if query.start else (far, near)
    return {"source": walked_from, "target": walked_to, "sessions": sessions, "id": f"{near}->{far}"}


def _walks(store: EventStore, project_id: int, query: PathsQuery, zone: str) -> Counter[tuple[str, ...]]:
    check_groups(store, query)
    q = walks_query(project_id, query, zone)
    sql = f"SELECT walk, count() AS session_count FROM ({q.sql()}) GROUP BY walk\n{_SETTINGS}"
    walks: Counter[tuple[str, ...]] = Counter()
    for row in store.query(sql, q.params):
        walks[tuple(row["walk"])] += int(row["session_count"])
    return walks


def paths(store: EventStore, project_id: int, query: PathsQuery, zone: str = DEFAULT_TIME_ZONE) -> dict[str, Any]:
    """Sankey nodes and edges of ``query`` for one project (the caller checked access)."""
    walks = _walks(store, project_id, query, zone)
    edges, nodes, _ = _edges(walks, query)
    return {
        "range": {"from": query.base.date_from.isoformat(), "to": query.base.date_to.isoformat(), "time_zone": zone},
        "start": query.start,
        "end": query.end,
        "steps": query.steps,
        "sessions": sum(walks.values()),
        "nodes": [{"id": name, "step": int(name.split(":", 1)[0]), "page": name.split(":", 1)[1], "sessions": n}
                  for name, n in sorted(nodes.items(), key=lambda kv: (int(kv[0].split(":", 1)[0]), -kv[1], kv[0]))],
        "edges": edges,
    }


def parse_edge(params: Mapping[str, str], steps: int) -> tuple[int, str, str]:
    """``edge`` as an answer's edge id (``k:/a->k+1:/b``): (k, page at step k, page at step k+1)."""
    value = param.text(params, "edge", 2 * MAX_TEXT_CHARS + 16)
    match = re.match(r"^([0-9]{1,2}):", value)
    if match:
        step = int(match.group(1))
        marker = f"->{step + 1}:"
        cut = value.find(marker)
        if 1 <= step <= steps and cut > len(match.group(0)) - 1:
            near, far = value[len(match.group(0)) : cut], value[cut + len(marker) :]
            if far == OTHER:
                raise BadParameter("edge", "an edge into 'other' joins many pages: pick one of its pages")
            if near and far:
                return step, near, far
    raise BadParameter("edge", f"edge must be an edge id of the answer, like 1:/pricing->2:/signup (steps 1–{steps})")


def edge_sessions(
    store: EventStore, project_id: int, query: PathsQuery, edge: tuple[int, str, str], page: int, page_size: int,
    zone: str = DEFAULT_TIME_ZONE,
) -> dict[str, Any]:
    """The sessions whose walk took ``edge`` at its step (and only kept edges before it, as the answer's
    weights count them), newest first, one page of them. An edge folded into "other" lists none."""
    step, near, far = edge
    _, _, kept = _edges(_walks(store, project_id, query, zone), query)
    q = walks_query(project_id, query, zone)
    q.select("started_at AS started")
    sql = (
        f"SELECT session_id, walk FROM ({q.sql()})"
        f" WHERE length(walk) > {step} AND walk[{step}] = {q.bind(near, 'String')}"
        f" AND walk[{step + 1}] = {q.bind(far, 'String')}"
        f" ORDER BY started DESC, session_id\n{_SETTINGS}"
    )
    walked = [
        row["session_id"] for row in store.query(sql, q.params)
        if all((row["walk"][i], row["walk"][i + 1]) in kept[i] for i in range(step))
    ]
    first = (page - 1) * page_size
    return {
        "edge": f"{step}:{near}->{step + 1}:{far}",
        "page": page,
        "has_more": len(walked) > first + page_size,
        "sessions": [{"session_id": sid, "replay_url": f"/projects/{project_id}/sessions/{sid}"}
                     for sid in walked[first : first + page_size]],
    }
