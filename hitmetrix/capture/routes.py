"""The capture endpoint, ``POST /api/v1/batch`` (docs/capture-api.md), and its CORS preflight.

The arrival time is taken first, before anything else (clock-skew correction
measures against it). Checks run cheapest first, so that refused requests cost
little: content type and declared length, then the key (when given in the URL or
a header), origin and rate limit — all before the body is read — then the body
under a size cap, decompression under a cap, its nesting depth, schema
validation, the enrichment pipeline (which refuses times the store cannot keep),
and the recording chunks inflated and checked (in a worker thread when they are
big) — then the spool append. Everything the loader would refuse is refused
here: we answer 200 only after the append returned, i.e. is durable, and only
for what will be stored.
Any exception of a class in ``CaptureContext.unavailable_errors`` (raised by the
spool or by the project lookup) is a 503 with Retry-After; any other unexpected
exception is a logged, generic 500.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from contextlib import aclosing
from time import perf_counter

import anyio.to_thread
import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hitmetrix.capture.body import check_content_type, check_declared_length, decode_content, read_capped
from hitmetrix.capture.context import CaptureContext, CaptureProject
from hitmetrix.capture.enrich import STEP_TIMINGS, EnrichEnv, Enrichment, RequestFacts, StepStats, run_pipeline
from hitmetrix.capture.network import IPAddress, client_address, parse_trusted_proxies
from hitmetrix.capture.ratelimit import RateLimiter
from hitmetrix.capture.recording import RecordingLimits, check_recording, compressed_bytes
from hitmetrix.capture.schema import CaptureError, IncomingChunk, check_body_depth, decode_batch_body, key_in_body
from hitmetrix.detect.crawler import shared_verifier
from hitmetrix.model import encode_batch

BATCH_PATH = "/api/v1/batch"
SPOOL_RETRY_AFTER_S = 1
KEY_HEADER = "x-hitmetrix-key"
# Recording chunks weighing more than this as sent are checked in a worker thread, so that
# inflating and parsing them (~1 ms per 20 KiB sent) does not hold up other requests.
INLINE_RECORDING_BYTES = 64 * 1024

_CORS_HEADERS = {
    "Vary": "Origin",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, X-Hitmetrix-Key",
    "Access-Control-Max-Age": "86400",
    # Retry-After is not CORS-safelisted: without this the tracker could not read it.
    "Access-Control-Expose-Headers": "Retry-After",
}

log = logging.getLogger(__name__)
# Answers by status, for /metrics; 500s are bugs.
ANSWERS: Counter[int] = Counter()
# What was accepted (batches, events, chunks, and the spool bytes they took), for /metrics.
ACCEPTED: Counter[str] = Counter()


def capture_routes(ctx: CaptureContext) -> list[Route]:
    """The capture routes, to mount in the application's Starlette route list."""
    endpoint = CaptureEndpoint(ctx)
    # A plain ASGI app with no ``methods``: other methods get our JSON 405, not a plain-text one.
    return [Route(BATCH_PATH, endpoint, name="capture_batch")]


class _Refused(Exception):
    """A refusal whose answer must not carry Access-Control-Allow-Origin (the origin is not allowed)."""

    def __init__(self, error: CaptureError) -> None:
        super().__init__(error.message)
        self.error = error


class CaptureEndpoint:
    def __init__(self, ctx: CaptureContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.max_body_bytes: int = settings.max_body_bytes
        self.max_decompressed_bytes: int = settings.max_decompressed_bytes
        self.max_events: int = settings.max_events_per_batch
        self.max_json_depth: int = settings.max_json_depth
        self.recording_limits = RecordingLimits(
            max_chunk_json_bytes=settings.max_chunk_json_bytes,
            max_recording_bytes=settings.max_recording_bytes_per_batch,
            max_json_depth=settings.max_json_depth,
        )
        self.env = EnrichEnv(
            clock=ctx.clock,
            trusted_proxies=parse_trusted_proxies(settings.trusted_proxies),
            geoip=settings.geoip,
            install_secret=ctx.install_secret,
            crawlers=shared_verifier(settings),
        )
        # rate_limit_rps <= 0 switches rate limiting off (benchmarks from one address, trusted senders).
        self.limiter: RateLimiter | None = None
        if settings.rate_limit_rps > 0:
            self.limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst, clock=ctx.monotonic)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        origin = request.headers.get("origin", "")
        try:
            if request.method == "POST":
                return await self._capture(request, origin)
            if request.method == "OPTIONS":
                return self._preflight(request, origin)
            return _answer(405, {"error": "method not allowed: use POST"}, origin, {"Allow": "POST, OPTIONS"})
        except CaptureError as exc:
            return _error(exc, origin)
        except _Refused as exc:
            return _error(exc.error, "")
        except ClientDisconnect:
            return _error(CaptureError(400, "client disconnected"), origin)
        except self.ctx.unavailable_errors as exc:
            log.warning("capture: storage unavailable: %r", exc)
            error = CaptureError(503, "temporarily unable to store data, retry later")
            return _error(error, origin, {"Retry-After": str(SPOOL_RETRY_AFTER_S)})
        except Exception:
            log.exception("capture: unexpected error (a bug) answering %s %s", request.method, request.url.path)
            return _answer(500, {"error": "internal error"}, origin)

    def _preflight(self, request: Request, origin: str) -> Response:
        key = request.query_params.get("key", "")
        project = self.ctx.resolve_project(key) if key else None
        if project is not None and not _origin_allowed(project, origin):
            raise _Refused(CaptureError(403, "origin not allowed"))
        return _answer(204, None, origin)

    async def _capture(self, request: Request, origin: str) -> Response:
        # Before the body is read: however long the upload takes, it is not client clock error.
        received_at_ms = int(self.ctx.clock() * 1000)
        headers = request.headers
        check_content_type(headers.get("content-type", ""))
        check_declared_length(headers.get("content-length", ""), self.max_body_bytes)
        facts = RequestFacts(
            peer=request.client.host if request.client else "",
            # Several X-Forwarded-For lines form one list, in order.
            forwarded_for=",".join(headers.getlist("x-forwarded-for")),
            user_agent=headers.get("user-agent", ""),
            received_at_ms=received_at_ms,
        )
        client = client_address(facts.peer, facts.forwarded_for, self.env.trusted_proxies)

        key = request.query_params.get("key", "") or headers.get(KEY_HEADER, "")
        project = self._admit(key, origin, client) if key else None
        async with aclosing(request.stream()) as chunks:
            body = await read_capped(chunks, self.max_body_bytes)
        raw = decode_content(body, headers.get("content-encoding", ""), self.max_decompressed_bytes)
        check_body_depth(raw, self.max_json_depth)  # before anything decodes it
        if project is None:
            project = self._admit(key_in_body(raw), origin, client)

        incoming = decode_batch_body(raw, max_events=self.max_events)
        enrichment = run_pipeline(
            Enrichment(facts, project, incoming, self.env, client_ip=client, client_ip_resolved=True)
        )
        if enrichment.drop_reason is not None:
            return _answer(200, {"ok": True, "events": 0, "chunks": 0}, origin)
        if incoming.recording:
            await self._check_recording(incoming.recording)
        stored = enrichment.stored
        payload = encode_batch(stored)
        await self.ctx.spool_append(payload)
        ACCEPTED["batches"] += 1
        ACCEPTED["events"] += len(stored.events)
        ACCEPTED["chunks"] += len(stored.recording)
        ACCEPTED["bytes"] += len(payload)
        if self.ctx.on_accepted is not None:
            self.ctx.on_accepted(stored)  # after the append: only what is durable is announced
        return _answer(200, {"ok": True, "events": len(stored.events), "chunks": len(stored.recording)}, origin)

    async def _check_recording(self, chunks: list[IncomingChunk]) -> None:
        started = perf_counter()
        try:
            if compressed_bytes(chunks) <= INLINE_RECORDING_BYTES:
                check_recording(chunks, self.recording_limits)
            else:
                await anyio.to_thread.run_sync(check_recording, chunks, self.recording_limits)
        finally:
            STEP_TIMINGS.setdefault("check_recording", StepStats()).observe(perf_counter() - started)

    def _admit(self, key: str, origin: str, client: IPAddress | None) -> CaptureProject:
        """Key → project, then origin and rate limit; raises the refusal."""
        project = self.ctx.resolve_project(key) if key else None
        if project is None:
            raise CaptureError(401, "unknown project key")
        if not _origin_allowed(project, origin):
            raise _Refused(CaptureError(403, "origin not allowed"))
        if self.limiter is not None:
            decision = self.limiter.check((project.id, client))
            if not decision.allowed:
                raise _RateLimited(decision.retry_after_header)
        return project


class _RateLimited(CaptureError):
    def __init__(self, retry_after: str) -> None:
        super().__init__(429, "rate limit exceeded, retry later")
        self.retry_after = retry_after


def _origin_allowed(project: CaptureProject, origin: str) -> bool:
    """No Origin header (server-side senders) or no configured origins: allowed."""
    if not origin:
        return True
    allowed = project.origins()
    return not allowed or origin.lower() in (o.lower() for o in allowed)


def _error(error: CaptureError, origin: str, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, object] = {"error": error.message}
    if error.field is not None:
        body["field"] = error.field
    if isinstance(error, _RateLimited):
        headers = {"Retry-After": error.retry_after}
    return _answer(error.status, body, origin, headers)


def _answer(status: int, body: object, origin: str, extra: Mapping[str, str] | None = None) -> Response:
    ANSWERS[status] += 1
    headers = dict(_CORS_HEADERS)
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    if extra:
        headers.update(extra)
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(msgspec.json.encode(body), status_code=status, headers=headers, media_type="application/json")
