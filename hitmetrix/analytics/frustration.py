"""Frustration signals of one session, computed at load time from its events: per-event flags and per-session counts.

What the tracker observed arrives as flags and small events (tracker/src/frustration.ts): ``rage: 1`` in the props
of the click that completed a burst, and the custom events ``$dead_click`` / ``$error_click`` ``{click: <the click's
event id>}``, ``$thrashed_cursor`` and ``$excessive_scroll``. Two signals are computed here: an error click is also
a click followed within 1 s by an ``error`` event (errors the tracker saw without its frustration chunk), and a
quick back is a pageview of B between two pageviews of A, B shown less than 5 s (a page: a path and its hash route,
whatever the query string).

Pure functions over plain values (``StoredEvent`` fits); nothing here reads the store. They are the reference
reading of the rules: the loader computes the same signals in the SQL of its per-session aggregation
(``hitmetrix.store.schema``, step 5: ``frustration_marks`` and a count per signal), so that loading stays one
statement per segment, and the tests hold the two to the same answers. ``frustration_query`` reads what it stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

ERROR_CLICK_WINDOW_MS = 1000
QUICK_BACK_MS = 5000

RAGE = "rage"
DEAD = "dead"
ERROR = "error"
QUICK_BACK = "quick_back"
EXCESSIVE_SCROLL = "excessive_scroll"
THRASHED_CURSOR = "thrashed_cursor"
SIGNALS = (RAGE, DEAD, ERROR, QUICK_BACK, EXCESSIVE_SCROLL, THRASHED_CURSOR)

# The tracker's custom events and the signal each one stands for.
_CLICK_REFERENCES = {"$dead_click": DEAD, "$error_click": ERROR}
_PAGE_SIGNALS = {"$excessive_scroll": EXCESSIVE_SCROLL, "$thrashed_cursor": THRASHED_CURSOR}
# Flags a click may carry in its own props (`rage` from the tracker; `dead` / `err` accepted the same way).
_CLICK_FLAGS = {"rage": RAGE, "dead": DEAD, "err": ERROR}


class SessionEvent(Protocol):
    """What is read of an event: ``hitmetrix.model.StoredEvent`` has these (props as JSON text)."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def ts(self) -> int: ...  # ms since epoch
    @property
    def url(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def props(self) -> str | Mapping[str, Any]: ...


@dataclass(frozen=True)
class SessionFrustration:
    """``flags[i]`` are the signals of the i-th event given (clicks: rage, dead, error; the pageview of a page
    left by a quick back: quick_back; the tracker's $excessive_scroll / $thrashed_cursor events: theirs).
    ``counts`` has every signal, 0 when absent: clicks flagged, quick backs, and the tracker's page signals."""

    flags: tuple[frozenset[str], ...]
    counts: Mapping[str, int]

    @property
    def frustrated(self) -> bool:
        return any(self.counts.values())


def props_of(event: SessionEvent) -> Mapping[str, Any]:
    """An event's props as a mapping; JSON text that is not an object reads as no props."""
    raw = event.props
    if isinstance(raw, Mapping):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def page_key(url: str) -> str:
    """What names a page: its path (as the loader stores it: no query string), and its hash route if it has one;
    an in-page anchor does not count."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return (parts.path or "/") + ("#" + parts.fragment if parts.fragment.startswith(("/", "!/")) else "")


def session_frustration(events: Sequence[SessionEvent]) -> SessionFrustration:
    """The signals of one session's events (in any order: they are read by time, ties in the order given)."""
    order = sorted(range(len(events)), key=lambda i: events[i].ts)
    flags: list[set[str]] = [set() for _ in events]
    counts = dict.fromkeys(SIGNALS, 0)
    click_at = {events[i].event_id: i for i in order if events[i].type == "click" and events[i].event_id}
    unmatched: dict[str, set[str]] = {signal: set() for signal in _CLICK_REFERENCES.values()}
    last_click: int | None = None
    for i in order:
        event = events[i]
        if event.type == "click":
            last_click = i
            props = props_of(event)
            flags[i].update(signal for key, signal in _CLICK_FLAGS.items() if _truthy(props.get(key)))
        elif event.type == "error":
            if last_click is not None and event.ts - events[last_click].ts <= ERROR_CLICK_WINDOW_MS:
                flags[last_click].add(ERROR)
        elif event.type == "custom" and event.name in _CLICK_REFERENCES:
            clicked = props_of(event).get("click")
            if isinstance(clicked, str) and clicked in click_at:
                flags[click_at[clicked]].add(_CLICK_REFERENCES[event.name])
            elif isinstance(clicked, str):
                # The click itself is missing (a lost or quarantined batch): the signal still counts, once.
                unmatched[_CLICK_REFERENCES[event.name]].add(clicked)
        elif event.type == "custom" and event.name in _PAGE_SIGNALS:
            flags[i].add(_PAGE_SIGNALS[event.name])
    for i in quick_back_pageviews(events, order):
        flags[i].add(QUICK_BACK)
    for event_flags in flags:
        for signal in event_flags:
            counts[signal] += 1
    for signal, ids in unmatched.items():
        counts[signal] += len(ids)
    return SessionFrustration(tuple(frozenset(f) for f in flags), counts)


def quick_back_pageviews(events: Sequence[SessionEvent], order: Sequence[int] | None = None) -> list[int]:
    """Indexes of the pageviews of B in A → B → A where the next pageview (back on A) came < 5 s after B's."""
    if order is None:
        order = sorted(range(len(events)), key=lambda i: events[i].ts)
    views = [i for i in order if events[i].type == "pageview"]
    quick: list[int] = []
    for before, shown, after in zip(views, views[1:], views[2:], strict=False):
        a, b, back = (page_key(events[i].url) for i in (before, shown, after))
        if a == back != b and events[after].ts - events[shown].ts < QUICK_BACK_MS:
            quick.append(shown)
    return quick


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0)
