"""JS error groups against ground truth: seeded sessions with ``error`` events (Chrome, Firefox and Safari stacks,
none at all, hostile text) through the real spool and loader into chDB; every group, count, series, first/last
seen and session list compared with the answer computed in plain Python (``groundtruth_vitals``), and the
grouping rules run by ClickHouse compared with their Python reading on tricky text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hitmetrix.analytics.errors import ErrorsQuery, error_group, errors, frame_sql, message_sql, parse_group
from hitmetrix.analytics.params import BadParameter
from hitmetrix.analytics.query import ScopedSelect
from tests.analytics import groundtruth as gt
from tests.analytics import groundtruth_vitals as gv
from tests.loader.helpers import World


@pytest.fixture(scope="module")
def generated() -> tuple[gt.Traffic, list[gt.TruthSession]]:
    return gv.generate()


@pytest.fixture(scope="module")
def world(generated: tuple[gt.Traffic, list[gt.TruthSession]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(Path(tmp_path_factory.mktemp("errors")))
    gt.load(generated[0], world.root / "errors-spool", world.store, world.blobs)
    yield world
    world.close()


def query(**params: str) -> ErrorsQuery:
    return ErrorsQuery.from_query({"from": gv.FIRST.isoformat(), "to": gv.LAST.isoformat(), **params}, gv.LAST)


CASES: list[dict[str, str]] = [
    {}, {"device": "desktop"}, {"country": "FR"}, {"url": "checkout"}, {"search": "order"}, {"search": "'"},
    {"search": "\\{p1:String}"},
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_every_group_equals_the_python_answer(
    world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]], zone: str, case: dict[str, str]
) -> None:
    filters = {k: v for k, v in case.items() if k != "search"}
    got = errors(world.store, 1, query(**case, groups="200"), zone)
    want = gv.errors_answer(generated[1], 1, zone, filters, case.get("search", ""))
    assert got["totals"] == want["totals"]
    assert got["previous"]["totals"] == want["previous_totals"]
    assert got["series"] == want["series"]
    assert got["groups"] == want["groups"]
    assert got["has_more_groups"] is False
    if not case:
        assert len(want["groups"]) >= 7 and want["totals"]["errors"] > 100


def test_groups_are_limited_and_sorted(world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]]) -> None:
    want = gv.errors_answer(generated[1], 1, "UTC")["groups"]
    got = errors(world.store, 1, query(groups="3"), "UTC")
    assert got["groups"] == want[:3] and got["has_more_groups"] is True
    by_last = errors(world.store, 1, query(sort="last_seen"), "UTC")["groups"]
    assert [g["group"] for g in by_last] == [g["group"] for g in sorted(
        want, key=lambda g: (-g["last_seen_ms"], -g["count"], g["group"]))]


def test_grouping_drops_the_noise(world: World) -> None:
    """The variable parts (line, column, query strings, build hashes, ids) do not split groups; each kind of
    error generated is one group."""
    got = errors(world.store, 1, query(), "UTC")
    messages = sorted(g["message"].split(":")[0] for g in got["groups"])
    assert len(messages) == len(gv.ERROR_MAKERS) + 1  # + the midnight session's own
    type_error = next(g for g in got["groups"] if g["message"].startswith("TypeError"))
    assert type_error["frame"] == f"renderCart ({gv.SITE}/static/main.*.js)"
    order = next(g for g in got["groups"] if g["message"].startswith("Error: order"))
    assert order["message"] == f"Error: order <n> not found at {gv.SITE}/api/orders/<n>"
    assert order["frame"] == f"loadOrder ({gv.SITE}/static/orders.js)"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_a_groups_sessions_open_the_replay_at_the_error(
    world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]], zone: str
) -> None:
    all_groups = errors(world.store, 1, query(), zone)["groups"]
    for g in all_groups:
        want = gv.group_sessions(generated[1], g["group"], 1, zone)
        pages = []
        page = 1
        while True:
            got = error_group(world.store, 1, query(), g["group"], page, 7, zone)
            assert got is not None and got["group"] == g["group"] and got["count"] == g["count"]
            pages += got["session_list"]
            if not got["has_more"]:
                break
            page += 1
        assert len(pages) == g["sessions"]
        for row, expected in zip(pages, want, strict=True):
            replay = row.pop("replay_url")
            assert row == expected
            link = urlsplit(replay)
            assert link.path == f"/projects/1/sessions/{expected['session_id']}"
            assert round(float(parse_qs(link.query)["t"][0]) * 1000) == expected["offset_ms"]


def test_unknown_group_and_isolation(world: World, generated: tuple[gt.Traffic, list[gt.TruthSession]]) -> None:
    assert error_group(world.store, 1, query(), "0" * 16, 1, 10, "UTC") is None
    mine = errors(world.store, 1, query(), "UTC")["groups"]
    theirs = errors(world.store, 2, query(groups="200"), "UTC")
    assert theirs["groups"] == gv.errors_answer(generated[1], 2, "UTC")["groups"]
    assert theirs["totals"]["errors"] < errors(world.store, 1, query(), "UTC")["totals"]["errors"]
    # A group of project 1 seen through project 2 is only project 2's occurrences.
    for g in mine:
        other = error_group(world.store, 2, query(), g["group"], 1, 200, "UTC")
        want = gv.group_sessions(generated[1], g["group"], 2, "UTC")
        assert (other is None and not want) or [r["session_id"] for r in other["session_list"]] == [
            r["session_id"] for r in want]
    assert errors(world.store, 3, query(), "UTC")["totals"]["errors"] == 0


TRICKY_MESSAGES = [
    "", "   ", "\t\n", "a  b\t\tc\n", gt.ODD, "{}", "\\", "x" * 500, "ü" * 301,
    "id 550e8400-e29b-41d4-a716-446655440000!",
    "see https://a.example/x?y=1#z and http://b.example/?q", "ftp://x/y#", "123 1234 12345", "٣٤٥٦٧", "a\\nb",
    "Error: 12:34:56", "x?y=1", "https://e.example/p?x=1\tb", "Uncaught TypeError: x", "  Uncaught \t Error",
    "Uncaught", "Uncaught ", "xUncaught y", "Uncaught Uncaught z",
]
TRICKY_FRAMES = [
    ("", ""), ("", f"{gv.SITE}/a.js?v=1#h"), ("Error\n    at f (https://x.example/a.js:1:2)", ""),
    ("Error\n    at https://x.example/a.js:10:20\n    at g (b.js:1:1)", ""),
    ("TypeError: a@b.c:12\n    at h (https://x.example/@scope/p.js?x=1:1:2)", ""),
    ("f@https://x.example/app.0123abcd.js:1:2\n", "s.js"), ("@https://x.example/a@b.js:3:4", ""),
    ("global code@https://x.example/main.js:1:99999", ""), ("  at   \n\tat f (x:1)\r\n", ""),
    ("at async Promise.all (index 0)", ""), ("at Foo.#bar (https://x.example/chunk-3f2a9c1bd.mjs:5:6)", ""),
    ("no frames here\nat\n@", "https://x.example/12345/s.js?q"), (gt.ODD + "@" + gt.ODD + ":1:2", ""),
    ("Error\n    at eval (eval at run (https://x.example/a.js:1:2), <anonymous>:3:4)", ""),
    ("x" * 400 + "@u:1:1", ""), ("Error\n    at f (https://x.example/a.js:1:2\u2028)", ""),
]


@pytest.mark.parametrize("text", TRICKY_MESSAGES)
def test_message_rule_in_clickhouse_equals_python(world: World, text: str) -> None:
    q = ScopedSelect(1)
    expr = message_sql(q, "raw")
    rows = world.store.query(f"SELECT {expr} AS m FROM (SELECT {q.bind(text, 'String')} AS raw)", q.params)
    assert (rows[0]["m"] or "(no message)") == gv.group_message(text)


@pytest.mark.parametrize(("stack", "source"), TRICKY_FRAMES)
def test_frame_rule_in_clickhouse_equals_python(world: World, stack: str, source: str) -> None:
    q = ScopedSelect(1)
    expr = frame_sql(q, "stack", "source")
    sql = (f"SELECT {expr} AS f FROM (SELECT {q.bind(stack, 'String')} AS stack,"
           f" {q.bind(source, 'String')} AS source)")
    assert world.store.query(sql, q.params)[0]["f"] == gv.group_frame(stack, source)


@pytest.mark.parametrize(("params", "field"), [
    ({"sort": "loud"}, "sort"), ({"groups": "0"}, "groups"), ({"groups": "201"}, "groups"),
    ({"search": "x" * 501}, "search"), ({"country": "Germany"}, "country"),
])
def test_bad_parameters_are_named(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadParameter) as caught:
        query(**params)
    assert caught.value.parameter == field


@pytest.mark.parametrize("value", ["", "xyz", "0" * 15, "0" * 17, "g" * 16, "'; DROP", "{p1:String}"])
def test_a_bad_group_id_is_a_bad_parameter(value: str) -> None:
    with pytest.raises(BadParameter):
        parse_group(value)
    assert parse_group("ABCDEF0123456789") == "abcdef0123456789"


def test_hourly_range_has_24_points(world: World) -> None:
    day = dt.date(2026, 10, 1)
    got = errors(world.store, 1, ErrorsQuery.from_query({"from": day.isoformat(), "to": day.isoformat()}, day), "UTC")
    assert len(got["series"]) == 24
    assert all(len(g["series"]) == 24 for g in got["groups"])
    assert sum(p["errors"] for p in got["series"]) == got["totals"]["errors"]
