"""Funnels read off the sessions rows' step sequences (schema step 7): which funnels take that way, and that
exclusions and any-order matching there equal the plain-Python answer of tests/analytics/test_funnels.py on the
same seeded traffic (that module's definitions cover the rest: orders, repeated steps, breakdowns, trends,
filters and session lists)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hitmetrix.analytics.funnels import FunnelDefinition, reads_keys, reads_sessions_only
from tests.analytics.test_funnels import (  # noqa: F401 - the module's fixtures, imported to be used here
    FIRST,
    LAST,
    Sess,
    run,
    sessions_and_world,
    truth,
    truth_attempts,
    truth_steps,
    world,
)
from tests.loader.helpers import World

ANY_PAGE = {"kind": "pageview", "match": "prefix", "path": "/"}
SIGNUP = {"kind": "custom", "name": "signup"}
HOME = {"kind": "pageview", "path": "/"}
SEQUENCE_DEFINITIONS: list[dict[str, Any]] = [
    {"steps": [ANY_PAGE, SIGNUP], "window_s": 7200,
     "exclusions": [{"kind": "pageview", "match": "regex", "path": "^/p/", "from_step": 1, "to_step": 2}]},
    {"steps": [ANY_PAGE, ANY_PAGE, ANY_PAGE], "window_s": 1800, "exclusions": [{"kind": "custom", "name": "signup"}]},
    {"steps": [{"kind": "custom", "name": "add_to_cart"}, ANY_PAGE], "order": "any", "window_s": 7200,
     "exclusions": [{"kind": "custom", "name": "purchase"}]},
    # Exact pages and names only: read by their keys (schema step 8)
    {"steps": [HOME, SIGNUP], "window_s": 7200, "exclusions": [{"kind": "custom", "name": "add_to_cart"}]},
    {"steps": [{"kind": "custom", "name": "add_to_cart"}, HOME], "order": "any", "window_s": 7200,
     "exclusions": [{"kind": "custom", "name": "purchase"}]},
]


@pytest.mark.parametrize(("d", "sequence"), [
    ({"steps": [ANY_PAGE, SIGNUP]}, True),
    ({"steps": [ANY_PAGE, SIGNUP], "order": "any"}, True),
    ({"steps": [ANY_PAGE, SIGNUP], "exclusions": [{"kind": "pageview", "path": "/x"}]}, True),
    # strict needs every click and submit in between; clicks, submits and properties are not in the sequence
    ({"steps": [ANY_PAGE, SIGNUP], "order": "strict"}, False),
    ({"steps": [ANY_PAGE, {"kind": "click", "text": "Buy"}]}, False),
    ({"steps": [ANY_PAGE, {"kind": "submit"}]}, False),
    ({"steps": [ANY_PAGE, {**SIGNUP, "props": {"plan": "pro"}}]}, False),
    ({"steps": [ANY_PAGE, SIGNUP], "exclusions": [{"kind": "click", "text": "Cancel"}]}, False),
])
def test_only_funnels_of_pageviews_and_plain_custom_events_read_the_sessions_rows(d: dict[str, Any],
                                                                                   sequence: bool) -> None:
    assert reads_sessions_only(FunnelDefinition.from_json(json.dumps(d))) is sequence


@pytest.mark.parametrize(("d", "keys"), [
    ({"steps": [HOME, SIGNUP]}, True),
    ({"steps": [HOME, SIGNUP], "order": "any", "exclusions": [{"kind": "pageview", "path": "/x"}]}, True),
    ({"steps": [ANY_PAGE, SIGNUP]}, False),  # a prefix needs the page's text
    ({"steps": [HOME, SIGNUP], "exclusions": [{"kind": "pageview", "match": "regex", "path": "^/p/"}]}, False),
])
def test_funnels_of_exact_pages_and_event_names_compare_keys(d: dict[str, Any], keys: bool) -> None:
    assert reads_keys(FunnelDefinition.from_json(json.dumps(d))) is keys


@pytest.mark.parametrize("d", SEQUENCE_DEFINITIONS, ids=lambda d: f"{d.get('order', 'ordered')}-{len(d['steps'])}")
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_exclusions_read_off_the_sequences_equal_the_plain_python_answer(world: World, truth: list[Sess],  # noqa: F811
                                                                         d: dict[str, Any], zone: str) -> None:
    assert reads_sessions_only(FunnelDefinition.from_json(json.dumps(d)))
    got = run(world, d, zone=zone)
    want = truth_steps([t for _, t in truth_attempts(truth, d, FIRST, LAST, zone)], len(d["steps"]))
    without = truth_steps([t for _, t in truth_attempts(truth, {**d, "exclusions": []}, FIRST, LAST, zone)],
                          len(d["steps"]))
    assert want[0]["sessions"] > 0 and want != without, "the exclusion voids some attempts"
    if d.get("order") == "any":  # which events fill which steps is not unique: the counts are
        want = [{k: v for k, v in r.items() if not k.startswith("median")} for r in want]
        got["steps"] = [{k: v for k, v in r.items() if not k.startswith("median")} for r in got["steps"]]
    assert got["steps"] == want
