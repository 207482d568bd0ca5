"""Frustration signals of a session from its events: the tracker's flags and events, error clicks and quick backs."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hitmetrix.analytics.frustration import (
    DEAD,
    ERROR,
    EXCESSIVE_SCROLL,
    QUICK_BACK,
    RAGE,
    SIGNALS,
    THRASHED_CURSOR,
    page_key,
    props_of,
    session_frustration,
)
from hitmetrix.model import StoredEvent

T0 = 1_700_000_000_000
_ids = itertools.count(1)


def ev(type_: str, at_ms: int, url: str = "https://shop.test/", name: str = "", **props: Any) -> StoredEvent:
    event_id = f"00000000-0000-4000-8000-{next(_ids):012d}"
    return StoredEvent(event_id=event_id, type=type_, ts=T0 + at_ms, client_ts=T0 + at_ms, url=url, name=name,
                       props=json.dumps(props) if props else "")


def counts(**nonzero: int) -> dict[str, int]:
    return {signal: nonzero.get(signal, 0) for signal in SIGNALS}


def test_a_calm_session_has_no_signal() -> None:
    events = [
        ev("pageview", 0),
        ev("click", 1500, ox=3, fx=0.5),
        ev("scroll", 2000, depth=60),
        ev("pageview", 4000, url="https://shop.test/cart"),
        ev("error", 9000, message="late, after no click"),
        ev("pageview", 20000, url="https://shop.test/"),  # back on the first page, but after 16 s
    ]
    result = session_frustration(events)
    assert result.counts == counts() and not result.frustrated
    assert all(flags == frozenset() for flags in result.flags)


def test_the_trackers_click_flags_and_references_land_on_their_clicks() -> None:
    rage = [ev("click", 100 + 150 * k) for k in range(4)]
    rage[2] = ev("click", 400, rage=1)  # the tracker flags the click that completes the burst, once
    dead = ev("click", 3000)
    thrown = ev("click", 6000)
    events = [
        ev("pageview", 0), *rage, dead, thrown,
        ev("custom", 4000, name="$dead_click", click=dead.event_id),
        ev("custom", 6010, name="$error_click", click=thrown.event_id),
        ev("custom", 7000, name="$thrashed_cursor", turns=5),
        ev("custom", 8000, name="$excessive_scroll", turns=6, px=9000, dh=2000),
    ]
    result = session_frustration(events)
    assert result.counts == counts(rage=1, dead=1, error=1, thrashed_cursor=1, excessive_scroll=1)
    by_id = {e.event_id: flags for e, flags in zip(events, result.flags, strict=True)}
    assert by_id[rage[2].event_id] == {RAGE}
    assert by_id[dead.event_id] == {DEAD} and by_id[thrown.event_id] == {ERROR}
    assert list(result.flags[-2:]) == [{THRASHED_CURSOR}, {EXCESSIVE_SCROLL}]
    assert sum(1 for f in result.flags if f) == 5, "the reference events carry no flag of their own"


def test_an_error_within_a_second_of_a_click_makes_the_latest_click_an_error_click() -> None:
    first, second, far = ev("click", 1000), ev("click", 1200), ev("click", 5000)
    events = [ev("pageview", 0), first, second, ev("error", 2200), far, ev("error", 6001)]
    result = session_frustration(events)
    assert result.flags[2] == {ERROR}, "1000 ms after the latest click: still within the window"
    assert result.flags[1] == frozenset() and result.flags[4] == frozenset(), "6001 is 1001 ms after its click"
    assert result.counts == counts(error=1)


def test_the_tracker_and_the_error_event_name_one_error_click_once() -> None:
    click = ev("click", 1000)
    events = [click, ev("error", 1100), ev("custom", 1100, name="$error_click", click=click.event_id)]
    assert session_frustration(events).counts == counts(error=1)


def test_a_reference_to_a_click_that_is_missing_still_counts_once() -> None:
    lost = "00000000-0000-4000-8000-999999999999"
    events = [ev("custom", 10, name="$dead_click", click=lost), ev("custom", 10, name="$dead_click", click=lost),
              ev("custom", 20, name="$dead_click", click=12)]  # not an id: ignored
    assert session_frustration(events).counts == counts(dead=1)


def test_quick_backs_flag_the_page_left_within_five_seconds() -> None:
    events = [
        ev("pageview", 0, url="https://shop.test/list"),
        ev("pageview", 10_000, url="https://shop.test/item/1"),
        ev("pageview", 14_999, url="https://shop.test/list#reviews"),  # an anchor is the same page
        ev("pageview", 30_000, url="https://shop.test/item/2"),
        ev("pageview", 35_000, url="https://shop.test/list"),  # exactly 5 s: not quick
        ev("pageview", 36_000, url="https://shop.test/list"),  # a reload is no back
    ]
    result = session_frustration(events)
    assert [i for i, f in enumerate(result.flags) if QUICK_BACK in f] == [1]
    assert result.counts == counts(quick_back=1)


def test_events_are_read_by_time_whatever_order_they_arrive_in() -> None:
    click = ev("click", 1000)
    events = [ev("error", 1500), ev("pageview", 0, url="https://a.test/"), click,
              ev("pageview", 3000, url="https://a.test/"), ev("pageview", 2000, url="https://a.test/b")]
    result = session_frustration(events)
    assert result.flags[2] == {ERROR} and result.flags[4] == {QUICK_BACK}
    assert result.counts == counts(error=1, quick_back=1)


def test_props_as_text_or_mapping_and_hash_routes() -> None:
    assert props_of(ev("click", 0, rage=1)) == {"rage": 1}
    assert props_of(StoredEvent(event_id="x", type="click", ts=0, client_ts=0, props="[1]")) == {}
    assert props_of(StoredEvent(event_id="x", type="click", ts=0, client_ts=0, props="{bad")) == {}
    assert page_key("https://a.test/app#/cart") == "/app#/cart"
    assert page_key("https://a.test/app#!/cart") == "/app#!/cart"
    assert page_key("https://a.test/doc#part-2") == "/doc"
    assert page_key("https://a.test/item?id=2") == page_key("https://a.test/item?id=1") == "/item"
    assert page_key("https://a.test") == "/" and page_key("") == ""
    flags_off = [ev("click", 0, rage=0), ev("click", 10, rage=False), ev("click", 20, dead="yes")]
    assert session_frustration(flags_off).counts == counts()
    assert DEAD in session_frustration([ev("click", 0, dead=1)]).flags[0]
