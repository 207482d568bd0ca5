"""Web vitals against ground truth: seeded sessions with ``$web_vitals`` events (hostile values among them) through
the real spool and loader into chDB; every p75, rating share, series point and page row compared with the answer
computed in plain Python (``groundtruth_vitals``), with filters, id stripping, group rules, sorting and zones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.vitals import VitalsQuery, vitals
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_vitals as gv
from tests.loader.helpers import World


@pytest.fixture(scope="module")
def generated() -> tuple[gt.Traffic, list[gt.TruthSession]]:
    return gv.generate()


@pytest.fixture(scope="module")
def world(generated: tuple[gt.Traffic, list[gt.TruthSession]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("vitals")))
    gt.load(generated[0], world.root / "vitals-spool", world.store, world.blobs)
    yield world
    world.close()


class _Params(dict[str, Any]):
    """URL parameters as Starlette gives them: ``group`` may repeat."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = super().get(key, default)
        return value[-1] if isinstance(value, list) else value

    def getlist(self, key: str) -> list[str]:
        value = super().get(key, [])
        return value if isinstance(value, list) else [value]


def query(**params: Any) -> VitalsQuery:
    return VitalsQuery.from_query(_Params({"from": gv.FIRST.isoformat(), "to": gv.LAST.isoformat(), **params}),
                                  gv.LAST)


def _compare(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["totals"] == want["totals"]
    assert got["previous"]["totals"] == want["previous_totals"]
    assert got["series"] == want["series"]
    assert got["pages"] == want["pages"]
    assert got["has_more_pages"] == want["has_more_pages"]


BLOG = [("^/blog/", "/blog/*"), ("'", "odd")]
CASES: list[dict[str, Any]] = [
    {},
    {"sort": "lcp"},
    {"sort": "inp", "order": "asc", "pages": 3},
    {"sort": "cls", "groups": BLOG},
    {"sort": "page", "strip_ids": False},
    {"sort": "pageviews", "order": "asc"},
    {"filters": {"device": "mobile"}},
    {"filters": {"country": "DE", "url": "checkout"}, "sort": "ttfb"},
    {"page": "/orders/:id"},
    {"page": "/it's/a\\b{x}", "sort": "fcp"},
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_every_number_equals_the_python_answer(
    world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]], zone: str, case: dict[str, Any]
) -> None:
    filters = case.get("filters", {})
    groups = case.get("groups", [])
    params: dict[str, Any] = {**filters, "group": [f"{r}=>{t}" for r, t in groups]}
    for name in ("sort", "order", "page"):
        if name in case:
            params[name] = case[name]
    params["pages"] = str(case.get("pages", 25))
    params["strip_ids"] = "1" if case.get("strip_ids", True) else "0"
    q = query(**params)
    got = vitals(world.store, 1, q, zone)
    descending = case.get("order", "desc" if case.get("sort", "pageviews") != "page" else "asc") == "desc"
    want = gv.vitals_answer(generated[1], 1, zone, filters, case.get("strip_ids", True), groups,
                            case.get("page", ""), case.get("sort", "pageviews"), descending,
                            case.get("pages", 25))
    _compare(got, want)
    assert want["totals"]["pageviews"] > 0 or case.get("filters")  # the case measures something


def test_the_answer_has_substance(world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]]) -> None:
    """The generated data covers what the comparisons rely on: every rating, interpolated p75s, hostile values."""
    got = vitals(world.store, 1, query(), "UTC")
    for m in gv.METRICS:
        t = got["totals"][m]
        assert t["samples"] > 50 and t["good"] > 0 and t["poor"] > 0 and t["needs_improvement"] > 0
    assert got["totals"]["lcp"]["samples"] < got["totals"]["pageviews"]  # string values were left out
    assert got["totals"]["inp"]["samples"] < got["totals"]["fcp"]["samples"]  # null and true were left out
    assert any(p["page"] == "/orders/:id" for p in got["pages"])
    assert got["previous"]["totals"]["pageviews"] > 0
    assert got["change"]["lcp"] is not None
    # The midnight session counts on the day it started (its LCP is the highest of its day).
    day = next(s for s in got["series"] if s["bucket"] == "2026-10-01")
    assert day["pageviews"] > 0


def test_projects_are_isolated(world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]]) -> None:
    got = vitals(world.store, 2, query(), "UTC")
    want = gv.vitals_answer(generated[1], 2, "UTC")
    _compare(got, want)
    assert got["totals"] != vitals(world.store, 1, query(), "UTC")["totals"]
    assert vitals(world.store, 3, query(), "UTC")["totals"]["pageviews"] == 0


@pytest.mark.parametrize("text", [gt.ODD, "'", "\\", "{}", "{p1:String}", "a\tb", "\\N", "%", "_"])
def test_hostile_text_is_data(world: World, text: str) -> None:
    """Quotes, backslashes and braces through the page, the filters and a group rule's target: no error, and a
    page that does not exist measures nothing."""
    got = vitals(world.store, 1, query(page=text, url=text, browser=text, group=[f"^/blog/=>{text}"]), "UTC")
    assert got["totals"]["pageviews"] == 0
    grouped = vitals(world.store, 1, query(group=[f"^/blog/=>{text}"]), "UTC")
    assert any(p["page"] == text for p in grouped["pages"])


@pytest.mark.parametrize(("params", "field"), [
    ({"sort": "speed"}, "sort"), ({"order": "up"}, "order"), ({"pages": "0"}, "pages"), ({"pages": "x"}, "pages"),
    ({"group": ["(?<=a)b=>x"]}, "group"), ({"group": ["nothing"]}, "group"), ({"page": "x" * 600}, "page"),
    ({"from": "2026-10-10", "to": "2026-10-01"}, "from"),
])
def test_bad_parameters_are_named(world: World, params: dict[str, Any], field: str) -> None:
    with pytest.raises(BadParameter) as caught:
        vitals(world.store, 1, query(**params), "UTC")
    assert caught.value.parameter == field


def test_an_engine_refused_regex_is_a_bad_parameter(world: World) -> None:
    # Python's re accepts a possessive quantifier (3.11+); RE2 does not.
    with pytest.raises(BadParameter) as caught:
        vitals(world.store, 1, query(group=["a++=>x"]), "UTC")
    assert caught.value.parameter == "group"


def test_one_day_is_bucketed_by_hour(world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]]) -> None:
    day = dt.date(2026, 10, 1)
    got = vitals(world.store, 1, VitalsQuery.from_query(_Params({"from": day.isoformat(), "to": day.isoformat()}),
                                                        day), "UTC")
    assert len(got["series"]) == 24 and got["range"]["bucket"] == "hour"
    picked = [s for s in generated[1] if s.project_id == 1 and s.pageviews
              and gv.label_of(s.started_ms, "UTC").startswith("2026-10-01")
              and dt.datetime.fromtimestamp(s.started_ms / 1000, dt.UTC).date() == day]
    measured = sum(1 for s in picked for e in s.events if e.name == "$web_vitals")
    assert got["totals"]["pageviews"] == measured > 0
    assert sum(b["pageviews"] for b in got["series"]) == measured
