"""The node's public endpoints: health, the tracker script, the OpenAPI document and page, the demo site."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hitmetrix.ops.stores import store_report
from hitmetrix.web.auth import authenticate, public, runtime_of
from hitmetrix.web.offload import run
from hitmetrix.web.openapi import docs_page, openapi_document

STATIC_DIR = Path(__file__).parent / "static"
DEMO_DIR = Path(__file__).parent / "demo"
TRACKER_PATH = STATIC_DIR / "hm.js"
DEMO_PAGES = ("index.html", "about.html")


@public("load balancers and tests probe it; it tells loader lag, nothing private")
async def health(request: Request) -> Response:
    # Loader lag, recordings waiting, quarantine counts: a few directory reads, off the event loop.
    runtime = runtime_of(request)
    body = {"ok": True, **await run(runtime.loader.health)}
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


def _demo_pages(request: Request) -> dict[str, str]:
    """The demo shop's pages, each loading the tracker with the demo project's key (made once per app)."""
    state = request.app.state
    pages: dict[str, str] | None = getattr(state, "demo_pages", None)
    if pages is None:
        key = runtime_of(request).demo_project().public_key
        pages = {name: (DEMO_DIR / name).read_text().replace("{{HM_KEY}}", key) for name in DEMO_PAGES}
        state.demo_pages = pages
    return pages


@public("the self-recording demo shop (only with --demo)")
async def demo_page(request: Request) -> Response:
    pages = await run(_demo_pages, request)
    rest = request.path_params.get("rest", "")
    return HTMLResponse(pages["about.html" if rest == "about.html" else "index.html"])


@public("a bare redirect to the demo shop")
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
    Mount("/demo/static", StaticFiles(directory=DEMO_DIR / "static")),
    Route("/demo/", demo_page),
    Route("/demo", to_demo),
    Route("/demo/{rest:path}", demo_page),
]
