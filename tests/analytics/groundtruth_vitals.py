"""Seeded sessions with web vitals and JS errors whose answers are computed here in plain Python: the p75 of each
metric per page and bucket, the ratings, and the error groups with their sessions.

The sessions use the ground-truth classes (``groundtruth.TruthSession`` / ``TruthEvent``) and are loaded with
``groundtruth.load`` through the real spool and loader. Nothing here imports ``hitmetrix.analytics``: the rules
(``hitmetrix.analytics.vitals`` and ``errors`` document them) are read again and written independently.
Hostile values on purpose: metrics that are strings, booleans, negative or missing; messages and stacks with
quotes, backslashes, braces, tabs, newlines and non-ASCII text; stacks from Chrome, Firefox and none at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import re
import statistics
import uuid
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from hitmetrix.model import StoredBatch, StoredEvent
from tests.analytics import groundtruth as gt

SITE = gt.SITE
FIRST, LAST = dt.date(2026, 9, 21), dt.date(2026, 10, 18)  # 28 days; the previous period starts 2026-08-24
_GEN_START = dt.datetime(2026, 8, 24, tzinfo=dt.UTC)
_GEN_DAYS = 63  # past LAST too: those sessions are out of the range
METRICS = ("lcp", "inp", "cls", "fcp", "ttfb")
THRESHOLDS = {"lcp": (2500, 4000), "inp": (200, 500), "cls": (0.1, 0.25), "fcp": (1800, 3000),
              "ttfb": (800, 1800)}
PAGES = ["/", "/pricing", "/checkout", "/blog/post-1", "/blog/post-22", "/orders/12345", "/orders/777",
         "/u/550e8400-e29b-41d4-a716-446655440000/settings", "/c/deadbeef01", "/it's/a\\b{x}"]
HOSTILE = "o'brien\\{p1:String}\"x\t{}"


def _chrome(message: str, frames: list[tuple[str, str, int, int]]) -> str:
    lines = [message] + [f"    at {fn} ({url}:{line}:{col})" if fn else f"    at {url}:{line}:{col}"
                         for fn, url, line, col in frames]
    return "\n".join(lines)


def _firefox(frames: list[tuple[str, str, int, int]]) -> str:
    return "\n".join(f"{fn}@{url}:{line}:{col}" for fn, url, line, col in frames) + "\n"


# Each: (message, source, line, col, stack) from a random source; the same template is one group, unless its
# variable part lands in what grouping keeps (see ERRORS_OF_A_KIND).
ErrorMaker = Callable[[random.Random], tuple[str, str, int, int, str]]


def _type_error(rng: random.Random) -> tuple[str, str, int, int, str]:
    line, col = rng.randint(1, 900), rng.randint(1, 120)
    v = rng.randint(1, 9)
    url = f"{SITE}/static/main.{rng.choice(['3f2a9c1b', 'a1b2c3d4e5'])}.js?v={v}"
    message = "TypeError: Cannot read properties of undefined (reading 'price')"
    if rng.random() < 0.5:
        message = "Uncaught " + message  # Chrome's window.onerror text: the same group
    return (message, url, line, col,
            _chrome(message, [("renderCart", url, line, col), ("HTMLButtonElement.onclick", url, 2, 3)]))


def _order_missing(rng: random.Random) -> tuple[str, str, int, int, str]:
    order = rng.randint(10_000, 99_999_999)
    url = f"{SITE}/static/orders.js"
    message = f"Error: order {order} not found at {SITE}/api/orders/{order}?token={uuid.uuid4().hex}"
    return message, url, 10, 5, _firefox([("loadOrder", url, rng.randint(1, 50), 7), ("", url, 1, 1)])


def _script_error(rng: random.Random) -> tuple[str, str, int, int, str]:
    return "Script error.", "", 0, 0, ""


def _rejection(rng: random.Random) -> tuple[str, str, int, int, str]:
    # An unhandled rejection of a plain object: no stack, no source; the message names an id.
    return f"Unhandled rejection {uuid.UUID(int=rng.getrandbits(128))}", "", 0, 0, ""


def _hostile(rng: random.Random) -> tuple[str, str, int, int, str]:
    url = f"{SITE}/static/x.js#frag"
    message = f"  {HOSTILE}\n\tüñî  ∑ {{}} \\N '' \"  "
    stack = _chrome("Error: " + HOSTILE, [(f"Object.{HOSTILE[:6]}", url, rng.randint(1, 5), 9)])
    return message, url, 3, 9, stack


def _safari(rng: random.Random) -> tuple[str, str, int, int, str]:
    url = f"{SITE}/static/vendor-{rng.choice(['0a1b2c3d4e', '99ffee0011'])}.mjs"
    message = "ReferenceError: Can't find variable: gtag"
    return message, url, 1, 300, _firefox([("global code", url, 1, rng.randint(100, 999))])


def _long(rng: random.Random) -> tuple[str, str, int, int, str]:
    message = "RangeError: " + "x" * 400 + str(rng.randint(0, 3))  # past the 300-character cut: one group
    return message, "", 0, 0, ""


ERROR_MAKERS: list[ErrorMaker] = [_type_error, _order_missing, _script_error, _rejection, _hostile, _safari, _long]


def _vitals_props(rng: random.Random) -> dict[str, Any]:
    props: dict[str, Any] = {
        "lcp": rng.randint(300, 9000),
        "inp": rng.randint(16, 900) if rng.random() < 0.7 else None,
        "cls": round(rng.random() * rng.choice([0.05, 0.3, 0.8]), 4),
        "fcp": rng.randint(200, 5000),
        "ttfb": rng.randint(20, 2600),
    }
    odd = rng.random()
    if odd < 0.04:
        props["lcp"] = str(props["lcp"])  # a string is not a measurement
    elif odd < 0.07:
        props["inp"] = True
    elif odd < 0.09:
        props["ttfb"] = -5
    elif odd < 0.11:
        del props["cls"]
    elif odd < 0.12:
        props["fcp"] = 10**12  # absurd but a number: it counts
    props["url"] = "x"
    return props


def generate(seed: int = 13, visitors: int = 150) -> tuple[gt.Traffic, list[gt.TruthSession]]:
    """Sessions of projects 1 and 2 with vitals and errors, and the spool segments that carry them."""
    rng = random.Random(seed)
    sessions: list[gt.TruthSession] = []
    base_ms = int(_GEN_START.timestamp() * 1000)
    for v in range(visitors):
        project_id = 2 if v % 7 == 6 else 1
        device = rng.choice(["desktop", "desktop", "mobile", "tablet"])
        country = rng.choice(["DE", "US", "FR", HOSTILE[:2].upper(), ""])
        for _ in range(rng.choice([1, 1, 2, 3])):
            ts = base_ms + rng.randrange(_GEN_DAYS * gt.DAY_MS)
            events: list[gt.TruthEvent] = []
            for _ in range(rng.randint(1, 4)):
                url = SITE + rng.choice(PAGES) + rng.choice(["", "?q=1", "#top"])
                events.append(gt.TruthEvent(ts, "pageview", url))
                ts += rng.randint(500, 30_000)
                for _ in range(rng.choice([0, 0, 0, 1, 2])):
                    message, source, line, col, stack = rng.choice(ERROR_MAKERS)(rng)
                    events.append(gt.TruthEvent(ts, "error", url, props={
                        "message": message, "source": source, "line": line, "col": col, "stack": stack}))
                    ts += rng.randint(1, 5_000)
                if rng.random() < 0.85:
                    events.append(gt.TruthEvent(ts, "custom", url, name="$web_vitals", props=_vitals_props(rng)))
                    ts += rng.randint(100, 2_000)
            # Another event named like vitals in its props only: not a measurement.
            if rng.random() < 0.1:
                events.append(gt.TruthEvent(ts, "custom", events[-1].url, name="web_vitals", props={"lcp": 1}))
            sessions.append(gt.TruthSession(project_id, f"vx{seed}-{len(sessions):04d}", f"vanon-{seed}-{v}", "", 0,
                                            country, "Chrome", "Linux", device, events))
    # A session over midnight (UTC): its later measurement counts on the day it started.
    late = int(dt.datetime(2026, 10, 1, 23, 59, tzinfo=dt.UTC).timestamp() * 1000)
    sessions.append(gt.TruthSession(1, "vx-midnight", "vanon-midnight", "", 0, "DE", "Chrome", "Linux", "desktop", [
        gt.TruthEvent(late, "pageview", f"{SITE}/pricing"),
        gt.TruthEvent(late + 120_000, "custom", f"{SITE}/pricing", name="$web_vitals",
                      props={"lcp": 99_999, "inp": 1, "cls": 0.9999, "fcp": 1, "ttfb": 1}),
        gt.TruthEvent(late + 121_000, "error", f"{SITE}/pricing",
                      props={"message": "Midnight", "source": "", "line": 0, "col": 0, "stack": ""}),
    ]))
    return gt.Traffic(sessions, [batches(sessions[i : i + 40]) for i in range(0, len(sessions), 40)]), sessions


def batches(sessions: list[gt.TruthSession]) -> list[StoredBatch]:
    """One batch per session, as the tracker's first batch would carry it."""
    out = []
    for s in sessions:
        out.append(StoredBatch(
            batch_id=uuid.uuid5(uuid.NAMESPACE_URL, s.session_id).hex, project_id=s.project_id,
            received_at=max(e.ts for e in s.events), session_id=s.session_id, anonymous_id=s.anonymous_id,
            user_id=s.user_id, country=s.country, browser=s.browser, os=s.os, device_type=s.device,
            events=[StoredEvent(event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{s.session_id}/{i}")), type=e.type,
                                ts=e.ts, client_ts=e.ts, url=e.url, referrer="", name=e.name,
                                props=json.dumps(e.props) if e.props else "")
                    for i, e in enumerate(s.events)],
        ))
    return out


# --- which sessions ----------------------------------------------------------------------------------------


def _day_ms(day: dt.date, zone: str) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp() * 1000)


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def matches(s: gt.TruthSession, filters: Mapping[str, str]) -> bool:
    if filters.get("country") and s.country != filters["country"]:
        return False
    if filters.get("device") and s.device != filters["device"]:
        return False
    return not filters.get("url") or any(filters["url"].lower() in p.lower() for p in s.paths)


def periods(sessions: list[gt.TruthSession], project_id: int, zone: str, filters: Mapping[str, str],
            first: dt.date = FIRST, last: dt.date = LAST) -> tuple[list[gt.TruthSession], list[gt.TruthSession]]:
    """(sessions started in the range, in the previous period of as many days), filtered."""
    span = dt.timedelta(days=(last - first).days + 1)
    low, high = _day_ms(first, zone), _day_ms(last + dt.timedelta(days=1), zone)
    prev_low = _day_ms(first - span, zone)
    mine = [s for s in sessions if s.project_id == project_id and s.pageviews and matches(s, filters)]
    return ([s for s in mine if low <= s.started_ms < high], [s for s in mine if prev_low <= s.started_ms < low])


def labels(zone: str, first: dt.date = FIRST, last: dt.date = LAST) -> list[str]:
    return list(dict.fromkeys(label_of(ms, zone, first, last)
                              for ms in range(_day_ms(first, zone), _day_ms(last + dt.timedelta(days=1), zone),
                                              gt.HOUR_MS // 2)))


def label_of(ms: int, zone: str, first: dt.date = FIRST, last: dt.date = LAST) -> str:
    days = (last - first).days + 1
    local = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(zone))
    if days <= 2:
        return local.strftime("%Y-%m-%d %H:00")
    day = local.date()
    return (day - dt.timedelta(days=day.weekday()) if days > 92 else day).isoformat()


# --- vitals ------------------------------------------------------------------------------------------------


def clean_page(path: str, strip_ids: bool, groups: list[tuple[str, str]]) -> str:
    if strip_ids:
        def is_id(seg: str) -> bool:
            if re.fullmatch(r"[0-9]+", seg) or re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", seg):
                return True
            return bool(re.fullmatch(r"[0-9a-fA-F]{8,}", seg)) and any(c.isdigit() for c in seg)
        path = "/".join(":id" if is_id(seg) else seg for seg in path.split("/"))
    for regex, target in groups:
        if re.search(regex, path):
            return target
    return path


def metric_value(props: Mapping[str, Any], metric: str) -> float | None:
    value = props.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def p75(values: list[float]) -> float | None:
    """statistics' "inclusive" quartile: linear interpolation between closest ranks."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=4, method="inclusive")[2]


def rating(metric: str, value: float | None) -> str | None:
    if value is None:
        return None
    good, poor = THRESHOLDS[metric]
    return "good" if value <= good else "poor" if value > poor else "needs-improvement"


def _metric_summary(metric: str, values: list[float]) -> dict[str, Any]:
    n = len(values)
    value = p75(values)
    shown = None if value is None else round(value, 6 if metric == "cls" else 2)
    ratings = Counter(rating(metric, v) for v in values)
    return {"p75": shown, "rating": rating(metric, shown), "samples": n,
            "good": round(100 * ratings["good"] / n, 1) if n else 0.0,
            "needs_improvement": round(100 * ratings["needs-improvement"] / n, 1) if n else 0.0,
            "poor": round(100 * ratings["poor"] / n, 1) if n else 0.0}


def _summary(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"pageviews": len(measurements),
            **{m: _metric_summary(m, [x[m] for x in measurements if x[m] is not None]) for m in METRICS}}


def measurements(picked: list[gt.TruthSession], zone: str, strip_ids: bool = True,
                 groups: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    out = []
    for s in picked:
        for e in s.events:
            if e.type == "custom" and e.name == "$web_vitals":
                out.append({"page": clean_page(_path(e.url), strip_ids, groups or []),
                            "bucket": label_of(s.started_ms, zone),
                            **{m: metric_value(e.props, m) for m in METRICS}})
    return out


def vitals_answer(sessions: list[gt.TruthSession], project_id: int = 1, zone: str = "UTC",
                  filters: Mapping[str, str] | None = None, strip_ids: bool = True,
                  groups: list[tuple[str, str]] | None = None, page: str = "", sort: str = "pageviews",
                  descending: bool = True, pages: int = 25) -> dict[str, Any]:
    """What the vitals answer's totals, previous totals, series and pages must be."""
    now_s, prev_s = periods(sessions, project_id, zone, filters or {})
    now = [m for m in measurements(now_s, zone, strip_ids, groups) if not page or m["page"] == page]
    before = [m for m in measurements(prev_s, zone, strip_ids, groups) if not page or m["page"] == page]
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_page: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in now:
        by_bucket[m["bucket"]].append(m)
        by_page[m["page"]].append(m)
    rows = [{"page": p, **_summary(ms)} for p, ms in by_page.items()]
    sign = -1 if descending else 1
    if sort in METRICS:
        rows.sort(key=lambda r: r["page"])
        rows.sort(key=lambda r: -r["pageviews"])
        rows.sort(key=lambda r: (r[sort]["samples"] == 0, sign * (r[sort]["p75"] or 0)))
    elif sort == "pageviews":
        rows.sort(key=lambda r: (sign * r["pageviews"], r["page"]))
    else:
        rows.sort(key=lambda r: r["page"], reverse=descending)
    return {
        "totals": _summary(now),
        "previous_totals": _summary(before),
        "series": [{"bucket": b, "pageviews": len(by_bucket[b]),
                    **{m: _summary(by_bucket[b])[m]["p75"] for m in METRICS}} for b in labels(zone)],
        "pages": rows[:pages],
        "has_more_pages": len(rows) > pages,
    }


# --- errors ------------------------------------------------------------------------------------------------

_FLAGS = re.DOTALL  # ClickHouse's regular expressions let "." match a newline


def _sub(pattern: str, replacement: str, text: str, once: bool = False) -> str:
    return re.sub(pattern, replacement, text, count=1 if once else 0, flags=_FLAGS)


def _without_url_tails(text: str, stop: str) -> str:
    return _sub(rf"([a-zA-Z][a-zA-Z0-9+.-]*://[^{stop}?#]*)[?#][^{stop}]*", r"\1", text)


def group_message(raw: str) -> str:
    text = _without_url_tails(raw, r" \t\r\n")
    text = _sub(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", "<id>", text)
    text = _sub(r"[0-9]{4,}", "<n>", text)
    text = " ".join(t for t in re.split(r"[ \t\r\n]+", text) if t)
    text = text.removeprefix("Uncaught ")
    return text[:300] or "(no message)"


def _tidy_frame(text: str) -> str:
    text = _without_url_tails(text, r" ()")
    text = _sub(r"([./-])[0-9a-fA-F]{8,}(\.m?js)", r"\1*\2", text)
    return _sub(r"[0-9]{4,}", "<n>", text)


def group_frame(stack: str, source: str) -> str:
    lines = [line.strip(" \t\r") for line in stack.split("\n")]
    chrome = next((line for line in lines if re.match(r"at [^ ]", line)), "")
    other = next((line for line in lines if re.fullmatch(r"[^@]*@.*:[0-9]+(:[0-9]+)?", line, _FLAGS)), "")
    if chrome:
        frame = chrome[3:]
    elif other:
        fn, _, url = other.partition("@")
        frame = f"{fn} ({url})" if fn else url
    else:
        frame = ""
    frame = _sub(r":[0-9]+(:[0-9]+)?(\)?)$", r"\2", frame, once=True)
    frame = _tidy_frame(frame)
    return (frame or _tidy_frame(source))[:300]


def group_id(message: str, frame: str) -> str:
    return hashlib.md5(f"{message}\n{frame}".encode()).hexdigest()[:16]


def _error_rows(picked: list[gt.TruthSession], zone: str) -> list[dict[str, Any]]:
    out = []
    for s in picked:
        for e in s.events:
            if e.type != "error":
                continue
            p = e.props

            def text(key: str, p: dict[str, Any] = p) -> str:
                return p[key] if isinstance(p.get(key), str) else ""

            message, frame = group_message(text("message")), group_frame(text("stack"), text("source"))
            out.append({"session": s, "ts": e.ts, "path": _path(e.url), "message": message, "frame": frame,
                        "group": group_id(message, frame), "bucket": label_of(s.started_ms, zone), "props": p})
    return out


def errors_answer(sessions: list[gt.TruthSession], project_id: int = 1, zone: str = "UTC",
                  filters: Mapping[str, str] | None = None, search: str = "") -> dict[str, Any]:
    """The groups (all of them, sorted by count) and totals the errors answer must hold."""
    now_s, prev_s = periods(sessions, project_id, zone, filters or {})
    now = [r for r in _error_rows(now_s, zone) if search.lower() in r["message"].lower()]
    before = [r for r in _error_rows(prev_s, zone) if search.lower() in r["message"].lower()]
    prev_counts = Counter(r["group"] for r in before)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in now:
        grouped[r["group"]].append(r)
    bucket_list = labels(zone)
    groups = []
    for gid, rows in grouped.items():
        latest = max(rows, key=lambda r: (r["ts"], r["session"].session_id))
        per_bucket = Counter(r["bucket"] for r in rows)
        groups.append({
            "group": gid, "message": rows[0]["message"], "frame": rows[0]["frame"], "count": len(rows),
            "sessions": len({r["session"].session_id for r in rows}),
            "visitors": len({r["session"].anonymous_id for r in rows}),
            "first_seen_ms": min(r["ts"] for r in rows), "last_seen_ms": max(r["ts"] for r in rows),
            "previous_count": prev_counts[gid], "new": prev_counts[gid] == 0,
            "series": [per_bucket[b] for b in bucket_list],
            "latest": {"message": latest["props"]["message"], "stack": latest["props"]["stack"],
                       "source": latest["props"]["source"], "line": latest["props"]["line"],
                       "col": latest["props"]["col"], "path": latest["path"]},
            "url": f"/api/v1/projects/{project_id}/errors/{gid}",
        })
    groups.sort(key=lambda g: (-g["count"], g["group"]))
    per_bucket_all = Counter(r["bucket"] for r in now)
    return {
        "totals": {"errors": len(now), "sessions": len({r["session"].session_id for r in now}),
                   "visitors": len({r["session"].anonymous_id for r in now}), "groups": len(grouped),
                   "sessions_in_range": len(now_s)},
        "previous_totals": {"errors": len(before), "sessions": len({r["session"].session_id for r in before}),
                            "groups": len(prev_counts)},
        "series": [{"bucket": b, "errors": per_bucket_all[b]} for b in bucket_list],
        "groups": groups,
    }


def group_sessions(sessions: list[gt.TruthSession], gid: str, project_id: int = 1, zone: str = "UTC",
                   filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The sessions of one group, latest error first, with the replay offset of their first error."""
    now_s, _ = periods(sessions, project_id, zone, filters or {})
    per_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _error_rows(now_s, zone):
        if r["group"] == gid:
            per_session[r["session"].session_id].append(r)
    out = []
    for sid, rows in per_session.items():
        s = rows[0]["session"]
        first = min(rows, key=lambda r: r["ts"])
        offset_ms = first["ts"] - s.started_ms
        out.append({"session_id": sid, "visitor": s.anonymous_id, "started_ms": s.started_ms,
                    "error_ms": first["ts"], "last_error_ms": max(r["ts"] for r in rows), "offset_ms": offset_ms,
                    "errors": len(rows), "page": first["path"], "browser": s.browser, "os": s.os,
                    "country": s.country, "device": s.device})
    out.sort(key=lambda r: (-r["last_error_ms"], r["session_id"]))
    return out
