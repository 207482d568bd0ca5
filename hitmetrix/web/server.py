"""Run one node: build the runtime and app, then serve with uvicorn.

Also the CLI's client side: talk to the node serving a data directory, or
answer a request in process when none is running.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import uvicorn.config

from hitmetrix.observe.feed import LiveFeed
from hitmetrix.observe.logs import announce, configure_logging
from hitmetrix.ops.node import running_server, server_file
from hitmetrix.runtime import build_runtime, ensure_admin_token
from hitmetrix.settings import Settings
from hitmetrix.store.web_sessions import issue_setup_token
from hitmetrix.web.app import build_app

log = logging.getLogger(__name__)


# Once stopping, in-flight requests get this long to finish before they are cancelled.
GRACEFUL_SHUTDOWN_S = 10


class _Server(uvicorn.Server):
    """uvicorn, ending the app's live streams first when it stops (uvicorn waits for every open
    response to finish before it shuts the app down, and a live stream would never finish), and
    removing the server marker last: after a signal, uvicorn raises it again once it has shut down,
    which ends the process before any ``finally`` of the caller runs."""

    def __init__(self, config: uvicorn.Config, live_feed: LiveFeed | None, marker: Path) -> None:
        super().__init__(config)
        self.live_feed = live_feed
        self.marker = marker

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.live_feed is not None:
            self.live_feed.close()
        try:
            await super().shutdown(sockets)
        finally:
            self.marker.unlink(missing_ok=True)


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    runtime = build_runtime(settings)
    app = build_app(runtime)
    base = f"http://{settings.host}:{settings.port}"
    if settings.demo:
        announce(f"Demo site:  {base}/demo/  (project 'demo', key {runtime.demo_project().public_key})")
    announce(f"Hitmetrix:  {base}/   data in {runtime.data_dir}")
    setup_token = issue_setup_token(runtime.meta)  # None once any user exists: never a default password
    if setup_token is not None:
        announce(f"Create the first admin: {base}/setup?token={setup_token}")
    marker = server_file(runtime.data_dir)
    marker.write_text(json.dumps({"url": base, "pid": os.getpid()}))
    # Capture allocates many short-lived objects; fewer young-generation
    # collections measurably raise throughput (DESIGN.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # JSON lines: uvicorn's loggers go through ours (observe.logs) instead of its own text handlers.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        # Scheme (for Secure cookies) and client address come from X-Forwarded-* of the
        # configured proxies only; with none configured, nobody's forwarded headers count.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = _Server(config, getattr(app.state, "live_feed", None), marker)
    try:
        server.run()
    finally:
        marker.unlink(missing_ok=True)
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: the address is taken, or start-up failed (logged above)


def request(settings: Settings, path: str) -> tuple[int, Any]:
    """GET one API path with the local admin token: from the running server, or in process."""
    data_dir = Path(settings.data_dir).resolve()
    url = running_server(data_dir)
    if url is not None:
        token = ensure_admin_token(data_dir)
        response = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
        return response.status_code, _body(response)
    runtime = build_runtime(settings)
    try:
        transport = httpx.ASGITransport(app=build_app(runtime))

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://hitmetrix.local") as client:
                return await client.get(path, headers={"Authorization": f"Bearer {runtime.admin_token}"})

        response = asyncio.run(call())
        return response.status_code, _body(response)
    finally:
        runtime.store.close()
        runtime.meta.close()


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
