"""The node's public endpoints: health, the tracker script, the OpenAPI document and page, the demo site."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hitmetrix.ops.stores import store_report
from hitmetrix.web.auth import authenticate, public, runtime_of
from hitmetrix.web.demo_site import DemoSite
from hitmetrix.web.offload import run
from hitmetrix.web.openapi import docs_page, openapi_document

STATIC_DIR = Path(__file__).parent / "static"
TRACKER_PATH = STATIC_DIR / "hm.js"


@public("load balancers and tests probe it; it tells loader lag, nothing private")
async def health(request: Request) -> Response:
    # Loader lag, recordings waiting, quarantine counts: a few directory reads, off the event loop.
    runtime = runtime_of(request)
    body = {"ok": True, **await run(runtime.loader.health)}
    if runtime.detection is not None:  # its cursor, lag, rates and state size
        body["detection"] = await run(runtime.detection.health)
    principal = await authenticate(request, runtime) if "authorization" in request.headers else None
    if principal is not None and principal.via == "local":
        # For `hitmetrix doctor`: only this process may open the store (chDB locks it), so it reports on it.
        body["store"] = await run(store_report, runtime.store)
    return JSONResponse(body)


@public("the tracker script every recorded site loads")
async def tracker(request: Request) -> Response:
    if not TRACKER_PATH.exists():
        return JSONResponse({"error": "tracker not built: run `make tracker`"}, 503)
    return FileResponse(
        TRACKER_PATH,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@public("the API's description")
async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


@public("the API's description, readable")
async def api_docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


@public("a bare redirect to the demo site")
async def to_demo(request: Request) -> Response:
    return RedirectResponse("/demo/", 307)


STATIC_ROUTES: list[BaseRoute] = [Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]

ROUTES: list[BaseRoute] = [
    Route("/healthz", health),
    Route("/hm.js", tracker),
    Route("/api/openapi.json", openapi),
    Route("/api/docs", api_docs),
]

DEMO_ROUTES: list[BaseRoute] = [
    Route("/demo", to_demo),
    Mount("/demo", DemoSite()),  # the demo dating site (hitmetrix.web.demo_site)
]
