"""Trends against ground truth: seeded traffic (tests/analytics/groundtruth.py) plus hand-made sessions with clicks,
submits and custom events through the real spool and loader into chDB (one segment delivered twice, a late batch
holding a session's first events, sessions over midnight in UTC and Asia/Kolkata, a session longer than the
look-back); every count, visitor, per-session average, bucket, breakdown line and previous-period line compared
with a plain-Python reading of the rules in hitmetrix/analytics/trends.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.trends import TrendDefinition, counts_query, trend, trend_sessions
from hitmetrix.model import StoredBatch
from hitmetrix.store.tenancy import check_project_scope
from tests.analytics import groundtruth as gt
from tests.analytics.handmade import (
    HOSTILE_TEXTS,
    Ev,
    as_text,
    day_ms,
    fits,
    session_batches,
    world_and_truth_fixtures,
)
from tests.loader.helpers import World

D = dt.date
SITE = gt.SITE
SNAPSHOTS = Path(__file__).parent / "snapshots"
MIN = 60_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class Sess:
    truth: gt.TruthSession  # what the filters and the session breakdowns read
    events: list[Ev]  # with the selectors and texts the generator's events do not carry


def _from_truth(s: gt.TruthSession) -> Sess:
    return Sess(s, [Ev(e.ts, e.type, urlsplit(e.url).path or "/", name=e.name, props=e.props) for e in s.events])


BUY = {"kind": "click", "selector": "#buy", "text": "Buy now"}
PAY = {"kind": "submit", "selector": "form#pay"}


def _made() -> tuple[list[Sess], list[StoredBatch], list[StoredBatch]]:
    """Hand-made sessions of project 1 and their batches: (sessions, on time, late)."""
    plans: dict[str, tuple[str, list[Ev]]] = {
        "buyer-a": ("DE", [Ev(ms("2026-10-05T10:00:00+00:00"), "pageview", "/pricing"),
                           Ev(ms("2026-10-05T10:01:00+00:00"), "click", "/pricing", "#buy", "Buy now"),
                           Ev(ms("2026-10-05T10:02:00+00:00"), "submit", "/checkout", "form#pay"),
                           Ev(ms("2026-10-05T10:03:00+00:00"), "custom", "/checkout", name="signup",
                              props={"plan": "pro", "seats": 3, "trial": True})]),
        "buyer-b": ("FR", [Ev(ms("2026-10-05T11:00:00+00:00"), "pageview", "/pricing"),
                           *(Ev(ms("2026-10-05T11:01:00+00:00") + i * 1000, "click", "/pricing", "#buy", "Buy now")
                             for i in range(3)),  # the same event three times: total 3, one visitor, one session
                           Ev(ms("2026-10-05T11:05:00+00:00"), "submit", "/checkout", ""),
                           Ev(ms("2026-10-05T11:06:00+00:00"), "custom", "/checkout", name="signup",
                              props={"plan": "free", "seats": 1})]),
        # over midnight in UTC, and one over midnight in Asia/Kolkata (18:30 UTC)
        "midnight-utc": ("US", [Ev(ms("2026-10-05T23:55:00+00:00"), "pageview", "/pricing"),
                                Ev(ms("2026-10-05T23:59:59.999+00:00"), "click", "/pricing", "#buy", "Buy now"),
                                Ev(ms("2026-10-06T00:00:00+00:00"), "click", "/pricing", "#buy", "Buy now")]),
        "midnight-kolkata": ("IN", [Ev(ms("2026-10-06T18:25:00+00:00"), "pageview", "/pricing"),
                                    Ev(ms("2026-10-06T18:29:59+00:00"), "click", "/pricing", "#buy", "Buy now"),
                                    Ev(ms("2026-10-06T18:30:00+00:00"), "submit", "/checkout", "form#pay")]),
        # late and out of order: the second batch (sent last) holds the session's first events
        "late": ("JP", [Ev(ms("2026-10-06T09:10:00+00:00"), "click", "/pricing", "#buy", "Buy now"),
                        Ev(ms("2026-10-06T09:20:00+00:00"), "submit", "/checkout", "form#pay"),
                        Ev(ms("2026-10-05T23:50:00+00:00"), "pageview", "/pricing"),
                        Ev(ms("2026-10-06T09:00:00+00:00"), "custom", "/pricing", name="signup",
                           props={"plan": "team"})]),
        # started three days before its last events: beyond the look-back of a range starting on 2026-10-05
        "marathon": ("DE", [Ev(ms("2026-10-02T12:00:00+00:00"), "pageview", "/pricing"),
                            Ev(ms("2026-10-05T10:30:00+00:00"), "pageview", "/pricing"),
                            Ev(ms("2026-10-05T10:31:00+00:00"), "click", "/pricing", "#buy", "Buy now")]),
        # New York's clocks go back on 1 November: 01:00–02:00 happens twice, and both are one hourly bucket
        "dst": ("BR", [Ev(ms("2026-11-01T05:30:00+00:00"), "pageview", "/pricing"),
                       Ev(ms("2026-11-01T05:40:00+00:00"), "click", "/pricing", "#buy", "Buy now"),
                       Ev(ms("2026-11-01T06:35:00+00:00"), "click", "/pricing", "#buy", "Buy now"),
                       Ev(ms("2026-11-01T06:40:00+00:00"), "submit", "/checkout", "form#pay"),
                       Ev(ms("2026-11-01T06:45:00+00:00"), "custom", "/checkout", name="signup",
                          props={"plan": "pro"})]),
        # quotes, backslashes and braces in a selector, a text, an event name and a property
        "odd": ("NL", [Ev(ms("2026-10-06T12:00:00+00:00"), "pageview", "/pricing"),
                       Ev(ms("2026-10-06T12:00:01+00:00"), "click", "/pricing", gt.ODD, gt.ODD),
                       Ev(ms("2026-10-06T12:00:02+00:00"), "custom", "/pricing", name=gt.ODD, props={gt.ODD: gt.ODD})]),
    }
    sessions, on_time, late = [], [], []
    for name, (country, events) in plans.items():
        truth = gt.TruthSession(
            1, f"made-{name}", f"anon-made-{name}", "", 0, country, "Chrome", "Linux", "desktop",
            [gt.TruthEvent(e.ts, e.type, SITE + e.path, name=e.name, props=e.props) for e in events],
        )
        sessions.append(Sess(truth, events))
        first, *rest = session_batches(truth.session_id, truth.anonymous_id, country, "desktop", events,
                                       name == "late")
        on_time.append(first)
        late += rest
    return sessions, on_time, late


@pytest.fixture(scope="module")
def sessions_and_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Sess], World]]:
    traffic = gt.generate(seed=13, visitors=90)
    made, on_time, late = _made()
    # The made batches go in twice (a client retry in a segment of its own), the late half after everything.
    segments = [*traffic.segments[:-1], on_time, list(on_time), traffic.segments[-1], late]
    world = World(Path(tmp_path_factory.mktemp("trends")))
    loader = gt.load(gt.Traffic(traffic.sessions, segments), world.root / "spool-trends", world.store, world.blobs)
    assert loader.counters.snapshot()["batches_duplicate"] >= len(on_time), "the retried segment was not retried"
    yield [_from_truth(s) for s in traffic.sessions] + made, world
    world.close()


world, truth = world_and_truth_fixtures()


# --- the rules, read again in plain Python ------------------------------------------------------------------

def label_of(ts: int, zone: str, interval: str) -> str:
    local = dt.datetime.fromtimestamp(ts / 1000, zoneinfo.ZoneInfo(zone))
    if interval == "hour":
        return local.strftime("%Y-%m-%d %H:00")
    day = local.date()
    if interval == "week":
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    return (day.replace(day=1) if interval == "month" else day).isoformat()


def labels_of(first: dt.date, last: dt.date, zone: str, interval: str) -> list[str]:
    step = 60_000 * 15  # every quarter hour: finer than any zone's offset from an hour
    found: dict[str, None] = {}
    for t in range(day_ms(first, zone), day_ms(last + dt.timedelta(days=1), zone), step):
        found[label_of(t, zone, interval)] = None
    return list(found)


def breakdown_value(name: str, s: Sess, e: Ev) -> str:
    t = s.truth
    if name.startswith("prop:"):
        key = name[5:]
        return as_text(e.props[key]) if e.type == "custom" and key in e.props else ""
    return {"country": t.country, "device": t.device, "browser": t.browser, "os": t.os,
            "referrer": t.referrer_domain, "utm_source": t.utm("source"), "utm_medium": t.utm("medium"),
            "utm_campaign": t.utm("campaign"), "entry_path": t.paths[0] if t.paths else "", "path": e.path}[name]


Hit = tuple[int, str, Sess, Ev]  # (series index, breakdown value, session, event)


def hits(truth: list[Sess], series: list[dict[str, Any]], first: dt.date, last: dt.date, zone: str,
         filters: dict[str, str], breakdown: str, project_id: int = 1) -> list[Hit]:
    """Every (series, event) that counts in the days: the event in them, its session of project 1 with a
    pageview, passing the filters and started at most one day before ``first``."""
    low, high = day_ms(first, zone), day_ms(last + dt.timedelta(days=1), zone)
    lookback = day_ms(first - dt.timedelta(days=1), zone)
    out = []
    for s in truth:
        t = s.truth
        if t.project_id != project_id or not t.pageviews or not gt._matches(t, filters) or t.started_ms < lookback:
            continue
        for e in s.events:
            if low <= e.ts < high:
                for i, d in enumerate(series):
                    if fits(d, e):
                        out.append((i, breakdown_value(breakdown, s, e) if breakdown else "", s, e))
    return out


def metrics(group: list[Hit]) -> dict[str, Any]:
    sessions = len({h[2].truth.session_id for h in group})
    return {"total": len(group), "visitors": len({h[2].truth.anonymous_id for h in group}), "sessions": sessions,
            "per_session": round(len(group) / sessions, 2) if sessions else 0.0}


def lines_of(found: list[Hit], series: list[dict[str, Any]], labels: list[str], zone: str, interval: str,
             top: dict[int, list[str]] | None) -> list[dict[str, Any]]:
    out = []
    for i, d in enumerate(series):
        mine = [h for h in found if h[0] == i]
        groups: list[tuple[str | None, list[Hit]]]
        if top is None:
            groups = [(None, mine)]
        else:
            groups = [(v, [h for h in mine if h[1] == v]) for v in top[i]]
            rest = [h for h in mine if h[1] not in top[i]]
            if rest:
                groups.append(("<other>", rest))
        for value, group in groups:
            points = [{"bucket": b, **metrics([h for h in group if label_of(h[3].ts, zone, interval) == b])}
                      for b in labels]
            line: dict[str, Any] = {
                "series": i, "label": line_label(d),
                "math": d.get("math", "total"), "data": [p[d.get("math", "total")] for p in points],
                "values": {m: [p[m] for p in points] for m in ("total", "visitors", "sessions", "per_session")},
                "totals": metrics(group),
            }
            if top is not None:
                line["breakdown_value"] = None if value == "<other>" else value
                line["other"] = value == "<other>"
            out.append(line)
    return out


def line_label(d: dict[str, Any]) -> str:
    """The legend's name, as the module writes it (checked by its own test below)."""
    if d["kind"] == "pageview":
        path, match = d.get("path", ""), d.get("match", "exact")
        if match == "prefix":
            return "Pageview (any page)" if path in ("", "/") else f"Pageview {path}*"
        return f"Pageview {'~ ' if match == 'regex' else ''}{path}"
    if d["kind"] == "click":
        return "Click " + " ".join(p for p in (d.get("selector", ""), f"“{d['text']}”" if d.get("text") else "") if p)
    if d["kind"] == "submit":
        return f"Submit {d['selector']}" if d.get("selector") else "Form submit"
    props = ", ".join(f"{k}={v}" for k, v in d.get("props", {}).items())
    return f"{d['name']} ({props})" if props else d["name"]


def truth_trend(truth: list[Sess], series: list[dict[str, Any]], first: dt.date, last: dt.date, zone: str = "UTC",
                interval: str = "", filters: dict[str, str] | None = None, breakdown: str = "", limit: int = 5,
                compare: bool = False, project_id: int = 1) -> dict[str, Any]:
    filters = filters or {}
    days = (last - first).days + 1
    interval = interval or ("hour" if days <= 2 else "day" if days <= 92 else "week")
    found = hits(truth, series, first, last, zone, filters, breakdown, project_id)
    top = None
    if breakdown:
        top = {}
        for i in range(len(series)):
            counts = Counter(h[1] for h in found if h[0] == i)
            top[i] = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
    labels = labels_of(first, last, zone, interval)
    answer: dict[str, Any] = {
        "range": {"from": first.isoformat(), "to": last.isoformat(), "time_zone": zone, "interval": interval},
        "labels": labels,
        "lines": lines_of(found, series, labels, zone, interval, top),
        "previous": None,
    }
    if compare:
        p_first, p_last = first - dt.timedelta(days=days), first - dt.timedelta(days=1)
        p_labels = labels_of(p_first, p_last, zone, interval)
        before = hits(truth, series, p_first, p_last, zone, filters, breakdown, project_id)
        answer["previous"] = {"from": p_first.isoformat(), "to": p_last.isoformat(), "labels": p_labels,
                              "lines": lines_of(before, series, p_labels, zone, interval, top)}
    return answer


def run(world: World, series: list[dict[str, Any]] | None, first: dt.date, last: dt.date, zone: str = "UTC",
        filters: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
    query = OverviewQuery(first, last, tuple((filters or {}).items()))
    if series is not None:
        params["series"] = json.dumps(series)
    got = trend(world.store, 1, query, TrendDefinition.from_query(params, query), zone)
    return {k: v for k, v in got.items() if k in ("range", "labels", "lines", "previous")}


# --- the tests ------------------------------------------------------------------------------------------------

ALL_PAGES = {"kind": "pageview", "match": "prefix", "path": ""}
SERIES: list[list[dict[str, Any]]] = [
    [ALL_PAGES],
    [{**ALL_PAGES, "math": "visitors"}, {**ALL_PAGES, "math": "per_session"}],
    [{"kind": "pageview", "path": "/pricing"}, {"kind": "pageview", "match": "prefix", "path": "/blog/",
                                                 "math": "visitors"},
     {"kind": "pageview", "match": "regex", "path": "^/p/item-[0-9]+$", "math": "per_session"}],
    [{**BUY, "math": "per_session"}, {"kind": "click", "selector": "#buy"}, PAY, {"kind": "submit"},
     {"kind": "custom", "name": "signup", "props": {"plan": "pro"}, "math": "visitors"}],
    [{"kind": "custom", "name": "signup"}, {"kind": "custom", "name": "add_to_cart", "math": "visitors"},
     {"kind": "custom", "name": "purchase", "props": {"coupon": ""}, "math": "per_session"},
     {"kind": "custom", "name": "signup", "props": {"seats": "3", "trial": "true"}}],
]
# (first, last, zone, interval): hour / day / week / month; midnight edges in UTC and Kolkata; the clocks going
# back in New York (01:00 twice: one bucket); the hand-made sessions' days, where the look-back and lateness bite.
RANGES = [
    (D(2026, 10, 5), D(2026, 10, 6), "UTC", ""),
    (D(2026, 10, 5), D(2026, 10, 6), "Asia/Kolkata", "hour"),
    (D(2026, 10, 6), D(2026, 10, 6), "UTC", "hour"),
    (D(2026, 9, 20), D(2026, 10, 11), "UTC", "day"),
    (D(2026, 9, 20), D(2026, 10, 11), "Asia/Kolkata", "week"),
    (D(2026, 9, 7), D(2026, 11, 8), "America/New_York", "month"),
    (D(2026, 10, 31), D(2026, 11, 1), "America/New_York", "hour"),
    (D(2026, 9, 7), D(2026, 12, 31), "Pacific/Kiritimati", ""),
]


@pytest.mark.parametrize("series", SERIES, ids=lambda s: "+".join(d["kind"] for d in s))
@pytest.mark.parametrize(("first", "last", "zone", "interval"), RANGES,
                         ids=[f"{a}-{b}-{z}-{i or 'default'}" for a, b, z, i in RANGES])
def test_every_point_and_total_equals_the_plain_python_answer(
    world: World, truth: list[Sess], series: list[dict[str, Any]], first: dt.date, last: dt.date, zone: str,
    interval: str
) -> None:
    params = {"interval": interval} if interval else {}
    got = run(world, series, first, last, zone, **params)
    want = truth_trend(truth, series, first, last, zone, interval)
    assert got == want
    assert any(line["totals"]["total"] for line in want["lines"]), "nothing to count: the case tests nothing"
    if zone == "America/New_York" and interval == "hour" and series is SERIES[3]:
        at = got["labels"].index("2026-11-01 01:00")
        values = got["lines"][0]["values"]
        assert (values["total"][at], values["sessions"][at]) == (2, 1), "the repeated hour is one bucket"


def test_the_hand_made_sessions_count_as_the_rules_say(world: World, truth: list[Sess]) -> None:
    """The edges by name: a repeated click, midnight, the late batch, the look-back, the retried segment."""
    day = D(2026, 10, 5)
    got = run(world, [BUY], day, day, interval="day", filters={"browser": "Chrome", "os": "Linux"})
    (line,) = got["lines"]
    # buyer-a 1, buyer-b 3, midnight-utc 1 (23:59:59.999; its 00:00 click is the next day); marathon started
    # on 2 October, beyond the look-back; the retried segment did not count twice.
    made = [h for h in hits(truth, [BUY], day, day, "UTC", {"browser": "Chrome", "os": "Linux"}, "")
            if h[2].truth.session_id.startswith("made-")]
    assert {h[2].truth.session_id for h in made} == {"made-buyer-a", "made-buyer-b", "made-midnight-utc"}
    assert len(made) == 5
    assert line["totals"] == metrics(hits(truth, [BUY], day, day, "UTC", {"browser": "Chrome", "os": "Linux"}, ""))
    # From 3 October the marathon (started on the 2nd) is in the look-back; the late session's click on the 6th
    # counts, its start moved to the 5th by the batch that came last.
    longer = OverviewQuery(D(2026, 10, 3), D(2026, 10, 6))
    made_ids = {s["session_id"] for s in trend_sessions(
        world.store, 1, longer, TrendDefinition.from_query({"series": json.dumps([BUY])}, longer), 0, None, 0, 200
    )["sessions"]}
    assert {"made-marathon", "made-late", "made-midnight-kolkata"} <= made_ids
    assert "made-marathon" not in {s["session_id"] for s in trend_sessions(
        world.store, 1, OverviewQuery(D(2026, 10, 4), D(2026, 10, 6)),
        TrendDefinition.from_query({"series": json.dumps([BUY])}, longer), 0, None, 0, 200)["sessions"]}
    assert run(world, [BUY], longer.date_from, longer.date_to) == truth_trend(truth, [BUY], longer.date_from,
                                                                             longer.date_to)


@pytest.mark.parametrize("breakdown", ["country", "device", "browser", "os", "referrer", "utm_source", "utm_medium",
                                       "utm_campaign", "entry_path", "path", "prop:plan", "prop:seats",
                                       f"prop:{gt.ODD}"])
def test_breakdown_lines_top_values_and_other_equal_the_plain_python_answer(
    world: World, truth: list[Sess], breakdown: str
) -> None:
    series = SERIES[3] if breakdown.startswith("prop:") else SERIES[2]
    got = run(world, series, D(2026, 9, 7), D(2026, 11, 8), "Asia/Kolkata", breakdown=breakdown,
              breakdown_limit="3")
    want = truth_trend(truth, series, D(2026, 9, 7), D(2026, 11, 8), "Asia/Kolkata", breakdown=breakdown, limit=3)
    assert got == want
    if breakdown in ("country", "path"):
        assert any(line["other"] for line in got["lines"]), "no 'other' line: the test does not test it"


def test_compare_adds_the_previous_period_and_changes_nothing_else(world: World, truth: list[Sess]) -> None:
    series = [BUY, {**ALL_PAGES, "math": "visitors"}]
    for first, last, zone, extra in ((D(2026, 10, 6), D(2026, 10, 7), "UTC", {}),
                                     (D(2026, 10, 12), D(2026, 10, 25), "Asia/Kolkata", {"breakdown": "country"})):
        got = run(world, series, first, last, zone, compare="previous", **extra)
        want = truth_trend(truth, series, first, last, zone, breakdown=extra.get("breakdown", ""), compare=True)
        assert got == want
        assert got["previous"]["lines"][0]["totals"]["total"] > 0, "an empty previous period tests nothing"
        assert run(world, series, first, last, zone, **extra)["lines"] == got["lines"]


FILTERS: list[dict[str, str]] = [
    {"country": "DE"}, {"device": "mobile"}, {"browser": "Firefox"}, {"url": "/blog/post-1"},
    {"referrer": "google.com"}, {"utm_source": "google"}, {"identified": "yes"},
    {"prop_key": "plan", "prop_value": "pro"},
    {"device": "desktop", "country": "US", "identified": "no"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items()))
def test_every_overview_filter_narrows_the_trend_as_the_plain_python_answer_says(
    world: World, truth: list[Sess], filters: dict[str, str]
) -> None:
    series = [ALL_PAGES, {"kind": "custom", "name": "signup", "math": "visitors"}]
    got = run(world, series, D(2026, 9, 7), D(2026, 11, 8), "UTC", filters, interval="week")
    want = truth_trend(truth, series, D(2026, 9, 7), D(2026, 11, 8), "UTC", "week", filters)
    assert got == want
    everything = run(world, series, D(2026, 9, 7), D(2026, 11, 8), "UTC", interval="week")
    assert 0 < got["lines"][0]["totals"]["total"] < everything["lines"][0]["totals"]["total"]


def test_the_sessions_of_a_line_are_the_plain_python_ones_paged_with_replay_links(
    world: World, truth: list[Sess]
) -> None:
    first, last = D(2026, 9, 7), D(2026, 11, 8)
    query = OverviewQuery(first, last)
    series = [{"kind": "pageview", "match": "prefix", "path": "/blog/"}]
    definition = TrendDefinition.from_query({"series": json.dumps(series), "breakdown": "country",
                                             "breakdown_limit": "2"}, query)
    found = hits(truth, series, first, last, "UTC", {}, "country")
    by_id = {s.truth.session_id: s for s in truth}
    top = truth_trend(truth, series, first, last, breakdown="country", limit=2)["lines"]
    for line in top:
        value = line["breakdown_value"]
        group = [h for h in found if (h[1] == value if value is not None else h[1] not in
                                      {x["breakdown_value"] for x in top if not x["other"]})]
        firsts: dict[str, int] = {}
        for h in group:
            firsts[h[2].truth.session_id] = min(firsts.get(h[2].truth.session_id, h[3].ts), h[3].ts)
        want = sorted(firsts, key=lambda sid: (firsts[sid], sid))
        got: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = trend_sessions(world.store, 1, query, definition, 0, value, offset, 4)
            assert page["total"] == len(want)
            got += [s["session_id"] for s in page["sessions"]]
            for s in page["sessions"]:
                started = min(e.ts for e in by_id[s["session_id"]].events)
                assert s["first_event_ms"] == firsts[s["session_id"]] and s["started_at_ms"] == started
                at_s = max(0, (firsts[s["session_id"]] - 2000 - started) // 1000)
                assert s["replay_url"] == f"/projects/1/sessions/{s['session_id']}?t={at_s}"
            offset = page["next_offset"]
        assert got == want and want


@pytest.mark.parametrize("odd", HOSTILE_TEXTS)
def test_hostile_text_in_every_series_field_and_the_breakdown_key_is_data(
    world: World, truth: list[Sess], odd: str
) -> None:
    series: list[dict[str, Any]] = [
        {"kind": "click", "selector": odd, "text": odd},
        {"kind": "submit", "selector": odd},
        {"kind": "custom", "name": odd, "props": {odd: odd}},
        {"kind": "pageview", "path": odd},
        {"kind": "pageview", "match": "regex", "path": re.escape(odd).replace("\\\x00", "\\x00")},
    ]
    first, last = D(2026, 10, 6), D(2026, 10, 6)
    got = run(world, series, first, last, breakdown=f"prop:{odd}", filters={"utm_source": odd})
    assert got == truth_trend(truth, series, first, last, breakdown=f"prop:{odd}", filters={"utm_source": odd})
    got = run(world, series, first, last, breakdown=f"prop:{odd}")
    assert got == truth_trend(truth, series, first, last, breakdown=f"prop:{odd}")
    if odd == gt.ODD:  # the odd session's click and custom event hold exactly this text (and nothing else does)
        assert [(line["series"], line["totals"]["total"]) for line in got["lines"]] == [(0, 1), (2, 1)]


def test_the_labels_of_the_series_are_readable() -> None:
    for series in SERIES:
        query = OverviewQuery(D(2026, 10, 1), D(2026, 10, 2))
        definition = TrendDefinition.from_query({"series": json.dumps(series)}, query)
        assert [s.label for s in definition.series] == [line_label(d) for d in series]
    assert line_label(BUY) == "Click #buy “Buy now”"


BAD = [
    ({"series": "{"}, "series"),
    ({"series": "{}"}, "series"),
    ({"series": "[]"}, "series"),
    ({"series": "[" * 100_000}, "series"),
    ({"series": json.dumps([ALL_PAGES] * 6)}, "series"),
    ({"series": "[1]"}, "series[0]"),
    ({"series": '[{"kind": "tap"}]'}, "series[0].kind"),
    ({"series": '[{"kind": "pageview"}]'}, "series[0].path"),
    ({"series": '[{"kind": "pageview", "path": "/", "math": "sum"}]'}, "series[0].math"),
    ({"series": '[{"kind": "pageview", "path": "/"}, {"kind": "click"}]'}, "series[1].selector"),
    ({"series": '[{"kind": "custom"}]'}, "series[0].name"),
    ({"series": '[{"kind": "custom", "name": "a", "props": {"k": 1}}]'}, "series[0].props"),
    ({"series": '[{"kind": "submit", "path": "/"}]'}, "series[0].path"),
    ({"series": '[{"kind": "submit", "sql": "1"}]'}, "series[0].sql"),
    ({"interval": "minute"}, "interval"),
    ({"interval": "hour", "from": "2026-01-01", "to": "2026-03-01"}, "interval"),
    ({"breakdown": "ip"}, "breakdown"),
    ({"breakdown": "prop:"}, "breakdown"),
    ({"breakdown_limit": "0"}, "breakdown_limit"),
    ({"breakdown_limit": "26"}, "breakdown_limit"),
    ({"compare": "yes"}, "compare"),
]


@pytest.mark.parametrize(("params", "field_name"), BAD, ids=[f for _, f in BAD])
def test_a_bad_parameter_is_refused_naming_it(params: dict[str, str], field_name: str) -> None:
    query = OverviewQuery.from_query(params, D(2026, 10, 11))
    with pytest.raises(BadParameter) as caught:
        TrendDefinition.from_query(params, query)
    assert caught.value.parameter == field_name and str(caught.value)


def test_a_regex_re2_refuses_is_a_bad_parameter_naming_the_series(world: World) -> None:
    with pytest.raises(BadParameter) as caught:
        run(world, [ALL_PAGES, {"kind": "pageview", "match": "regex", "path": "(?=x)("}], D(2026, 10, 5),
            D(2026, 10, 5))
    assert caught.value.parameter == "series[1].path"


def test_each_project_counts_only_its_own_events(world: World, truth: list[Sess]) -> None:
    first, last = D(2026, 9, 7), D(2026, 11, 8)
    query = OverviewQuery(first, last)
    definition = TrendDefinition.from_query({"interval": "week"}, query)
    got = trend(world.store, 2, query, definition)
    want = truth_trend(truth, [ALL_PAGES], first, last, interval="week", project_id=2)
    assert {k: got[k] for k in want} == want and want["lines"][0]["totals"]["total"] > 0
    assert want != truth_trend(truth, [ALL_PAGES], first, last, interval="week")
    assert trend(world.store, 3, query, definition)["lines"][0]["totals"]["total"] == 0


def test_generated_sql_matches_snapshot_and_reads_the_event_columns_it_needs() -> None:
    """Review changes to the trend's SQL as diffs: UPDATE_SNAPSHOTS=1 rewrites the file."""
    every_filter = {"country": "DE", "device": "mobile", "browser": "Chrome", "os": "iOS", "url": "/cart",
                    "referrer": "google.com", "utm_source": "news", "utm_medium": "email", "utm_campaign": "autumn",
                    "identified": "yes", "prop_key": "plan", "prop_value": "pro", "to": "2026-10-11",
                    "series": json.dumps([BUY, {"kind": "pageview", "match": "prefix", "path": "/blog/"}]),
                    "breakdown": "prop:plan", "compare": "previous"}
    query = OverviewQuery.from_query(every_filter, D(2026, 10, 11))
    definition = TrendDefinition.from_query(every_filter, query)
    sql, params = counts_query(7, query, definition, "Europe/Berlin", {1: ["pro"], 2: []})
    text = sql + "\n-- params: " + json.dumps(params, sort_keys=True) + "\n"
    path = SNAPSHOTS / "trends_counts.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text)
    assert path.read_text() == text, "generated SQL changed: review and run UPDATE_SNAPSHOTS=1 (trends_counts.sql)"
    check_project_scope(sql)
    events_part = sql.split("FROM hitmetrix.events")[0].rsplit("SELECT", 1)[1]
    assert "url" not in events_part and "user_agent" not in events_part
