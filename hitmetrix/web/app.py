"""Build the ASGI app of one Hitmetrix node from a runtime.

The routes are in ``routes``; handlers find the runtime in
``request.app.state.runtime``, set here, and the live feed capture publishes
to in ``request.app.state.live_feed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware

from hitmetrix.capture import CaptureContext, warm_capture
from hitmetrix.capture.server import KeyCache
from hitmetrix.detect.keys import install_secret
from hitmetrix.observe.feed import LiveFeed
from hitmetrix.runtime import Runtime
from hitmetrix.spool import SpoolUnavailableError
from hitmetrix.web.render import http_error
from hitmetrix.web.routes import routes
from hitmetrix.web.security import SecurityHeadersMiddleware


def build_app(runtime: Runtime) -> Starlette:
    live_feed = LiveFeed()  # what capture accepted, for live views (best-effort, in memory)
    capture = CaptureContext(
        settings=runtime.settings,
        resolve_project=runtime.projects,
        spool_append=runtime.spool.append,
        unavailable_errors=(SpoolUnavailableError,),
        on_accepted=live_feed.publish,
        install_secret=install_secret(runtime.data_dir),
        resolve_server_key=KeyCache(runtime.meta.project_by_server_key),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(warm_capture, runtime.settings)
        if not runtime.started:
            runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = Starlette(
        routes=routes(runtime, capture),
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeadersMiddleware)],
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.runtime = runtime
    app.state.live_feed = live_feed
    return app
