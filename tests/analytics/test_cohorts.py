"""Cohorts against ground truth: seeded traffic through the real spool and loader into chDB; each cohort's people,
size and members, and the overview filtered by it, equal a plain-Python reading of the rules written here (not
the library's), in UTC and other zones. Also: definitions refused with the field named, hostile text bound as
data, and another project's people never in a cohort."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics import cohorts
from hitmetrix.analytics.cohorts import CohortDefinition, CohortFilter
from hitmetrix.analytics.overview import OverviewQuery, overview, totals_query
from hitmetrix.analytics.params import BadParameter
from hitmetrix.store.tenancy import check_project_scope
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

D = dt.date
TODAY = D(2026, 10, 20)
FIRST, LAST = D(2026, 9, 7), D(2026, 11, 8)


def prop(name: str, value: str = "", key: str = "") -> dict[str, Any]:
    return {"type": "property", "property": name, "value": value, **({"key": key} if key else {})}


def did(event: dict[str, Any], at_least: int = 1, days: int = 30) -> dict[str, Any]:
    return {"type": "behaviour", "event": event, "at_least": at_least, "days": days}


# (name, conditions, zone)
CASES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("country", [prop("country", "de")], "UTC"),
    ("mobile-identified", [prop("device", "mobile"), prop("identified", "yes")], "UTC"),
    ("never-identified", [prop("identified", "no")], "UTC"),
    ("direct-and-google", [prop("referrer", ""), prop("referrer", "google.com")], "UTC"),
    ("utm", [prop("utm_source", "newsletter")], "UTC"),
    ("campaign-accent", [prop("utm_campaign", "été")], "UTC"),
    ("plan-pro", [prop("event_property", "pro", key="plan")], "UTC"),
    ("any-seats", [prop("event_property", key="seats")], "UTC"),
    ("three-seats", [prop("event_property", "3", key="seats")], "UTC"),
    ("odd-browser", [prop("browser", gt.ODD)], "UTC"),
    ("blog-twice-30d", [did({"kind": "pageview", "match": "prefix", "path": "/blog/"}, 2, 30)], "UTC"),
    ("pricing-exact-14d-kolkata", [did({"kind": "pageview", "path": "/pricing"}, 1, 14)], "Asia/Kolkata"),
    ("items-regex", [did({"kind": "pageview", "match": "regex", "path": "^/p/item-1[0-9]$"}, 1, 45)], "UTC"),
    ("team-signup-60d", [did({"kind": "custom", "name": "signup", "props": {"plan": "team"}}, 1, 60)], "UTC"),
    ("two-seats-number", [did({"kind": "custom", "name": "signup", "props": {"seats": "2"}}, 1, 365)], "UTC"),
    ("submits-us", [did({"kind": "submit"}, 3, 365), prop("country", "US")], "America/New_York"),
    ("a-day", [did({"kind": "pageview", "match": "prefix", "path": ""}, 1, 1)], "Pacific/Kiritimati"),
]


@pytest.fixture(scope="module")
def traffic() -> gt.Traffic:
    return gt.generate(seed=21)


@pytest.fixture(scope="module")
def world(traffic: gt.Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("cohorts")))
    gt.load(traffic, world.root / "groundtruth-spool", world.store, world.blobs)
    yield world
    world.close()


# --- the answer, read independently --------------------------------------------------------------------------


def _day_start_ms(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp() * 1000)


def _prop_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _event_matches(e: gt.TruthEvent, step: dict[str, Any]) -> bool:
    if e.type != step["kind"]:
        return False
    if step["kind"] == "pageview":
        path, pattern = gt._path(e.url), step["path"]
        match = step.get("match", "exact")
        return (path == pattern if match == "exact" else path.startswith(pattern) if match == "prefix"
                else re.search(pattern, path) is not None)
    if step["kind"] == "custom":
        return e.name == step["name"] and all(
            k in e.props and _prop_text(e.props[k]) == v for k, v in step.get("props", {}).items())
    return True  # a submit without a selector


def _session_has(s: gt.TruthSession, c: dict[str, Any]) -> bool:
    name, value = c["property"], c.get("value", "")
    if name == "identified":
        return bool(s.user_id)
    if name == "event_property":
        return any(k == c["key"] and (not value or v == value) for _, k, v in s.props)
    actual = {"country": s.country, "device": s.device, "browser": s.browser, "os": s.os,
              "referrer": s.referrer_domain, "utm_source": s.utm("source"), "utm_medium": s.utm("medium"),
              "utm_campaign": s.utm("campaign")}[name]
    return actual == (value.upper() if name == "country" else value)


def expected_people(traffic: gt.Traffic, project_id: int, conditions: list[dict[str, Any]], today: dt.date,
                    zone: str) -> set[str]:
    visits: dict[str, list[gt.TruthSession]] = {}
    for s in traffic.of_project(project_id):
        visits.setdefault(s.anonymous_id, []).append(s)
    people = set()
    for person, sessions in visits.items():
        ok = True
        for c in conditions:
            if c["type"] == "property":
                hit = any(_session_has(s, c) for s in sessions)
                ok = ok and (not hit if c["property"] == "identified" and c["value"] == "no" else hit)
            else:
                low = _day_start_ms(today - dt.timedelta(days=c["days"] - 1), zone)
                high = _day_start_ms(today + dt.timedelta(days=1), zone)
                count = sum(1 for s in traffic.sessions if s.project_id == project_id and s.anonymous_id == person
                            for e in s.events if low <= e.ts < high and _event_matches(e, c["event"]))
                ok = ok and count >= c["at_least"]
        if ok:
            people.add(person)
    return people


def of_people(traffic: gt.Traffic, people: set[str]) -> gt.Traffic:
    return gt.Traffic([s for s in traffic.sessions if s.anonymous_id in people], [])


def definition_of(conditions: list[dict[str, Any]]) -> CohortDefinition:
    return CohortDefinition.from_json(json.dumps({"conditions": conditions}))


def all_members(world: World, project_id: int, definition: CohortDefinition, zone: str) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = cohorts.members(world.store, project_id, definition, TODAY, zone, offset, 37)
        people += page["people"]
        offset = page["next_offset"]
    return people


# --- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "conditions", "zone"), CASES, ids=[c[0] for c in CASES])
def test_a_cohorts_people_are_the_generators(world: World, traffic: gt.Traffic, name: str,
                                             conditions: list[dict[str, Any]], zone: str) -> None:
    definition = definition_of(conditions)
    want = expected_people(traffic, 1, conditions, TODAY, zone)
    assert want, f"{name}: the case picks somebody"
    assert len(want) < len({s.anonymous_id for s in traffic.of_project(1)}), f"{name}: and not everybody"
    assert cohorts.size(world.store, 1, definition, TODAY, zone) == len(want)
    people = all_members(world, 1, definition, zone)
    assert sorted(p["anonymous_id"] for p in people) == sorted(want)
    assert len(people) == len(want), "each person once, across pages"


def test_members_come_newest_first_with_their_latest_sessions(world: World, traffic: gt.Traffic) -> None:
    conditions = [prop("identified", "yes")]
    people = all_members(world, 1, definition_of(conditions), "UTC")
    visits: dict[str, list[gt.TruthSession]] = {}
    for s in traffic.of_project(1):
        visits.setdefault(s.anonymous_id, []).append(s)
    assert [p["last_seen_ms"] for p in people] == sorted((p["last_seen_ms"] for p in people), reverse=True)
    for person in people:
        sessions = sorted(visits[person["anonymous_id"]], key=lambda s: (-s.started_ms, s.session_id))
        assert person["user_id"] == sessions[0].user_id != ""
        assert (person["sessions"], person["first_seen_ms"], person["last_seen_ms"]) == (
            len(sessions), min(s.started_ms for s in sessions), max(s.started_ms for s in sessions))
        assert (person["country"], person["device"]) == (sessions[0].country, sessions[0].device)
        recent = person["recent_sessions"]
        assert [r["session_id"] for r in recent] == [s.session_id for s in sessions[: cohorts.SESSIONS_PER_MEMBER]]
        assert all(r["replay_url"] == f"/projects/1/sessions/{r['session_id']}" for r in recent)
    assert any(p["sessions"] > cohorts.SESSIONS_PER_MEMBER for p in people) or all(
        len(p["recent_sessions"]) == p["sessions"] for p in people)


@pytest.mark.parametrize(("name", "conditions", "zone"), [CASES[0], CASES[10], CASES[15]], ids=lambda c: str(c)[:20])
def test_the_cohort_filter_gives_the_overview_of_its_peoples_sessions(
    world: World, traffic: gt.Traffic, name: str, conditions: list[dict[str, Any]], zone: str
) -> None:
    definition = definition_of(conditions)
    people = expected_people(traffic, 1, conditions, TODAY, zone)
    resolved = CohortFilter(7, definition, TODAY)
    for extra in ({}, {"device": "desktop"}):
        query = OverviewQuery(FIRST, LAST, (*extra.items(), ("cohort", "7")), cohort=resolved)
        got = overview(world.store, 1, query, zone)
        want = gt.overview_answer(of_people(traffic, people), 1, FIRST, LAST, zone, extra)
        assert got == want, name
        everyone = gt.overview_answer(traffic, 1, FIRST, LAST, zone, extra)
        assert 0 < got["totals"]["visitors"] < everyone["totals"]["visitors"], "the cohort narrows the view"


def test_another_projects_people_are_never_in_a_cohort(world: World, traffic: gt.Traffic) -> None:
    definition = definition_of([prop("identified", "no")])
    for project_id in (1, 2):
        want = expected_people(traffic, project_id, [prop("identified", "no")], TODAY, "UTC")
        got = {p["anonymous_id"] for p in all_members(world, project_id, definition, "UTC")}
        assert got == want and want
    ones = {s.anonymous_id for s in traffic.of_project(1)}
    assert not ones & {p["anonymous_id"] for p in all_members(world, 2, definition, "UTC")}
    assert cohorts.size(world.store, 3, definition, TODAY, "UTC") == 0


@pytest.mark.parametrize("odd", [gt.ODD, "'", "\\", "a\\", "{p1:String}", "a\x00b", "a\nb", "%27"])
def test_hostile_text_is_data(world: World, traffic: gt.Traffic, odd: str) -> None:
    conditions = [prop("os", odd), did({"kind": "custom", "name": "odd", "props": {"k": odd}}, 1, 3650)]
    want = expected_people(traffic, 1, conditions, TODAY, "UTC")
    assert cohorts.size(world.store, 1, definition_of(conditions), TODAY, "UTC") == len(want)
    assert (len(want) == 1) == (odd == gt.ODD)


def test_the_filter_sql_is_scoped_and_bound(world: World) -> None:
    definition = definition_of([prop("browser", gt.ODD), did({"kind": "pageview", "path": "/x'"}, 2, 7)])
    query = OverviewQuery(FIRST, LAST, (("cohort", "3"),), cohort=CohortFilter(3, definition, TODAY))
    q = totals_query(1, query, "UTC")
    sql = q.sql()
    check_project_scope(sql)
    assert sql.count("project_id = {project_id:UInt32}") == 3, "the view, the cohort and its behaviour subquery"
    assert gt.ODD not in sql and "/x'" not in sql
    assert len(set(re.findall(r"\{(p\d+):", sql))) == len([k for k in q.params if k != "project_id"]), \
        "the cohort's parameters share the view's names without a clash"


def test_an_unresolved_cohort_filter_is_refused_not_ignored(world: World) -> None:
    query = OverviewQuery.from_query({"cohort": "5"}, TODAY)
    assert dict(query.filters)["cohort"] == "5" and query.cohort is None
    with pytest.raises(BadParameter, match="cannot filter by cohort"):
        overview(world.store, 1, query, "UTC")
    for bad in ("0", "-1", "x", "9" * 20):
        with pytest.raises(BadParameter, match="cohort must be a whole number"):
            OverviewQuery.from_query({"cohort": bad}, TODAY)


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ("", "definition"),
        ("[]", "definition"),
        ("{", "definition"),
        ('{"conditions": []}', "definition.conditions"),
        ('{"conditions": [1]}', "definition.conditions[0]"),
        ('{"conditions": [{"type": "x"}]}', "definition.conditions[0].type"),
        ('{"conditions": [{"type": "property", "property": "planet", "value": "x"}]}',
         "definition.conditions[0].property"),
        ('{"conditions": [{"type": "property", "property": "country", "value": "Germany"}]}',
         "definition.conditions[0].value"),
        ('{"conditions": [{"type": "property", "property": "os", "value": ""}]}', "definition.conditions[0].value"),
        ('{"conditions": [{"type": "property", "property": "identified", "value": "maybe"}]}',
         "definition.conditions[0].value"),
        ('{"conditions": [{"type": "property", "property": "event_property", "value": "x"}]}',
         "definition.conditions[0].key"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "pageview"}}]}',
         "definition.conditions[0].event.path"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "click"}}]}',
         "definition.conditions[0].event.selector"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "submit"}, "at_least": 0}]}',
         "definition.conditions[0].at_least"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "submit"}, "days": 3651}]}',
         "definition.conditions[0].days"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "submit"}, "days": true}]}',
         "definition.conditions[0].days"),
        ('{"conditions": [{"type": "behaviour", "event": {"kind": "submit"}, "extra": 1}]}',
         "definition.conditions[0].extra"),
        ('{"conditions": [{"type": "property", "property": "os", "value": "x"}], "or": []}', "definition.or"),
        ("[" * 100_000, "definition"),
    ],
)
def test_a_bad_definition_names_its_field(definition: str, field: str) -> None:
    with pytest.raises(BadParameter) as refused:
        CohortDefinition.from_json(definition)
    assert refused.value.parameter == field, str(refused.value)


def test_eleven_conditions_are_too_many_and_a_bad_regex_is_a_400(world: World) -> None:
    with pytest.raises(BadParameter, match="1 to 10"):
        definition_of([prop("os", "x")] * 11)
    bad = definition_of([prop("os", "x"), did({"kind": "pageview", "match": "regex", "path": "(["})])
    with pytest.raises(BadParameter) as refused:
        cohorts.check_regexes(world.store, 1, bad)
    assert refused.value.parameter == "definition.conditions[1].event.path"


def test_a_definition_reads_back_as_it_was_meant() -> None:
    conditions = [prop("country", "de"), prop("event_property", "pro", key="plan"),
                  did({"kind": "custom", "name": "signup", "props": {"plan": "team"}}, 2, 7),
                  did({"kind": "click", "selector": "#buy"}), did({"kind": "submit"})]
    definition = definition_of(conditions)
    again = CohortDefinition.from_json(definition.to_json())
    assert again == definition
    assert definition.to_data()["conditions"][0] == {"type": "property", "property": "country", "value": "DE"}
    assert definition.to_data()["conditions"][3]["event"] == {"kind": "click", "selector": "#buy"}
