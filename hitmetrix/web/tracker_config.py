"""``GET /api/v1/tracker-config?key=``: which optional tracker features (console, network, web vitals) the
project turned on, so the tracker loads the code of those alone (hm-console.js … beside hm.js).

Public and cacheable: any site that loads the tracker learns these switches from its behaviour anyway, and
the answer says nothing else about the project. It comes from the capture path's project cache.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.web.api import error, json_response
from hitmetrix.web.auth import public, runtime_of
from hitmetrix.web.offload import run

CONFIG_PATH = "/api/v1/tracker-config"
MAX_KEY_CHARS = 64
# Short: a project's owner who switches a feature on sees it at work within a minute.
CONFIG_MAX_AGE_S = 60
# The feature each switch stands for, as the tracker names its chunks (hm-<name>.js).
FEATURES = {"console": "record_console", "network": "record_network", "vitals": "record_vitals"}


@public("the tracker learns which optional features its project turned on: public switches, nothing else")
async def tracker_config(request: Request) -> Response:
    key = request.query_params.get("key", "")
    if not key or len(key) > MAX_KEY_CHARS:
        return _cors(error(400, f"key must be a project's public key (1 to {MAX_KEY_CHARS} characters)"))
    project = await run(runtime_of(request).projects, key)
    if project is None:
        return _cors(error(404, "no project has this key"))
    answer = json_response({name: bool(getattr(project, column)) for name, column in FEATURES.items()})
    answer.headers["Cache-Control"] = f"public, max-age={CONFIG_MAX_AGE_S}"
    return _cors(answer)


def _cors(answer: Response) -> Response:
    # Read without credentials from any site that loads the tracker (the capture endpoint checks origins).
    answer.headers["Access-Control-Allow-Origin"] = "*"
    return answer


ROUTES: list[BaseRoute] = [Route(CONFIG_PATH, tracker_config, methods=["GET"])]
