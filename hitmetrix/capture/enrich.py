"""The capture pipeline: a named, ordered list of small steps turning a validated
IncomingBatch into the StoredBatch appended to the spool.

Each step takes the ``Enrichment`` and returns it; a step drops the batch by
calling ``drop()`` with a reason from ``DROP_REASONS`` (answered 200, nothing
stored), and refuses it by raising ``CaptureError`` (answered 4xx, naming the
field: the client must not send it again as it is). Every step is timed under
its name in ``STEP_TIMINGS``; drops are counted in ``DROPS``.

Timestamps: ``ts = client_ts + skew`` with ``skew = received_at - sent_at``
(``sent_at``: the client clock when this attempt was sent; ``received_at``: our
clock when the request arrived, before its body was read, so that a slow upload
is not taken for client clock error). A positive skew of at most
``SKEW_TOLERANCE_MS`` is transit time, not clock error, and is ignored; a
negative one always means the client clock is ahead and is always applied.
Nothing happens after we receive it: if the latest event would still lie after
``received_at`` (no ``sent_at``, or events stamped after it), the whole batch is
shifted back so that it ends at ``received_at`` — one shift for all events, so
their order and the gaps between them are kept. Then every time must be one the
store keeps (``storable_ts_range_ms``): ``sent_at``, each corrected event time and
each chunk's ``first_ts``/``last_ts``; anything else is refused, never acknowledged
and dropped later.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, Literal

from hitmetrix.capture.context import CaptureProject
from hitmetrix.capture.geo import lookup_geo
from hitmetrix.capture.network import IPAddress, IPNetwork, anonymise_ip, client_address
from hitmetrix.capture.schema import CaptureError, IncomingBatch, props_text
from hitmetrix.capture.scrub import allowed_query_keys, scrub_props, scrub_text, scrub_url
from hitmetrix.capture.useragent import MAX_USER_AGENT_CHARS, parse_user_agent
from hitmetrix.detect.crawler import CrawlerVerifier, claimed_crawler
from hitmetrix.detect.keys import ip_key, ip_net
from hitmetrix.model import StoredBatch, StoredChunk, StoredEvent
from hitmetrix.store.schema import EVENT_RETENTION_DAYS, storable_ts_range_ms

SKEW_TOLERANCE_MS = 1000
DropReason = Literal["empty"]
DROP_REASONS: tuple[DropReason, ...] = ("empty",)


@dataclass(frozen=True)
class RequestFacts:
    peer: str  # socket peer address, "" when unknown
    forwarded_for: str  # X-Forwarded-For as received, "" when absent
    user_agent: str
    # Our clock when the request arrived, before its body was read; None: the clock at received_time.
    received_at_ms: int | None = None


@dataclass(frozen=True)
class EnrichEnv:
    clock: Callable[[], float]  # wall clock, seconds since the epoch
    trusted_proxies: tuple[IPNetwork, ...] = ()
    geoip: bool = True
    # Detection keys (ip_key, user_key): the per-install secret; b"" leaves ip_key empty.
    install_secret: bytes = b""
    # Crawler claims are checked against its cache; None: claims are labelled ":unverified".
    crawlers: CrawlerVerifier | None = None


def _empty_batch() -> StoredBatch:
    return StoredBatch(batch_id="", project_id=0, received_at=0, session_id="", anonymous_id="")


@dataclass
class Enrichment:
    facts: RequestFacts
    project: CaptureProject
    incoming: IncomingBatch
    env: EnrichEnv
    stored: StoredBatch = field(default_factory=_empty_batch)
    received_at_ms: int = 0
    # The real client address (never stored unless the project keeps addresses).
    client_ip: IPAddress | None = None
    client_ip_resolved: bool = False
    # How far received_time moved the batch back so that it does not end after received_at.
    shifted_back_ms: int = 0
    drop_reason: DropReason | None = None

    def drop(self, reason: DropReason) -> Enrichment:
        self.drop_reason = reason
        return self


def drop_empty(ctx: Enrichment) -> Enrichment:
    if not ctx.incoming.events and not ctx.incoming.recording:
        return ctx.drop("empty")
    return ctx


def build(ctx: Enrichment) -> Enrichment:
    incoming = ctx.incoming
    ctx.stored = StoredBatch(
        batch_id="",
        project_id=ctx.project.id,
        received_at=0,
        session_id=incoming.session_id,
        anonymous_id=incoming.anonymous_id,
        user_id=incoming.user_id,
        events=[
            StoredEvent(
                event_id="",
                type=e.type,
                ts=e.ts,
                client_ts=e.ts,
                url=e.url,
                title=e.title,
                referrer=e.referrer,
                name=e.name,
                selector=e.selector,
                tag=e.tag,
                text=e.text,
                x=e.x,
                y=e.y,
                vw=e.vw,
                vh=e.vh,
                props=props_text(e.props),
            )
            for e in incoming.events
        ],
        recording=[
            StoredChunk(seq=c.seq, first_ts=c.first_ts, last_ts=c.last_ts, count=c.count, data=c.data)
            for c in incoming.recording
        ],
    )
    return ctx


def received_time(ctx: Enrichment) -> Enrichment:
    received_at = ctx.facts.received_at_ms
    if received_at is None:
        received_at = int(ctx.env.clock() * 1000)
    ctx.received_at_ms = ctx.stored.received_at = received_at
    events = ctx.stored.events
    if not events:
        return ctx
    sent_at = ctx.incoming.sent_at
    skew = received_at - sent_at if sent_at is not None else 0
    if 0 <= skew <= SKEW_TOLERANCE_MS:
        skew = 0
    latest = max(event.client_ts for event in events) + skew
    if latest > received_at:
        ctx.shifted_back_ms = latest - received_at
        skew -= ctx.shifted_back_ms
    for event in events:
        event.ts = event.client_ts + skew
    return ctx


def storable_times(ctx: Enrichment) -> Enrichment:
    """Refuse (400, naming the field) a time the store cannot keep: the loader would drop it after our 200."""
    low, high = storable_ts_range_ms(ctx.received_at_ms, EVENT_RETENTION_DAYS)
    sent_at = ctx.incoming.sent_at
    if sent_at is not None and not low <= sent_at <= high:
        raise CaptureError(400, f"sent_at {sent_at} is not a plausible time: {_outside(low, high)}", "$.sent_at")
    for index, chunk in enumerate(ctx.incoming.recording):
        for name, value in (("first_ts", chunk.first_ts), ("last_ts", chunk.last_ts)):
            if not low <= value <= high:
                message = f"{name} {value} is {_outside(low, high)}"
                raise CaptureError(400, message, f"$.recording[{index}].{name}")
        if chunk.first_ts > chunk.last_ts:
            raise CaptureError(400, "last_ts is before first_ts", f"$.recording[{index}].last_ts")
    events = ctx.stored.events
    if not events or low <= min(event.ts for event in events) and max(event.ts for event in events) <= high:
        return ctx
    for index, event in enumerate(events):
        if not low <= event.ts <= high:
            if low <= event.ts + ctx.shifted_back_ms <= high:
                # Only the shift put it out of range: the event that lies furthest ahead is to blame.
                index = max(range(len(events)), key=lambda i: events[i].client_ts)
                event = events[index]
                message = (
                    f"ts {event.client_ts} lies {ctx.shifted_back_ms} ms after the request arrived; moving the "
                    f"batch back by that much puts its other events {_outside(low, high)}"
                )
            else:
                message = f"ts {event.client_ts}, {event.ts} once corrected for clock skew, is {_outside(low, high)}"
            raise CaptureError(400, message, f"$.events[{index}].ts")
    return ctx


def _outside(low_ms: int, high_ms: int) -> str:
    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    dates = f"{iso(low_ms)} to {iso(high_ms)}"
    return f"outside the times the store keeps: {low_ms} to {high_ms} ms since the epoch ({dates})"


def scrub(ctx: Enrichment) -> Enrichment:
    """Mask personal data in event fields (hitmetrix.capture.scrub) before anything is spooled.

    Not touched: ``user_id`` and ``identify`` traits (identifying the user is their purpose),
    ``tag``, and recording chunks (the tracker masks inputs in the browser).
    """
    allowed = allowed_query_keys(getattr(ctx.project, "query_allowlist", ()))
    urls = _SCRUBBED.urls_for(allowed)
    texts, props = _SCRUBBED.texts, _SCRUBBED.props

    def url(value: str) -> str:
        return scrub_url(value, allowed)

    for event in ctx.stored.events:
        if event.url:
            event.url = _once(urls, event.url, url)
        if event.referrer:
            event.referrer = _once(urls, event.referrer, url)
        # Shorter than the shortest match (a@b.co): nothing to look for.
        if len(event.title) >= 6:
            event.title = _once(texts, event.title, scrub_text)
        if len(event.text) >= 6:
            event.text = _once(texts, event.text, scrub_text)
        if len(event.name) >= 6:
            event.name = _once(texts, event.name, scrub_text)
        if len(event.selector) >= 6:
            event.selector = _once(texts, event.selector, scrub_text)
        if event.props and event.type != "identify":
            event.props = _once(props, event.props, scrub_props)
    return ctx


class _ScrubbedStrings:
    """What recent strings scrubbed to, by kind (URLs per query allow-list).

    A site's pages, titles, selectors and props repeat across batches and visitors:
    scrubbing each distinct string once keeps this step cheap. Each map is emptied
    when it passes ``MAX_ENTRIES``, so memory stays bounded whatever is sent.
    """

    MAX_ENTRIES = 8192
    MAX_ALLOW_LISTS = 256

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.props: dict[str, str] = {}
        self._urls: dict[frozenset[str], dict[str, str]] = {}

    def urls_for(self, allowed: frozenset[str]) -> dict[str, str]:
        urls = self._urls.get(allowed)
        if urls is None:
            if len(self._urls) >= self.MAX_ALLOW_LISTS:
                self._urls.clear()
            urls = self._urls[allowed] = {}
        return urls


_SCRUBBED = _ScrubbedStrings()


def _once(done: dict[str, str], value: str, scrubber: Callable[[str], str]) -> str:
    result = done.get(value)
    if result is None:
        if len(done) >= _ScrubbedStrings.MAX_ENTRIES:
            done.clear()
        result = done[value] = scrubber(value)
    return result


def event_ids(ctx: Enrichment) -> Enrichment:
    """The client's batch and event ids where it sent them (a retry then dedupes), fresh UUIDv7s elsewhere."""
    stored = ctx.stored
    stored.batch_id = ctx.incoming.batch_id or uuid7_strings(stored.received_at, 1)[0]
    fresh = uuid7_strings(stored.received_at, len(stored.events))
    for event, incoming, event_id in zip(stored.events, ctx.incoming.events, fresh, strict=True):
        event.event_id = incoming.id or event_id
    return ctx


def client_ip(ctx: Enrichment) -> Enrichment:
    if not ctx.client_ip_resolved:
        facts = ctx.facts
        ctx.client_ip = client_address(facts.peer, facts.forwarded_for, ctx.env.trusted_proxies)
        ctx.client_ip_resolved = True
    return ctx


def geo(ctx: Enrichment) -> Enrichment:
    if ctx.env.geoip:
        stored = ctx.stored
        stored.country, stored.asn, stored.as_org = lookup_geo(ctx.client_ip)
    return ctx


def user_agent(ctx: Enrichment) -> Enrichment:
    stored = ctx.stored
    stored.user_agent = ctx.facts.user_agent[:MAX_USER_AGENT_CHARS]
    agent = parse_user_agent(stored.user_agent)
    stored.browser, stored.browser_version, stored.os, stored.os_version, stored.device_type = agent
    return ctx


def detection_keys(ctx: Enrichment) -> Enrichment:
    """ip_key / ip_net of the FULL address (before anonymise_ip) and the crawler the user agent claims.

    A claim not yet checked is labelled ":unverified" and checked in the background for the next
    batch: capture never waits on DNS here (the server route, whose senders do not wait on it, does).
    """
    stored, env = ctx.stored, ctx.env
    address = ctx.client_ip
    if address is not None:
        stored.ip_key, stored.ip_net = _address_keys(env.install_secret, address)
    crawler = _claimed_crawler(stored.user_agent)
    if crawler:
        known = env.crawlers.status(crawler, str(address)) if env.crawlers is not None and address else None
        stored.crawler = f"{crawler}:{known or 'unverified'}"
    return ctx


# Returning visitors and repeated user agents: hashing and matching each once keeps the step ~1 µs.
@lru_cache(maxsize=65536)
def _address_keys(secret: bytes, address: IPAddress) -> tuple[str, str]:
    return (ip_key(secret, address) if secret else ""), ip_net(address)


@lru_cache(maxsize=4096)
def _claimed_crawler(user_agent: str) -> str:
    return claimed_crawler(user_agent)


def anonymise(ctx: Enrichment) -> Enrichment:
    project = ctx.project
    ctx.stored.ip = anonymise_ip(ctx.client_ip, project.ip_anonymisation, project.ip_hash_key)
    return ctx


Step = Callable[[Enrichment], Enrichment]
STEPS: tuple[tuple[str, Step], ...] = (
    ("drop_empty", drop_empty),
    ("build", build),
    ("received_time", received_time),
    ("storable_times", storable_times),  # refusals first: the cheap checks before the work
    ("scrub", scrub),
    ("event_ids", event_ids),
    ("client_ip", client_ip),
    ("geo", geo),  # needs the real address: before anonymise_ip
    ("user_agent", user_agent),
    ("detection_keys", detection_keys),  # needs the real address: before anonymise_ip
    ("anonymise_ip", anonymise),
)


@dataclass
class StepStats:
    """Count, total and a coarse histogram of one step's durations."""

    BUCKET_BOUNDS_S: ClassVar[tuple[float, ...]] = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, float("inf"))
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(StepStats.BUCKET_BOUNDS_S))

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        for index, bound in enumerate(self.BUCKET_BOUNDS_S):
            if seconds <= bound:
                self.buckets[index] += 1
                break


STEP_TIMINGS: dict[str, StepStats] = {name: StepStats() for name, _ in STEPS}
DROPS: Counter[str] = Counter()


def run_pipeline(ctx: Enrichment, steps: Sequence[tuple[str, Step]] = STEPS) -> Enrichment:
    """Run the steps in order, stopping at the first drop."""
    perf = time.perf_counter
    for name, step in steps:
        started = perf()
        ctx = step(ctx)
        STEP_TIMINGS.setdefault(name, StepStats()).observe(perf() - started)
        if ctx.drop_reason is not None:
            DROPS[ctx.drop_reason] += 1
            break
    return ctx


def uuid7_strings(unix_ms: int, count: int) -> list[str]:
    """``count`` UUIDv7 strings for one millisecond, in order (RFC 9562 §6.2 method 1).

    The 12-bit rand_a field is a counter and rand_b is random per block of 4096,
    so a 1000-event batch costs one ``os.urandom`` instead of 1000 uuid4 calls.
    """
    ms = f"{unix_ms & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    out: list[str] = []
    for block_start in range(0, count, 4096):
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1) | (1 << 63)
        tail = f"{rand_b:016x}"
        tail = f"-{tail[:4]}-{tail[4:]}"
        out += [head + counter + tail for counter in _COUNTER_HEX[: count - block_start]]
    return out


_COUNTER_HEX = [f"{counter:03x}" for counter in range(4096)]
