"""Seeded sessions full of frustration signals, with each session's signals worked out here in plain Python.

Each session walks pages (some straight back within 5 s, some after exactly 5 s, some to an in-page anchor or a
hash route), clicks (some in a rage burst the tracker flagged, some dead or throwing: the tracker names them in
``$dead_click`` / ``$error_click`` events, sometimes twice, sometimes for a click whose batch was lost), sees JS
errors 1000 ms (counts) or 1001 ms (does not) after a click, thrashes the mouse and scrolls too much. Its batches
arrive shuffled, in several spool segments (a reference often in a later segment than its click), and one
segment is delivered twice.

Nothing here imports ``hitmetrix.analytics``: ``marks`` is an independent reading of the rules in
``hitmetrix.analytics.frustration``'s docstring.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hitmetrix.model import StoredBatch, StoredEvent
from tests.analytics.groundtruth import Traffic

SITE = "https://calm.example"
BASE_MS = int(dt.datetime(2026, 10, 5, 8, tzinfo=dt.UTC).timestamp() * 1000)
DAY_MS = 86_400_000
KINDS = ("rage", "dead", "error", "quick_back", "excessive_scroll", "thrashed_cursor")
_PAGES = ["/", "/pricing", "/shop", "/cart", "/checkout", "/app#/inbox", "/app#/settings", "/docs#intro"]


@dataclass
class Ev:
    event_id: str
    type: str
    ts: int
    url: str
    name: str = ""
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"


@dataclass
class Session:
    project_id: int
    session_id: str
    country: str
    events: list[Ev]
    lost: set[str] = field(default_factory=set)  # events whose batch never arrives

    @property
    def stored(self) -> list[Ev]:
        return [e for e in self.events if e.event_id not in self.lost]

    @property
    def started_ms(self) -> int:
        return min(e.ts for e in self.stored)

    def utm_source(self) -> str:
        entry = min((e for e in self.stored if e.type == "pageview"), key=lambda e: e.ts)
        return parse_qs(urlsplit(entry.url).query).get("utm_source", [""])[0]

    def marks(self) -> list[tuple[int, str, str]]:
        """(ms, signal, path) of each signal the session raised, in time order (see the module docstring)."""
        events = sorted(self.stored, key=lambda e: e.ts)
        clicks = {e.event_id: e for e in events if e.type == "click"}
        found: dict[tuple[str, str], tuple[int, str]] = {}

        def mark(kind: str, key: str, ts: int, path: str) -> None:
            if (kind, key) not in found or ts < found[(kind, key)][0]:
                found[(kind, key)] = (ts, path)

        for e in events:
            if e.type == "click":
                for flag, kind in (("rage", "rage"), ("dead", "dead"), ("err", "error")):
                    value = e.props.get(flag)
                    if value is True or (type(value) in (int, float) and value != 0):
                        mark(kind, e.event_id, e.ts, e.path)
            elif e.type == "custom" and e.name in ("$dead_click", "$error_click"):
                ref = e.props.get("click")
                if isinstance(ref, str):
                    at = clicks.get(ref, e)
                    mark("dead" if e.name == "$dead_click" else "error", ref, at.ts, at.path)
            elif e.type == "custom" and e.name in ("$excessive_scroll", "$thrashed_cursor"):
                mark(e.name[1:], e.event_id, e.ts, e.path)
            elif e.type == "error":
                before = [c for c in clicks.values() if c.ts <= e.ts]
                if before and e.ts - before[-1].ts <= 1000:
                    mark("error", before[-1].event_id, before[-1].ts, before[-1].path)
        views = [e for e in events if e.type == "pageview"]
        for a, b, back in zip(views, views[1:], views[2:], strict=False):
            if _page(a.url) == _page(back.url) != _page(b.url) and back.ts - b.ts < 5000:
                mark("quick_back", b.event_id, b.ts, b.path)
        return sorted((ts, kind, path) for (kind, _), (ts, path) in found.items())

    def counts(self) -> dict[str, int]:
        got = Counter(kind for _, kind, _ in self.marks())
        return {kind: got[kind] for kind in KINDS}


def _page(url: str) -> str:
    """A page: its path and its hash route, if any (not its query string, nor an in-page anchor)."""
    rest = url.split("://", 1)[1]
    before, _, fragment = rest.partition("#")
    path = "/" + before.partition("?")[0].partition("/")[2]
    return path + ("#" + fragment if fragment.startswith(("/", "!/")) else "")


class _Writer:
    def __init__(self, rng: random.Random, start_ms: int) -> None:
        self.rng, self.ts, self.events = rng, start_ms, []  # type: ignore[var-annotated]
        self.page = SITE + "/"

    def add(self, type_: str, gap_ms: int, url: str | None = None, name: str = "", **props: Any) -> Ev:
        self.ts += gap_ms
        e = Ev(str(uuid.UUID(int=self.rng.getrandbits(128))), type_, self.ts, url or self.page, name, props)
        if type_ == "pageview":
            self.page = e.url
        self.events.append(e)
        return e


def _session(rng: random.Random, index: int, project_id: int) -> Session:
    w = _Writer(rng, BASE_MS + rng.randrange(14) * DAY_MS + rng.randrange(10 * 3_600_000))
    path, hash_, fragment = rng.choice(_PAGES).partition("#")
    w.add("pageview", 0, SITE + path + ("?utm_source=news" if rng.random() < 0.3 else "") + hash_ + fragment)
    lost: set[str] = set()
    for _ in range(rng.randint(2, 9)):
        step = rng.randrange(10)
        if step == 0:  # straight back: within 5 s, after exactly 5 s, or well after
            there, back = w.page, SITE + rng.choice(_PAGES)
            w.add("pageview", rng.randint(1000, 9000), back)
            w.add("pageview", rng.choice([300, 4999, 5000, 12_000]), there)
        elif step == 1:  # a rage burst: the tracker flags the click that completes it
            for k in range(rng.randint(3, 6)):
                w.add("click", 150, rage=rng.choice([1, True, 2.5]) if k == 2 else 0)
        elif step == 2:  # a dead click, named once or twice, its reference sometimes lost with its batch
            click = w.add("click", rng.randint(500, 4000))
            w.add("custom", 1000, name="$dead_click", click=click.event_id)
            if rng.random() < 0.3:
                w.add("custom", 10, name="$dead_click", click=click.event_id)
            if rng.random() < 0.2:
                lost.add(click.event_id)
        elif step == 3:  # a click that throws: the error 1000 ms after (counts) or 1001 ms (does not)
            w.add("click", rng.randint(500, 4000))
            w.add("error", rng.choice([1, 400, 1000, 1001]), message="boom")
            if rng.random() < 0.5:
                w.add("custom", 1, name="$error_click", click=w.events[-2].event_id)
        elif step == 4:
            w.add("custom", rng.randint(500, 9000), name="$thrashed_cursor", turns=5)
        elif step == 5:
            w.add("custom", rng.randint(500, 9000), name="$excessive_scroll", turns=6, px=9000, dh=2000)
        elif step == 6:  # flags a click may carry itself; off values and a reference that is no id
            w.add("click", rng.randint(200, 3000), dead=rng.choice([1, 0, False]), err=rng.choice([0, "yes", 1]))
            w.add("custom", 5, name="$dead_click", click=rng.choice([7, None]))
        elif step == 7:  # an in-page anchor is the same page, a hash route is not
            w.add("pageview", rng.randint(1000, 3000), w.page.split("#")[0] + "#faq")
        else:
            w.add(rng.choice(["click", "scroll", "submit"]), rng.randint(800, 20_000))
            w.add("custom", 50, name="signup", plan=rng.choice(["free", "pro"]))
    sid = f"fr-{index:04d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
    return Session(project_id, sid, rng.choice(["DE", "FR", "US"]), w.events, lost)


def calm_session(project_id: int, session_id: str, start_ms: int) -> Session:
    rng = random.Random(session_id)
    w = _Writer(rng, start_ms)
    w.add("pageview", 0, SITE + "/")
    w.add("click", 2000)
    w.add("pageview", 3000, SITE + "/pricing")
    w.add("error", 9000, message="long after any click")
    w.add("pageview", 20_000, SITE + "/")
    return Session(project_id, session_id, "DE", w.events)


def generate(seed: int = 5, sessions: int = 70) -> tuple[list[Session], Traffic]:
    """The sessions (project 1, and every fifth in project 2) and their spool segments."""
    rng = random.Random(seed)
    made = [_session(rng, i, 2 if i % 5 == 4 else 1) for i in range(sessions)]
    made.append(calm_session(1, "fr-calm-0001", BASE_MS + 3 * DAY_MS))
    batches: list[StoredBatch] = []
    for s in made:
        events = list(s.events)
        while events:
            size = rng.randint(1, 4)
            chunk, events = events[:size], events[size:]
            kept = [e for e in chunk if e.event_id not in s.lost]
            if not kept:
                continue
            stored = [StoredEvent(event_id=e.event_id, type=e.type, ts=e.ts, client_ts=e.ts, url=e.url, name=e.name,
                                  props=json.dumps(e.props) if e.props else "") for e in kept]
            rng.shuffle(stored)
            batches.append(StoredBatch(batch_id=uuid.UUID(int=rng.getrandbits(128)).hex, project_id=s.project_id,
                                       received_at=max(e.ts for e in kept), session_id=s.session_id,
                                       anonymous_id=f"anon-{s.session_id}", country=s.country, browser="Chrome",
                                       os="Linux", device_type="desktop", events=stored))
    rng.shuffle(batches)  # references often land in another segment than their clicks
    segments = [batches[i : i + 40] for i in range(0, len(batches), 40)]
    segments.insert(2, list(segments[1]))  # a client retry: a whole segment's batches again
    return made, Traffic(sessions=[], segments=segments)
