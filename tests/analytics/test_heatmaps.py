"""Heatmaps against ground truth: generated clicks, dead-click reports, scroll reports and recordings of two
projects through the real spool and loader into chDB; every element count, offset cell, document cell, scroll
depth share and backdrop compared with an answer computed here in plain Python from the generated sessions,
including literal ``%`` and ``_`` in paths, ``*`` patterns, URL patterns with queries, width bucket edges,
flags that are not truthy, a session over midnight and events of the other project."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics import heatmaps
from hitmetrix.analytics.heatmaps import HeatmapQuery, heatmap
from hitmetrix.analytics.params import BadParameter
from hitmetrix.model import StoredBatch, StoredChunk, StoredEvent
from hitmetrix.store.tenancy import check_project_scope
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

D = dt.date
FIRST, LAST = D(2026, 10, 1), D(2026, 10, 10)
DAY_MS = 86_400_000
START_MS = int(dt.datetime(2026, 10, 1, tzinfo=dt.UTC).timestamp() * 1000)
END_MS = START_MS + 10 * DAY_MS
PAGES = ["/pricing", "/pricing/team", "/docs/a_b", "/docs/aXb", "/docs/a%b", "/shop"]
SELECTORS = ["#buy", "nav > a:nth-of-type(2)", "div.card:nth-of-type(3) > button", "#photo", ""]
WIDTHS = [1440, 1280, 1024, 1023, 900, 768, 767, 414, 375, 0]
RAGE_VALUES: list[Any] = [None, None, None, 1, True, 0, False, "1", 2.5]
RRWEB = [{"type": 4, "data": {"href": "https://shop.example/pricing", "width": 1280, "height": 800}, "timestamp": 1},
         {"type": 2, "data": {"node": {"type": 0, "childNodes": [], "id": 1}}, "timestamp": 2}]


@dataclass
class Ev:
    event_id: str
    type: str
    ts: int
    url: str
    vw: int
    name: str = ""
    selector: str = ""
    x: int = 0
    y: int = 0
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return gt._path(self.url)


@dataclass
class Sess:
    project_id: int
    session_id: str
    country: str
    events: list[Ev]
    recorded: bool

    @property
    def started_ms(self) -> int:
        return min(e.ts for e in self.events)


def _no_tie(value: float) -> bool:
    """Away from a rounding tie: Python and ClickHouse both round to nearest, ties would be ambiguous."""
    return abs((value % 1) - 0.5) > 1e-6


def _sessions(seed: int = 13) -> list[Sess]:
    rng = random.Random(seed)
    out: list[Sess] = []
    for n in range(120):
        project_id = 1 if n % 5 else 2
        # Most start in the range; some before it, some after; one just before midnight at the range's end.
        start = START_MS + rng.randrange(-2 * DAY_MS, 11 * DAY_MS)
        if n == 7:
            start = END_MS - 600_000
        vw = rng.choice(WIDTHS)
        events: list[Ev] = []
        t = start
        for _ in range(rng.randint(1, 4)):
            page = rng.choice(PAGES)
            query = rng.choice(["", "?utm_source=x", "#section"])
            url = "https://shop.example" + page + query
            pv = str(uuid.UUID(int=rng.getrandbits(128)))
            events.append(Ev(pv, "pageview", t, url, vw))
            dw, dh = rng.choice([1280, 375, 1440]), rng.choice([2400, 3100, 900])
            for _ in range(rng.randint(0, 6)):
                t += rng.randint(200, 400_000)
                while True:
                    x, y = rng.randrange(0, dw), rng.randrange(0, dh)
                    fx = round(rng.randrange(0, 100) / 100 + rng.choice([0.001, 0.002, 0.003, 0.007, 0.008]), 3)
                    fy = round(rng.randrange(0, 100) / 100 + rng.choice([0.001, 0.004, 0.006, 0.009]), 3)
                    if _no_tie(x / dw * 200) and _no_tie(y / dh * 200) and fx <= 1 and fy <= 1:
                        break
                props: dict[str, Any] = {"fx": fx, "fy": fy, "dw": dw, "dh": dh, "ox": 3, "oy": 4}
                rage = rng.choice(RAGE_VALUES)
                if rage is not None:
                    props["rage"] = rage
                if rng.random() < 0.1:
                    props["dead"] = rng.choice([1, True, 0])
                click = Ev(str(uuid.UUID(int=rng.getrandbits(128))), "click", t, url, vw,
                           selector=rng.choice(SELECTORS), x=x, y=y, props=props)
                events.append(click)
                if rng.random() < 0.25:
                    events.append(Ev(str(uuid.UUID(int=rng.getrandbits(128))), "custom", t + 1000, url, 0,
                                     name="$dead_click", props={"click": click.event_id}))
            # Scroll reports: some mid-way, and the pageview's last; a few from an older tracker without pv.
            for _ in range(rng.randint(0, 3)):
                t += rng.randint(100, 20_000)
                props = {"depth": rng.choice([12, 30, 45, 50, 55, 99.5, 100, 130]), "dh": dh}
                if rng.random() < 0.85:
                    props["pv"] = pv
                events.append(Ev(str(uuid.UUID(int=rng.getrandbits(128))), "scroll", t, url,
                                 vw if rng.random() < 0.9 else 0, props=props))
            t += rng.randint(1000, 60_000)
        if n == 7:  # over midnight: a click on the next day, after the range, still counts
            events.append(Ev(str(uuid.UUID(int=rng.getrandbits(128))), "click", END_MS + 3_600_000,
                             "https://shop.example/pricing", 1280, selector="#buy", x=101, y=203,
                             props={"fx": 0.251, "fy": 0.503, "dw": 1280, "dh": 2400, "rage": 1}))
        out.append(Sess(project_id, f"heatmap-{n:03d}", rng.choice(["DE", "US"]), events, recorded=rng.random() < 0.5))
    return out


def _batches(sessions: list[Sess]) -> list[StoredBatch]:
    batches = []
    for s in sessions:
        stored = [StoredEvent(event_id=e.event_id, type=e.type, ts=e.ts, client_ts=e.ts - 250, url=e.url,
                              name=e.name, selector=e.selector, tag="button" if e.selector else "", x=e.x, y=e.y,
                              vw=e.vw, vh=700 if e.vw else 0, props=json.dumps(e.props) if e.props else "")
                  for e in s.events]
        recording = [StoredChunk(seq=0, first_ts=s.started_ms, last_ts=s.started_ms + 1, count=2,
                                 data=gzip.compress(json.dumps(RRWEB).encode()))] if s.recorded else []
        batches.append(StoredBatch(batch_id=uuid.uuid5(uuid.NAMESPACE_URL, s.session_id).hex, project_id=s.project_id,
                                   received_at=max(e.ts for e in s.events), session_id=s.session_id,
                                   anonymous_id="a" + s.session_id, country=s.country, browser="Firefox", os="Linux",
                                   device_type="desktop", events=stored, recording=recording))
    return batches


@pytest.fixture(scope="module")
def sessions() -> list[Sess]:
    return _sessions()


@pytest.fixture(scope="module")
def world(sessions: list[Sess], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("heatmaps")))
    batches = _batches(sessions)
    world.segment(*batches[:60])
    world.segment(*batches[60:])
    loader = world.loader()
    loader.load_once()
    loader.load_once()
    yield world
    world.close()


# --- the answer, in plain Python --------------------------------------------------------------------------


def _matches(page: str, e: Ev) -> bool:
    target = e.url.split("?")[0].split("#")[0] if page.startswith("http") else e.path
    return re.fullmatch(".*".join(re.escape(part) for part in page.split("*")), target, re.DOTALL) is not None


def _bucket(vw: int, width: str) -> bool:
    return {"desktop": vw >= 1024, "tablet": 768 <= vw <= 1023, "mobile": 0 < vw < 768}[width]


def _truthy(v: Any) -> bool:
    return v is True or (type(v) in (int, float) and v != 0)


def expected(sessions: list[Sess], project_id: int, page: str, width: str, kind: str, country: str = "",
             limit: int = 50) -> dict[str, Any]:
    picked = [s for s in sessions if s.project_id == project_id and START_MS <= s.started_ms < END_MS
              and (not country or s.country == country)]
    in_page = [(s, e) for s in picked for e in s.events
               if START_MS <= e.ts < END_MS + DAY_MS and _matches(page, e) and _bucket(e.vw, width)]
    dead_ids = {e.props["click"] for s in sessions if s.project_id == project_id for e in s.events
                if e.name == "$dead_click"}
    clicks = []
    for s, e in in_page:
        if e.type == "click":
            dead = _truthy(e.props.get("dead")) or e.event_id in dead_ids
            clicks.append((s, e, _truthy(e.props.get("rage")), dead))
    of_kind = [c for c in clicks if kind not in ("rage", "dead") or c[2 if kind == "rage" else 3]]
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"clicks": 0, "rage_clicks": 0, "dead_clicks": 0,
                                                          "sessions": set()})
    for s, e, rage, dead in clicks:
        if not e.selector:
            continue
        row = per[e.selector]
        row["clicks"] += 1
        row["rage_clicks"] += rage
        row["dead_clicks"] += dead
        row["sessions"].add(s.session_id)
    order = {"rage": "rage_clicks", "dead": "dead_clicks"}.get(kind, "clicks")
    ranked = sorted((sel for sel in per if per[sel][order] > 0), key=lambda sel: (-per[sel][order],
                                                                                  -per[sel]["clicks"], sel))
    elements = []
    for sel in ranked[:limit]:
        cells: dict[tuple[float, float], list[tuple[float, float]]] = defaultdict(list)
        for _, e, _, _ in (c for c in of_kind if c[1].selector == sel):
            cells[(round(e.props["fx"], 2), round(e.props["fy"], 2))].append(
                (e.x / e.props["dw"], e.y / e.props["dh"]))
        offsets = sorted(([cx, cy, len(v), sum(p[0] for p in v) / len(v), sum(p[1] for p in v) / len(v)]
                          for (cx, cy), v in cells.items()), key=lambda c: (-c[2], c[0], c[1]))
        elements.append({"selector": sel, "clicks": per[sel]["clicks"], "rage_clicks": per[sel]["rage_clicks"],
                         "dead_clicks": per[sel]["dead_clicks"], "sessions": len(per[sel]["sessions"]),
                         "offsets": offsets})
    positions = Counter((round(e.x / e.props["dw"] * 200) / 200, round(e.y / e.props["dh"] * 200) / 200)
                        for _, e, _, _ in of_kind)
    depth: dict[tuple[str, str], float] = {}
    for s, e in in_page:
        if e.type == "scroll":
            key = (s.session_id, e.props.get("pv", ""))
            depth[key] = max(depth.get(key, 0.0), min(100.0, float(e.props["depth"])))
    reached = [sum(1 for d in depth.values() if int(d) >= step) for step in range(0, 101, 5)]
    views = [(s, e) for s, e in in_page if e.type == "pageview" and s.recorded]
    if not views:
        views = [(s, e) for s in picked for e in s.events if e.type == "pageview" and s.recorded
                 and START_MS <= e.ts < END_MS + DAY_MS and _matches(page, e)]
    views.sort(key=lambda v: (-v[1].ts, v[0].session_id))
    return {
        "totals": {"clicks": len(clicks), "rage_clicks": sum(c[2] for c in clicks),
                   "dead_clicks": sum(c[3] for c in clicks), "sessions": len({c[0].session_id for c in clicks})},
        "elements": elements,
        "positions": sorted(([x, y, n] for (x, y), n in positions.items()), key=lambda c: (-c[2], c[0], c[1])),
        "scroll_pageviews": len(depth),
        "reached": reached,
        "average_depth": round(sum(depth.values()) / len(depth), 1) if depth else None,
        "backdrops": [(s.session_id, e.event_id) for s, e in views[: heatmaps.MAX_BACKDROPS]],
    }


def _query(page: str, width: str = "desktop", kind: str = "clicks", **extra: str) -> HeatmapQuery:
    params = {"from": FIRST.isoformat(), "to": LAST.isoformat(), "page": page, "width": width, "kind": kind, **extra}
    return HeatmapQuery.from_query(params, LAST)


def _close(got: list[list[float]], want: list[list[float]]) -> bool:
    return len(got) == len(want) and all(
        g[:3] == w[:3] and all(abs(a - b) < 1e-3 for a, b in zip(g[3:], w[3:], strict=True))
        for g, w in zip(got, want, strict=True)
    )


CASES = [
    ("/pricing", "desktop", "clicks", {}),
    ("/pricing*", "desktop", "clicks", {}),
    ("/pricing*", "mobile", "rage", {}),
    ("/pricing*", "tablet", "dead", {}),
    ("/docs/a_b", "desktop", "clicks", {}),
    ("/docs/a%b", "mobile", "clicks", {}),
    ("/docs/*", "desktop", "dead", {"country": "DE"}),
    ("*", "desktop", "rage", {}),
    ("https://shop.example/pricing", "desktop", "clicks", {}),
    ("/shop", "tablet", "scroll", {"limit": "2"}),
]


@pytest.mark.parametrize(("page", "width", "kind", "extra"), CASES)
@pytest.mark.parametrize("project_id", [1, 2])
def test_heatmap_equals_ground_truth(world: World, sessions: list[Sess], project_id: int, page: str, width: str,
                                     kind: str, extra: dict[str, str]) -> None:
    got = heatmap(world.store, project_id, _query(page, width, kind, **extra))
    want = expected(sessions, project_id, page, width, kind, extra.get("country", ""), int(extra.get("limit", 50)))
    assert got["totals"] == want["totals"]
    assert [{k: e[k] for k in ("selector", "clicks", "rage_clicks", "dead_clicks", "sessions")}
            for e in got["elements"]] == [{k: e[k] for k in ("selector", "clicks", "rage_clicks", "dead_clicks",
                                                               "sessions")} for e in want["elements"]]
    for g, w in zip(got["elements"], want["elements"], strict=True):
        assert _close(g["offsets"], w["offsets"]), g["selector"]
        assert g["latest"]["replay_url"] == f"/projects/{project_id}/sessions/{g['latest']['session_id']}"
    assert got["positions"] == want["positions"]
    assert got["scroll"]["pageviews"] == want["scroll_pageviews"]
    assert [r["pageviews"] for r in got["scroll"]["reached"]] == want["reached"]
    assert got["scroll"]["average_depth"] == want["average_depth"]
    assert [(b["session_id"], b["event_id"]) for b in got["backdrops"]] == want["backdrops"]


def test_the_generated_traffic_covers_the_cases(sessions: list[Sess]) -> None:
    """The cases above are not vacuous: each has clicks, and the flags and buckets all occur."""
    for page, width, kind, extra in CASES[:-1]:
        want = expected(sessions, 1, page, width, kind, extra.get("country", ""))
        assert want["totals"]["clicks"] > 0 and want["elements"], (page, width, kind)
    want = expected(sessions, 1, "*", "desktop", "clicks")
    assert want["totals"]["rage_clicks"] > 0 and want["totals"]["dead_clicks"] > 0
    assert want["scroll_pageviews"] > 0 and want["backdrops"]
    assert expected(sessions, 1, "/docs/a_b", "desktop", "clicks")["totals"] != expected(
        sessions, 1, "/docs/a*b", "desktop", "clicks")["totals"], "the literal _ is tested"
    late = next(s for s in sessions if s.session_id == "heatmap-007")
    assert late.started_ms < END_MS and any(e.ts >= END_MS and e.type == "click" for e in late.events)


def test_backdrop_of_another_bucket_when_the_bucket_has_none(world: World, sessions: list[Sess]) -> None:
    in_tablet = {e.path for s in sessions if s.recorded and s.project_id == 1 for e in s.events
                 if e.type == "pageview" and _bucket(e.vw, "tablet")}
    page = next(p for p in PAGES if p not in in_tablet) if set(PAGES) - in_tablet else None
    query = _query(page or "/nowhere", "tablet")
    got = heatmap(world.store, 1, query)
    want = expected(sessions, 1, query.page, "tablet", "clicks")
    assert [(b["session_id"], b["event_id"]) for b in got["backdrops"]] == want["backdrops"]
    assert not any(b["in_bucket"] for b in got["backdrops"])


def test_sql_is_project_scoped_and_reads_through_prewhere(world: World) -> None:
    query = _query("/pricing*", "mobile", "dead", country="DE")
    for q in (heatmaps.clicks_query(1, query, "UTC"), heatmaps.scroll_query(1, query, "UTC"),
              heatmaps.backdrops_query(1, query, "UTC", bucket=True)):
        check_project_scope(q.sql())
        plan = world.store.query("EXPLAIN actions = 1\n" + q.sql(), q.params)
        text = "\n".join(str(next(iter(r.values()))) for r in plan)
        assert "Prewhere" in text, text[:2000]


def test_hostile_text_is_data(world: World) -> None:
    for page in ["/'", '/"', "/\\", "/a\\", "/{}", "/{p1:String}", "/a\tb", "/%", "/_", "/\\%"]:
        got = heatmap(world.store, 1, _query(page, "desktop", "clicks", url="'\\{}", prop_key="{p1:String}"))
        assert got["totals"]["clicks"] == 0 and got["elements"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "page"),
        ({"page": "pricing"}, "page"),
        ({"page": "/x", "width": "watch"}, "width"),
        ({"page": "/x", "kind": "hover"}, "kind"),
        ({"page": "/x", "limit": "0"}, "limit"),
        ({"page": "/x", "limit": "201"}, "limit"),
        ({"page": "/" + "x" * 600}, "page"),
        ({"page": "/x", "from": "2026-13-01"}, "from"),
    ],
)
def test_bad_parameters_name_themselves(params: dict[str, str], name: str) -> None:
    with pytest.raises(BadParameter) as caught:
        HeatmapQuery.from_query(params, LAST)
    assert caught.value.parameter == name


def test_width_buckets() -> None:
    assert [heatmaps.width_bucket(w) for w in (0, 1, 767, 768, 1023, 1024, 3840)] == [
        "", "mobile", "mobile", "tablet", "tablet", "desktop", "desktop"]
    assert heatmaps.like_pattern("/a_b%c\\*") == "/a\\_b\\%c\\\\%"
