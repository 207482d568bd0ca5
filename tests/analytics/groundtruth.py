"""Seeded synthetic traffic with a known answer: the generator writes it through the real loader and computes
every analytics answer itself, in plain Python, without the store.

Shapes: visitors who come back over weeks, sessions of 1–50 events (about 20 % bounce: one pageview), a long
tail of pages, UTM-tagged entries, referrers, countries, devices, identified users and custom events with
properties. Edge cases are written on purpose: sessions over midnight (UTC and Asia/Kolkata), a page viewed
twice in a row, batches that arrive late (in a later spool segment, moving the session's start) with their
events out of order, and a spool segment delivered twice (a client retry: the same batch ids again).

Nothing here imports ``hitmetrix.analytics``: the answers are an independent reading of the same rules
(``hitmetrix.analytics.overview`` documents them). Bench imports this module too.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hitmetrix.loader import Loader
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.spool import Spool

BASE = dt.datetime(2026, 9, 7, tzinfo=dt.UTC)  # a Monday; every generated session starts within WEEKS of it
WEEKS = 8
SITE = "https://shop.example"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# The browser, OS pairs of each device type.
_DEVICES = {
    "desktop": [("Chrome", "Windows"), ("Firefox", "Linux"), ("Safari", "Mac OS X"), ("Edge", "Windows")],
    "mobile": [("Mobile Safari", "iOS"), ("Chrome Mobile", "Android"), ("Samsung Internet", "Android")],
    "tablet": [("Mobile Safari", "iOS"), ("Chrome", "Android")],
}
_DEVICE_WEIGHTS = {"desktop": 55, "mobile": 38, "tablet": 7}
_COUNTRIES = ["DE", "US", "FR", "GB", "IN", "BR", "JP", "NL", "", "ES"]
_REFERRERS = [
    "",
    "",
    "",
    "https://www.google.com/search?q=shoes",
    "https://www.google.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://t.co/abc",
    "https://duckduckgo.com/",
    "https://www.bing.com/search?q=x",
    f"{SITE}/blog/post-1",  # from the site itself: not a referrer
]
_UTM = [
    {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "autumn"},
    {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring sale"},
    {"utm_source": "twitter", "utm_medium": "social"},
    {"utm_source": "partner", "utm_campaign": "été"},
]
_CUSTOM = [
    ("signup", lambda rng: {"plan": rng.choice(["free", "pro", "team"]), "seats": rng.randint(1, 5)}),
    ("add_to_cart", lambda rng: {"sku": f"SKU-{rng.randint(1, 30)}"}),
    ("purchase", lambda rng: {"currency": "EUR", "coupon": rng.choice(["", "WELCOME"])}),
]
# A value with quotes, a backslash and braces, as a browser, OS, page, UTM source and property may carry it.
ODD = "o'brien\\{p1:String}\"x"


def _pages() -> list[str]:
    head = ["/", "/pricing", "/shop", "/cart", "/checkout", "/about", "/signup", "/signin"]
    tail = [f"/blog/post-{i}" for i in range(1, 80)] + [f"/p/item-{i}" for i in range(1, 150)]
    return head + tail


@dataclass
class TruthEvent:
    ts: int
    type: str
    url: str = ""
    referrer: str = ""
    name: str = ""
    props: dict[str, Any] = field(default_factory=dict)


@dataclass
class TruthSession:
    project_id: int
    session_id: str
    anonymous_id: str
    user_id: str  # the id the visitor identified as ("" never)
    identify_from: int  # index of the first batch that carries user_id
    country: str
    browser: str
    os: str
    device: str
    events: list[TruthEvent]

    # --- what analytics must say of it (an independent reading of the rules) ---
    @property
    def started_ms(self) -> int:
        return min(e.ts for e in self.events)

    @property
    def duration_ms(self) -> int:
        return max(e.ts for e in self.events) - self.started_ms

    @property
    def pageviews(self) -> list[TruthEvent]:
        return sorted((e for e in self.events if e.type == "pageview"), key=lambda e: (e.ts, _path(e.url)))

    @property
    def paths(self) -> list[str]:
        return [_path(e.url) for e in self.pageviews]

    @property
    def entry(self) -> TruthEvent:
        return min(self.pageviews, key=lambda e: (e.ts, e.url, e.referrer))

    @property
    def referrer_domain(self) -> str:
        own, ref = _domain(self.entry.url), _domain(self.entry.referrer)
        return "" if ref == own else ref

    def utm(self, tag: str) -> str:
        return parse_qs(urlsplit(self.entry.url).query).get(f"utm_{tag}", [""])[0]

    @property
    def props(self) -> set[tuple[str, str, str]]:
        return {
            (e.name, key, value if isinstance(value, str) else json.dumps(value))
            for e in self.events
            if e.type == "custom"
            for key, value in e.props.items()
        }


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host[4:] if host.startswith("www.") else host


@dataclass
class Traffic:
    sessions: list[TruthSession]
    # Spool segments in delivery order, each a list of batches; a batch may be delivered twice.
    segments: list[list[StoredBatch]]

    def of_project(self, project_id: int) -> list[TruthSession]:
        return [s for s in self.sessions if s.project_id == project_id and s.pageviews]


def generate(seed: int = 9, visitors: int = 160, project_ids: tuple[int, ...] = (1, 2)) -> Traffic:
    """Seeded traffic for these projects, its spool segments, and the edge cases named in the docstring."""
    rng = random.Random(seed)
    pages = _pages()
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pages))]  # a long tail
    sessions: list[TruthSession] = []
    for v in range(visitors):
        project_id = project_ids[v % len(project_ids)] if v % 5 == 4 else project_ids[0]
        device = rng.choices(list(_DEVICE_WEIGHTS), list(_DEVICE_WEIGHTS.values()))[0]
        browser, os_name = rng.choice(_DEVICES[device])
        country = rng.choice(_COUNTRIES)
        anonymous_id = f"anon-{seed}-{v}"
        user_id = f"user-{v}" if rng.random() < 0.3 else ""
        visits = 1 if rng.random() < 0.6 else rng.randint(2, 6)  # repeat visitors over weeks
        first_ms = int(BASE.timestamp() * 1000) + rng.randrange(WEEKS * 7 * DAY_MS - 10 * DAY_MS)
        for visit in range(visits):
            start_ms = first_ms + visit * rng.randrange(HOUR_MS, 9 * DAY_MS)
            events = _session_events(rng, start_ms, pages, weights)
            sessions.append(
                TruthSession(project_id, f"s{seed}-{len(sessions):05d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
                             anonymous_id, user_id, rng.randrange(0, 2), country, browser, os_name, device, events)
            )
    sessions += _edge_sessions(seed, project_ids[0])
    return Traffic(sessions, _deliver(rng, sessions))


def _session_events(rng: random.Random, start_ms: int, pages: list[str], weights: list[float]) -> list[TruthEvent]:
    bounce = rng.random() < 0.2
    n_events = rng.randint(1, 3) if bounce else rng.randint(2, 50)
    n_pageviews = 1 if bounce else rng.randint(2, max(2, n_events // 2))
    entry = rng.choices(pages, weights)[0]
    query = ""
    if rng.random() < 0.25:
        query = "?" + "&".join(f"{k}={v.replace(' ', '+')}" for k, v in rng.choice(_UTM).items())
    events = [TruthEvent(start_ms, "pageview", SITE + entry + query, rng.choice(_REFERRERS))]
    ts = start_ms
    for i in range(1, n_events):
        ts += rng.randint(1_000, 120_000)
        kind = "pageview" if i < n_pageviews else rng.choice(["click", "click", "scroll", "custom", "submit"])
        if kind == "pageview":
            events.append(TruthEvent(ts, "pageview", SITE + rng.choices(pages, weights)[0], events[-1].url))
        elif kind == "custom":
            name, props = rng.choice(_CUSTOM)
            events.append(TruthEvent(ts, "custom", SITE + entry, name=name, props=props(rng)))
        else:
            events.append(TruthEvent(ts, kind, SITE + entry))
    return events


def _edge_sessions(seed: int, project_id: int) -> list[TruthSession]:
    def ms(text: str) -> int:
        return int(dt.datetime.fromisoformat(text).timestamp() * 1000)

    def session(name: str, events: list[TruthEvent], **kw: Any) -> TruthSession:
        base: dict[str, Any] = {"anonymous_id": f"anon-edge-{name}", "user_id": "", "identify_from": 0,
                                "country": "DE", "browser": "Chrome", "os": "Linux", "device": "desktop"}
        return TruthSession(project_id, f"edge-{seed}-{name}", events=events, **{**base, **kw})

    odd_page = f"{SITE}/it's/a\\b{{x}}"
    return [
        # Over midnight UTC (2026-09-20 → 21) and, with the next one, over midnight in Asia/Kolkata (18:30 UTC).
        session("midnight-utc", [TruthEvent(ms("2026-09-20T23:50:00+00:00"), "pageview", f"{SITE}/"),
                                 TruthEvent(ms("2026-09-21T00:20:00+00:00"), "pageview", f"{SITE}/pricing")]),
        session("midnight-kolkata", [TruthEvent(ms("2026-09-22T18:20:00+00:00"), "pageview", f"{SITE}/shop"),
                                     TruthEvent(ms("2026-09-22T18:45:00+00:00"), "pageview", f"{SITE}/cart")]),
        # The same page twice in a row, then another.
        session("repeat", [TruthEvent(ms("2026-09-23T10:00:00+00:00"), "pageview", f"{SITE}/pricing"),
                           TruthEvent(ms("2026-09-23T10:01:00+00:00"), "pageview", f"{SITE}/pricing"),
                           TruthEvent(ms("2026-09-23T10:02:00+00:00"), "pageview", f"{SITE}/signup")]),
        # Late: its second batch holds its FIRST events and arrives in the last segment (see _deliver).
        session("late", [TruthEvent(ms("2026-09-24T12:00:00+00:00"), "pageview", f"{SITE}/cart"),
                         TruthEvent(ms("2026-09-24T12:05:00+00:00"), "click", f"{SITE}/cart"),
                         TruthEvent(ms("2026-09-24T11:58:00+00:00"), "pageview",
                                    f"{SITE}/?utm_source=late&utm_medium=mail", "https://www.google.com/"),
                         TruthEvent(ms("2026-09-24T11:59:00+00:00"), "pageview", f"{SITE}/shop")],
                country="FR", device="mobile", browser="Mobile Safari", os="iOS"),
        # Quotes, backslashes and braces in every text a filter reads.
        session("odd", [TruthEvent(ms("2026-09-25T09:00:00+00:00"), "pageview",
                                   f"{odd_page}?utm_source=o%27brien%5C%7B%7D", "https://odd.example/"),
                        TruthEvent(ms("2026-09-25T09:00:05+00:00"), "custom", odd_page, name="odd", props={"k": ODD})],
                browser=ODD, os=ODD, user_id=ODD, country="NL"),
    ]


def _batches(rng: random.Random, s: TruthSession, sizes: Iterable[int]) -> list[StoredBatch]:
    out: list[StoredBatch] = []
    position = 0
    sizes = list(sizes)
    s.identify_from = min(s.identify_from, len(sizes) - 1)  # a visitor who identifies does so in some batch
    for index, size in enumerate(sizes):
        chunk = s.events[position : position + size]
        position += size
        stored = [
            StoredEvent(event_id=str(uuid.UUID(int=rng.getrandbits(128))), type=e.type, ts=e.ts, client_ts=e.ts,
                        url=e.url, referrer=e.referrer, name=e.name, props=json.dumps(e.props) if e.props else "")
            for e in chunk
        ]
        rng.shuffle(stored)  # events of a batch out of order
        out.append(StoredBatch(
            batch_id=uuid.UUID(int=rng.getrandbits(128)).hex, project_id=s.project_id,
            received_at=max(e.ts for e in chunk), session_id=s.session_id, anonymous_id=s.anonymous_id,
            user_id=s.user_id if index >= s.identify_from else "", country=s.country, browser=s.browser,
            os=s.os, device_type=s.device, events=stored,
        ))
    return out


def _deliver(rng: random.Random, sessions: list[TruthSession]) -> list[list[StoredBatch]]:
    normal: list[tuple[int, StoredBatch]] = []
    late: list[StoredBatch] = []
    for s in sessions:
        if s.session_id.endswith("-late"):
            first, second = _batches(rng, s, [2, 2])
            normal.append((first.received_at, first))
            late.append(second)
            continue
        sizes, left = [], len(s.events)
        while left:
            sizes.append(min(left, rng.randint(1, 10)))
            left -= sizes[-1]
        for b in _batches(rng, s, sizes):
            normal.append((b.received_at + rng.randrange(0, 5_000), b))
    normal.sort(key=lambda pair: pair[0])
    ordered = [b for _, b in normal]
    segments = [ordered[i : i + 150] for i in range(0, len(ordered), 150)]
    # A client retry: the third segment's batches again, in a segment of their own.
    segments.insert(4, list(segments[2]))
    segments.append(late)
    return segments


def load(traffic: Traffic, spool_dir: Path, store: Any, blobs: Any) -> Loader:
    """Write the traffic through a spool under ``spool_dir`` and the real Loader into ``store``; four segments
    at a time, so sessions span loads. Returns the loader (its counters say what it did)."""
    loader = Loader(Spool(spool_dir, fsync="never", segment_max_age_s=3600), store, blobs,
                    data_dir=spool_dir.parent / f"{spool_dir.name}-loader")
    for batches in traffic.segments:
        spool = Spool(spool_dir, fsync="never", segment_max_age_s=3600)
        spool.start()
        for batch in batches:
            spool.append_blocking(encode_batch(batch), 10.0)
        spool.close()  # seals: one segment
        if len(loader.spool.sealed_segments()) >= 4:
            loader.load_once()
    loader.load_once()
    loader.load_once()  # nothing left: a second run changes nothing
    return loader


# --- the answers -------------------------------------------------------------------------------------------

Filters = Mapping[str, str]


def _matches(s: TruthSession, filters: Filters) -> bool:
    simple = {"country": s.country, "device": s.device, "browser": s.browser, "os": s.os,
              "referrer": s.referrer_domain, "utm_source": s.utm("source"), "utm_medium": s.utm("medium"),
              "utm_campaign": s.utm("campaign")}
    for name, value in simple.items():
        if filters.get(name) and filters[name] != value:
            return False
    if filters.get("url") and not any(filters["url"].lower() in p.lower() for p in s.paths):
        return False
    if filters.get("identified") == "yes" and not s.user_id:
        return False
    if filters.get("identified") == "no" and s.user_id:
        return False
    if filters.get("prop_key"):
        wanted = filters["prop_key"], filters.get("prop_value", "")
        if not any(k == wanted[0] and (not wanted[1] or v == wanted[1]) for _, k, v in s.props):
            return False
    return True


def _local(ms: int, zone: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(zone))


def _day_start_ms(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp() * 1000)


def _totals(picked: list[TruthSession]) -> dict[str, Any]:
    n = len(picked)
    pageviews = sum(len(s.pageviews) for s in picked)
    bounces = sum(1 for s in picked if len(s.pageviews) == 1)
    duration = sum(s.duration_ms for s in picked)
    return {
        "visitors": len({s.anonymous_id for s in picked}),
        "sessions": n,
        "pageviews": pageviews,
        "views_per_session": round(pageviews / n, 2) if n else 0.0,
        "bounce_rate": round(100 * bounces / n, 1) if n else 0.0,
        "avg_duration_ms": round(duration / n) if n else 0,
    }


def bucket_of(first: dt.date, last: dt.date) -> str:
    days = (last - first).days + 1
    return "hour" if days <= 2 else "day" if days <= 92 else "week"


def _label(ms: int, zone: str, bucket: str) -> str:
    local = _local(ms, zone)
    if bucket == "hour":
        return local.strftime("%Y-%m-%d %H:00")
    day = local.date()
    if bucket == "week":
        day -= dt.timedelta(days=day.weekday())
    return day.isoformat()


def _breakdown(picked: list[TruthSession], key: Callable[[TruthSession], str], limit: int,
               keep_empty: bool = False) -> list[dict[str, Any]]:
    visitors: dict[str, set[str]] = defaultdict(set)
    sessions: Counter[str] = Counter()
    for s in picked:
        value = key(s)
        if value or keep_empty:
            visitors[value].add(s.anonymous_id)
            sessions[value] += 1
    rows = [{"value": v, "visitors": len(visitors[v]), "sessions": sessions[v]} for v in sessions]
    rows.sort(key=lambda r: (-r["visitors"], -r["sessions"], r["value"]))
    return rows[:limit]


def overview_answer(traffic: Traffic, project_id: int, first: dt.date, last: dt.date, zone: str = "UTC",
                    filters: Filters | None = None, limit: int = 10) -> dict[str, Any]:
    """What the overview of these days (of ``zone``) must say, computed from the generated sessions."""
    filters = filters or {}
    candidates = [s for s in traffic.of_project(project_id) if _matches(s, filters)]

    def started_in(a: dt.date, b: dt.date) -> list[TruthSession]:
        low, high = _day_start_ms(a, zone), _day_start_ms(b + dt.timedelta(days=1), zone)
        return [s for s in candidates if low <= s.started_ms < high]

    picked = started_in(first, last)
    span = (last - first).days + 1
    previous = started_in(first - dt.timedelta(days=span), first - dt.timedelta(days=1))
    bucket = bucket_of(first, last)
    series: dict[str, list[TruthSession]] = {}
    for ms in range(_day_start_ms(first, zone), _day_start_ms(last + dt.timedelta(days=1), zone), HOUR_MS // 2):
        series.setdefault(_label(ms, zone, bucket), [])
    for s in picked:
        series[_label(s.started_ms, zone, bucket)].append(s)
    pages_visitors: dict[str, set[str]] = defaultdict(set)
    pages_views: Counter[str] = Counter()
    for s in picked:
        for p in s.paths:
            pages_visitors[p].add(s.anonymous_id)
            pages_views[p] += 1
    top_pages = [{"value": p, "visitors": len(pages_visitors[p]), "pageviews": pages_views[p]} for p in pages_views]
    top_pages.sort(key=lambda r: (-r["visitors"], -r["pageviews"], r["value"]))
    return {
        "range": {"from": first.isoformat(), "to": last.isoformat(), "time_zone": zone, "bucket": bucket},
        "totals": _totals(picked),
        "previous": {
            "from": (first - dt.timedelta(days=span)).isoformat(),
            "to": (first - dt.timedelta(days=1)).isoformat(),
            "totals": _totals(previous),
        },
        "series": [
            {"bucket": label, **{k: v for k, v in _totals(group).items() if k in ("visitors", "sessions", "pageviews")}}
            for label, group in series.items()
        ],
        "top_pages": top_pages[:limit],
        "entry_pages": _breakdown(picked, lambda s: s.paths[0], limit),
        "exit_pages": _breakdown(picked, lambda s: s.paths[-1], limit),
        "referrers": _breakdown(picked, lambda s: s.referrer_domain, limit, keep_empty=True),
        "utm_sources": _breakdown(picked, lambda s: s.utm("source"), limit),
        "utm_mediums": _breakdown(picked, lambda s: s.utm("medium"), limit),
        "utm_campaigns": _breakdown(picked, lambda s: s.utm("campaign"), limit),
        "countries": _breakdown(picked, lambda s: s.country, limit),
        "browsers": _breakdown(picked, lambda s: s.browser, limit),
        "oses": _breakdown(picked, lambda s: s.os, limit),
        "devices": _breakdown(picked, lambda s: s.device, limit),
    }
