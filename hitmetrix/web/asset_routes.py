"""Captured assets for replays: the files themselves, and each session's map from original URLs to them.

``GET /projects/{id}/assets/{sha256}`` serves one captured stylesheet, image or
font to whoever may watch the project's replays (anyone else: 404, as if it did
not exist). It is served so that, opened directly, it can run nothing and embed
nothing: its stored type (never HTML), ``nosniff``, a CSP of ``default-src
'none'`` and ``sandbox``, ``Content-Disposition: attachment``, and
``Cross-Origin-Resource-Policy: same-origin``. It is content-addressed and never
changes, yet it is private: ``no-store``, like recordings, so that after sign-out
the next user of the browser cannot read it from the cache. A stylesheet has its
URLs rewritten (``hitmetrix.assets.stylesheet``). An SVG is served as an image
only: the replay uses it in ``<img>`` and CSS, where it runs no script.

``GET /api/v1/projects/{id}/sessions/{sid}/assets`` answers what the replay
page needs: ``assets`` (original URL → dashboard asset URL), ``failed`` (URLs
that could not be fetched, with the reason) and ``pending`` (not fetched yet).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import sessions
from hitmetrix.assets.origin import allowed_origins
from hitmetrix.assets.stylesheet import asset_path, served_stylesheet
from hitmetrix.web.api import error, json_response, session_id_of
from hitmetrix.web.auth import guard, principal_of, project_of, runtime_of
from hitmetrix.web.offload import run
from hitmetrix.web.render import error_page
from hitmetrix.web.security import replay_origins

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
NO_ASSET = "There is no such asset in this project."
ASSET_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; font-src 'self'; sandbox"
ASSET_HEADERS = {
    "Content-Security-Policy": ASSET_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Disposition": "attachment",
}


@guard("viewer", replay=True)
async def asset(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    sha256: str = request.path_params["sha256"]
    worker = runtime.assets
    if worker is None or not _SHA256.match(sha256):
        return error_page(request, 404, NO_ASSET, principal_of(request))
    store = worker.store
    stored = await run(store.stored, project.id, sha256)
    if stored is None:
        return error_page(request, 404, NO_ASSET, principal_of(request))
    try:
        body = await run(store.read_blob, sha256)
    except OSError:  # the index names a file that is gone (a data directory restored without it)
        return error_page(request, 404, NO_ASSET, principal_of(request))
    media_type = stored.content_type
    if media_type == "text/css":
        # The replay page's CSP allows these origins; only they may stay as the fallback of an uncaptured URL.
        fallback = allowed_origins(replay_origins(project.origins()))
        body = await run(served_stylesheet, store, project.id, stored, body, fallback)
        media_type = "text/css; charset=utf-8"
    return Response(body, media_type=media_type, headers=ASSET_HEADERS)


@guard("viewer", api=True, replay=True)
async def session_assets(request: Request) -> Response:
    runtime, pid = runtime_of(request), project_of(request).id
    if (sid := session_id_of(request)) is None:
        return error(404, "no such session")
    chunks = await run(sessions.recording_chunks, runtime.store, pid, sid)
    if not chunks:
        return error(404, "no recording for this session")
    if runtime.assets is None:
        return json_response({"assets": {}, "failed": [], "pending": 0})
    found = await run(runtime.assets.store.session_assets, pid, sid)
    return json_response(
        {
            "assets": {url: asset_path(pid, sha256) for url, sha256 in found.captured.items()},
            "failed": [{"url": url, "reason": reason} for url, reason in found.failed.items()],
            "pending": found.pending,
        }
    )


ROUTES: list[BaseRoute] = [
    Route("/projects/{project_id:int}/assets/{sha256}", asset, methods=["GET"]),
    Route("/api/v1/projects/{project_id:int}/sessions/{session_id}/assets", session_assets, methods=["GET"]),
]
