"""Funnels against ground truth: seeded traffic (tests/analytics/groundtruth.py) plus hand-made sessions with
clicks, submits and custom events through the real spool and loader into chDB; every step count, drop-off,
median time, breakdown, trend and sessions list compared with a plain-Python reading of the funnel rules."""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hitmetrix.analytics.funnels import FunnelDefinition, funnel, funnel_sessions, window_funnel_baseline
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.model import StoredBatch
from tests.analytics import groundtruth as gt
from tests.analytics.handmade import HOSTILE_TEXTS, Ev, day_ms, fits, session_batches, world_and_truth_fixtures
from tests.loader.helpers import World

D = dt.date
FIRST, LAST = D(2026, 9, 7), D(2026, 11, 8)
T0 = int(dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC).timestamp() * 1000)  # the hand-made sessions' day
CONSIDERED = ("pageview", "click", "submit", "custom")


@dataclass
class Sess:
    session_id: str
    anonymous_id: str
    country: str
    device: str
    events: list[Ev]
    project_id: int = 1


def _from_truth(s: gt.TruthSession) -> Sess:
    events = [Ev(e.ts, e.type, urlsplit(e.url).path or "/", name=e.name, props=e.props) for e in s.events]
    return Sess(s.session_id, s.anonymous_id, s.country, s.device, events, s.project_id)


def _made() -> tuple[list[Sess], list[StoredBatch], list[StoredBatch]]:
    """Hand-made sessions (each minute apart on 2026-10-05) and their batches: (sessions, on time, late)."""
    m = 60_000
    plans: dict[str, list[Ev]] = {
        # the window boundary (window 60 s): exactly at the limit converts, 1 ms over does not
        "at-limit": [Ev(0, "pageview", "/pricing"), Ev(60_000, "click", "/pricing", "#buy", "Buy now")],
        "over-limit": [Ev(0, "pageview", "/pricing"), Ev(60_001, "click", "/pricing", "#buy", "Buy now")],
        # ordered vs strict: a scroll between is fine for strict, a pageview between is not
        "strict-ok": [Ev(0, "pageview", "/pricing"), Ev(1000, "scroll", "/pricing"),
                      Ev(2000, "click", "/pricing", "#buy", "Buy now"), Ev(3000, "submit", "/checkout", "form#pay")],
        "strict-broken": [Ev(0, "pageview", "/pricing"), Ev(1000, "pageview", "/about"),
                          Ev(2000, "click", "/about", "#buy", "Buy now"), Ev(3000, "submit", "/checkout", "form#pay")],
        # any order: the click before the pageview
        "reversed": [Ev(0, "click", "/x", "#buy", "Buy now"), Ev(5000, "pageview", "/pricing"),
                     Ev(9000, "submit", "/checkout", "form#pay")],
        # an exclusion between steps 1 and 2
        "excluded": [Ev(0, "pageview", "/pricing"), Ev(1000, "custom", "/pricing", name="cancel"),
                     Ev(2000, "click", "/pricing", "#buy", "Buy now")],
        # custom events with properties, hostile ones too
        "props": [Ev(0, "pageview", "/pricing"), Ev(1000, "custom", "/pricing", name="signup",
                                                       props={"plan": "pro", "seats": 3, "odd": gt.ODD})],
        "odd-click": [Ev(0, "pageview", "/pricing"), Ev(1000, "click", "/pricing", gt.ODD, gt.ODD),
                      Ev(2000, "submit", "/pricing", "form'\\{}")],
        # late and out of order: the second batch (sent last) holds step 1
        "late": [Ev(30_000, "click", "/pricing", "#buy", "Buy now"), Ev(40_000, "submit", "/checkout", "form#pay"),
                 Ev(10_000, "pageview", "/pricing"), Ev(20_000, "scroll", "/pricing")],
    }
    sessions, on_time, late = [], [], []
    for n, (name, events) in enumerate(plans.items()):
        start = T0 + n * 10 * m
        for e in events:
            e.ts += start
        s = Sess(f"made-{name}", f"anon-made-{name}", "JP" if n % 2 else "FR", "desktop", events)
        sessions.append(s)
        first, *rest = session_batches(s.session_id, s.anonymous_id, s.country, s.device, events, name == "late")
        on_time.append(first)
        late += rest
    return sessions, on_time, late


@pytest.fixture(scope="module")
def sessions_and_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Sess], World]]:
    traffic = gt.generate(seed=11, visitors=90)
    made, on_time, late = _made()
    loaded = gt.Traffic(traffic.sessions, [*traffic.segments[:-1], on_time, traffic.segments[-1], late])
    world = World(Path(tmp_path_factory.mktemp("funnels")))
    gt.load(loaded, world.root / "spool-funnels", world.store, world.blobs)
    yield [_from_truth(s) for s in traffic.sessions] + made, world
    world.close()


world, truth = world_and_truth_fixtures()


# --- the rules, read again in plain Python ------------------------------------------------------------------

def truth_attempts(truth: list[Sess], d: dict[str, Any], first: dt.date, last: dt.date, zone: str,
                   country: str = "") -> list[tuple[Sess, list[int]]]:
    low, high = day_ms(first, zone), day_ms(last + dt.timedelta(days=1), zone)
    steps, window_ms, order = d["steps"], d.get("window_s", 86400) * 1000, d.get("order", "ordered")
    out = []
    for s in truth:
        if s.project_id != 1 or not any(e.type == "pageview" for e in s.events):
            continue
        if not low <= min(e.ts for e in s.events) < high or (country and s.country != country):
            continue
        evs = sorted((e for e in s.events if e.type in CONSIDERED), key=lambda e: e.ts)
        best: list[int] | None = None
        for i, start in enumerate(evs):
            if not low <= start.ts < high:
                continue
            in_window = [e for e in evs[i:] if e.ts - start.ts <= window_ms]
            if order == "any":
                if not any(fits(st, start) for st in steps):
                    continue
                times = any_order_times(steps, in_window)
            else:
                if not fits(steps[0], start):
                    continue
                times, at = [start.ts], 0
                for st in steps[1:]:
                    rest = in_window[at + 1:]
                    if order == "strict":
                        rest = rest[:1]
                    hit = next((j for j, e in enumerate(rest) if fits(st, e)), None)
                    if hit is None:
                        break
                    at += 1 + hit
                    times.append(in_window[at].ts)
            if voided(d, evs, times, start.ts + window_ms):
                continue
            if best is None or len(times) > len(best):
                best = times
        if best is not None:
            out.append((s, best))
    return sorted(out, key=lambda pair: (pair[1][0], pair[0].session_id))


def any_order_times(steps: list[dict[str, Any]], events: list[Ev]) -> list[int]:
    """Brute force: the largest set of steps distinct events fill (counts only are unambiguous)."""
    best: list[int] = []

    def go(k: int, used: list[int]) -> None:
        nonlocal best
        if k == len(steps):
            if len(used) > len(best):
                best = list(used)
            return
        go(k + 1, used)
        for j, e in enumerate(events):
            if j not in used and fits(steps[k], e):
                go(k + 1, [*used, j])

    go(0, [])
    return sorted(events[j].ts for j in best)


def voided(d: dict[str, Any], evs: list[Ev], times: list[int], window_end_ms: int) -> bool:
    for x in d.get("exclusions", []):
        lo, hi = x.get("from_step", 1), x.get("to_step", len(d["steps"]))
        if len(times) < lo:
            continue
        end = times[hi - 1] if len(times) >= hi else window_end_ms + 1
        step = {k: v for k, v in x.items() if k not in ("from_step", "to_step")}
        if any(times[lo - 1] < e.ts < end and fits(step, e) for e in evs):
            return True
    return False


def truth_steps(attempts: list[list[int]], n: int) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        reached = [t for t in attempts if len(t) > k]
        previous = len(attempts) if k == 0 else len([t for t in attempts if len(t) >= k])
        gaps = [t[k] - t[k - 1] for t in reached] if k else []
        rows.append({
            "step": k + 1, "sessions": len(reached),
            "conversion": round(100 * len(reached) / len(attempts), 2) if attempts else 0.0,
            "from_previous": round(100 * len(reached) / previous, 2) if previous else 0.0,
            "dropped": previous - len(reached),
            "median_ms_from_previous": round(statistics.median(gaps)) if gaps else None,
            "median_ms_from_start": round(statistics.median([t[k] - t[0] for t in reached])) if k and reached else None,
        })
    return rows


def run(world: World, d: dict[str, Any], first: dt.date = FIRST, last: dt.date = LAST, zone: str = "UTC",
        **filters: str) -> dict[str, Any]:
    query = OverviewQuery(first, last, tuple(filters.items()))
    return funnel(world.store, 1, query, FunnelDefinition.from_json(json.dumps(d)), zone)


BUY = {"kind": "click", "selector": "#buy", "text": "Buy now"}
PAY = {"kind": "submit", "selector": "form#pay"}
PRICING = {"kind": "pageview", "path": "/pricing"}
DEFINITIONS: list[dict[str, Any]] = [
    {"steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview", "match": "prefix", "path": "/blog/"},
               {"kind": "pageview", "match": "regex", "path": "^/p/item-[0-9]+$"}], "window_s": 3600},
    {"steps": [PRICING, PRICING, {"kind": "pageview", "path": "/signup"}]},  # a repeated step
    {"steps": [{"kind": "pageview", "path": "/shop"}, {"kind": "pageview", "path": "/cart"}], "order": "strict"},
    {"steps": [PRICING, BUY], "window_s": 60},  # the boundary sessions
    {"steps": [PRICING, BUY, PAY], "order": "strict", "window_s": 600},
    {"steps": [PRICING, BUY, PAY], "order": "ordered", "window_s": 600},
    {"steps": [PRICING, BUY, PAY], "order": "any", "window_s": 600},
    {"steps": [PRICING, BUY], "exclusions": [{"kind": "custom", "name": "cancel", "from_step": 1, "to_step": 2}]},
    {"steps": [{"kind": "pageview", "match": "prefix", "path": "/"},
               {"kind": "custom", "name": "signup", "props": {"plan": "pro"}}], "window_s": 7200},
    {"steps": [{"kind": "pageview", "match": "prefix", "path": "/"},
               {"kind": "custom", "name": "signup", "props": {"seats": "3", "odd": gt.ODD}}]},
    {"steps": [{"kind": "pageview", "match": "prefix", "path": "/"}, {"kind": "custom", "name": "add_to_cart"},
               {"kind": "custom", "name": "purchase"}], "order": "any", "window_s": 7200},
]


@pytest.mark.parametrize("d", DEFINITIONS, ids=lambda d: f"{d.get('order', 'ordered')}-{len(d['steps'])}")
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_every_step_equals_the_plain_python_answer(world: World, truth: list[Sess], d: dict[str, Any],
                                                   zone: str) -> None:
    got = run(world, d, zone=zone)
    attempts = [t for _, t in truth_attempts(truth, d, FIRST, LAST, zone)]
    want = truth_steps(attempts, len(d["steps"]))
    assert want[0]["sessions"] > 0
    if d.get("order") == "any":  # which events fill which steps is not unique: the counts are
        want = [{k: v for k, v in r.items() if not k.startswith("median")} for r in want]
        got["steps"] = [{k: v for k, v in r.items() if not k.startswith("median")} for r in got["steps"]]
    assert got["steps"] == want


def test_the_window_boundary_the_orders_and_the_exclusion_do_what_the_hand_made_sessions_say(
    world: World, truth: list[Sess]
) -> None:
    day = D(2026, 10, 5)

    def ids(d: dict[str, Any], step: int, outcome: str = "converted") -> set[str]:
        query = OverviewQuery(day, day, (("browser", "Chrome"), ("os", "Linux")))
        got = funnel_sessions(world.store, 1, query, FunnelDefinition.from_json(json.dumps(d)), step, outcome, 0, 200)
        return {s["session_id"].removeprefix("made-") for s in got["sessions"]}

    boundary = {"steps": [PRICING, BUY], "window_s": 60}
    assert {"at-limit", "strict-ok", "late"} <= ids(boundary, 2) and "over-limit" not in ids(boundary, 2)
    assert "over-limit" in ids(boundary, 2, "dropped")
    three = {"steps": [PRICING, BUY, PAY], "window_s": 600}
    assert ids({**three, "order": "strict"}, 3) == {"strict-ok", "late"}
    assert ids(three, 3) == {"strict-ok", "strict-broken", "late"}
    assert ids({**three, "order": "any"}, 3) == {"strict-ok", "strict-broken", "late", "reversed"}
    excluded = {"steps": [PRICING, BUY], "exclusions": [{"kind": "custom", "name": "cancel"}]}
    assert "excluded" in ids({"steps": [PRICING, BUY]}, 2) and "excluded" not in ids(excluded, 1)


@pytest.mark.parametrize("outcome", ["converted", "dropped"])
def test_the_sessions_of_each_step_are_the_plain_python_ones_paged_with_replay_links(
    world: World, truth: list[Sess], outcome: str
) -> None:
    d = DEFINITIONS[0]
    definition = FunnelDefinition.from_json(json.dumps(d))
    attempts = truth_attempts(truth, d, FIRST, LAST, "UTC")
    for step in (1, 2, 3) if outcome == "converted" else (2, 3):
        want = [s.session_id for s, t in attempts if (len(t) >= step if outcome == "converted" else len(t) == step - 1)]
        got: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = funnel_sessions(world.store, 1, OverviewQuery(FIRST, LAST), definition, step, outcome, offset, 7)
            assert page["total"] == len(want)
            got += [s["session_id"] for s in page["sessions"]]
            assert all(s["replay_url"] == f"/projects/1/sessions/{s['session_id']}" for s in page["sessions"])
            offset = page["next_offset"]
        assert got == want and want


def test_breakdown_and_trend_equal_the_plain_python_answer(world: World, truth: list[Sess]) -> None:
    d = {**DEFINITIONS[0], "breakdown": "country"}
    zone = "America/New_York"
    got = run(world, d, zone=zone)
    attempts = truth_attempts(truth, d, FIRST, LAST, zone)
    groups: dict[str, list[list[int]]] = {}
    for s, t in attempts:
        groups.setdefault(s.country, []).append(t)
    want = [{"value": v, "steps": truth_steps(g, 3)} for v, g in sorted(groups.items(), key=lambda kv: (-len(kv[1]),
                                                                                                         kv[0]))]
    assert got["breakdown"] == {"property": "country", "values": want} and len(want) > 2
    trend: dict[str, list[int]] = {}
    day = FIRST
    while day <= LAST:
        trend[day.isoformat()] = [0, 0]
        day += dt.timedelta(days=1)
    for _, t in attempts:
        label = dt.datetime.fromtimestamp(t[0] / 1000, zoneinfo.ZoneInfo(zone)).date().isoformat()
        trend[label][0] += 1
        trend[label][1] += len(t) == 3
    assert got["trend"] == [{"day": k, "entered": e, "converted": c, "conversion": round(100 * c / e, 2) if e else 0.0}
                            for k, (e, c) in trend.items()]
    assert sum(e for e, _ in trend.values()) == got["steps"][0]["sessions"]


def test_overview_filters_narrow_the_funnel(world: World, truth: list[Sess]) -> None:
    d = DEFINITIONS[0]
    got = run(world, d, country="DE")
    want = truth_steps([t for _, t in truth_attempts(truth, d, FIRST, LAST, "UTC", country="DE")], 3)
    assert got["steps"] == want and 0 < want[0]["sessions"] < run(world, d)["steps"][0]["sessions"]


@pytest.mark.parametrize("odd", HOSTILE_TEXTS)
def test_hostile_text_in_every_step_field_is_data(world: World, truth: list[Sess], odd: str) -> None:
    steps: list[dict[str, Any]] = [
        {"kind": "pageview", "match": "prefix", "path": "/"},
        {"kind": "click", "selector": odd, "text": odd},
        {"kind": "submit", "selector": odd},
        {"kind": "custom", "name": odd, "props": {odd: odd}},
        {"kind": "pageview", "path": odd},
        {"kind": "pageview", "match": "regex", "path": re.escape(odd).replace("\\\x00", "\\x00")},
    ]
    for step in steps[1:]:
        d = {"steps": [steps[0], step], "exclusions": [{**step, "from_step": 1, "to_step": 2}]}
        got = run(world, d, utm_source=odd)
        want = truth_steps([], 2)
        assert got["steps"] == want  # nothing but the odd session holds such text, and no session matches utm
        d = {"steps": [steps[0], step], "breakdown": "browser"}
        got = run(world, d)
        want = truth_steps([t for _, t in truth_attempts(truth, d, FIRST, LAST, "UTC")], 2)
        assert got["steps"] == want


def test_the_odd_session_converts_through_quotes_backslashes_and_braces(world: World, truth: list[Sess]) -> None:
    odd_path = "/it's/a\\b{x}"
    for d in (
        {"steps": [{"kind": "pageview", "path": odd_path}, {"kind": "custom", "name": "odd", "props": {"k": gt.ODD}}]},
        {"steps": [PRICING, {"kind": "click", "selector": gt.ODD, "text": gt.ODD},
                   {"kind": "submit", "selector": "form'\\{}"}]},
    ):
        got = run(world, d)
        assert got["steps"][-1]["sessions"] == 1
        assert got["steps"] == truth_steps([t for _, t in truth_attempts(truth, d, FIRST, LAST, "UTC")],
                                           len(d["steps"]))


BAD = [
    ("", "definition"),
    ("[1]", "definition"),
    ("{", "definition"),
    ("[" * 100_000, "definition"),
    ('{"steps": []}', "definition.steps"),
    ('{"steps": [{"kind": "pageview", "path": "/"}]}', "definition.steps"),
    (json.dumps({"steps": [{"kind": "pageview", "path": "/"}] * 11}), "definition.steps"),
    ('{"steps": [{"kind": "pageview", "path": "/"}, {"kind": "tap"}]}', "definition.steps[1].kind"),
    ('{"steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview"}]}', "definition.steps[1].path"),
    ('{"steps": [{"kind": "pageview", "path": "/", "match": "glob"}, PV]}', "definition"),
    ('{"steps": [{"kind": "pageview", "path": "/", "match": "glob"}, {"kind": "submit"}]}',
     "definition.steps[0].match"),
    ('{"steps": [{"kind": "pageview", "path": 3}, {"kind": "submit"}]}', "definition.steps[0].path"),
    ('{"steps": [{"kind": "click"}, {"kind": "submit"}]}', "definition.steps[0].selector"),
    ('{"steps": [{"kind": "custom"}, {"kind": "submit"}]}', "definition.steps[0].name"),
    ('{"steps": [{"kind": "custom", "name": "a", "props": {"k": 1}}, {"kind": "submit"}]}',
     "definition.steps[0].props"),
    ('{"steps": [{"kind": "submit", "path": "/"}, {"kind": "submit"}]}', "definition.steps[0].path"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "window_s": 0}', "definition.window_s"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "window_s": 1e99}', "definition.window_s"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "order": "loose"}', "definition.order"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "breakdown": "ip"}', "definition.breakdown"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "exclusions": [{"kind": "submit", "from_step": 2, '
     '"to_step": 2}]}', "definition.exclusions[0].to_step"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "exclusions": [{"kind": "submit", "to_step": 9}]}',
     "definition.exclusions[0].to_step"),
    ('{"steps": [{"kind": "submit"}, {"kind": "submit"}], "sql": "1"}', "definition.sql"),
]


@pytest.mark.parametrize(("raw", "field_name"), BAD)
def test_a_bad_definition_is_refused_naming_the_field(raw: str, field_name: str) -> None:
    with pytest.raises(BadParameter) as caught:
        FunnelDefinition.from_json(raw)
    assert caught.value.parameter == field_name and str(caught.value)


def test_a_regex_re2_refuses_is_a_bad_parameter_not_a_failed_query(world: World) -> None:
    d = {"steps": [{"kind": "pageview", "path": "/"}, {"kind": "pageview", "match": "regex", "path": "(?=x)("}]}
    with pytest.raises(BadParameter) as caught:
        run(world, d)
    assert caught.value.parameter == "definition.steps[1].path"


def test_the_window_funnel_baseline_agrees_where_the_rules_coincide(world: World, truth: list[Sess]) -> None:
    # windowFunnel counts whole seconds and ignores the session's start: compare on a funnel where neither matters.
    d = {"steps": [PRICING, BUY, PAY], "window_s": 600}
    day = D(2026, 10, 5)
    got = window_funnel_baseline(world.store, 1, OverviewQuery(day, day), FunnelDefinition.from_json(json.dumps(d)))
    want = truth_steps([t for _, t in truth_attempts(truth, d, day, day, "UTC")], 3)
    assert got == [r["sessions"] for r in want] and got[2] > 0
