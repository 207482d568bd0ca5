"""``GET /metrics``: the node's Prometheus metrics (``hitmetrix.observe.metrics``) behind their own token.

Off unless the ``metrics_token`` setting is set: then it answers 404 like any
unknown address. With a token set, a scrape must send ``Authorization: Bearer
<metrics_token>`` (401 otherwise). It is a token of its own, not a user's, so a
Prometheus server can scrape without being able to read any recording.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from hitmetrix.detect.metrics import DetectionCollector
from hitmetrix.observe.metrics import NodeSources, build_registry
from hitmetrix.web.auth import public, runtime_of
from hitmetrix.web.live import feed_of
from hitmetrix.web.offload import run


def registry_of(request: Request) -> CollectorRegistry:
    """The app's registry, made on the first scrape."""
    state = request.app.state
    registry: CollectorRegistry | None = getattr(state, "metrics_registry", None)
    if registry is None:
        runtime = runtime_of(request)
        registry = build_registry(NodeSources(spool=runtime.spool, loader=runtime.loader, feed=feed_of(request)))
        if runtime.detection is not None:
            registry.register(DetectionCollector(runtime.detection))
        state.metrics_registry = registry
    return registry


def _authorised(request: Request, token: str) -> bool:
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


@public("scraped by Prometheus with its own bearer token (setting metrics_token); off without one")
async def metrics(request: Request) -> Response:
    token: str = getattr(runtime_of(request).settings, "metrics_token", "") or ""
    if not token:
        raise HTTPException(404)
    if not _authorised(request, token):
        return PlainTextResponse(
            "metrics need Authorization: Bearer <metrics_token>\n", 401, headers={"WWW-Authenticate": "Bearer"}
        )
    # Directory listings (spool, inbox, quarantine): off the event loop that capture shares.
    body = await run(generate_latest, registry_of(request))
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


ROUTES: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]
