"""``POST /api/v1/server/batch``: requests and sign-in outcomes from the site's server (SDK middleware,
``hitmetrix ingest-log``), into the same spool as browser batches (docs/capture-api.md, "Server batch").

The sender authenticates with the project's server key (``Authorization: Bearer hm_sk_…``), checked
before the body is read; 401 without it or with a wrong one. The body has the browser route's caps
(size as sent, gzip, size decompressed, nesting depth), then a strict schema: unknown fields are
refused, so a password can never ride along. Each event carries the END client's address, which
the sender resolved with its own proxy rule; we validate it and derive from it geo / AS, ``ip_key`` and
``ip_net`` (the full address, for detection) and the stored ``ip`` (the project's anonymisation).
Usernames become ``user_key`` + ``user_display``; query values are masked as in browser URLs.

Events are grouped into ``StoredBatch``es by (session id, address, user agent, user id) in order of
first appearance; child ``n`` (from 0) is ``f"{batch_id}.{n}"``, so a retry of the same batch makes the
same children and the loader's seen-batch ledger stores them once. (The user id is part of the key so
that a batch's ``user_id`` is right for each of its events: a sign-in changes it mid-batch.) A request
without a tracker session gets ``"s-" + keyed_hash(ip|user_agent|UTC day)[:22]``: one request-timeline
session per client per day. Times are corrected for the sender's clock like browser events
(``sent_at``) and must lie in the range the store keeps. A claimed crawler is verified by reverse
DNS, waiting at most ``crawler_dns_timeout_s`` (the sender sends in the background, so it can wait);
no rate limit applies, since one sender speaks for all of a site's visitors.
We answer 200 only once every child batch is appended, i.e. durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hitmetrix.capture.body import check_content_type, check_declared_length, decode_content, read_capped
from hitmetrix.capture.context import CaptureContext, CaptureProject
from hitmetrix.capture.enrich import SKEW_TOLERANCE_MS
from hitmetrix.capture.geo import lookup_geo
from hitmetrix.capture.network import IPAddress, anonymise_ip, parse_ip
from hitmetrix.capture.schema import CaptureError, ServerBatch, ServerEvent, check_body_depth, decode_server_batch
from hitmetrix.capture.scrub import allowed_query_keys, scrub_text, scrub_url
from hitmetrix.capture.useragent import MAX_USER_AGENT_CHARS, parse_user_agent
from hitmetrix.detect.crawler import CrawlerVerifier, claimed_crawler, shared_verifier
from hitmetrix.detect.detectors.probing import injection_kinds
from hitmetrix.detect.keys import ip_key, ip_net, user_display, user_key
from hitmetrix.model import StoredBatch, StoredEvent, encode_batch
from hitmetrix.store.schema import EVENT_RETENTION_DAYS, storable_ts_range_ms

SERVER_BATCH_PATH = "/api/v1/server/batch"
SERVER_KEY_PREFIX = "hm_sk_"
SPOOL_RETRY_AFTER_S = 1
DAY_MS = 86_400_000

log = logging.getLogger(__name__)
P = TypeVar("P")


class KeyCache(Generic[P]):
    """Secret key → project, cached for ``ttl_s`` (unknown keys too: a flood of bad keys costs no queries).

    A rotated key keeps working for at most ``ttl_s`` in this process.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, lookup: Callable[[str], P | None], ttl_s: float = 5.0) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, P | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> P | None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl_s:
            return entry[1]
        project = self._lookup(key)
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now, project)
        return project


def server_capture_routes(ctx: CaptureContext) -> list[Route]:
    return [Route(SERVER_BATCH_PATH, ServerCaptureEndpoint(ctx), name="server_batch")]


@dataclass(frozen=True)
class ServerEnv:
    install_secret: bytes
    geoip: bool = True


class ServerCaptureEndpoint:
    def __init__(self, ctx: CaptureContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.max_body_bytes: int = settings.max_body_bytes
        self.max_decompressed_bytes: int = settings.max_decompressed_bytes
        self.max_events: int = settings.max_events_per_batch
        self.max_json_depth: int = settings.max_json_depth
        self.env = ServerEnv(install_secret=ctx.install_secret, geoip=settings.geoip)
        self.crawlers: CrawlerVerifier = shared_verifier(settings)
        self.answers: dict[int, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        try:
            if request.method != "POST":
                return self._answer(405, {"error": "method not allowed: use POST"}, {"Allow": "POST"})
            return await self._capture(request)
        except CaptureError as exc:
            body: dict[str, object] = {"error": exc.message}
            if exc.field is not None:
                body["field"] = exc.field
            extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return self._answer(exc.status, body, extra)
        except ClientDisconnect:
            return self._answer(400, {"error": "client disconnected"})
        except self.ctx.unavailable_errors as exc:
            log.warning("server capture: storage unavailable: %r", exc)
            body = {"error": "temporarily unable to store data, retry later"}
            return self._answer(503, body, {"Retry-After": str(SPOOL_RETRY_AFTER_S)})
        except Exception:
            log.exception("server capture: unexpected error (a bug)")
            return self._answer(500, {"error": "internal error"})

    async def _capture(self, request: Request) -> Response:
        received_at_ms = int(self.ctx.clock() * 1000)
        headers = request.headers
        project = self._project(headers.get("authorization", ""))
        check_content_type(headers.get("content-type", ""))
        check_declared_length(headers.get("content-length", ""), self.max_body_bytes)
        async with aclosing(request.stream()) as chunks:
            body = await read_capped(chunks, self.max_body_bytes)
        raw = decode_content(body, headers.get("content-encoding", ""), self.max_decompressed_bytes)
        check_body_depth(raw, self.max_json_depth)
        incoming = decode_server_batch(raw, max_events=self.max_events)
        crawlers = await self._verify_crawlers(incoming)
        stored = server_batches(incoming, project, received_at_ms, self.env, crawlers)
        for batch in stored:
            await self.ctx.spool_append(encode_batch(batch))
        if self.ctx.on_accepted is not None:
            for batch in stored:
                self.ctx.on_accepted(batch)
        return self._answer(200, {"ok": True, "events": len(incoming.events), "batches": len(stored)})

    def _project(self, authorization: str) -> CaptureProject:
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise CaptureError(401, "server key required: send Authorization: Bearer hm_sk_…")
        resolve = self.ctx.resolve_server_key
        project = resolve(key) if resolve is not None and key.startswith(SERVER_KEY_PREFIX) else None
        if project is None:
            raise CaptureError(401, "unknown server key")
        return project

    async def _verify_crawlers(self, incoming: ServerBatch) -> dict[tuple[str, str], str]:
        """(user agent, address) → "googlebot:verified" etc., for the distinct claims in the batch."""
        claims: dict[tuple[str, str], str] = {}
        for event in incoming.events:
            if (event.user_agent, event.ip) not in claims:
                claims[(event.user_agent, event.ip)] = claimed_crawler(event.user_agent)
        pending = [(pair, name) for pair, name in claims.items() if name]
        if not pending:
            return {}
        results = await asyncio.gather(*(self._verify(name, pair[1]) for pair, name in pending))
        return {pair: f"{name}:{status}" for (pair, name), status in zip(pending, results, strict=True)}

    async def _verify(self, crawler: str, ip: str) -> str:
        address = parse_ip(ip)
        if address is None:
            return "unverified"
        return await self.crawlers.verify(crawler, str(address))

    def _answer(self, status: int, body: object, extra: dict[str, str] | None = None) -> Response:
        self.answers[status] = self.answers.get(status, 0) + 1
        return Response(msgspec.json.encode(body), status_code=status, headers=extra, media_type="application/json")


_props_encoder = msgspec.json.Encoder()


def server_batches(
    incoming: ServerBatch,
    project: CaptureProject,
    received_at_ms: int,
    env: ServerEnv,
    crawlers: dict[tuple[str, str], str] | None = None,
) -> list[StoredBatch]:
    """The ``StoredBatch``es of a validated server batch (module docstring), or ``CaptureError``."""
    events = incoming.events
    if not events:
        return []
    corrected = _corrected_times(incoming, received_at_ms)
    allowed = allowed_query_keys(getattr(project, "query_allowlist", ()))
    groups: dict[tuple[str, str, str, str], StoredBatch] = {}
    addresses: dict[str, IPAddress | None] = {}
    for index, (event, ts) in enumerate(zip(events, corrected, strict=True)):
        address = addresses.get(event.ip)
        if address is None and event.ip not in addresses:
            address = addresses[event.ip] = _address(event.ip, index)
        text_ip = str(address) if address is not None else ""
        session_id = event.session_id or timeline_session_id(env.install_secret, text_ip, event.user_agent, ts)
        key = (session_id, text_ip, event.user_agent, event.user_id)
        batch = groups.get(key)
        if batch is None:
            batch = groups[key] = _new_batch(incoming, project, received_at_ms, env, len(groups), key, address)
            batch.crawler = (crawlers or {}).get((event.user_agent, event.ip), "")
            if not batch.crawler and claimed_crawler(event.user_agent):
                batch.crawler = claimed_crawler(event.user_agent) + ":unverified"
        batch.events.append(_stored_event(event, ts, allowed, env.install_secret))
    return list(groups.values())


def timeline_session_id(secret: bytes, ip: str, user_agent: str, ts_ms: int) -> str:
    """The request-timeline session of a client without a tracker session: one per address, agent and UTC day."""
    day = ts_ms // DAY_MS
    digest = hmac.new(secret, f"{ip}|{user_agent}|{day}".encode(), hashlib.sha256).hexdigest()
    return "s-" + digest[:22]


def _address(text: str, index: int) -> IPAddress | None:
    if not text:
        return None
    address = parse_ip(text)
    if address is None:
        raise CaptureError(400, f"not an IP address: {text[:64]!r}", f"$.events[{index}].ip")
    return address


def _new_batch(
    incoming: ServerBatch,
    project: CaptureProject,
    received_at_ms: int,
    env: ServerEnv,
    n: int,
    key: tuple[str, str, str, str],
    address: IPAddress | None,
) -> StoredBatch:
    session_id, _, agent_text, user_id = key
    agent = agent_text[:MAX_USER_AGENT_CHARS]
    browser, browser_version, os_name, os_version, device_type = parse_user_agent(agent)
    country, asn, as_org = lookup_geo(address) if env.geoip else ("", 0, "")
    return StoredBatch(
        batch_id=f"{incoming.batch_id}.{n}",
        project_id=project.id,
        received_at=received_at_ms,
        session_id=session_id,
        anonymous_id="",
        user_id=user_id,
        ip=anonymise_ip(address, project.ip_anonymisation, project.ip_hash_key),
        country=country,
        asn=asn,
        as_org=as_org,
        browser=browser,
        browser_version=browser_version,
        os=os_name,
        os_version=os_version,
        device_type=device_type,
        user_agent=agent,
        events=[],
        source=incoming.source,
        ip_key=ip_key(env.install_secret, address) if address is not None else "",
        ip_net=ip_net(address) if address is not None else "",
    )


def _stored_event(event: ServerEvent, ts: int, allowed: frozenset[str], secret: bytes) -> StoredEvent:
    target = event.path + ("?" + event.query if event.query else "")
    stored = StoredEvent(
        event_id=event.id,
        type=event.type,
        ts=ts,
        client_ts=event.ts,
        url=scrub_url(target, allowed) if target else "",
        referrer=scrub_url(event.referrer, allowed) if event.referrer else "",
    )
    if event.type == "request":
        stored.name = scrub_text(event.route) if len(event.route) >= 6 else event.route
        props: dict[str, object] = {
            "method": event.method,
            "status": event.status,
            "duration_ms": event.duration_ms,
            "bytes": event.bytes,
        }
        # Query values are masked before the spool, so detection gets only the verdict on the raw query.
        injection = injection_kinds(event.query)
        if injection:
            props["injection"] = list(injection)
    else:
        stored.name = event.kind or ""
        props = {
            "ok": bool(event.ok),
            "user_key": user_key(secret, event.username),
            "user_display": user_display(event.username),
            "reason": scrub_text(event.reason) if event.reason else "",
        }
    stored.props = _props_encoder.encode(props).decode()
    return stored


def _corrected_times(incoming: ServerBatch, received_at_ms: int) -> list[int]:
    """Event times corrected for the sender's clock as browser events are (hitmetrix.capture.enrich)."""
    low, high = storable_ts_range_ms(received_at_ms, EVENT_RETENTION_DAYS)
    sent_at = incoming.sent_at
    if sent_at is not None and not low <= sent_at <= high:
        raise CaptureError(400, f"sent_at {sent_at} is not a plausible time: {_outside(low, high)}", "$.sent_at")
    skew = received_at_ms - sent_at if sent_at is not None else 0
    if 0 <= skew <= SKEW_TOLERANCE_MS:
        skew = 0
    latest = max(event.ts for event in incoming.events) + skew
    if latest > received_at_ms:
        skew -= latest - received_at_ms
    corrected = [event.ts + skew for event in incoming.events]
    for index, ts in enumerate(corrected):
        if not low <= ts <= high:
            message = f"ts {incoming.events[index].ts}, {ts} once corrected for clock skew, is {_outside(low, high)}"
            raise CaptureError(400, message, f"$.events[{index}].ts")
    return corrected


def _outside(low_ms: int, high_ms: int) -> str:
    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    dates = f"{iso(low_ms)} to {iso(high_ms)}"
    return f"outside the times the store keeps: {low_ms} to {high_ms} ms since the epoch ({dates})"
