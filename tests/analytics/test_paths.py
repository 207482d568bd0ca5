"""Paths against ground truth: generated traffic (plus sessions whose URLs carry ids) through the real spool and
loader into chDB; every node, edge and edge's session list compared with an answer computed here in plain Python
from the generated sessions, with the cleaning rules, a page repeated in a row and hostile text."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.paths import PathsQuery, edge_sessions, parse_edge, paths, walks_query
from hitmetrix.model import StoredBatch, StoredEvent
from hitmetrix.store.tenancy import check_project_scope
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

D = dt.date
FIRST, LAST = D(2026, 9, 7), D(2026, 11, 8)
HOSTILE = [gt.ODD, "'", '"', "\\", "a\\", "\\N", "\\'", "{}", "{p1:String}", "a\tb", "%", "x->2:y"]
UUID = "550e8400-e29b-41d4-a716-446655440000"
# Sessions whose URLs hold ids (cleaned to :id), and two ids in a row that clean alike (one step).
ID_WALKS = [
    ["/pricing", "/orders/12345", "/orders/98765/items", f"/u/{UUID}/settings"],
    ["/pricing", "/orders/1", "/orders/2", "/c/deadbeef01", "/c/deadbeef"],
    ["/pricing", "/c/CAFE1234", "/orders/7/items", "/checkout"],
    ["/orders/55", "/orders/55/items", "/checkout"],
]


def _with_ids(traffic: gt.Traffic) -> gt.Traffic:
    extra: list[gt.TruthSession] = []
    batches: list[StoredBatch] = []
    start_ms = int(dt.datetime(2026, 10, 6, 9, tzinfo=dt.UTC).timestamp() * 1000)
    for n, walk in enumerate(ID_WALKS):
        events = [gt.TruthEvent(start_ms + n * gt.HOUR_MS + i * 30_000, "pageview", gt.SITE + p)
                  for i, p in enumerate(walk)]
        s = gt.TruthSession(1, f"ids-{n}", f"anon-ids-{n}", "", 0, "DE", "Firefox", "Linux", "desktop", events)
        extra.append(s)
        batches.append(StoredBatch(
            batch_id=uuid.uuid5(uuid.NAMESPACE_URL, s.session_id).hex, project_id=1,
            received_at=events[-1].ts, session_id=s.session_id, anonymous_id=s.anonymous_id, user_id="",
            country=s.country, browser=s.browser, os=s.os, device_type=s.device,
            events=[StoredEvent(event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{s.session_id}/{i}")), type=e.type,
                                ts=e.ts, client_ts=e.ts, url=e.url, referrer="", name="", props="")
                    for i, e in enumerate(events)],
        ))
    return gt.Traffic(traffic.sessions + extra, [*traffic.segments, batches])


@pytest.fixture(scope="module")
def traffic() -> gt.Traffic:
    return _with_ids(gt.generate())


@pytest.fixture(scope="module")
def world(traffic: gt.Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("paths")))
    gt.load(traffic, world.root / "groundtruth-spool", world.store, world.blobs)
    yield world
    world.close()


# --- the answer, in plain Python --------------------------------------------------------------------------


def clean(path: str, strip_ids: bool, groups: list[tuple[str, str]]) -> str:
    if strip_ids:
        def is_id(seg: str) -> bool:
            if re.fullmatch(r"[0-9]+", seg) or re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", seg):
                return True
            return bool(re.fullmatch(r"[0-9a-fA-F]{8,}", seg)) and any(c.isdigit() for c in seg)
        path = "/".join(":id" if is_id(seg) else seg for seg in path.split("/"))
    for regex, target in groups:
        if re.search(regex, path):
            return target
    return path


def walk_of(s: gt.TruthSession, start: str, end: str, steps: int, strip_ids: bool,
            groups: list[tuple[str, str]]) -> list[str]:
    walked: list[str] = []
    for p in s.paths:
        c = clean(p, strip_ids, groups)
        if not walked or walked[-1] != c:
            walked.append(c)
    anchor = start or end
    if anchor not in walked:
        return []
    i = walked.index(anchor)
    return walked[i : i + steps + 1] if start else walked[max(0, i - steps) : i + 1][::-1]


def picked(traffic: gt.Traffic, zone: str, filters: dict[str, str], project_id: int = 1) -> list[gt.TruthSession]:
    tz = zoneinfo.ZoneInfo(zone)
    low = dt.datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=tz).timestamp() * 1000
    after = LAST + dt.timedelta(days=1)
    high = dt.datetime(after.year, after.month, after.day, tzinfo=tz).timestamp() * 1000
    return [s for s in traffic.of_project(project_id) if low <= s.started_ms < high and gt._matches(s, filters)]


def truth(traffic: gt.Traffic, zone: str = "UTC", start: str = "", end: str = "", steps: int = 4, limit: int = 10,
          strip_ids: bool = True, groups: list[tuple[str, str]] | None = None,
          filters: dict[str, str] | None = None) -> dict[str, Any]:
    walks = [w for s in picked(traffic, zone, filters or {})
             if (w := walk_of(s, start, end, steps, strip_ids, groups or []))]
    nodes: Counter[str] = Counter(f"1:{w[0]}" for w in walks)
    edges: list[dict[str, Any]] = []
    alive = walks
    for k in range(1, steps + 1):
        moving = [w for w in alive if len(w) > k]
        weight = Counter((w[k - 1], w[k]) for w in moving)
        top = sorted(weight, key=lambda e: (-weight[e], e))[:limit]
        for a, b in top:
            edges.append(_edge(start, k, a, b, weight[(a, b)]))
            nodes[f"{k + 1}:{b}"] += weight[(a, b)]
        rest = Counter(w[k - 1] for w in moving if (w[k - 1], w[k]) not in top)
        for a in sorted(rest, key=lambda a: (-rest[a], a)):
            edges.append(_edge(start, k, a, "other", rest[a]))
            nodes[f"{k + 1}:other"] += rest[a]
        alive = [w for w in moving if (w[k - 1], w[k]) in top]
    return {
        "range": {"from": FIRST.isoformat(), "to": LAST.isoformat(), "time_zone": zone},
        "start": start, "end": end, "steps": steps, "sessions": len(walks),
        "nodes": [{"id": n, "step": int(n.split(":", 1)[0]), "page": n.split(":", 1)[1], "sessions": c}
                  for n, c in sorted(nodes.items(), key=lambda kv: (int(kv[0].split(":")[0]), -kv[1], kv[0]))],
        "edges": edges,
    }


def _edge(start: str, k: int, a: str, b: str, n: int) -> dict[str, Any]:
    near, far = f"{k}:{a}", f"{k + 1}:{b}"
    return {"source": near if start else far, "target": far if start else near, "sessions": n,
            "id": f"{near}->{far}"}


def truth_sessions(traffic: gt.Traffic, edge: tuple[int, str, str], zone: str = "UTC", start: str = "",
                   end: str = "", steps: int = 4, limit: int = 10, strip_ids: bool = True,
                   groups: list[tuple[str, str]] | None = None) -> list[str]:
    k, a, b = edge
    # Only the sessions the answer's weights count: every earlier move of the walk was a kept (drawn) edge.
    drawn = {e["id"] for e in truth(traffic, zone, start, end, steps, limit, strip_ids, groups)["edges"]}
    hits = [s for s in picked(traffic, zone, {})
            if (w := walk_of(s, start, end, steps, strip_ids, groups or [])) and len(w) > k
            and w[k - 1] == a and w[k] == b and all(f"{i + 1}:{w[i]}->{i + 2}:{w[i + 1]}" in drawn for i in range(k))]
    return [s.session_id for s in sorted(hits, key=lambda s: (-s.started_ms, s.session_id))]


def query(zone_params: dict[str, Any]) -> PathsQuery:
    params = {"from": FIRST.isoformat(), "to": LAST.isoformat(), **zone_params}
    return PathsQuery.from_query(_Params(params), LAST)


class _Params(dict[str, Any]):
    """URL parameters as Starlette gives them: ``group`` may repeat."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = super().get(key, default)
        return value[-1] if isinstance(value, list) else value

    def getlist(self, key: str) -> list[str]:
        value = super().get(key, [])
        return value if isinstance(value, list) else [value]


def _rules(groups: list[tuple[str, str]]) -> list[str]:
    return [f"{regex}=>{target}" for regex, target in groups]


# --- the tests --------------------------------------------------------------------------------------------

BLOG = [("^/blog/.*", "/blog/*"), ("^/p/", "/p/*")]
CASES: list[dict[str, Any]] = [
    {"start": "/pricing"},
    {"start": "/", "steps": 6, "limit": 3, "groups": BLOG},
    {"end": "/checkout", "steps": 3},
    {"end": "/cart", "steps": 8, "limit": 2, "groups": BLOG},
    {"start": "/pricing", "strip_ids": False, "steps": 2},
    {"start": "/blog/*", "groups": BLOG, "steps": 1},
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items() if k != "groups"))
def test_every_node_and_edge_equals_the_python_answer(
    world: World, traffic: gt.Traffic, zone: str, case: dict[str, Any]
) -> None:
    groups = case.get("groups", [])
    params = {k: str(v) for k, v in case.items() if k not in ("groups", "strip_ids")}
    params |= {"group": _rules(groups), "strip_ids": "1" if case.get("strip_ids", True) else "0"}
    got = paths(world.store, 1, query(params), zone)
    want = truth(traffic, zone, case.get("start", ""), case.get("end", ""), case.get("steps", 4),
                 case.get("limit", 10), case.get("strip_ids", True), groups)
    assert got == want
    assert want["sessions"] > 3 and len(want["edges"]) > 1


def test_folding_sends_light_edges_to_other_and_keeps_the_flow(world: World) -> None:
    got = paths(world.store, 1, query({"start": "/", "steps": "3", "limit": "2"}), "UTC")
    for step in (1, 2, 3):
        drawn = [e for e in got["edges"] if e["id"].startswith(f"{step}:")]
        assert len([e for e in drawn if not e["target"].endswith(":other")]) == 2
        assert any(e["target"] == f"{step + 1}:other" for e in drawn)
    for node in got["nodes"]:  # into each kept node flows what leaves it, or less (walks end)
        leaving = sum(e["sessions"] for e in got["edges"] if e["source"] == node["id"])
        assert leaving <= node["sessions"]


def test_ids_are_stripped_and_a_repeat_in_a_row_is_one_step(world: World) -> None:
    got = paths(world.store, 1, query({"start": "/orders/:id", "steps": "3", "browser": "Firefox", "os": "Linux",
                                       "country": "DE"}), "UTC")
    edges = {(e["source"], e["target"]): e["sessions"] for e in got["edges"]}
    assert edges == {
        ("1:/orders/:id", "2:/orders/:id/items"): 2,
        ("2:/orders/:id/items", "3:/u/:id/settings"): 1,  # a UUID
        ("2:/orders/:id/items", "3:/checkout"): 1,
        ("1:/orders/:id", "2:/c/:id"): 1,  # /orders/1 then /orders/2: one step
        ("2:/c/:id", "3:/c/deadbeef"): 1,  # a hex word without a digit stays
    }
    pricing = paths(world.store, 1, query({"start": "/pricing", "steps": "1", "url": "/orders"}), "UTC")
    assert [(e["target"], e["sessions"]) for e in pricing["edges"]] == [("2:/orders/:id", 2), ("2:/c/:id", 1)]
    raw = paths(world.store, 1, query({"start": "/orders/1", "strip_ids": "0", "steps": "1", "country": "DE",
                                       "browser": "Firefox"}), "UTC")
    assert [e["target"] for e in raw["edges"]] == ["2:/orders/2"]
    repeat = paths(world.store, 1, query({"start": "/pricing", "steps": "2", "from": "2026-09-23", "to": "2026-09-23",
                                          "browser": "Chrome", "os": "Linux"}), "UTC")
    assert [(e["source"], e["target"], e["sessions"]) for e in repeat["edges"]] == [("1:/pricing", "2:/signup", 1)]


@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: c.get("start") or c.get("end"))
def test_each_edge_lists_the_sessions_that_walked_it(world: World, traffic: gt.Traffic, case: dict[str, Any]) -> None:
    groups = case.get("groups", [])
    params = {k: str(v) for k, v in case.items() if k != "groups"} | {"group": _rules(groups)}
    q = query(params)
    answer = paths(world.store, 1, q, "UTC")
    # The first step's edges, and the last steps' (whose weights leave out sessions folded away before them).
    for e in answer["edges"][:6] + answer["edges"][-8:]:
        if e["target"].endswith(":other") or e["source"].endswith(":other"):
            with pytest.raises(BadParameter):
                parse_edge({"edge": e["id"]}, q.steps)
            continue
        edge = parse_edge({"edge": e["id"]}, q.steps)
        want = truth_sessions(traffic, edge, "UTC", case.get("start", ""), case.get("end", ""),
                              case.get("steps", 4), case.get("limit", 10), True, groups)
        assert len(want) == e["sessions"]
        listed: list[str] = []
        for page in range(1, 50):
            got = edge_sessions(world.store, 1, q, edge, page, 3, "UTC")
            listed += [s["session_id"] for s in got["sessions"]]
            assert all(s["replay_url"] == f"/projects/1/sessions/{s['session_id']}" for s in got["sessions"])
            if not got["has_more"]:
                break
        assert listed == want, e["id"]


def test_hostile_text_is_data_in_every_parameter(world: World, traffic: gt.Traffic) -> None:
    for text in HOSTILE:
        for mode in ("start", "end"):
            got = paths(world.store, 1, query({mode: text, "browser": text, "group": [f"{re.escape(text)}=>{text}"]}),
                        "UTC")
            assert got == truth(traffic, "UTC", **{mode: text}, groups=[(re.escape(text), text)],
                                filters={"browser": text}), text
    odd = "/it's/a\\b{x}"
    got = paths(world.store, 1, query({"end": odd, "steps": "1"}), "UTC")
    assert got["sessions"] == 1 and got == truth(traffic, "UTC", end=odd, steps=1)
    grouped = paths(world.store, 1, query({"start": "{odd}'\\", "group": ["^/it's/a\\\\b\\{x\\}$=>{odd}'\\"]}), "UTC")
    assert grouped["nodes"] == [{"id": "1:{odd}'\\", "step": 1, "page": "{odd}'\\", "sessions": 1}]
    edge = parse_edge({"edge": "1:/a->2:/b->2:/c"}, 4)
    assert edge == (1, "/a", "/b->2:/c")  # the first split that names the next step


def test_other_projects_are_not_walked(world: World, traffic: gt.Traffic) -> None:
    assert paths(world.store, 3, query({"start": "/"}), "UTC")["sessions"] == 0
    theirs = paths(world.store, 2, query({"start": "/"}), "UTC")
    assert theirs["sessions"] == len([s for s in picked(traffic, "UTC", {}, 2) if walk_of(s, "/", "", 4, True, [])])
    check_project_scope(walks_query(1, query({"start": "/", "group": _rules(BLOG)}), "UTC").sql())


def test_bad_parameters_are_named(world: World) -> None:
    for params, field in (
        ({}, "start"),
        ({"start": "/", "end": "/x"}, "start"),
        ({"start": "/", "steps": "0"}, "steps"),
        ({"start": "/", "steps": "9"}, "steps"),
        ({"start": "/", "limit": "51"}, "limit"),
        ({"start": "/", "strip_ids": "maybe"}, "strip_ids"),
        ({"start": "/", "group": ["no arrow"]}, "group"),
        ({"start": "/", "group": ["=>/x"]}, "group"),
        ({"start": "/", "group": ["(=>/x"]}, "group"),
        ({"start": "/", "group": ["x" * 201 + "=>/x"]}, "group"),
        ({"start": "/", "group": [f"^/{i}=>/x" for i in range(11)]}, "group"),
        ({"start": "/", "device": "fridge"}, "device"),
        ({"start": "x" * 501}, "start"),
    ):
        with pytest.raises(BadParameter) as caught:
            query(params)
        assert caught.value.parameter == field, params
    # Python's re accepts these; ClickHouse's RE2 does not: refused as a bad parameter, not a server error.
    for regex in ("a*+", "(?>a)", "(?=x)", "(?<!y)x", "x{1,99999}", "(a)\\1"):
        with pytest.raises(BadParameter) as caught:
            paths(world.store, 1, query({"start": "/", "group": [f"{regex}=>/x"]}), "UTC")
        assert caught.value.parameter == "group", regex
    for edge in ("", "/a->/b", "0:/a->1:/b", "1:/a->3:/b", "5:/a->6:/b", "1:/a->2:other", "1:->2:/b", "x" * 2000):
        with pytest.raises(BadParameter) as caught:
            parse_edge({"edge": edge}, 4)
        assert caught.value.parameter == "edge", edge
    json.dumps(query({"start": "/"}).groups)  # plain data


def test_generated_sql_matches_snapshot() -> None:
    """Review changes to the paths SQL as diffs: UPDATE_SNAPSHOTS=1 rewrites the file."""
    q = walks_query(7, query({"end": "/checkout", "steps": "3", "group": _rules(BLOG), "device": "mobile"}),
                    "Europe/Berlin")
    text = q.sql() + "\n-- params: " + repr(sorted(q.params.items())) + "\n"
    path = Path(__file__).parent / "snapshots" / "paths_walks.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text)
    assert path.read_text() == text, "generated SQL changed: review and run UPDATE_SNAPSHOTS=1 (paths_walks.sql)"
    check_project_scope(q.sql())
