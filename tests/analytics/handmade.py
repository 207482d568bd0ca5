"""What the funnel and trend truth tests share: hand-made events with the selectors and texts the generator's events
do not carry, their batches as the capture API would have stored them, the plain-Python reading of a step (or
series) definition, and the module's truth and world fixtures split off one seeded fixture."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hitmetrix.model import StoredBatch, StoredEvent
from tests.analytics import groundtruth as gt
from tests.loader.helpers import World

# Quotes, backslashes, braces, NUL and control characters: text every field must treat as data.
HOSTILE_TEXTS = [gt.ODD, "'", '"', "\\", "a\\", "\\N", "{}", "{p1:String}", "a\x00b", "a\tb", "a\nb"]


@dataclass
class Ev:
    ts: int
    type: str
    path: str = "/"
    selector: str = ""
    text: str = ""
    name: str = ""
    props: dict[str, Any] = field(default_factory=dict)


def as_text(value: Any) -> str:
    """A custom event's property as the filters compare it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def fits(step: dict[str, Any], e: Ev) -> bool:
    """Whether the event fills a funnel step or counts for a trend series (the two read a definition alike)."""
    if e.type != step["kind"]:
        return False
    if e.type == "pageview":
        how, p = step.get("match", "exact"), step.get("path", "")
        if how == "regex":
            return bool(re.search(p, e.path))
        return e.path == p if how == "exact" else e.path.startswith(p)
    if step.get("selector") and e.selector != step["selector"]:
        return False
    if step.get("text") and e.text != step["text"]:
        return False
    if e.type == "custom":
        if e.name != step["name"]:
            return False
        for k, v in step.get("props", {}).items():
            if k not in e.props or as_text(e.props[k]) != v:
                return False
    return True


def day_ms(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp() * 1000)


def session_batches(session_id: str, anonymous_id: str, country: str, device_type: str, events: list[Ev],
                    late: bool = False) -> list[StoredBatch]:
    """A hand-made session of project 1 as stored batches, events newest first: one batch, or (``late``) a
    second one holding all but the first two events, for the caller to deliver after everything else."""
    halves = [events[:2], events[2:]] if late else [events]
    return [
        StoredBatch(
            batch_id=uuid.uuid4().hex, project_id=1, received_at=max(e.ts for e in chunk),
            session_id=session_id, anonymous_id=anonymous_id, user_id="", country=country,
            browser="Chrome", os="Linux", device_type=device_type,
            events=[StoredEvent(event_id=str(uuid.uuid4()), type=e.type, ts=e.ts, client_ts=e.ts,
                                url=gt.SITE + e.path, selector=e.selector, text=e.text, name=e.name,
                                props=json.dumps(e.props) if e.props else "") for e in reversed(chunk)],
        )
        for chunk in halves if chunk
    ]


def world_and_truth_fixtures() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The ``world`` and ``truth`` fixtures of a module whose module-scoped fixture ``sessions_and_world`` yields
    (truth, world); module scoped like it. In the module: ``world, truth = world_and_truth_fixtures()``."""

    @pytest.fixture(scope="module")
    def world(sessions_and_world: tuple[list[Any], World]) -> World:
        return sessions_and_world[1]

    @pytest.fixture(scope="module")
    def truth(sessions_and_world: tuple[list[Any], World]) -> list[Any]:
        return sessions_and_world[0]

    return world, truth
