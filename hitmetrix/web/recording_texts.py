"""Stylesheets and other large texts that a project's recordings refer to by content hash instead of carrying them.

``GET /projects/{id}/texts/{sha256}`` answers one such text (``hitmetrix.store.blobs``) to whoever may watch the
project's replays; the replay page puts it back into the chunk before rrweb sees it. Texts are kept per project,
so another project's hash is a 404, as is anything for anyone else. It is text only, never run or rendered:
``text/plain``, ``nosniff``, a CSP of ``default-src 'none'`` and ``sandbox``; and private like recordings
(``no-store``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.web.api import error
from hitmetrix.web.auth import guard, project_of, runtime_of
from hitmetrix.web.offload import run

TEXT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@guard("viewer", replay=True)
async def recording_text(request: Request) -> Response:
    runtime, project = runtime_of(request), project_of(request)
    text = await run(runtime.blobs.get_text, project.id, request.path_params["sha256"])
    if text is None:
        return error(404, "no such text in this project")
    return Response(text, media_type="text/plain; charset=utf-8", headers=TEXT_HEADERS)


ROUTES: list[BaseRoute] = [Route("/projects/{project_id:int}/texts/{sha256}", recording_text, methods=["GET"])]
