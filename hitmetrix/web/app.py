"""Build the ASGI app of one Hitmetrix node from a runtime."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hitmetrix.capture import CaptureContext, capture_routes, warm_capture
from hitmetrix.runtime import Runtime
from hitmetrix.spool import SpoolUnavailableError
from hitmetrix.web.api import api_routes
from hitmetrix.web.openapi import docs_page, openapi_document
from hitmetrix.web.pages import page_routes
from hitmetrix.web.render import http_error
from hitmetrix.web.security import SecurityHeadersMiddleware
from hitmetrix.web.session_pages import session_page_routes

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEMO_DIR = Path(__file__).parent / "demo"
TRACKER_PATH = STATIC_DIR / "hm.js"


def build_app(runtime: Runtime) -> Starlette:
    capture = CaptureContext(
        settings=runtime.settings,
        resolve_project=runtime.projects,
        spool_append=runtime.spool.append,
        unavailable_errors=(SpoolUnavailableError,),
    )

    async def health(request: Request) -> Response:
        # Loader lag, recordings waiting, quarantine counts: a few directory reads, off the event loop.
        loader = await anyio.to_thread.run_sync(runtime.loader.health)
        return JSONResponse({"ok": True, **loader})

    async def tracker(request: Request) -> Response:
        if not TRACKER_PATH.exists():
            return JSONResponse({"error": "tracker not built: run `make tracker`"}, 503)
        return FileResponse(
            TRACKER_PATH,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def api_docs(request: Request) -> Response:
        return HTMLResponse(docs_page())

    routes: list[BaseRoute] = [
        Route("/healthz", health),
        Route("/hm.js", tracker),
        Route("/api/openapi.json", openapi),
        Route("/api/docs", api_docs),
        *capture_routes(capture),
        *api_routes(runtime),
        *page_routes(runtime),
        *session_page_routes(runtime),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if runtime.settings.demo:
        routes += demo_routes(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(warm_capture, runtime.settings)
        if not runtime.started:
            runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeadersMiddleware)],
        exception_handlers={404: http_error, 405: http_error},
    )


def demo_routes(runtime: Runtime) -> list[BaseRoute]:
    """The self-recording demo shop: every page loads the tracker with the demo project's key."""
    key = runtime.demo_project().public_key
    pages = {name: (DEMO_DIR / name).read_text().replace("{{HM_KEY}}", key) for name in ("index.html", "about.html")}

    async def page(request: Request) -> Response:
        rest = request.path_params.get("rest", "")
        name = "about.html" if rest == "about.html" else "index.html"
        return HTMLResponse(pages[name])

    async def to_demo(request: Request) -> Response:
        return RedirectResponse("/demo/", 307)

    return [
        Mount("/demo/static", StaticFiles(directory=DEMO_DIR / "static")),
        Route("/demo/", page),
        Route("/demo", to_demo),
        Route("/demo/{rest:path}", page),
    ]
