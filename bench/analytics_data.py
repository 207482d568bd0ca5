"""Synthetic analytics traffic made inside chDB (INSERT … SELECT FROM numbers()), for the analytics benchmark.

Shapes: 20 % of sessions bounce (one pageview, at most two clicks), the rest have 2–50 events; visitors come
back over weeks (a pool of visitors smaller than the sessions, each first seen on some day and returning later);
URLs have a head of a dozen pages and a long, log-uniform tail of blog posts and product ids; entry pageviews
carry referrers and UTM tags; several countries, browsers and devices; clicks, submits and custom events with
properties. A third of the sessions span two spool segments.

The events go straight into ``events``; ``session_segments`` and ``sessions`` are then filled by the very
statements the loader and the schema migrations run (``segment_summary_select``, ``fill_sessions``), so every
load-time pre-aggregate is what a real load would have made.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from hitmetrix.store.ch_migrations import (
    SEGMENT_SUMMARY_COLUMNS,
    fill_sessions,
    number_visitors,
    segment_summary_select,
)
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.schema import DATABASE
from hitmetrix.store.tenancy import SYSTEM_QUERY

PROJECT_ID = 1
SPAN_DAYS = 56  # eight weeks: enough for a weekly retention grid
# Mean events per session, from the shapes below (20 % of 1–3, 80 % of 2–50): sizes the session count.
MEAN_EVENTS_PER_SESSION = 0.2 * 2 + 0.8 * 26
VISITORS_PER_SESSION = 0.4
EVENTS_PER_STATEMENT = 2_000_000
SESSIONS_PER_SEGMENT = 2_000

HEAD_PAGES = ["/", "/", "/", "/pricing", "/pricing", "/products", "/products", "/signup", "/checkout", "/cart",
              "/docs", "/about", "/account", "/blog", "/search"]
REFERRERS = ["", "", "", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
             "https://news.ycombinator.com/item?id=1", "https://twitter.com/someone", "https://www.reddit.com/r/web",
             "https://shop.example/pricing"]
UTM = ["", "", "", "", "?utm_source=newsletter&utm_medium=email&utm_campaign=winter",
       "?utm_source=google&utm_medium=cpc&utm_campaign=brand"]
COUNTRIES = ["DE", "DE", "FR", "US", "US", "US", "GB", "NL", "PL", "BR", "IN", "JP", "ES", "CA", "AU"]
CLIENTS = [("Chrome", "Windows", "desktop"), ("Chrome", "macOS", "desktop"), ("Safari", "macOS", "desktop"),
           ("Firefox", "Linux", "desktop"), ("Edge", "Windows", "desktop"), ("Chrome Mobile", "Android", "mobile"),
           ("Mobile Safari", "iOS", "mobile"), ("Mobile Safari", "iOS", "tablet")]
CLICKS = [("button.buy", "Buy now"), ("a.nav-pricing", "Pricing"), ("button#signup", "Sign up"),
          ("div.card > a", "Read more"), ("nav > a.logo", "Home")]
CUSTOM = ["signup", "add_to_cart", "purchase", "newsletter", "video_play"]
PLANS = ["free", "pro", "team"]


def _array(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def segment_of(session: int) -> int:
    """The spool segment of session number ``session``'s first events (a third of the sessions go on in the next
    one): sessions come in groups of ``SESSIONS_PER_SEGMENT``, each group two segments (as in ``events_insert``)."""
    return 1 + session // SESSIONS_PER_SEGMENT * 2


def sessions_for(n_events: int) -> int:
    return max(1, round(n_events / MEAN_EVENTS_PER_SESSION))


def events_insert(first_session: int, n_sessions: int, total_sessions: int, span_start: dt.datetime) -> str:
    """INSERT of the events of sessions ``first_session`` … ``+ n_sessions`` (of ``total_sessions``)."""
    visitors = max(1, int(total_sessions * VISITORS_PER_SESSION))
    start_s = int(span_start.timestamp())
    clients = len(CLIENTS)
    utm, selectors, texts = _array(UTM), _array([c[0] for c in CLICKS]), _array([c[1] for c in CLICKS])
    plans, pages = _array(PLANS), _array(HEAD_PAGES)
    # A log-uniform blog post number: a few posts are read a lot, most rarely.
    tail = "toString(toUInt32(pow(20000, (intDiv(h, 100) % 100000) / 100000.0)))"
    return f"""INSERT INTO {DATABASE}.events (project_id, ts, session_id, event_id, type, name, client_ts, received_at,
    anonymous_id, user_id, url, path, referrer, title, selector, tag, text, x, y, viewport_w, viewport_h, props,
    country, browser, os, device_type, batch_id, segment_id)
SELECT {PROJECT_ID}, ts, sid, generateUUIDv4(), type, if(type = 'custom', {_array(CUSTOM)}[1 + h % {len(CUSTOM)}], ''),
       ts, ts, concat('v', toString(visitor)),
       if(visitor % 5 = 0 AND cityHash64(s, 7) % 2 = 0, concat('user', toString(visitor)), ''),
       if(type = 'pageview',
          concat('https://shop.example', path, if(k = 0, {utm}[1 + cityHash64(s, 8) % {len(UTM)}], '')), ''),
       if(type = 'pageview', path, ''),
       if(k = 0, {_array(REFERRERS)}[1 + cityHash64(s, 9) % {len(REFERRERS)}], ''),
       '', if(type IN ('click', 'submit'), {selectors}[1 + h % {len(CLICKS)}], ''),
       if(type = 'click', 'button', ''), if(type = 'click', {texts}[1 + h % {len(CLICKS)}], ''),
       toInt32(h % 1280), toInt32(h % 3000), 1280, 800,
       if(type = 'custom', concat('{{"plan":"', {plans}[1 + h % {len(PLANS)}], '","value":', toString(h % 100), '}}'),
          ''),
       {_array(COUNTRIES)}[1 + cityHash64(s, 10) % {len(COUNTRIES)}],
       {_array([c[0] for c in CLIENTS])}[1 + client], {_array([c[1] for c in CLIENTS])}[1 + client],
       {_array([c[2] for c in CLIENTS])}[1 + client], '',
       1 + intDiv(s, {SESSIONS_PER_SEGMENT}) * 2 + (s % 3 = 0 AND k * 2 >= n)
FROM (
    SELECT s, k, n, visitor, client, cityHash64(s, k, 11) AS h,
           concat('s', toString(s)) AS sid,
           -- The visitor's first day, and this session some days later (returning visitors, over weeks).
           (cityHash64(visitor, 1) % {SPAN_DAYS} + toUInt64(-log(0.0001 + (cityHash64(s, 2) % 10000) / 10000.0) * 6))
               % {SPAN_DAYS} AS day,
           fromUnixTimestamp64Milli(toInt64(({start_s} + day * 86400 + cityHash64(s, 3) % 86400) * 1000
               + k * (2000 + cityHash64(s, 4) % 60000) + h % 1000), 'UTC') AS ts,
           multiIf(k = 0, 'pageview', bounce, 'click', k = 1, 'pageview',
                   h % 100 < 40, 'pageview', h % 100 < 80, 'click', h % 100 < 85, 'submit', h % 100 < 95, 'custom',
                   'error') AS type,
           multiIf(k = 0 AND cityHash64(s, 5) % 10 < 4, '/',
                   h % 100 < 70, {pages}[1 + intDiv(h, 100) % {len(HEAD_PAGES)}],
                   h % 100 < 85, concat('/blog/post-', {tail}),
                   concat('/products/', toString(intDiv(h, 100) % 500))) AS path
    FROM (
        SELECT number AS s, cityHash64(number, 0) % 5 = 0 AS bounce,
               if(bounce, 1 + cityHash64(number, 12) % 3, 2 + cityHash64(number, 12) % 49) AS n,
               cityHash64(number, 13) % {visitors} AS visitor, cityHash64(number, 14) % {clients} AS client
        FROM numbers({first_session}, {n_sessions})
    )
    ARRAY JOIN range(n) AS k
)"""


def build(store: ChdbStore, n_events: int, span_start: dt.datetime, log: Callable[[str], None] = print
          ) -> dict[str, Any]:
    """Fill an empty store with about ``n_events`` events of project 1, and their load-time aggregates."""

    def run(sql: str) -> list[dict[str, Any]]:
        if sql.lstrip().upper().startswith("SELECT"):
            return store.query(SYSTEM_QUERY(sql))
        store.execute(SYSTEM_QUERY(sql))
        return []

    total_sessions = sessions_for(n_events)
    per_statement = max(1, int(EVENTS_PER_STATEMENT / MEAN_EVENTS_PER_SESSION))
    t0 = time.monotonic()
    for first in range(0, total_sessions, per_statement):
        run(events_insert(first, min(per_statement, total_sessions - first), total_sessions, span_start))
        log(f"  events: sessions {min(first + per_statement, total_sessions)}/{total_sessions}")
    events_s = time.monotonic() - t0
    events = int(run(f"SELECT count() AS n FROM {DATABASE}.events")[0]["n"])
    t1 = time.monotonic()
    # Per (session, segment) summaries, as the loader writes them per segment; a range of segments at a time. A
    # slice picks its rows by segment id (a number: ClickHouse reads that column first and the rest of the slice's
    # rows only), not by a hash of the session id, which would read every session id once per slice.
    slices = max(1, -(-events // EVENTS_PER_STATEMENT))
    last_segment = segment_of(total_sessions - 1) + 1
    bounds = [1 + last_segment * part // slices for part in range(slices)] + [last_segment + 1]
    for low, high in zip(bounds, bounds[1:], strict=False):
        run(f"INSERT INTO {DATABASE}.session_segments ({SEGMENT_SUMMARY_COLUMNS})\n"
            + segment_summary_select(f"segment_id >= {low} AND segment_id < {high}"))
    summaries_s = time.monotonic() - t1
    t2 = time.monotonic()
    fill_sessions(run)
    number_visitors(run)  # as the loader numbers the visitors of the sessions it writes
    run(f"OPTIMIZE TABLE {DATABASE}.sessions FINAL")
    unnumbered = int(run(f"SELECT count() AS n FROM {DATABASE}.sessions FINAL WHERE visitor_num = 0")[0]["n"])
    assert unnumbered == 0, f"{unnumbered} sessions without a visitor number"
    sessions_s = time.monotonic() - t2
    sessions = int(run(f"SELECT count() AS n FROM {DATABASE}.sessions")[0]["n"])
    return {"events": events, "sessions": sessions, "events_insert_s": round(events_s, 1),
            "session_segments_s": round(summaries_s, 1), "sessions_fill_s": round(sessions_s, 1)}
